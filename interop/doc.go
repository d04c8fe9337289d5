// Package interop runs Microsoft's own managed-identity clients — MSAL Go, msal-node and MSAL
// Python, unmodified — against the mtlspop emulator, one emulated source at a time. It is a
// separate module so that the product never depends on MSAL; ci/interop.sh installs the Node and
// Python packages into build/interop and runs it.
package interop

// Package version holds the library version, the one place every surface reads it from.
package version

// Version is the semantic version of libmtlspop. The C ABI, the wheel and the npm package carry
// the same string.
const Version = "0.1.0"

// SKU names this library in the x-client-SKU header, as MSAL's libraries name themselves.
const SKU = "libmtlspop.go"

package emulator

import (
	"crypto"
	"crypto/x509"
)

// IssueBindingCertificateForTest issues a binding certificate for any client id, so tests can
// present a certificate from the emulator's binding CA whose CN is not a known identity.
func (e *Emulator) IssueBindingCertificateForTest(clientID string, pub crypto.PublicKey) (*x509.Certificate, error) {
	return e.ca.issueBinding(clientID, pub)
}

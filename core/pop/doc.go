// Package pop verifies certificate-bound ("mtls_pop") access tokens on the resource side.
//
// An mtls_pop token is an ordinary signed JWT that carries a confirmation claim,
// cnf.x5t#S256: the SHA-256 thumbprint of the client certificate the token was issued to
// (RFC 8705 §3.1). A resource that accepts it must check more than the signature: the caller
// has to present that very certificate in the TLS handshake of the request that carries the
// token. That check is what makes a stolen token useless, so a resource that forgets it has
// gained nothing over Bearer tokens. This package does the whole job in one call, so the
// binding check cannot be left out:
//
//	v := &pop.Verifier{
//		Keys:      pop.NewJWKS("https://login.example/tenant/discovery/v2.0/keys", nil),
//		Issuer:    "https://login.example/tenant/v2.0",
//		Audiences: []string{"api://my-resource"},
//	}
//	claims, err := v.Verify(ctx, r.Header.Get("Authorization"), r.TLS.PeerCertificates[0])
//
// or, for net/http servers, Middleware(v) around the handler, with the server asking for
// client certificates (tls.RequestClientCert or stronger): the token arrives after the
// handshake, so the server must request the certificate in advance.
//
// Every refusal is a *token.Error with Code token.CodeInvalidToken and Status 401, whose
// message says which check failed and never contains the token or any part of it, so it can be
// logged and sent back to the client as the RFC 6750 error_description. Failures that are not
// the token's fault (the key set could not be fetched) carry token.CodeNetwork and Status 503,
// so a client is not told to throw away a token that may be perfectly good.
package pop

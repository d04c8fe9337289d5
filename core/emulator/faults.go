package emulator

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Endpoint names one emulated endpoint, for fault injection and request records.
type Endpoint string

// The emulated endpoints.
const (
	EndpointIMDSToken           Endpoint = "imds_token"           // IMDS GET /metadata/identity/oauth2/token
	EndpointPlatformMetadata    Endpoint = "getplatformmetadata"  // IMDS GET /metadata/identity/getplatformmetadata
	EndpointIssueCredential     Endpoint = "issuecredential"      // IMDS POST /metadata/identity/issuecredential
	EndpointToken               Endpoint = "token"                // mtlsauth POST /{tenant}/oauth2/v2.0/token
	EndpointResource            Endpoint = "resource"             // the sample resource, every path
	EndpointJWKS                Endpoint = "jwks"                 // login GET /{tenant}/discovery/v2.0/keys
	EndpointOpenIDConfiguration Endpoint = "openid_configuration" // login GET /{tenant}/v2.0/.well-known/openid-configuration
)

// Fault changes how an endpoint answers. The zero Fault changes nothing. Header, Delay and
// ServerHeader combine with normal handling; the first of DropConnection, Status, Malformed and
// Oversize that is set replaces it.
type Fault struct {
	Status         int           // answer with this status (0 = normal handling)
	Body           string        // body for Status (default: an MSAL-shaped error JSON)
	Header         http.Header   // extra response headers (e.g. Retry-After)
	Delay          time.Duration // wait before answering; a request whose context ends first gets no answer
	Count          int           // how many requests the fault applies to; 0 = until cleared
	Malformed      bool          // 200 with a body that is not JSON
	Oversize       bool          // 200 with a 4 MiB body
	ServerHeader   *string       // override the Server header (IMDS sends one); pointer to "" removes it
	DropConnection bool          // close the connection without an answer
}

// OversizeBytes is the length of the body of an Oversize fault.
const OversizeBytes = 4 << 20

// Recorded is a request as an endpoint received it.
type Recorded struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Form   url.Values // the form-encoded body, if the request had one
	// Body is the request body (at most 64 KiB of it).
	Body []byte
	// ClientCertificate is the TLS client certificate the caller presented, if any.
	ClientCertificate *x509.Certificate
}

func (r *Recorded) clone() *Recorded {
	if r == nil {
		return nil
	}
	c := *r
	c.Query = cloneValues(r.Query)
	c.Header = r.Header.Clone()
	c.Form = cloneValues(r.Form)
	c.Body = bytes.Clone(r.Body)
	return &c
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	return url.Values(http.Header(v).Clone())
}

type faultState struct {
	f         Fault
	remaining int // > 0: requests left; 0: until cleared
}

// InjectFault makes ep answer according to f, replacing any fault already set on ep.
func (e *Emulator) InjectFault(ep Endpoint, f Fault) {
	f.Header = f.Header.Clone()
	if f.ServerHeader != nil {
		s := *f.ServerHeader
		f.ServerHeader = &s
	}
	e.mu.Lock()
	e.faults[ep] = &faultState{f: f, remaining: max(0, f.Count)}
	e.mu.Unlock()
}

// ClearFaults removes every fault.
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	clear(e.faults)
	e.mu.Unlock()
}

// Requests is the number of requests ep has received, including those a fault answered.
func (e *Emulator) Requests(ep Endpoint) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts[ep]
}

// LastRequest is a copy of the latest request ep received, or nil if none.
func (e *Emulator) LastRequest(ep Endpoint) *Recorded {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last[ep].clone()
}

// RevokeBindingCertificates revokes every binding certificate issued so far: the mTLS token
// endpoint refuses them at the TLS handshake, so the client sees a TLS alert, and the open
// connections that presented one are closed. Certificates
// issued later are not affected.
func (e *Emulator) RevokeBindingCertificates() {
	n := e.ca.revokeAll()
	// A real token host refuses a revoked certificate on every connection, not only new ones:
	// cut the kept-alive connections that presented one, so the client's next request handshakes.
	cut := e.mtlsauth.closeConns(e.ca.isRevoked)
	e.log.Info("binding certificates revoked", slog.Int("count", n), slog.Int("connections_closed", cut))
}

// takeFault returns the fault for ep, if any, and uses up one of its requests.
func (e *Emulator) takeFault(ep Endpoint) *Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	fs := e.faults[ep]
	if fs == nil {
		return nil
	}
	if fs.remaining > 0 {
		fs.remaining--
		if fs.remaining == 0 {
			delete(e.faults, ep)
		}
	}
	f := fs.f
	return &f
}

// maxRequestBody bounds every request body the emulator reads.
const maxRequestBody = 64 << 10

// exchange is one request as the handlers see it, after the endpoint wrapper has read the body.
type exchange struct {
	ep          Endpoint
	body        []byte
	tooLarge    bool
	form        url.Values
	formErr     error
	isForm      bool
	fault       *Fault
	handlerNote string // a short, secret-free note for the log line
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, x *exchange)

// endpoint wraps h with what every endpoint does first: track the request for Close, read the
// body (size-limited), count and record the request, take the fault, and log the outcome.
func (e *Emulator) endpoint(ep Endpoint, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			w.Header().Set("Connection", "close")
			http.Error(w, "emulator closed", http.StatusServiceUnavailable)
			return
		}
		e.inflight.Add(1)
		e.mu.Unlock()
		defer e.inflight.Done()

		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		x := &exchange{ep: ep}
		defer func() {
			attrs := []slog.Attr{
				slog.String("endpoint", string(ep)),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", sw.status),
				slog.Duration("duration", time.Since(start)),
			}
			if x.fault != nil {
				attrs = append(attrs, slog.Bool("fault", true))
			}
			if x.handlerNote != "" {
				attrs = append(attrs, slog.String("note", x.handlerNote))
			}
			if id := correlationID(r); id != "" {
				attrs = append(attrs, slog.String("correlation_id", id))
			}
			e.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
		}()

		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
		if err == nil && len(body) > maxRequestBody {
			body, x.tooLarge = body[:maxRequestBody], true
		}
		x.body = body
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
			x.isForm = true
			if x.tooLarge {
				x.formErr = fmt.Errorf("body exceeds %d bytes", maxRequestBody)
			} else {
				x.form, x.formErr = url.ParseQuery(string(body))
			}
		}
		rec := &Recorded{
			Method: r.Method,
			Path:   r.URL.Path,
			Query:  r.URL.Query(),
			Header: r.Header.Clone(),
			Form:   cloneValues(x.form),
			Body:   bytes.Clone(body),
		}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			rec.ClientCertificate = r.TLS.PeerCertificates[0]
		}
		e.mu.Lock()
		e.counts[ep]++
		e.last[ep] = rec
		e.mu.Unlock()

		x.fault = e.takeFault(ep)
		if isIMDS(ep) {
			sw.Header().Set("Server", IMDSServerHeader)
		}
		if id := correlationID(r); id != "" && ep == EndpointToken {
			sw.Header().Set("client-request-id", id)
		}
		if x.fault != nil && e.applyFault(sw, r, x) {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h(sw, r, x)
	})
}

func isIMDS(ep Endpoint) bool {
	return ep == EndpointIMDSToken || ep == EndpointPlatformMetadata || ep == EndpointIssueCredential
}

// applyFault acts out x.fault and reports whether it answered the request.
func (e *Emulator) applyFault(w http.ResponseWriter, r *http.Request, x *exchange) bool {
	f := x.fault
	for k, vs := range f.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if f.ServerHeader != nil {
		if *f.ServerHeader == "" {
			w.Header().Del("Server")
		} else {
			w.Header().Set("Server", *f.ServerHeader)
		}
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			abort(w)
		case <-e.done:
			t.Stop()
			abort(w)
		}
	}
	switch {
	case f.DropConnection:
		x.handlerNote = "connection dropped"
		abort(w)
	case f.Status != 0:
		body := f.Body
		if body == "" {
			if w.Header().Get("Content-Type") == "" {
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
			}
			body = e.faultBody(r, x.ep, f.Status)
		}
		w.WriteHeader(f.Status)
		_, _ = io.WriteString(w, body)
	case f.Malformed:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "<html><body>emulator: this body is not JSON</body></html>")
	case f.Oversize:
		writeOversize(w)
	default:
		return false
	}
	return true
}

// abort ends the request without an answer: it hijacks and closes the connection (with a TCP
// reset where it can), or, where hijacking is impossible (HTTP/2), aborts the stream.
func abort(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = raw.Close()
	panic(http.ErrAbortHandler)
}

// writeOversize writes a 200 whose JSON body is OversizeBytes long.
func writeOversize(w http.ResponseWriter) {
	const head, tail = `{"access_token":"`, `"}`
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(OversizeBytes))
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, head); err != nil {
		return
	}
	chunk := bytes.Repeat([]byte{'A'}, 32<<10)
	for left := OversizeBytes - len(head) - len(tail); left > 0; {
		n := min(left, len(chunk))
		if _, err := w.Write(chunk[:n]); err != nil {
			return
		}
		left -= n
	}
	_, _ = io.WriteString(w, tail)
}

// faultBody is the default body of a Status fault: the error shape the endpoint's real
// counterpart uses.
func (e *Emulator) faultBody(r *http.Request, ep Endpoint, status int) string {
	code := "invalid_request"
	switch {
	case status == http.StatusUnauthorized:
		code = "invalid_client"
	case status == http.StatusForbidden:
		code = "access_denied"
	case status == http.StatusNotFound:
		code = "not_found"
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		code = "temporarily_unavailable"
	case status >= 500:
		code = "server_error"
	}
	desc := "injected fault: HTTP " + strconv.Itoa(status) + " " + http.StatusText(status)
	if ep == EndpointToken {
		return string(e.stsErrorBody(r, code, desc, 90000+status))
	}
	return string(mustJSON(oauthError{Error: code, Description: desc}))
}

// statusWriter remembers the status for the log line. Unwrap lets http.ResponseController
// reach the connection (Hijack, Flush).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// correlationID is the caller's request id: client-request-id (ESTS) or x-ms-client-request-id
// (IMDS).
func correlationID(r *http.Request) string {
	id := r.Header.Get("client-request-id")
	if id == "" {
		id = r.Header.Get("x-ms-client-request-id")
	}
	if len(id) > 128 || strings.ContainsAny(id, "\r\n") {
		return ""
	}
	return id
}

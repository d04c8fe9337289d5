package pop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtlspop/mtlspop/core/token"
)

// Limits of JWKS fetching. They are constants, not options: they protect the server, and no
// legitimate issuer needs them changed.
const (
	// MaxJWKSBytes caps a JWKS response body. Entra's key set is a few KiB.
	MaxJWKSBytes = 1 << 20
	// JWKSMinRefetchInterval is the shortest time between two fetches. A token with an unknown
	// kid triggers a fetch (the issuer may have rotated its keys), and kid is chosen by whoever
	// sends the token; without this limit anyone could make the server hammer the issuer.
	JWKSMinRefetchInterval = 30 * time.Second
	// JWKSMaxAge is how long a fetched key set is trusted before it is fetched again, so a key
	// the issuer has withdrawn stops being accepted even if no unknown kid ever shows up.
	JWKSMaxAge = 24 * time.Hour

	// jwksFetchTimeout bounds one fetch. The fetch runs detached from the caller that started
	// it (see JWKS.Key), so it needs a bound of its own.
	jwksFetchTimeout = 10 * time.Second
	// minRSABits and maxRSABits bound RSA keys: below 2048 bits a key is too weak to trust, and
	// above 8192 every verification becomes expensive enough to be a denial-of-service lever.
	minRSABits = 2048
	maxRSABits = 8192
)

const msgUnknownKey = "unknown signing key"

// JWKS is a KeySet backed by an issuer's JSON Web Key Set endpoint (RFC 7517), such as Entra's
// discovery/v2.0/keys.
//
// Keys are fetched on first use and cached by kid. A token signed with a kid that is not in the
// cache causes one refetch, since issuers rotate keys without notice, but fetches are at least
// JWKSMinRefetchInterval apart, whatever the tokens say. Concurrent callers share one fetch.
// If a fetch fails, the keys fetched before stay in use.
//
// Only RSA keys (2048 to 8192 bits) and EC P-256 keys with "use" absent or "sig" are kept;
// other entries are skipped, so an issuer that also publishes keys of other kinds still works.
// The URL must be https, except on a loopback host (local development and the emulator):
// keys fetched in clear text could be swapped by anyone on the path.
//
// A JWKS is safe for concurrent use and needs no Close: it starts no long-lived goroutine.
type JWKS struct {
	url    string
	client *http.Client
	now    func() time.Time // replaced in tests

	keys atomic.Pointer[keySnapshot] // read without a lock on every Verify

	mu        sync.Mutex // guards the fields below
	attempted time.Time  // start of the last fetch, successful or not
	lastErr   error      // error of the last fetch, nil if it succeeded
	inflight  *jwksFetch // the fetch in progress, nil when none
}

// keySnapshot is an immutable key set; a new fetch replaces the pointer, never the map.
type keySnapshot struct {
	keys    map[string]crypto.PublicKey
	fetched time.Time
}

type jwksFetch struct {
	done chan struct{} // closed when the fetch ends
	err  error         // written before done is closed
}

// NewJWKS returns a KeySet that fetches keys from rawURL. A nil client means
// http.DefaultClient. Nothing is fetched until a key is first needed, so a server can start
// while the issuer is unreachable; call CheckJWKSURL first to refuse a bad URL at startup.
//
// The client is used through a copy whose redirect policy also refuses any redirect that
// CheckJWKSURL would refuse, or that leaves https: a redirect must not undo the URL check.
// The client's own CheckRedirect, if any, still applies after that.
func NewJWKS(rawURL string, client *http.Client) *JWKS {
	if client == nil {
		client = http.DefaultClient
	}
	c := *client
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := checkRedirect(req, via); err != nil {
			return err
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 { // http.Client's default limit, which setting CheckRedirect replaces
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &JWKS{url: rawURL, client: &c, now: time.Now}
}

// checkRedirect refuses a redirect to a URL the key set could not have been configured with,
// and any step from https down to plain http (even to loopback: an https issuer has no business
// sending its keys in clear text).
func checkRedirect(req *http.Request, via []*http.Request) error {
	downgrade := len(via) > 0 && via[0].URL.Scheme == "https" && req.URL.Scheme != "https"
	if downgrade || jwksURLProblem(req.URL) != "" {
		return unavailable(nil, "jwks redirect to a url that is not https refused")
	}
	return nil
}

// Key returns the key with the given kid, fetching the key set when kid is unknown or the
// cached set is older than JWKSMaxAge (subject to JWKSMinRefetchInterval).
//
// The fetch itself runs detached from ctx, bounded by its own timeout: when a caller gives up,
// the fetch still completes for everyone else waiting on it, and an abandoned request cannot
// be used to start fetches that never count against the rate limit. Key itself returns as soon
// as ctx is done.
func (j *JWKS) Key(ctx context.Context, kid string) (crypto.PublicKey, error) {
	if k, ok := j.lookup(kid, true); ok {
		return k, nil
	}

	j.mu.Lock()
	if k, ok := j.lookup(kid, true); ok { // a fetch may have finished while we waited
		j.mu.Unlock()
		return k, nil
	}
	f := j.inflight
	if f == nil {
		if !j.attempted.IsZero() && j.now().Sub(j.attempted) < JWKSMinRefetchInterval {
			lastErr := j.lastErr
			j.mu.Unlock()
			return j.result(kid, lastErr)
		}
		f = &jwksFetch{done: make(chan struct{})}
		j.inflight, j.attempted = f, j.now()
		go j.run(context.WithoutCancel(ctx), f)
	}
	j.mu.Unlock()

	select {
	case <-f.done:
		return j.result(kid, f.err)
	case <-ctx.Done():
		return nil, canceled(ctx.Err())
	}
}

// lookup finds kid in the current snapshot. With fresh set, a snapshot older than JWKSMaxAge
// counts as a miss, so that the caller refreshes it.
func (j *JWKS) lookup(kid string, fresh bool) (crypto.PublicKey, bool) {
	s := j.keys.Load()
	if s == nil || fresh && j.now().Sub(s.fetched) >= JWKSMaxAge {
		return nil, false
	}
	k, ok := s.keys[kid]
	return k, ok
}

// result answers a caller after a fetch (or instead of one, when rate-limited): the key if the
// set now has it, even a stale set; otherwise the fetch error, if the fetch failed, since the
// key may well exist; otherwise the kid is simply unknown.
func (j *JWKS) result(kid string, fetchErr error) (crypto.PublicKey, error) {
	if k, ok := j.lookup(kid, false); ok {
		return k, nil
	}
	if fetchErr != nil {
		return nil, fetchErr
	}
	return nil, invalid(msgUnknownKey)
}

// run performs one fetch and publishes its result.
func (j *JWKS) run(ctx context.Context, f *jwksFetch) {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	keys, err := j.fetch(ctx)
	if err == nil {
		j.keys.Store(&keySnapshot{keys: keys, fetched: j.now()})
	}
	j.mu.Lock()
	j.lastErr, j.inflight = err, nil
	f.err = err
	j.mu.Unlock()
	close(f.done)
}

// fetch GETs the key set and parses it.
func (j *JWKS) fetch(ctx context.Context) (map[string]crypto.PublicKey, error) {
	if err := checkJWKSURL(j.url); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, unavailable(err, "invalid jwks url")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		var te *token.Error
		if errors.As(err, &te) { // checkRedirect's refusal, which says more than "failed"
			return nil, unavailable(err, te.Message)
		}
		return nil, unavailable(err, "fetching jwks failed")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused; the body itself is not reported.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, unavailable(nil, fmt.Sprintf("jwks endpoint answered http %d", resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBytes+1))
	if err != nil {
		return nil, unavailable(err, "reading jwks response failed")
	}
	if len(body) > MaxJWKSBytes {
		return nil, unavailable(token.Errorf(token.CodeResponseTooLarge,
			"jwks response exceeds %d bytes", MaxJWKSBytes), "jwks response too large")
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return nil, unavailable(nil, "jwks response "+err.Error())
	}
	return keys, nil
}

// checkJWKSURL refuses URLs over which keys could be tampered with. At fetch time that is the
// issuer side's problem as far as a client can tell (503); CheckJWKSURL reports the same
// problem as the configuration error it is.
func checkJWKSURL(raw string) error {
	if msg := jwksURLProblem(parseURL(raw)); msg != "" {
		return unavailable(nil, msg)
	}
	return nil
}

// CheckJWKSURL reports whether NewJWKS can fetch keys from rawURL: an absolute https URL, or
// plain http on a loopback host (local development and the emulator), since keys fetched in
// clear text could be swapped by anyone on the path. A server that takes the URL from its
// configuration calls it at startup, so that a bad URL fails there, as CodeInvalidArgument,
// instead of as a CodeNetwork error on every request. NewJWKS checks it again at each fetch.
func CheckJWKSURL(rawURL string) error {
	if msg := jwksURLProblem(parseURL(rawURL)); msg != "" {
		return misconfigured(msg)
	}
	return nil
}

// parseURL is url.Parse with nil for an unparsable URL.
func parseURL(raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	return u
}

// jwksURLProblem says what is wrong with u as a key set URL; "" when nothing is.
func jwksURLProblem(u *url.URL) string {
	if u == nil || u.Host == "" {
		return "invalid jwks url"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return ""
		}
	}
	return "jwks url must use https"
}

// jwk is the subset of RFC 7517/7518 members this package reads.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// ParseJWKS parses a JSON Web Key Set document ({"keys":[...]}, RFC 7517 §5) into a map of kid
// to public key, for StaticKeys: servers given their issuer's keys in configuration rather
// than a URL. It keeps exactly the keys JWKS would (RSA 2048 to 8192 bits, EC P-256, with a
// kid, "use" absent or "sig") and skips other entries; the first entry wins when two share a
// kid. A document that is not a key set is a CodeInvalidArgument error.
func ParseJWKS(doc []byte) (map[string]crypto.PublicKey, error) {
	keys, err := parseJWKS(doc)
	if err != nil {
		return nil, misconfigured("jwks " + err.Error())
	}
	return keys, nil
}

// parseJWKS reads {"keys":[...]}. A body that is not such an object is an error, a bare one
// that completes "jwks ...": the caller decides whose fault it is (a fetched set is the
// issuer's, a configured one the server's). An entry this package cannot use is skipped. The
// first entry wins when two share a kid, so a later entry cannot shadow a key.
func parseJWKS(body []byte) (map[string]crypto.PublicKey, error) {
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, errors.New("is not a json key set")
	}
	if doc.Keys == nil {
		return nil, errors.New("has no keys member")
	}
	keys := make(map[string]crypto.PublicKey, len(*doc.Keys))
	for _, raw := range *doc.Keys {
		var k jwk
		if json.Unmarshal(raw, &k) != nil || k.Kid == "" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if _, dup := keys[k.Kid]; dup {
			continue
		}
		if pub, err := k.publicKey(); err == nil {
			keys[k.Kid] = pub
		}
	}
	return keys, nil
}

var errUnusableKey = errors.New("unusable key")

func (k *jwk) publicKey() (crypto.PublicKey, error) {
	switch k.Kty {
	case "RSA":
		n, err1 := decodeB64URL(k.N)
		e, err2 := decodeB64URL(k.E)
		if err1 != nil || err2 != nil || len(e) > 4 {
			return nil, errUnusableKey
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if bits := pub.N.BitLen(); bits < minRSABits || bits > maxRSABits || pub.E < 3 || pub.E%2 == 0 {
			return nil, errUnusableKey
		}
		return pub, nil
	case "EC":
		if k.Crv != "P-256" {
			return nil, errUnusableKey
		}
		x, err1 := decodeB64URL(k.X)
		y, err2 := decodeB64URL(k.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return nil, errUnusableKey
		}
		point := append(append([]byte{4}, x...), y...)
		// ParseUncompressedPublicKey rejects points off the curve (invalid-curve attacks).
		return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	}
	return nil, errUnusableKey
}

// decodeB64URL decodes unpadded base64url (RFC 7515 §2), tolerating the padding some issuers
// add anyway. Empty input is an error.
func decodeB64URL(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err == nil && len(b) == 0 {
		err = errUnusableKey
	}
	return b, err
}

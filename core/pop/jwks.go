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
// while the issuer is unreachable.
func NewJWKS(rawURL string, client *http.Client) *JWKS {
	if client == nil {
		client = http.DefaultClient
	}
	return &JWKS{url: rawURL, client: client, now: time.Now}
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
	return parseJWKS(body)
}

// checkJWKSURL refuses URLs over which keys could be tampered with.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return unavailable(nil, "invalid jwks url")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
	}
	return unavailable(nil, "jwks url must use https")
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

// parseJWKS reads {"keys":[...]}. A body that is not such an object is an error; an entry this
// package cannot use is skipped. The first entry wins when two share a kid, so a later entry
// cannot shadow a key.
func parseJWKS(body []byte) (map[string]crypto.PublicKey, error) {
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, unavailable(nil, "jwks response is not a json key set")
	}
	if doc.Keys == nil {
		return nil, unavailable(nil, "jwks response has no keys member")
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

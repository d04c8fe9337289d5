package emulator

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/mtlspop/mtlspop/core/internal/wire"
)

// Azure Arc (reference/msal-dotnet-mtlspop.md §2.2; DESIGN §4): GET IDENTITY_ENDPOINT with
// "Metadata: true", api-version=2020-06-01 (or the older 2019-11-01) and resource=. A request
// without Authorization gets 401 and "WWW-Authenticate: Basic realm=<dir>/<random>.key": the
// agent has just written a secret into that file. The client sends the file's contents back as
// "Authorization: Basic <secret>"; each secret is good for one token.
//
// A user-assigned identity is named by client_id, msi_res_id or object_id, and the answer echoes
// client_id and the selector used. mi_res_id is not Arc's spelling: like the real agent, the
// emulator ignores it and answers for the system-assigned identity, which a careful client
// notices because nothing is echoed. Config.ArcIgnoreUserAssigned makes every selector ignored,
// as old agents do.
const arcPath = "/metadata/identity/oauth2/token"

var arcAPIVersions = []string{"2020-06-01", "2019-11-01"}

// arcMaxOutstanding bounds the key files written and not yet used; the oldest is removed first.
const arcMaxOutstanding = 64

// arcResponse is the agent's answer (numbers as strings, as IMDS sends them), with the echo.
type arcResponse struct {
	AccessToken  string `json:"access_token"`
	ClientID     string `json:"client_id"`
	ExpiresIn    string `json:"expires_in"`
	ExpiresOn    string `json:"expires_on"`
	ExtExpiresIn string `json:"ext_expires_in"`
	NotBefore    string `json:"not_before"`
	Resource     string `json:"resource"`
	TokenType    string `json:"token_type"`
	MsiResID     string `json:"msi_res_id,omitempty"`
	ObjectID     string `json:"object_id,omitempty"`
}

// arcKeys is the directory of key files and the secrets not yet used.
type arcKeys struct {
	dir     string
	created []string // directories Start created, deepest last; Close removes them if empty

	mu      sync.Mutex
	secrets map[string]string // secret -> file
	order   []string          // secrets, oldest first
	closed  bool
}

// newArcKeys prepares dir (default: a new temporary directory). Directories it has to create are
// made readable by the owner only, as the agent's are.
func newArcKeys(dir string) (*arcKeys, error) {
	k := &arcKeys{secrets: make(map[string]string)}
	if dir == "" {
		d, err := os.MkdirTemp("", "mtlspop-arc-")
		if err != nil {
			return nil, fmt.Errorf("emulator: creating the Arc key directory: %w", err)
		}
		k.dir, k.created = d, []string{d}
		return k, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("emulator: Arc key directory: %w", err)
	}
	if strings.ContainsAny(abs, "=\"") {
		// MSAL Python splits the challenge on "=".
		return nil, fmt.Errorf("emulator: the Arc key directory %q must not contain '=' or '\"'", abs)
	}
	var missing []string
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("emulator: Arc key directory: %w", err)
		}
		missing = append([]string{d}, missing...)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("emulator: creating the Arc key directory: %w", err)
	}
	k.dir, k.created = abs, missing
	return k, nil
}

// challenge writes a new key file and returns its path.
func (k *arcKeys) challenge() (string, error) {
	secret := randomHex(32)
	path := filepath.Join(k.dir, randomHex(16)+".key")
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return "", errors.New("emulator closed")
	}
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		return "", err
	}
	k.secrets[secret] = path
	k.order = append(k.order, secret)
	for len(k.order) > arcMaxOutstanding {
		old := k.order[0]
		k.order = k.order[1:]
		if p, ok := k.secrets[old]; ok {
			_ = os.Remove(p)
			delete(k.secrets, old)
		}
	}
	return path, nil
}

// redeem uses up a secret: true if it was one the agent handed out and had not been used.
func (k *arcKeys) redeem(secret string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	p, ok := k.secrets[secret]
	if !ok {
		return false
	}
	delete(k.secrets, secret)
	for i, s := range k.order {
		if s == secret {
			k.order = append(k.order[:i], k.order[i+1:]...)
			break
		}
	}
	_ = os.Remove(p)
	return true
}

// close removes every key file and the directories newArcKeys created.
func (k *arcKeys) close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	var errs []error
	for s, p := range k.secrets {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		delete(k.secrets, s)
	}
	k.order = nil
	// Best effort: another agent (another emulator) may be using a directory this one created.
	for i := len(k.created) - 1; i >= 0; i-- {
		if os.Remove(k.created[i]) != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// ArcKeyDirectory is the directory the emulated Azure Arc agent writes its key files to, or ""
// when the source is not Azure Arc. A client must be told to accept it
// (managedidentity.WithArcKeyDirectory) unless it is the platform's directory.
func (e *Emulator) ArcKeyDirectory() string {
	if e.src.arc == nil {
		return ""
	}
	return e.src.arc.dir
}

func (e *Emulator) arcToken(w http.ResponseWriter, r *http.Request, x *exchange) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, x, http.MethodGet)
		return
	}
	if !hasMetadataHeader(r) {
		writeMIError(w, r, x, http.StatusBadRequest, "invalid_request", "Required metadata header not specified")
		return
	}
	q := r.URL.Query()
	if desc := checkVersions(q, "api-version", arcAPIVersions...); desc != "" {
		writeMIError(w, r, x, http.StatusBadRequest, "invalid_request", desc)
		return
	}
	resource := singleResource(q)
	if resource == "" {
		writeMIError(w, r, x, http.StatusBadRequest, "invalid_request", "Required parameter resource not specified")
		return
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		path, err := e.src.arc.challenge()
		if err != nil {
			writeMIError(w, r, x, http.StatusInternalServerError, "server_error", "cannot write the key file")
			return
		}
		w.Header().Set("WWW-Authenticate", "Basic realm="+path)
		writeMIError(w, r, x, http.StatusUnauthorized, "unauthorized", "Authorization header is missing; read the key file named in WWW-Authenticate")
		return
	}
	secret, ok := strings.CutPrefix(auth, "Basic ")
	if !ok || !e.src.arc.redeem(secret) {
		writeMIError(w, r, x, http.StatusUnauthorized, "unauthorized", "Authorization does not carry a key this agent handed out")
		return
	}
	// Arc's selector spellings; mi_res_id is ignored, as the agent does.
	q.Del(wire.IMDSv2ResourceIDParam)
	if e.cfg.ArcIgnoreUserAssigned {
		q.Del("client_id")
		q.Del(wire.IMDSv1ResourceIDParam)
		q.Del("object_id")
	}
	id, _, desc := e.selectIdentity(q, wire.IMDSv1ResourceIDParam, wire.IMDSv2ResourceIDParam) // mi_res_id was dropped above
	if desc != "" {
		writeMIError(w, r, x, http.StatusBadRequest, "invalid_request", desc)
		return
	}
	m, err := e.mint(grant{aud: resource, id: id})
	if err != nil {
		writeMIError(w, r, x, http.StatusInternalServerError, "server_error", "token signing failed")
		return
	}
	in := strconv.FormatInt(expiresIn(m.expires), 10)
	resp := arcResponse{AccessToken: m.token, ClientID: id.ClientID, ExpiresIn: in, ExpiresOn: epoch(m.expires),
		ExtExpiresIn: in, NotBefore: epoch(m.issued), Resource: resource, TokenType: "Bearer"}
	if q.Has(wire.IMDSv1ResourceIDParam) {
		resp.MsiResID = id.ResourceID
	}
	if q.Has("object_id") {
		resp.ObjectID = id.ObjectID
	}
	writeJSON(w, http.StatusOK, resp)
}

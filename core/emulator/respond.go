package emulator

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// oauthError is the error body of IMDS and of the login host.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the emulator's own types are marshalled; they always encode.
		panic("emulator: encoding JSON: " + err.Error())
	}
	return b
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b := mustJSON(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeError answers with the {"error","error_description"} shape IMDS uses.
func writeError(w http.ResponseWriter, x *exchange, status int, code, desc string) {
	x.handlerNote = desc
	writeJSON(w, status, oauthError{Error: code, Description: desc})
}

// methodNotAllowed answers a request with the wrong method.
func methodNotAllowed(w http.ResponseWriter, x *exchange, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, x, http.StatusMethodNotAllowed, "invalid_request", "method not allowed; use "+allow)
}

package main

import (
	"context"
	"sync"

	"github.com/mtlspop/mtlspop/core/token"
	"github.com/mtlspop/mtlspop/core/tpm"
)

// TPM key providers are shared by the clients that name the same device and state directory:
// a TPM (and swtpm, which serves one connection at a time) is one resource, and one provider
// serialises its commands. The last client to go closes it.
//
// Opening one is I/O: a dial (up to 10 s for tcp://) and TPM commands (each bounded only by
// core/tpm's own timeout, minutes for a software TPM). It runs on its own goroutine, outside
// tpms.mu, and each client creation waits for it no longer than its timeout_ms. So a TPM that
// does not answer holds up neither mtlspop_client_new past its bound nor, through a global
// lock, the creation of clients on other TPMs.

type sharedTPM struct {
	opened chan struct{} // closed when the open finished; p and err are set before
	p      *tpm.Provider
	err    error
	refs   int // clients holding or waiting for p; guarded by tpms.mu
}

var tpms struct {
	mu sync.Mutex
	m  map[string]*sharedTPM // an entry is in the map from the start of its open
}

func tpmKey(device, stateDir string) string { return device + "\x00" + stateDir }

// acquireTPM opens (or shares) the provider for device and stateDir, waiting for it at most
// until ctx ends.
func acquireTPM(ctx context.Context, device, stateDir string) (*tpm.Provider, error) {
	k := tpmKey(device, stateDir)
	tpms.mu.Lock()
	s, ok := tpms.m[k]
	if !ok {
		s = &sharedTPM{opened: make(chan struct{})}
		if tpms.m == nil {
			tpms.m = map[string]*sharedTPM{}
		}
		tpms.m[k] = s
		// Detached from ctx: tpm.Open would otherwise fail for everyone sharing it when the
		// first client's bound passes, and a provider that opens after its first waiter left
		// is either taken by a later one or closed by openTPM.
		go openTPM(k, s, device, stateDir)
	}
	s.refs++
	tpms.mu.Unlock()

	select {
	case <-s.opened:
		if s.err != nil {
			return nil, s.err // openTPM removed the entry; refs of a dead entry do not matter
		}
		return s.p, nil
	case <-ctx.Done():
		dropTPM(k, s)
		return nil, token.Wrap(token.CodeRequestTimeout, ctx.Err(), "tpm: %s did not open within the client's timeout_ms", tpmName(device))
	}
}

// openTPM opens the provider of entry s and publishes the outcome. A failed entry leaves the
// map at once, so the next client tries again; a provider nobody waits for any more is closed.
func openTPM(k string, s *sharedTPM, device, stateDir string) {
	p, err := tpm.Open(context.Background(), tpm.Config{Device: device, StateDir: stateDir})
	tpms.mu.Lock()
	defer tpms.mu.Unlock()
	s.p, s.err = p, err
	close(s.opened)
	if err != nil || s.refs == 0 {
		delete(tpms.m, k)
		if err == nil {
			_ = p.Close()
		}
	}
}

// dropTPM releases one reference to entry s, closing its provider with the last once it is open.
func dropTPM(k string, s *sharedTPM) {
	tpms.mu.Lock()
	defer tpms.mu.Unlock()
	dropLocked(k, s)
}

func dropLocked(k string, s *sharedTPM) {
	if tpms.m[k] != s {
		return // its open failed: the entry is gone and holds nothing
	}
	if s.refs--; s.refs > 0 {
		return
	}
	select {
	case <-s.opened:
		delete(tpms.m, k)
		_ = s.p.Close() // opened without error, or it would not be in the map
	default:
		// Still opening: openTPM sees refs == 0 and closes the provider when it has one.
	}
}

// releaseTPM drops one client's reference, closing the provider with the last.
func releaseTPM(device, stateDir string) {
	k := tpmKey(device, stateDir)
	tpms.mu.Lock()
	defer tpms.mu.Unlock()
	if s := tpms.m[k]; s != nil {
		dropLocked(k, s)
	}
}

func tpmName(device string) string {
	if device == "" {
		return tpm.DefaultDevice
	}
	return device
}

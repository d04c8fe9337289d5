package main

import (
	"context"
	"sync"

	"github.com/mtlspop/mtlspop/core/tpm"
)

// TPM key providers are shared by the clients that name the same device and state directory:
// a TPM (and swtpm, which serves one connection at a time) is one resource, and one provider
// serialises its commands. The last client to go closes it.

type sharedTPM struct {
	p    *tpm.Provider
	refs int
}

var tpms struct {
	mu sync.Mutex
	m  map[string]*sharedTPM
}

func tpmKey(device, stateDir string) string { return device + "\x00" + stateDir }

// acquireTPM opens (or shares) the provider for device and stateDir.
func acquireTPM(device, stateDir string) (*tpm.Provider, error) {
	tpms.mu.Lock()
	defer tpms.mu.Unlock()
	k := tpmKey(device, stateDir)
	if s, ok := tpms.m[k]; ok {
		s.refs++
		return s.p, nil
	}
	p, err := tpm.Open(context.Background(), tpm.Config{Device: device, StateDir: stateDir})
	if err != nil {
		return nil, err
	}
	if tpms.m == nil {
		tpms.m = map[string]*sharedTPM{}
	}
	tpms.m[k] = &sharedTPM{p: p, refs: 1}
	return p, nil
}

// releaseTPM drops one client's reference, closing the provider with the last.
func releaseTPM(device, stateDir string) {
	tpms.mu.Lock()
	defer tpms.mu.Unlock()
	k := tpmKey(device, stateDir)
	s, ok := tpms.m[k]
	if !ok {
		return
	}
	if s.refs--; s.refs == 0 {
		_ = s.p.Close()
		delete(tpms.m, k)
	}
}

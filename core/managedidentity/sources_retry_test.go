package managedidentity_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/emulator"
	"github.com/mtlspop/mtlspop/core/managedidentity"
	"github.com/mtlspop/mtlspop/core/token"
)

// TestEnvSourcesRetryPolicy runs MSAL.NET's default managed-identity policy (404, 408, 429, 500,
// 503, 504: three retries, each after max(1 s, Retry-After)) against every environment source.
func TestEnvSourcesRetryPolicy(t *testing.T) {
	s := time.Second
	cases := []struct {
		name     string
		fault    emulator.Fault
		waits    []time.Duration
		attempts int
		status   int // of the error; 0 = success
	}{
		{"404 once", emulator.Fault{Status: 404, Count: 1}, []time.Duration{s}, 2, 0},
		{"408 once", emulator.Fault{Status: 408, Count: 1}, []time.Duration{s}, 2, 0},
		{"429 twice", emulator.Fault{Status: 429, Count: 2}, []time.Duration{s, s}, 3, 0},
		{"500 once", emulator.Fault{Status: 500, Count: 1}, []time.Duration{s}, 2, 0},
		{"503 until exhausted", emulator.Fault{Status: 503}, []time.Duration{s, s, s}, 4, 503},
		{"504 three times", emulator.Fault{Status: 504, Count: 3}, []time.Duration{s, s, s}, 4, 0},
		{"Retry-After seconds", emulator.Fault{Status: 429, Count: 1, Header: http.Header{"Retry-After": {"7"}}}, []time.Duration{7 * s}, 2, 0},
		{"Retry-After below 1 s", emulator.Fault{Status: 503, Count: 1, Header: http.Header{"Retry-After": {"0"}}}, []time.Duration{s}, 2, 0},
		{"410 is not retried", emulator.Fault{Status: 410, Count: 1}, nil, 1, 410},
		{"502 is not retried", emulator.Fault{Status: 502, Count: 1}, nil, 1, 502},
		{"400 is not retried", emulator.Fault{Status: 400, Count: 1}, nil, 1, 400},
	}
	for _, src := range envSources {
		t.Run(string(src), func(t *testing.T) {
			emu := sourceEmulator(t, src, emulator.Config{})
			ep := sourceEndpoint[src]
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					defer emu.ClearFaults()
					w := &waits{}
					c := sourceClient(t, emu, managedidentity.SystemAssigned(), w)
					emu.InjectFault(ep, tc.fault)
					before := emu.Requests(ep)
					_, err := c.AcquireToken(context.Background(), emu.Config().ResourceID)
					attempts := emu.Requests(ep) - before
					if src == emulator.SourceAzureArc && tc.status == 0 {
						attempts-- // the second, authorized request
					}
					if tc.status == 0 && err != nil {
						t.Fatal(err)
					}
					if tc.status != 0 {
						if te := wantCode(t, err, token.CodeManagedIdentityRequestFailed); te.Status != tc.status || te.Source != string(src) {
							t.Fatalf("%+v", te)
						}
					}
					if got := w.take(); attempts != tc.attempts || !slices.Equal(got, tc.waits) {
						t.Fatalf("attempts %d waits %v, want %d %v", attempts, got, tc.attempts, tc.waits)
					}
				})
			}
		})
	}
}

// TestIMDSRetryRules adds the IMDS rules the env sources do not have: 410 up to seven retries
// every 10 s, exponential waits whatever Retry-After says, and a 404 that is retried.
func TestIMDSRetryRules(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	s := time.Second
	cases := []struct {
		name     string
		fault    emulator.Fault
		waits    []time.Duration
		attempts int
		status   int
	}{
		{"410 seven times", emulator.Fault{Status: 410}, slices.Repeat([]time.Duration{10 * s}, 7), 8, 410},
		{"410 then ok", emulator.Fault{Status: 410, Count: 6}, slices.Repeat([]time.Duration{10 * s}, 6), 7, 0},
		{"Retry-After is not IMDS's rule", emulator.Fault{Status: 429, Count: 3, Header: http.Header{"Retry-After": {"30"}}}, []time.Duration{s, 2 * s, 4 * s}, 4, 0},
		{"502 is retried on IMDS", emulator.Fault{Status: 502, Count: 1}, []time.Duration{s}, 2, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer emu.ClearFaults()
			w := &waits{}
			c := clientFor(t, emu, managedidentity.SystemAssigned(), w)
			emu.InjectFault(emulator.EndpointIMDSToken, tc.fault)
			before := emu.Requests(emulator.EndpointIMDSToken)
			_, err := c.AcquireToken(context.Background(), emu.Config().ResourceID)
			if tc.status == 0 && err != nil {
				t.Fatal(err)
			}
			if tc.status != 0 {
				if te := wantCode(t, err, token.CodeManagedIdentityRequestFailed); te.Status != tc.status {
					t.Fatalf("%+v", te)
				}
			}
			if got, n := w.take(), emu.Requests(emulator.EndpointIMDSToken)-before; n != tc.attempts || !slices.Equal(got, tc.waits) {
				t.Fatalf("attempts %d waits %v, want %d %v", n, got, tc.attempts, tc.waits)
			}
		})
	}
}

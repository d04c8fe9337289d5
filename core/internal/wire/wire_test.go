package wire

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlspop/mtlspop/core/token"
)

// recorder is an injected Sleep that records the waits and returns at once.
type recorder struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (r *recorder) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.waits = append(r.waits, d)
	r.mu.Unlock()
	return ctx.Err()
}

func (r *recorder) got() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.waits...)
}

// scripted serves the statuses in order (the last one repeats) and counts requests.
func scripted(t *testing.T, statuses []int, header http.Header) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i >= len(statuses) {
			i = len(statuses) - 1
		}
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(statuses[i])
		_, _ = w.Write([]byte(`{"error":"e` + strconv.Itoa(statuses[i]) + `"}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func get(url string) func(context.Context) (*http.Request, error) {
	return func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	}
}

func secs(s ...int) []time.Duration {
	out := make([]time.Duration, len(s))
	for i, v := range s {
		out[i] = time.Duration(v) * time.Second
	}
	return out
}

func TestRetryPolicies(t *testing.T) {
	ra := http.Header{"Retry-After": {"3"}}
	cases := []struct {
		name     string
		policy   Policy
		statuses []int
		header   http.Header
		status   int
		attempts int
		waits    []time.Duration
	}{
		{"imds 404 exponential", IMDS, []int{404}, nil, 404, 4, secs(1, 2, 4)},
		{"imds 5xx then ok", IMDS, []int{500, 503, 200}, nil, 200, 3, secs(1, 2)},
		{"imds 408 429", IMDS, []int{408, 429, 200}, nil, 200, 3, secs(1, 2)},
		{"imds 410 every 10s up to 7", IMDS, []int{410}, nil, 410, 8, secs(10, 10, 10, 10, 10, 10, 10)},
		{"imds probe 404 not retried", IMDSProbe, []int{404}, nil, 404, 1, nil},
		{"imds probe 500 retried", IMDSProbe, []int{500, 200}, nil, 200, 2, secs(1)},
		{"imds 400 not retried", IMDS, []int{400}, nil, 400, 1, nil},
		{"imds 401 not retried", IMDS, []int{401}, nil, 401, 1, nil},
		{"mi default retry-after", ManagedIdentity, []int{429}, ra, 429, 4, secs(3, 3, 3)},
		{"mi default min 1s", ManagedIdentity, []int{503, 200}, nil, 200, 2, secs(1)},
		{"mi default 410 not retried", ManagedIdentity, []int{410}, nil, 410, 1, nil},
		{"sts once on 5xx", STS, []int{500}, nil, 500, 2, secs(1)},
		{"sts no retry with retry-after", STS, []int{503}, ra, 503, 1, nil},
		{"sts 4xx not retried", STS, []int{400}, nil, 400, 1, nil},
		{"no retry", NoRetry, []int{500}, nil, 500, 1, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, n := scripted(t, tc.statuses, tc.header)
			rec := &recorder{}
			c := &Client{HTTP: srv.Client(), Sleep: rec.sleep}
			resp, err := c.Do(context.Background(), tc.policy, get(srv.URL))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.status || resp.Attempts != tc.attempts || int(n.Load()) != tc.attempts {
				t.Fatalf("status %d attempts %d (server saw %d), want %d %d", resp.Status, resp.Attempts, n.Load(), tc.status, tc.attempts)
			}
			if got := rec.got(); !equal(got, tc.waits) {
				t.Fatalf("waits %v, want %v", got, tc.waits)
			}
		})
	}
}

func equal(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAttemptTimeoutIsRetriedThenReported(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	rec := &recorder{}
	c := &Client{HTTP: srv.Client(), Sleep: rec.sleep, AttemptTimeout: 30 * time.Millisecond}
	_, err := c.Do(context.Background(), IMDS, get(srv.URL))
	if !errors.Is(err, token.CodeRequestTimeout) {
		t.Fatalf("err = %v, want request_timeout", err)
	}
	if n.Load() != 4 || !equal(rec.got(), secs(1, 2, 4)) {
		t.Fatalf("attempts %d waits %v", n.Load(), rec.got())
	}
	// STS retries a timeout once.
	n.Store(0)
	_, err = c.Do(context.Background(), STS, get(srv.URL))
	if !errors.Is(err, token.CodeRequestTimeout) || n.Load() != 2 {
		t.Fatalf("sts: err %v attempts %d", err, n.Load())
	}
}

func TestCallerCancelDuringRetryWait(t *testing.T) {
	srv, n := scripted(t, []int{503}, nil)
	c := &Client{HTTP: srv.Client()} // real timer: the first wait is 1 s
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	start := time.Now()
	_, err := c.Do(ctx, IMDS, get(srv.URL))
	if !errors.Is(err, token.CodeCanceled) {
		t.Fatalf("err = %v, want canceled", err)
	}
	if el := time.Since(start); el > 700*time.Millisecond {
		t.Fatalf("cancel took %v: the wait did not honour the context", el)
	}
	if n.Load() != 1 {
		t.Fatalf("attempts after cancel: %d", n.Load())
	}
	// A deadline that passes is request_timeout.
	dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer dcancel()
	if _, err := c.Do(dctx, IMDS, get(srv.URL)); !errors.Is(err, token.CodeRequestTimeout) {
		t.Fatalf("deadline: err = %v", err)
	}
	// An already-ended context sends nothing.
	before := n.Load()
	if _, err := c.Do(ctx, IMDS, get(srv.URL)); !errors.Is(err, token.CodeCanceled) || n.Load() != before {
		t.Fatalf("ended ctx: err = %v, sent %d", err, n.Load()-before)
	}
}

func TestOversizeBodyIsRefusedNotRetried(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(500)
		_, _ = w.Write([]byte(strings.Repeat("x", 2048)))
	}))
	defer srv.Close()
	c := &Client{HTTP: srv.Client(), MaxBody: 1024, Sleep: (&recorder{}).sleep}
	_, err := c.Do(context.Background(), IMDS, get(srv.URL))
	if !errors.Is(err, token.CodeResponseTooLarge) || n.Load() != 1 {
		t.Fatalf("err %v attempts %d", err, n.Load())
	}
}

func TestConnectionRefusedIsNetworkErrorWithoutRetry(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	rec := &recorder{}
	c := &Client{HTTP: &http.Client{}, Sleep: rec.sleep}
	_, err = c.Do(context.Background(), IMDS, get("http://"+addr+"/x"))
	if !errors.Is(err, token.CodeNetwork) || len(rec.got()) != 0 {
		t.Fatalf("err %v waits %v", err, rec.got())
	}
	var te *token.Error
	if !errors.As(err, &te) || !te.Retryable {
		t.Fatal("network error should be marked retryable for the caller")
	}
}

func TestRetryAfterForms(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":       0,
		"5":      5 * time.Second,
		"-3":     0,
		"abc":    0,
		"999999": maxRetryAfter,
		now.Add(7 * time.Second).Format(http.TimeFormat): 7 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):      0,
	} {
		if got := RetryAfter(http.Header{"Retry-After": {in}}, now); got != want {
			t.Errorf("Retry-After %q = %v, want %v", in, got, want)
		}
	}
}

// A body cut short after the answer began is marked as such (the server had accepted the
// connection); a connection closed before any answer is not.
func TestBodyReadErrorIsTellable(t *testing.T) {
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		_, _ = w.Write([]byte(`{"access_`))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // close the connection mid-body
	}))
	defer cut.Close()
	c := &Client{HTTP: cut.Client(), Sleep: (&recorder{}).sleep}
	_, err := c.Do(context.Background(), IMDS, get(cut.URL))
	if err == nil || !IsBodyReadError(err) {
		t.Fatalf("a truncated body: %v (body read error %v)", err, IsBodyReadError(err))
	}
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler) // no answer at all
	}))
	defer silent.Close()
	c = &Client{HTTP: silent.Client(), Sleep: (&recorder{}).sleep}
	if _, err := c.Do(context.Background(), IMDS, get(silent.URL)); err == nil || IsBodyReadError(err) {
		t.Fatalf("no answer: %v", err)
	}
}

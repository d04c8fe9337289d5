package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtlspop/mtlspop/core/token"
)

// Group runs at most one call per key at a time and hands its result, or its error, to every
// caller that asked for that key meanwhile.
//
// The call runs on its own goroutine under a context detached from any one caller (it keeps the
// first caller's values, not its cancellation), bounded by the group's timeout and canceled by
// Close. So a caller whose context ends stops waiting at once, without canceling the call the
// other callers still wait for (MSAL.NET #6053 was the opposite: an uncancellable wait).
type Group[K comparable, V any] struct {
	base    context.Context
	cancel  context.CancelFunc
	timeout time.Duration

	mu       sync.Mutex
	calls    map[K]*call[V]
	closed   bool
	wg       sync.WaitGroup
	inFlight atomic.Int64
}

type call[V any] struct {
	done chan struct{}
	val  V
	err  error
}

// NewGroup returns a group whose calls are each bounded by timeout (0: no bound besides Close).
func NewGroup[K comparable, V any](timeout time.Duration) *Group[K, V] {
	ctx, cancel := context.WithCancel(context.Background())
	return &Group[K, V]{base: ctx, cancel: cancel, timeout: timeout, calls: make(map[K]*call[V])}
}

// Do returns the result of fn for key, joining a call already running for key, or starting one.
// It returns when the call ends or ctx ends, whichever is first.
func (g *Group[K, V]) Do(ctx context.Context, key K, fn func(context.Context) (V, error)) (V, error) {
	c, _, err := g.start(ctx, key, fn)
	if err != nil {
		var zero V
		return zero, err
	}
	return c.wait(ctx)
}

// Go starts fn for key unless a call is already running; it does not wait. It reports whether
// it started a call: false means fn will not run.
func (g *Group[K, V]) Go(key K, fn func(context.Context) (V, error)) bool {
	_, started, err := g.start(context.Background(), key, fn)
	return started && err == nil
}

// start joins the call running for key, or starts fn as one (started), in one critical section:
// a caller told that fn will run can rely on it.
func (g *Group[K, V]) start(ctx context.Context, key K, fn func(context.Context) (V, error)) (c *call[V], started bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, false, token.Errorf(token.CodeClosed, "cache: closed")
	}
	if c, ok := g.calls[key]; ok {
		return c, false, nil
	}
	c = &call[V]{done: make(chan struct{})}
	g.calls[key] = c
	g.wg.Add(1)
	g.inFlight.Add(1)
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(g.base, cancel)
	release := func() { stop(); cancel() }
	if g.timeout > 0 {
		var cancelTimeout context.CancelFunc
		cctx, cancelTimeout = context.WithTimeout(cctx, g.timeout)
		release = func() { cancelTimeout(); stop(); cancel() }
	}
	go func() {
		defer g.wg.Done()
		defer g.inFlight.Add(-1)
		defer release()
		c.val, c.err = fn(cctx)
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
		close(c.done)
	}()
	return c, true, nil
}

func (c *call[V]) wait(ctx context.Context) (V, error) {
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		var zero V
		code := token.CodeCanceled
		if ctx.Err() == context.DeadlineExceeded {
			code = token.CodeRequestTimeout
		}
		return zero, token.Wrap(code, ctx.Err(), "gave up waiting for the token request in flight")
	}
}

// Running reports whether a call for key is running.
func (g *Group[K, V]) Running(key K) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.calls[key]
	return ok
}

// InFlight is the number of calls running.
func (g *Group[K, V]) InFlight() int { return int(g.inFlight.Load()) }

// Close cancels the running calls, waits for them to return, and refuses new ones. It is
// idempotent.
func (g *Group[K, V]) Close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
}

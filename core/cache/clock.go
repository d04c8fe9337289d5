package cache

import (
	"sync"
	"sync/atomic"
	"time"
)

// Clock is the time the cache compares expiry and refresh points against, in Unix nanoseconds.
type Clock interface {
	Now() int64
}

// CoarseClock is the default clock: one atomic load, advanced every coarseTick by a ticker that
// runs while any Cache using it is open. time.Now costs 30–50 ns on common VMs (more than the
// whole cache hit); expiry decisions have a five-minute margin, so a tenth of a second of
// staleness costs nothing. After a suspend the ticker fires at once and the clock catches up
// with wall time, so no token is served past its expiry on the strength of a stale reading.
type CoarseClock struct{}

// Now returns the coarse time.
func (CoarseClock) Now() int64 { return coarse.now.Load() }

const coarseTick = 100 * time.Millisecond

var coarse struct {
	now   atomic.Int64
	mu    sync.Mutex
	users int
	stop  chan struct{}
	done  chan struct{}
}

// acquireCoarse starts the ticker for a new user; releaseCoarse stops it with the last one, so a
// process with no open cache runs no goroutine.
func acquireCoarse() {
	coarse.mu.Lock()
	defer coarse.mu.Unlock()
	coarse.users++
	if coarse.users > 1 {
		return
	}
	coarse.now.Store(time.Now().UnixNano())
	stop, done := make(chan struct{}), make(chan struct{})
	coarse.stop, coarse.done = stop, done
	go func() {
		defer close(done)
		t := time.NewTicker(coarseTick)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				coarse.now.Store(time.Now().UnixNano())
			case <-stop:
				return
			}
		}
	}()
}

func releaseCoarse() {
	coarse.mu.Lock()
	defer coarse.mu.Unlock()
	coarse.users--
	if coarse.users > 0 {
		return
	}
	close(coarse.stop)
	<-coarse.done
}

// ManualClock is a clock that moves only when told to, for tests and simulations.
type ManualClock struct{ t atomic.Int64 }

// NewManualClock returns a clock reading t.
func NewManualClock(t time.Time) *ManualClock {
	c := &ManualClock{}
	c.t.Store(t.UnixNano())
	return c
}

// Now returns the clock's time.
func (c *ManualClock) Now() int64 { return c.t.Load() }

// Time returns the clock's time as a time.Time.
func (c *ManualClock) Time() time.Time { return time.Unix(0, c.t.Load()) }

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) { c.t.Add(int64(d)) }

// Set moves the clock to t.
func (c *ManualClock) Set(t time.Time) { c.t.Store(t.UnixNano()) }

// FuncClock adapts a time function (such as a test's clock) to Clock.
type FuncClock func() time.Time

// Now returns f's time.
func (f FuncClock) Now() int64 { return f().UnixNano() }

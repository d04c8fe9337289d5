package managedidentity

import "time"

// WithClock moves the client's clock, so tests can cross certificate and token lifetimes.
func WithClock(now func() time.Time) Option {
	return clientOption(func(c *config) { c.now = now })
}

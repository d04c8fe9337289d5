package confidential

import "time"

// WithClock moves the client's clock, so tests can reach a token's refresh point.
func WithClock(now func() time.Time) Option {
	return clientOption(func(c *config) { c.now = now })
}

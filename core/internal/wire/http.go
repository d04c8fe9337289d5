// Package wire is the HTTP layer shared by the managed-identity sources and the confidential
// client: bounded requests, MSAL's retry policies, and parsing of token and error responses.
package wire

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/mtlspop/mtlspop/core/token"
)

// DefaultMaxBody bounds every response body: token responses are a few KiB.
const DefaultMaxBody = 1 << 20

// DefaultAttemptTimeout bounds one attempt, so a hung endpoint becomes a (retryable) timeout
// instead of hanging until the caller's deadline.
const DefaultAttemptTimeout = 30 * time.Second

// Response is a fully read HTTP response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	// Attempts is how many requests were sent, retries included.
	Attempts int
}

// Client sends requests with a retry policy. The zero value is not usable: HTTP must be set.
type Client struct {
	HTTP           *http.Client
	MaxBody        int64         // 0 = DefaultMaxBody
	AttemptTimeout time.Duration // 0 = DefaultAttemptTimeout
	// Sleep waits between attempts; nil waits on a timer. Tests inject one that records the
	// waits and returns at once. It must return ctx.Err() when ctx ends first.
	Sleep  func(ctx context.Context, d time.Duration) error
	Logger *slog.Logger // nil = no logging
	Now    func() time.Time
}

// Do sends the request newReq builds (a fresh one per attempt) under policy p. It returns the
// final response whatever its status; callers interpret non-2xx answers. The error is non-nil
// only when no usable response arrived: the caller's context ended (CodeCanceled), the transport
// failed or timed out after the policy's retries (CodeNetwork / CodeRequestTimeout, wrapping the
// cause so errors.As can classify TLS failures), or the body exceeded the limit
// (CodeResponseTooLarge).
func (c *Client) Do(ctx context.Context, p Policy, newReq func(ctx context.Context) (*http.Request, error)) (*Response, error) {
	firstStatus := -1
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, canceled(err)
		}
		resp, err := c.attempt(ctx, newReq)
		if err != nil && ctx.Err() != nil {
			return nil, canceled(ctx.Err())
		}
		var tooLarge *token.Error
		if errors.As(err, &tooLarge) {
			return nil, err
		}
		status := 0
		var header http.Header
		if resp != nil {
			status, header = resp.Status, resp.Header
			resp.Attempts = attempt
		}
		if firstStatus < 0 {
			firstStatus = status
		}
		retry := !isSuccess(status) && p.Retryable(status, header, err)
		var wait time.Duration
		if retry {
			var ra time.Duration
			if header != nil {
				ra = RetryAfter(header, c.now())
			}
			wait, retry = p.Backoff(attempt, firstStatus, status, ra)
		}
		if !retry {
			if err != nil {
				return nil, transportError(err, attempt)
			}
			return resp, nil
		}
		c.log(ctx, "retrying", slog.String("policy", p.Name), slog.Int("attempt", attempt),
			slog.Int("status", status), slog.Duration("wait", wait), slog.Bool("transport_error", err != nil))
		if err := c.sleep(ctx, wait); err != nil {
			return nil, canceled(err)
		}
	}
}

func isSuccess(status int) bool { return status >= 200 && status <= 299 }

func (c *Client) attempt(ctx context.Context, newReq func(context.Context) (*http.Request, error)) (*Response, error) {
	timeout := c.AttemptTimeout
	if timeout <= 0 {
		timeout = DefaultAttemptTimeout
	}
	actx, cancel := context.WithTimeoutCause(ctx, timeout, errAttemptTimeout)
	defer cancel()
	req, err := newReq(actx)
	if err != nil {
		return nil, token.Wrap(token.CodeInvalidArgument, err, "building request")
	}
	c.log(ctx, "request", slog.String("method", req.Method), slog.String("url", redactURL(req)))
	hresp, err := c.HTTP.Do(req)
	if err != nil {
		if context.Cause(actx) == errAttemptTimeout {
			err = errAttemptTimeout
		}
		return nil, err
	}
	defer hresp.Body.Close()
	limit := c.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	// Read the whole body (bounded) before the attempt's context is canceled: MSAL Go #634 came
	// from reading a body after its request context had ended.
	body, err := io.ReadAll(io.LimitReader(hresp.Body, limit+1))
	if err != nil {
		if context.Cause(actx) == errAttemptTimeout {
			return nil, errAttemptTimeout
		}
		return nil, bodyReadError{err}
	}
	if int64(len(body)) > limit {
		return nil, &token.Error{Code: token.CodeResponseTooLarge, Status: hresp.StatusCode,
			Message: "response from " + redactURL(req) + " is larger than the limit"}
	}
	c.log(ctx, "response", slog.Int("status", hresp.StatusCode), slog.Int("bytes", len(body)))
	return &Response{Status: hresp.StatusCode, Header: hresp.Header, Body: body}, nil
}

// bodyReadError is a failure reading a response body. The server had answered, so it had
// accepted the connection and the client certificate on it: unlike the same EOF before any
// answer, this one says nothing about the certificate.
type bodyReadError struct{ err error }

func (e bodyReadError) Error() string { return "reading the response body: " + e.err.Error() }
func (e bodyReadError) Unwrap() error { return e.err }

// IsBodyReadError reports whether err came from reading a response body after the answer began.
func IsBodyReadError(err error) bool {
	var b bodyReadError
	return errors.As(err, &b)
}

var errAttemptTimeout = timeoutError{}

type timeoutError struct{}

func (timeoutError) Error() string   { return "attempt timed out" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// IsTimeout reports whether err is a timeout of one attempt (not the caller's cancellation).
func IsTimeout(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

// IsConnectionReset reports whether the peer reset the connection, which is how a TLS server
// refusing a client certificate often shows up after the handshake.
func IsConnectionReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func canceled(err error) *token.Error {
	code := token.CodeCanceled
	if errors.Is(err, context.DeadlineExceeded) {
		code = token.CodeRequestTimeout
	}
	return token.Wrap(code, err, "the caller's context ended")
}

func transportError(err error, attempts int) *token.Error {
	code := token.CodeNetwork
	if IsTimeout(err) {
		code = token.CodeRequestTimeout
	}
	e := token.Wrap(code, err, "no response after %d attempt(s)", attempts)
	e.Retryable = true
	return e
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) log(ctx context.Context, msg string, attrs ...slog.Attr) {
	if c.Logger != nil {
		c.Logger.LogAttrs(ctx, slog.LevelDebug, "wire: "+msg, attrs...)
	}
}

// redactURL drops the query (it can carry identity selectors) and any user info.
func redactURL(req *http.Request) string {
	u := *req.URL
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	return u.String()
}

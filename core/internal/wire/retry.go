package wire

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Policy is a retry policy in two parts, after go-retryablehttp: Retryable decides whether a
// failed attempt may be repeated; Backoff says how long to wait before the next attempt and
// whether the policy still allows one. The policies MSAL.NET uses are below, by name.
type Policy struct {
	Name string
	// Retryable reports whether an attempt that ended with status (0 when the transport failed
	// with err) may be retried. resp is nil when err != nil.
	Retryable func(status int, header http.Header, err error) bool
	// Backoff returns the wait before retry n (1 for the first retry), given the status of the
	// first failed attempt, the status of the latest one and its Retry-After (0 when absent).
	// ok=false ends the retries.
	Backoff func(n, firstStatus, status int, retryAfter time.Duration) (wait time.Duration, ok bool)
}

// NoRetry performs exactly one attempt.
var NoRetry = Policy{
	Name:      "none",
	Retryable: func(int, http.Header, error) bool { return false },
	Backoff:   func(int, int, int, time.Duration) (time.Duration, bool) { return 0, false },
}

// IMDS is MSAL.NET's policy for IMDS calls (the v1 token, getplatformmetadata, issuecredential):
// 404, 408, 410, 429, 5xx and timeouts are retried up to 3 times with exponential waits of 1, 2
// and 4 seconds; when the first failure was 410 (IMDS is updating) up to 7 times, every 10 s.
var IMDS = Policy{
	Name: "imds",
	Retryable: func(status int, _ http.Header, err error) bool {
		if err != nil {
			return IsTimeout(err)
		}
		switch status {
		case 404, 408, 410, 429:
			return true
		}
		return status >= 500 && status <= 599
	},
	Backoff: func(n, firstStatus, status int, _ time.Duration) (time.Duration, bool) {
		max := 3
		if firstStatus == http.StatusGone {
			max = 7
		}
		if n > max {
			return 0, false
		}
		if status == http.StatusGone {
			return 10 * time.Second, true
		}
		return exponential(n), true
	},
}

// IMDSProbe is the IMDS policy without 404: MSAL.NET's probe policy. getplatformmetadata uses
// it too, because there a 404 is the answer "this host has no IMDSv2", not a transient error, and
// retrying it would make every PoP request on a v1-only host wait 7 s before failing.
var IMDSProbe = Policy{
	Name: "imds_probe",
	Retryable: func(status int, header http.Header, err error) bool {
		return status != http.StatusNotFound && IMDS.Retryable(status, header, err)
	},
	Backoff: IMDS.Backoff,
}

// exponential is 1 s, 2 s, 4 s, 4 s, ...
func exponential(n int) time.Duration {
	if n >= 3 {
		return 4 * time.Second
	}
	return time.Second << (n - 1)
}

// ManagedIdentity is MSAL.NET's default policy for the other managed-identity sources (App
// Service, Service Fabric, Machine Learning, Cloud Shell, Azure Arc): 404, 408, 429, 500, 503,
// 504 and timeouts, 3 retries, each after max(1 s, Retry-After).
var ManagedIdentity = Policy{
	Name: "managed_identity",
	Retryable: func(status int, _ http.Header, err error) bool {
		if err != nil {
			return IsTimeout(err)
		}
		switch status {
		case 404, 408, 429, 500, 503, 504:
			return true
		}
		return false
	},
	Backoff: func(n, _, _ int, retryAfter time.Duration) (time.Duration, bool) {
		if n > 3 {
			return 0, false
		}
		return max(time.Second, retryAfter), true
	},
}

// STS is MSAL.NET's policy for token endpoints (the IMDSv2 token leg and confidential clients):
// one retry after 1 s on 5xx or a timeout, and none when the server sent Retry-After (it is
// throttling, and hammering it again would make that worse).
var STS = Policy{
	Name: "sts",
	Retryable: func(status int, header http.Header, err error) bool {
		if err != nil {
			return IsTimeout(err)
		}
		return status >= 500 && status <= 599 && header.Get("Retry-After") == ""
	},
	Backoff: func(n, _, _ int, _ time.Duration) (time.Duration, bool) {
		return time.Second, n <= 1
	},
}

// maxRetryAfter caps a server's Retry-After so a hostile or broken server cannot park a caller
// for hours; the caller's context bounds the wait in any case.
const maxRetryAfter = 5 * time.Minute

// RetryAfter parses a Retry-After header in either form (delay seconds or an HTTP date).
// Missing, negative or unparsable values give 0.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

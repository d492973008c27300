// Package backoff is the arithmetic every retry loop of the suite shares:
// how long to wait before the next attempt, how to wait it, and how long a
// server's Retry-After asks to wait. The loops (registry requests, blob
// uploads, upstream downloads, cluster checks) keep their own limits and
// pass them in as a Policy.
package backoff

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Policy is an exponential backoff: Initial before the first retry,
// doubled before each next one, never more than Max.
type Policy struct {
	// Initial is the wait before the first retry.
	Initial time.Duration
	// Max caps every wait.
	Max time.Duration
	// Jitter makes each wait "equal jitter": half of it fixed, half
	// random, so that clients refused together do not come back
	// together.
	Jitter bool
}

// Delay is the wait before retry n, counted from 1.
func (p Policy) Delay(n int) time.Duration {
	d := p.Initial
	// Doubling stops at Max, so d cannot overflow however large n is.
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	if p.Jitter && d > 0 {
		return d/2 + rand.N(d/2+1)
	}
	return d
}

// Sleep waits d, or until ctx ends; then it returns ctx's error.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// MaxRetryAfter is the longest wait ParseRetryAfter returns, so that a
// huge value cannot overflow a Duration. Callers cap it lower: a registry
// request does not wait more than a minute, an upstream download not more
// than its client's MaxBackoff.
const MaxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads a Retry-After header (RFC 9110 section 10.2.3):
// delay seconds, or an HTTP date relative to now, a date in the past
// being a zero wait. It reports false for an absent or malformed value.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		if strings.Trim(v, "0123456789") != "" {
			return 0, false
		}
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil || s > uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter, true // all digits, too large to parse
		}
		return time.Duration(s) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), MaxRetryAfter), true
}

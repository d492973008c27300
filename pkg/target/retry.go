package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/pkg/internal/backoff"
)

// Retry settings. A registry asking for a longer wait than maxRetryAfter
// (Docker Hub's pull limit says hours) is not waited for: the request fails
// at once with the registry's answer, instead of holding a sync for the cap
// only to be refused again.
const (
	defaultRetries = 5
	maxRetryAfter  = time.Minute
)

// retryBackoff is the wait before a retry the registry did not time: from
// 250 ms, doubled up to 10 s, with jitter.
var retryBackoff = backoff.Policy{Initial: 250 * time.Millisecond, Max: 10 * time.Second, Jitter: true}

// retryTransport retries the requests a registry may answer differently a
// moment later, and limits the requests in flight to each registry host.
//
// A request is retried when it can be sent again as it was: it has no body,
// or its body can be rewound (req.GetBody). A chunk of a blob streamed from
// elsewhere cannot; whoever streams it resumes the upload instead.
type retryTransport struct {
	base    http.RoundTripper
	retries int
	// limit is the number of requests in flight per host; 0 for no limit.
	limit int
	log   func(format string, args ...any)
}

// RetryTransport wraps base (nil for http.DefaultTransport with the
// connect and TLS handshake limits of opts.StallTimeout) with the stall
// limit, the retries and the per-host limit of opts (StallTimeout, Retries,
// MaxConcurrency, Log), as registry requests have them, for the other HTTP
// APIs a run talks to.
func RetryTransport(base http.RoundTripper, opts RemoteOptions) http.RoundTripper {
	if base == nil {
		base = newBaseTransport(opts)
	}
	return newRetryTransport(base, opts)
}

// newRetryTransport wraps base with the stall limit, the retries and the
// per-host limit of opts.
func newRetryTransport(base http.RoundTripper, opts RemoteOptions) *retryTransport {
	base = &stallTransport{base: base, limit: stallLimit(opts)}
	t := &retryTransport{base: base, retries: opts.Retries, limit: opts.MaxConcurrency, log: opts.Log}
	switch {
	case t.retries == 0:
		t.retries = defaultRetries
	case t.retries < 0:
		t.retries = 0
	}
	return t
}

// RoundTrip sends req, again after a pause while the answer is worth
// retrying and retries are left.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	stalls := 0
	for attempt := 0; ; attempt++ {
		r := req
		if attempt > 0 {
			r = req.Clone(ctx)
			if req.Body != nil && req.Body != http.NoBody {
				body, err := req.GetBody()
				if err != nil {
					return nil, fmt.Errorf("rewinding the body of %s %s: %w", req.Method, redact(req), err)
				}
				r.Body = body
			}
		}
		release, err := t.acquire(ctx, req.URL.Host)
		if err != nil {
			if r.Body != nil {
				r.Body.Close()
			}
			return nil, err
		}
		resp, err := t.base.RoundTrip(r)
		// Response bodies hold no slot: a copy within one registry streams
		// a download into an upload, and counting both would deadlock
		// with a limit of one.
		release()
		if !replayable || attempt >= t.retries || ctx.Err() != nil {
			return resp, err
		}
		retries := t.retries
		var stall *StallError
		if errors.As(err, &stall) {
			if stalls >= maxStallRetries {
				return resp, err
			}
			stalls++
			// The last retry, unless a stall is retried more than once.
			retries = min(retries, attempt+1+maxStallRetries-stalls)
		}
		wait, reason, retry := t.decide(attempt, resp, err)
		if !retry {
			if reason != "" {
				t.logf("%s %s: %s", req.Method, redact(req), reason)
			}
			return resp, err
		}
		if resp != nil {
			// Drain a little so the connection can be reused.
			io.CopyN(io.Discard, resp.Body, 4096)
			resp.Body.Close()
		}
		t.logf("%s %s: %s; retrying in %v (retry %d of %d)", req.Method, redact(req), reason, wait.Round(time.Millisecond), attempt+1, retries)
		if err := backoff.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// decide says whether to retry after an answer (resp) or a failure (err),
// how long to wait first, and why, for the log. A reason without retry
// explains a refusal worth logging.
func (t *retryTransport) decide(attempt int, resp *http.Response, err error) (wait time.Duration, reason string, retry bool) {
	if err != nil {
		if !retryableError(err) {
			return 0, "", false
		}
		reason = err.Error()
	} else {
		switch resp.StatusCode {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			reason = resp.Status
		default:
			return 0, "", false
		}
		if after, ok := backoff.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			if after > maxRetryAfter {
				return 0, fmt.Sprintf("%s, and the registry asks to wait %v, longer than the %v a retry waits at most; not retrying", resp.Status, after.Round(time.Second), maxRetryAfter), false
			}
			return after, reason + " with Retry-After", true
		}
	}
	return retryBackoff.Delay(attempt + 1), reason, true
}

// retryableError reports whether a failed round trip may succeed if sent
// again: the connection was reset or closed early, or timed out (a
// *StallError is a timeout).
func retryableError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (t *retryTransport) logf(format string, args ...any) {
	if t.log != nil {
		t.log(format, args...)
	}
}

// redact is the request's URL without its query, which carries upload
// state tokens: long, and nothing a reader of the log needs.
func redact(req *http.Request) string {
	u := *req.URL
	u.RawQuery, u.ForceQuery, u.User = "", false, nil
	return u.String()
}

// hostSlots holds the semaphores of the per-host limits. They are shared by
// every client in the process with the same limit, so that the many
// repositories a mirror opens on one registry share its limit.
var hostSlots sync.Map // "host limit" → chan struct{}

// acquire waits for a slot for a request to host and returns its release.
func (t *retryTransport) acquire(ctx context.Context, host string) (func(), error) {
	if t.limit <= 0 {
		return func() {}, nil
	}
	key := host + " " + strconv.Itoa(t.limit)
	v, ok := hostSlots.Load(key)
	if !ok {
		v, _ = hostSlots.LoadOrStore(key, make(chan struct{}, t.limit))
	}
	slots := v.(chan struct{})
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

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

	"oras.land/oras-go/v2/registry/remote/retry"

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
// The loop is oras-go's retry.Transport; the decisions are a retryPolicy,
// made for each request, as its log lines and whether its body can be sent
// again belong to the request.
//
// A request is retried when it can be sent again as it was: it has no body,
// or its body can be rewound (req.GetBody). A chunk of a blob streamed from
// elsewhere cannot; whoever streams it resumes the upload instead.
type retryTransport struct {
	// base sends one attempt: the per-host limit over the stall limit.
	base    http.RoundTripper
	retries int
	log     func(format string, args ...any)
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
	if opts.MaxConcurrency > 0 {
		// Under the retries, so that each attempt takes a slot and a
		// request waiting to retry holds none.
		base = &hostLimitTransport{base: base, limit: opts.MaxConcurrency}
	}
	t := &retryTransport{base: base, retries: opts.Retries, log: opts.Log}
	switch {
	case t.retries == 0:
		t.retries = defaultRetries
	case t.retries < 0:
		t.retries = 0
	}
	return t
}

// RoundTrip sends req through a retry.Transport with a policy of its own.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// retry.Transport sets the body of the request it sends again; it gets
	// a copy, as a RoundTripper leaves its caller's request alone.
	r := req.WithContext(req.Context())
	if r.Body == http.NoBody && r.GetBody == nil {
		// Nothing to rewind; retry.Transport only knows a nil body.
		r.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
	}
	// The error of the last rewind: retry.Transport gives up on one
	// without a word, where the caller is owed the reason.
	var rewindErr error
	if getBody := r.GetBody; getBody != nil {
		r.GetBody = func() (io.ReadCloser, error) {
			body, err := getBody()
			rewindErr = err
			return body, err
		}
	}
	p := t.newPolicy(req)
	rt := &retry.Transport{Base: t.base, Policy: func() retry.Policy { return p }}
	resp, err := rt.RoundTrip(r)
	if rewindErr != nil {
		// retry.Transport gives back the answer it meant to retry.
		if err == nil {
			resp.Body.Close()
		}
		return nil, fmt.Errorf("rewinding the body of %s %s: %w", req.Method, redact(req), rewindErr)
	}
	return resp, err
}

// newPolicy is the retry policy of req.
func (t *retryTransport) newPolicy(req *http.Request) *retryPolicy {
	return &retryPolicy{
		ctx:        req.Context(),
		method:     req.Method,
		url:        redact(req),
		replayable: req.Body == nil || req.Body == http.NoBody || req.GetBody != nil,
		retries:    t.retries,
		log:        t.log,
	}
}

// retryPolicy decides, for retry.Transport, whether and when one request
// is sent again, and logs why. It counts the request's stalls, so it
// serves a single request.
type retryPolicy struct {
	// ctx is the request's: retry.Policy is not given it.
	ctx         context.Context
	method, url string // for the log
	replayable  bool
	retries     int
	stalls      int
	log         func(format string, args ...any)
}

// Retry implements retry.Policy: the wait before sending the request again
// after attempt (from 0) ended with resp or err, or -1 not to.
func (p *retryPolicy) Retry(attempt int, resp *http.Response, err error) (time.Duration, error) {
	// retry.Transport checks the body only after asking, when the answer
	// has been drained and the retry logged.
	if !p.replayable || attempt >= p.retries || p.ctx.Err() != nil {
		return -1, nil
	}
	retries := p.retries
	var stall *StallError
	if errors.As(err, &stall) {
		if p.stalls >= maxStallRetries {
			return -1, nil
		}
		p.stalls++
		// The last retry, unless a stall is retried more than once.
		retries = min(retries, attempt+1+maxStallRetries-p.stalls)
	}
	wait, reason, ok := decide(attempt, resp, err)
	if !ok {
		if reason != "" {
			p.logf("%s %s: %s", p.method, p.url, reason)
		}
		return -1, nil
	}
	if resp != nil {
		// Drain a little so the connection can be reused: retry.Transport
		// closes the body without reading it.
		io.CopyN(io.Discard, resp.Body, 4096)
	}
	p.logf("%s %s: %s; retrying in %v (retry %d of %d)", p.method, p.url, reason, wait.Round(time.Millisecond), attempt+1, retries)
	return wait, nil
}

func (p *retryPolicy) logf(format string, args ...any) {
	if p.log != nil {
		p.log(format, args...)
	}
}

// decide says whether to retry after an answer (resp) or a failure (err),
// how long to wait first, and why, for the log. A reason without retry
// explains a refusal worth logging.
func decide(attempt int, resp *http.Response, err error) (wait time.Duration, reason string, retry bool) {
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

// hostLimitTransport limits the round trips in flight to each host to
// limit. A round trip ends with the answer's headers: response bodies hold
// no slot, as a copy within one registry streams a download into an
// upload, and counting both would deadlock with a limit of one.
type hostLimitTransport struct {
	base  http.RoundTripper
	limit int
}

func (t *hostLimitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	key := req.URL.Host + " " + strconv.Itoa(t.limit)
	v, ok := hostSlots.Load(key)
	if !ok {
		v, _ = hostSlots.LoadOrStore(key, make(chan struct{}, t.limit))
	}
	slots := v.(chan struct{})
	select {
	case slots <- struct{}{}:
	case <-req.Context().Done():
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, req.Context().Err()
	}
	defer func() { <-slots }()
	return t.base.RoundTrip(req)
}

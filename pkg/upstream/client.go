// Package upstream reads the distributions' download sites: metadata files
// (fetched concurrently, each at most once per run, with timeouts and
// retries), checksum files and directory listings in their real formats, and
// disk downloads that resume, decompress, verify their checksum while
// streaming and land in a cache keyed by checksum.
package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"html"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/internal/backoff"
)

// Options configures a Client.
type Options struct {
	// HTTPClient makes the requests; when nil, a client with the proxy
	// settings and dial and TLS handshake timeouts of
	// http.DefaultTransport, and no overall timeout, since Timeout bounds
	// metadata requests and download stalls instead.
	HTTPClient *http.Client
	// UserAgent is sent with every request; DefaultUserAgent when empty.
	UserAgent string
	// Retries is how many times a failed request (5xx, 429, connection
	// reset, timeout) is retried; DefaultRetries when zero, none when
	// negative. A download attempt that received data before it failed
	// does not count, since the next one resumes where it stopped.
	Retries int
	// Backoff is the first wait between retries, doubled each time, with
	// jitter; DefaultBackoff when zero.
	Backoff time.Duration
	// MaxBackoff caps each wait between retries, including one a server
	// asks for with Retry-After; DefaultMaxBackoff when zero.
	MaxBackoff time.Duration
	// Timeout bounds each metadata request, and how long a download may
	// receive nothing before the attempt is abandoned and retried;
	// DefaultTimeout when zero.
	Timeout time.Duration
	// Log, when set, is told about each retry, e.g. "retrying URL in 1s:
	// 503 Service Unavailable". The client is silent when it is nil.
	Log func(format string, args ...any)
}

// Defaults of Options.
const (
	DefaultUserAgent  = "kubectl-containerdisk"
	DefaultRetries    = 4
	DefaultBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	DefaultTimeout    = 60 * time.Second
)

// MaxFetchSize is the largest metadata file Fetch reads; larger ones are
// an error rather than a memory exhaustion.
const MaxFetchSize = 64 << 20

// StatusError is an HTTP response whose status is not the one asked for.
// A 404 matches catalog.ErrNotFound with errors.Is.
type StatusError struct {
	// URL is the URL requested.
	URL string
	// StatusCode is the response status code, e.g. 503.
	StatusCode int
	// Status is the status line, e.g. "503 Service Unavailable".
	Status string
	// RetryAfter is the wait the server asked for with Retry-After; zero
	// when it did not.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string { return e.Status }

// Is makes a 404 match catalog.ErrNotFound.
func (e *StatusError) Is(target error) bool {
	return target == catalog.ErrNotFound && e.StatusCode == http.StatusNotFound
}

// Client reads upstream sites over http(s):// and file://. It is safe for
// concurrent use; one Client is meant to serve one run, since it remembers
// every metadata file it fetched.
type Client struct {
	opts Options

	// maxFetch is MaxFetchSize, smaller in tests.
	maxFetch int

	group singleflight.Group
	mu    sync.Mutex
	memo  map[string]fetched
}

// fetched is a memoized Fetch result.
type fetched struct {
	data []byte
	err  error
}

var _ catalog.Fetcher = (*Client)(nil)

// NewClient returns a Client.
func NewClient(opts Options) *Client {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if opts.UserAgent == "" {
		opts.UserAgent = DefaultUserAgent
	}
	if opts.Retries == 0 {
		opts.Retries = DefaultRetries
	} else if opts.Retries < 0 {
		opts.Retries = 0
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	return &Client{opts: opts, maxFetch: MaxFetchSize, memo: map[string]fetched{}}
}

// Fetch returns the content of a metadata file at an http://, https:// or
// file:// URL; a file:// URL naming a directory returns an HTML listing of
// it that ParseIndex reads. Each URL is read at most once per Client:
// concurrent callers share one request, and later ones get its content, or
// its ErrNotFound, again. A missing file is an error wrapping
// catalog.ErrNotFound. The returned slice is the caller's own.
func (c *Client) Fetch(ctx context.Context, url string) ([]byte, error) {
	for {
		c.mu.Lock()
		r, ok := c.memo[url]
		c.mu.Unlock()
		if ok {
			return bytes.Clone(r.data), r.err
		}
		// The request runs with the context of the caller that started
		// it; callers that joined it start their own when that caller
		// gives up, rather than inherit its cancellation.
		type shared struct {
			data      []byte
			abandoned bool
		}
		ch := c.group.DoChan(url, func() (any, error) {
			data, err := c.fetch(ctx, url)
			if err == nil || errors.Is(err, catalog.ErrNotFound) {
				c.mu.Lock()
				c.memo[url] = fetched{data: data, err: err}
				c.mu.Unlock()
			}
			return shared{data: data, abandoned: ctx.Err() != nil}, err
		})
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("fetching %s: %w", url, ctx.Err())
		case res := <-ch:
			s := res.Val.(shared)
			if s.abandoned && ctx.Err() == nil {
				continue
			}
			return bytes.Clone(s.data), res.Err
		}
	}
}

// fetch reads url without memoization.
func (c *Client) fetch(ctx context.Context, rawURL string) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", rawURL, err)
	}
	switch u.Scheme {
	case "file":
		return fetchFile(rawURL, u, c.maxFetch)
	case "http", "https":
	default:
		return nil, fmt.Errorf("fetching %s: unsupported URL scheme %q: expected http, https or file", rawURL, u.Scheme)
	}
	var data []byte
	err = c.retry(ctx, rawURL, func(ctx context.Context) (bool, error) {
		ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
		data = nil
		resp, err := c.get(ctx, rawURL)
		if err != nil {
			return false, c.attemptError(ctx, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, newStatusError(rawURL, resp)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, int64(c.maxFetch)+1))
		if err != nil {
			return false, &networkError{c.attemptError(ctx, err)}
		}
		if len(b) > c.maxFetch {
			return false, tooLarge(c.maxFetch)
		}
		data = b
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", rawURL, err)
	}
	return data, nil
}

// get sends a GET request for url with the headers in hdr (pairs of name
// and value; an empty value is left out).
func (c *Client) get(ctx context.Context, url string, hdr ...string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] != "" {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	return c.opts.HTTPClient.Do(req)
}

func newStatusError(url string, resp *http.Response) *StatusError {
	// Drain a little of the body so that the connection can be reused.
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	e := &StatusError{URL: url, StatusCode: resp.StatusCode, Status: resp.Status}
	if e.Status == "" {
		e.Status = strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	}
	if d, ok := backoff.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		e.RetryAfter = d
	}
	return e
}

// errStalled is the cause of an attempt abandoned for its timeout.
var errStalled = errors.New("stalled")

// timeoutError is an attempt abandoned after Options.Timeout. It matches
// context.DeadlineExceeded.
type timeoutError struct{ d time.Duration }

func (e *timeoutError) Error() string        { return fmt.Sprintf("timed out after %s", e.d) }
func (e *timeoutError) Timeout() bool        { return true }
func (e *timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// attemptError makes the error of a request or a body read that failed
// under the attempt context ctx readable: the *url.Error that repeats the
// URL is unwrapped, and the attempt's own timeout is named as such.
func (c *Client) attemptError(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errStalled) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &timeoutError{c.opts.Timeout}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// networkError marks an error of reading a response body as worth a retry.
type networkError struct{ err error }

func (e *networkError) Error() string { return e.err.Error() }
func (e *networkError) Unwrap() error { return e.err }

// retry calls attempt until it succeeds, fails for good, runs out of
// retries, or ctx ends, waiting between attempts. An attempt reports
// whether it made progress, which keeps it from counting against
// Options.Retries.
func (c *Client) retry(ctx context.Context, url string, attempt func(ctx context.Context) (progressed bool, err error)) error {
	attempts, failures := 0, 0
	for {
		attempts++
		progressed, err := attempt(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !retryable(err) {
			return err
		}
		if !progressed {
			failures++
		}
		if failures > c.opts.Retries {
			return fmt.Errorf("%w (after %d attempts)", err, attempts)
		}
		wait := c.wait(max(failures, 1), err)
		if c.opts.Log != nil {
			c.opts.Log("retrying %s in %s: %v", url, wait.Round(time.Millisecond), err)
		}
		if err := backoff.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// wait is how long to wait before retry n (from 1) after err: what the
// server asked for, or an exponential backoff with jitter, capped.
func (c *Client) wait(n int, err error) time.Duration {
	var se *StatusError
	if errors.As(err, &se) && se.RetryAfter > 0 {
		return min(se.RetryAfter, c.opts.MaxBackoff)
	}
	// Jitter spreads the retries of concurrent requests.
	return backoff.Policy{Initial: c.opts.Backoff, Max: c.opts.MaxBackoff, Jitter: true}.Delay(n)
}

// retryable reports whether a request that failed with err may succeed
// when sent again.
func retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.StatusCode >= 500 || se.StatusCode == http.StatusTooManyRequests
	}
	var ne *networkError
	var te *timeoutError
	if errors.As(err, &ne) || errors.As(err, &te) {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return !dns.IsNotFound
	}
	var cert *tls.CertificateVerificationError
	if errors.As(err, &cert) {
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func tooLarge(maxSize int) error {
	return fmt.Errorf("larger than %d bytes: not a metadata file", maxSize)
}

// localPath is the file a file:// URL names.
func localPath(rawURL string, u *url.URL) (string, error) {
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("file URL %s names host %q: expected file:///PATH", rawURL, u.Host)
	}
	p := u.Path
	if u.Opaque != "" { // file:relative/path
		p = u.Opaque
	}
	if runtime.GOOS == "windows" && len(p) >= 3 && p[0] == '/' && p[2] == ':' {
		p = p[1:] // file:///C:/dir
	}
	if p == "" {
		return "", fmt.Errorf("file URL %s names no path", rawURL)
	}
	return filepath.FromSlash(p), nil
}

// fetchFile reads a local file, or lists a local directory.
func fetchFile(rawURL string, u *url.URL, maxSize int) ([]byte, error) {
	p, err := localPath(rawURL, u)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", rawURL, err)
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("fetching %s: %w", rawURL, catalog.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", rawURL, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", rawURL, err)
	}
	if st.IsDir() {
		page, err := listDir(p)
		if err != nil {
			return nil, fmt.Errorf("fetching %s: %w", rawURL, err)
		}
		return page, nil
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(maxSize)+1))
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", rawURL, err)
	}
	if len(data) > maxSize {
		return nil, fmt.Errorf("fetching %s: %w", rawURL, tooLarge(maxSize))
	}
	return data, nil
}

// listDir renders a directory as the HTML index a web server would serve
// for it, sorted by name, directories (and links to them) with a slash.
func listDir(dir string) ([]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("<!DOCTYPE html>\n<html><body><pre>\n")
	for _, e := range entries {
		name := e.Name()
		isDir := e.IsDir()
		if e.Type()&fs.ModeSymlink != 0 {
			if st, err := os.Stat(filepath.Join(dir, name)); err == nil {
				isDir = st.IsDir()
			}
		}
		href := (&url.URL{Path: name}).EscapedPath()
		if strings.Contains(href, ":") {
			href = "./" + href // not a scheme
		}
		if isDir {
			href += "/"
			name += "/"
		}
		fmt.Fprintf(&b, "<a href=\"%s\">%s</a>\n", html.EscapeString(href), html.EscapeString(name))
	}
	b.WriteString("</pre></body></html>\n")
	return b.Bytes(), nil
}

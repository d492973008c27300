package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
)

// fastOptions keep the retries of a test in milliseconds.
func fastOptions() Options {
	return Options{Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Timeout: 2 * time.Second}
}

// counting serves handler and counts the requests it gets.
func counting(t *testing.T, handler func(n int, w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler(int(hits.Add(1)), w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestFetchMemoizes(t *testing.T) {
	srv, hits := counting(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		time.Sleep(20 * time.Millisecond) // let the callers pile up
		fmt.Fprint(w, "sums")
	})
	c := NewClient(fastOptions())
	ctx := t.Context()

	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			got, err := c.Fetch(ctx, srv.URL+"/SHA256SUMS")
			if err != nil || string(got) != "sums" {
				t.Errorf("Fetch = %q, %v; want sums", got, err)
			}
		})
	}
	wg.Wait()
	got, _ := c.Fetch(ctx, srv.URL+"/SHA256SUMS")
	got[0] = 'X' // the caller's own copy
	if got, _ := c.Fetch(ctx, srv.URL+"/SHA256SUMS"); string(got) != "sums" {
		t.Errorf("memoized content changed by a caller: %q", got)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("22 Fetches of one URL made %d requests; want 1", n)
	}

	for range 2 {
		if _, err := c.Fetch(ctx, srv.URL+"/missing"); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("Fetch(missing) = %v; want ErrNotFound", err)
		}
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("two Fetches of a missing file made %d requests; want 1", n-1)
	}
}

func TestFetchDoesNotMemoizeFailures(t *testing.T) {
	srv, hits := counting(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ok")
	})
	opts := fastOptions()
	opts.Retries = -1
	c := NewClient(opts)
	if _, err := c.Fetch(t.Context(), srv.URL); err == nil {
		t.Fatal("first Fetch succeeded; want 503")
	}
	if got, err := c.Fetch(t.Context(), srv.URL); err != nil || string(got) != "ok" {
		t.Errorf("second Fetch = %q, %v; want ok", got, err)
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("%d requests; want 2", n)
	}
}

// A caller that gives up does not fail the callers that share its request.
func TestFetchSharedRequestOutlivesItsCaller(t *testing.T) {
	release := make(chan struct{})
	srv, hits := counting(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			<-r.Context().Done() // the first caller cancels
			return
		}
		<-release
		fmt.Fprint(w, "ok")
	})
	c := NewClient(fastOptions())
	first, cancel := context.WithCancel(t.Context())
	firstErr := make(chan error)
	go func() {
		_, err := c.Fetch(first, srv.URL)
		firstErr <- err
	}()
	for hits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan string)
	go func() {
		got, err := c.Fetch(t.Context(), srv.URL)
		if err != nil {
			t.Errorf("second Fetch: %v", err)
		}
		second <- string(got)
	}()
	time.Sleep(10 * time.Millisecond) // the second caller joins the request
	cancel()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled Fetch = %v; want context.Canceled", err)
	}
	close(release)
	if got := <-second; got != "ok" {
		t.Errorf("second Fetch = %q; want ok", got)
	}
}

func TestFetchRetries(t *testing.T) {
	reset := func(w http.ResponseWriter) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}
	tests := []struct {
		name     string
		retries  int
		handle   func(n int, w http.ResponseWriter)
		wantHits int32
		wantErr  string // substring; "" for success
		notFound bool
	}{
		{
			name: "503 then 200",
			handle: func(n int, w http.ResponseWriter) {
				if n == 1 {
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				fmt.Fprint(w, "ok")
			},
			wantHits: 2,
		},
		{
			name: "429 then 200",
			handle: func(n int, w http.ResponseWriter) {
				if n == 1 {
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
				fmt.Fprint(w, "ok")
			},
			wantHits: 2,
		},
		{
			name: "connection closed then 200",
			handle: func(n int, w http.ResponseWriter) {
				if n <= 2 {
					reset(w)
					return
				}
				fmt.Fprint(w, "ok")
			},
			wantHits: 3,
		},
		{
			name: "body cut short then 200",
			handle: func(n int, w http.ResponseWriter) {
				if n == 1 {
					w.Header().Set("Content-Length", "10")
					fmt.Fprint(w, "o")
					return
				}
				fmt.Fprint(w, "ok")
			},
			wantHits: 2,
		},
		{
			name:     "503 until out of retries",
			retries:  2,
			handle:   func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) },
			wantHits: 3,
			wantErr:  ": 503 Service Unavailable (after 3 attempts)",
		},
		{
			name:     "no retry on 403",
			handle:   func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusForbidden) },
			wantHits: 1,
			wantErr:  ": 403 Forbidden",
		},
		{
			name:     "no retry on 404",
			handle:   func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) },
			wantHits: 1,
			wantErr:  ": 404 Not Found",
			notFound: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, hits := counting(t, func(n int, w http.ResponseWriter, _ *http.Request) { tt.handle(n, w) })
			opts := fastOptions()
			opts.Retries = tt.retries
			var logged []string
			opts.Log = func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }
			u := srv.URL + "/CHECKSUM"
			got, err := NewClient(opts).Fetch(t.Context(), u)
			if n := hits.Load(); n != tt.wantHits {
				t.Errorf("%d requests; want %d", n, tt.wantHits)
			}
			if len(logged) != int(tt.wantHits-1) {
				t.Errorf("logged %q; want one line per retry", logged)
			}
			if tt.wantErr == "" {
				if err != nil || string(got) != "ok" {
					t.Fatalf("Fetch = %q, %v; want ok", got, err)
				}
				return
			}
			if err == nil || err.Error() != "fetching "+u+tt.wantErr {
				t.Errorf("Fetch error = %v; want %q", err, "fetching "+u+tt.wantErr)
			}
			if errors.Is(err, catalog.ErrNotFound) != tt.notFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v; want %v", err, !tt.notFound, tt.notFound)
			}
			var se *StatusError
			if !errors.As(err, &se) || se.URL != u {
				t.Errorf("errors.As(%v, *StatusError) = %v; want the status of %s", err, se, u)
			}
		})
	}
}

func TestFetchHonoursRetryAfter(t *testing.T) {
	srv, _ := counting(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, "ok")
	})
	opts := fastOptions()
	opts.MaxBackoff = 100 * time.Millisecond // caps the hour asked for
	var logged []string
	opts.Log = func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }
	start := time.Now()
	if _, err := NewClient(opts).Fetch(t.Context(), srv.URL); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("retried after %s; want the 100ms Retry-After was capped to", d)
	}
	want := []string{"retrying " + srv.URL + " in 100ms: 429 Too Many Requests"}
	if !slices.Equal(logged, want) {
		t.Errorf("logged %q; want %q", logged, want)
	}
}

func TestFetchTimeout(t *testing.T) {
	srv, hits := counting(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // a body that never ends
	})
	opts := fastOptions()
	opts.Timeout = 50 * time.Millisecond
	opts.Retries = 1
	start := time.Now()
	_, err := NewClient(opts).Fetch(t.Context(), srv.URL)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 50ms (after 2 attempts)") {
		t.Errorf("Fetch = %v; want a timeout after 2 attempts", err)
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("%d requests; want 2", n)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Fetch took %s", d)
	}
}

func TestFetchCanceledDuringBackoff(t *testing.T) {
	srv, hits := counting(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	})
	ctx, cancel := context.WithCancel(t.Context())
	opts := fastOptions()
	opts.Backoff, opts.MaxBackoff = time.Minute, time.Minute
	opts.Log = func(string, ...any) { cancel() } // just before the wait
	start := time.Now()
	_, err := NewClient(opts).Fetch(ctx, srv.URL)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch = %v; want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Fetch returned after %s; want at once", d)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("%d requests; want 1", n)
	}
}

func TestFetchUserAgent(t *testing.T) {
	for _, tt := range []struct{ set, want string }{
		{"", "kubectl-containerdisk"},
		{"kubectl-containerdisk/v1.2.3", "kubectl-containerdisk/v1.2.3"},
	} {
		srv, _ := counting(t, func(_ int, w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, r.UserAgent())
		})
		opts := fastOptions()
		opts.UserAgent = tt.set
		got, err := NewClient(opts).Fetch(t.Context(), srv.URL)
		if err != nil || string(got) != tt.want {
			t.Errorf("UserAgent %q: server saw %q, %v; want %q", tt.set, got, err, tt.want)
		}
	}
}

func TestFetchTooLarge(t *testing.T) {
	srv, _ := counting(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		_, _ = io.CopyN(w, zeros{}, 1001)
	})
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 1001), 0o644); err != nil {
		t.Fatal(err)
	}
	c := NewClient(fastOptions())
	c.maxFetch = 1000
	for _, u := range []string{srv.URL, fileURL(big)} {
		_, err := c.Fetch(t.Context(), u)
		if err == nil || err.Error() != "fetching "+u+": larger than 1000 bytes: not a metadata file" {
			t.Errorf("Fetch = %v; want larger than 1000 bytes", err)
		}
	}
	if c := NewClient(Options{}); c.maxFetch != 64<<20 {
		t.Errorf("maxFetch = %d; want 64 MiB", c.maxFetch)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestFetchUnsupportedScheme(t *testing.T) {
	_, err := NewClient(fastOptions()).Fetch(t.Context(), "ftp://example.org/x")
	if err == nil || !strings.Contains(err.Error(), `unsupported URL scheme "ftp"`) {
		t.Errorf("Fetch = %v; want unsupported scheme", err)
	}
}

func fileURL(path string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

func TestFetchFile(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"SHA256SUMS", "b.qcow2", "a b.img", "x:y.raw"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("content of "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"41", "40", "<odd>&"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("41", filepath.Join(dir, "latest")); err != nil {
		t.Fatal(err)
	}
	c := NewClient(Options{})

	tests := []struct {
		name     string
		url      string
		want     string   // file content
		index    []string // ParseIndex of a listing
		notFound bool
	}{
		{name: "file", url: fileURL(filepath.Join(dir, "SHA256SUMS")), want: "content of SHA256SUMS"},
		{name: "escaped name", url: fileURL(filepath.Join(dir, "a b.img")), want: "content of a b.img"},
		{name: "localhost", url: "file://localhost" + filepath.ToSlash(filepath.Join(dir, "b.qcow2")), want: "content of b.qcow2"},
		{name: "missing", url: fileURL(filepath.Join(dir, "nope")), notFound: true},
		{
			name:  "directory",
			url:   fileURL(dir) + "/",
			index: []string{"40/", "41/", "<odd>&/", "SHA256SUMS", "a b.img", "b.qcow2", "latest/", "x:y.raw"},
		},
		{name: "empty directory", url: fileURL(filepath.Join(dir, "40")), index: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Fetch(t.Context(), tt.url)
			if tt.notFound {
				if !errors.Is(err, catalog.ErrNotFound) || !strings.Contains(err.Error(), tt.url) {
					t.Errorf("Fetch = %v; want ErrNotFound naming %s", err, tt.url)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" {
				if string(got) != tt.want {
					t.Errorf("Fetch = %q; want %q", got, tt.want)
				}
				return
			}
			if idx := ParseIndex(got); !slices.Equal(idx, tt.index) {
				t.Errorf("ParseIndex(listing) = %q; want %q\n%s", idx, tt.index, got)
			}
		})
	}
}

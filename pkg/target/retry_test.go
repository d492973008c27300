package target_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"
)

// answer is how a scripted registry answers one request.
type answer func(w http.ResponseWriter, r *http.Request)

// manifest answers a manifest HEAD or GET with a small manifest.
func manifest(w http.ResponseWriter, r *http.Request) {
	body := []byte(`{"schemaVersion":2}`)
	w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
	w.Header().Set("Docker-Content-Digest", content.NewDescriptorFromBytes("", body).Digest.String())
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

func statusAnswer(code int, retryAfter string) answer {
	return func(w http.ResponseWriter, r *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(code)
	}
}

// dateAnswer answers with code and a Retry-After date in seconds from now.
func dateAnswer(code int, in time.Duration) answer {
	return func(w http.ResponseWriter, r *http.Request) {
		statusAnswer(code, time.Now().Add(in).UTC().Format(http.TimeFormat))(w, r)
	}
}

// reset closes the connection with a TCP reset, without an answer.
func reset(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	conn.(*net.TCPConn).SetLinger(0)
	conn.Close()
}

// scripted is a registry that answers the nth request with script[n], and
// the last answer of the script after it.
type scripted struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string
}

func newScripted(t *testing.T, script ...answer) *scripted {
	s := &scripted{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		n := len(s.requests)
		s.requests = append(s.requests, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		io.Copy(io.Discard, r.Body)
		script[min(n, len(script)-1)](w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func openScripted(t *testing.T, s *scripted, opts target.RemoteOptions) *remote.Repository {
	t.Helper()
	ref, err := target.Parse(strings.TrimPrefix(s.URL, "http://") + "/containerdisks/fedora")
	if err != nil {
		t.Fatal(err)
	}
	repo, err := target.OpenRepository(ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

func TestRetry(t *testing.T) {
	tests := []struct {
		name    string
		retries int
		script  []answer
		// requests is how many the registry must see; err, when set, is
		// in the error.
		requests int
		err      string
		// atLeast and below bound the time taken.
		atLeast, below time.Duration
		log            string
	}{
		{name: "429 then 200, Retry-After in seconds", script: []answer{statusAnswer(429, "1"), manifest}, requests: 2, atLeast: time.Second, below: 3 * time.Second, log: "429 Too Many Requests with Retry-After; retrying in 1s (retry 1 of 5)"},
		{name: "503 then 200, Retry-After as a date", script: []answer{dateAnswer(503, 2*time.Second), manifest}, requests: 2, atLeast: 500 * time.Millisecond, below: 4 * time.Second},
		{name: "reset then 200", script: []answer{reset, manifest}, requests: 2, below: time.Second, log: "retrying"},
		{name: "502 and 504 then 200", script: []answer{statusAnswer(502, ""), statusAnswer(504, ""), manifest}, requests: 3, below: 2 * time.Second},
		{name: "retries run out", retries: 2, script: []answer{statusAnswer(503, "0")}, requests: 3, err: "503"},
		{name: "500 is not retried", script: []answer{statusAnswer(500, ""), manifest}, requests: 1, err: "500"},
		{name: "404 is not retried", script: []answer{statusAnswer(404, ""), manifest}, requests: 1, err: "not found"},
		{
			// Docker Hub's pull limit asks for hours: waiting a minute to be
			// refused again helps nobody.
			name: "Retry-After beyond the cap", script: []answer{statusAnswer(429, "3600"), manifest}, requests: 1, err: "429", below: time.Second,
			log: "the registry asks to wait 1h0m0s, longer than the 1m0s a retry waits at most; not retrying",
		},
		{
			// Read as the upstream client reads it: all digits, too many
			// for a Duration, is the longest wait, not a malformed value.
			name: "Retry-After too large to parse", script: []answer{statusAnswer(429, "99999999999999999999999"), manifest}, requests: 1, err: "429", below: time.Second,
			log: "the registry asks to wait 24h0m0s, longer than the 1m0s a retry waits at most; not retrying",
		},
		{name: "retries off", retries: -1, script: []answer{statusAnswer(503, ""), manifest}, requests: 1, err: "503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newScripted(t, tt.script...)
			var logs strings.Builder
			var mu sync.Mutex
			repo := openScripted(t, s, target.RemoteOptions{Retries: tt.retries, Log: func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				fmt.Fprintf(&logs, format+"\n", args...)
			}})
			start := time.Now()
			_, err := repo.Resolve(t.Context(), "41")
			took := time.Since(start)
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("Resolve: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("Resolve: %v, want an error with %q", err, tt.err)
			}
			if n := s.count(); n != tt.requests {
				t.Errorf("the registry saw %d requests, want %d: %q", n, tt.requests, s.requests)
			}
			if took < tt.atLeast || (tt.below > 0 && took >= tt.below) {
				t.Errorf("took %v, want at least %v and below %v", took, tt.atLeast, tt.below)
			}
			mu.Lock()
			defer mu.Unlock()
			if !strings.Contains(logs.String(), tt.log) {
				t.Errorf("log:\n%s\nwant a line with %q", logs.String(), tt.log)
			}
			if strings.Contains(logs.String(), "?") {
				t.Errorf("log shows a query:\n%s", logs.String())
			}
		})
	}
}

// TestRetryBodies pushes a blob to a registry that answers the first PUT
// with a 503: the PUT is sent again only when its body can be rewound.
func TestRetryBodies(t *testing.T) {
	blob := []byte("containerdisk")
	desc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageLayer, blob)
	tests := []struct {
		name string
		body func() io.Reader
		puts int
		ok   bool
	}{
		{name: "rewindable", body: func() io.Reader { return bytes.NewReader(blob) }, puts: 2, ok: true},
		{name: "stream", body: func() io.Reader { return io.MultiReader(bytes.NewReader(blob)) }, puts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var puts atomic.Int32
			s := newScripted(t, func(w http.ResponseWriter, r *http.Request) {
				switch r.Method {
				case http.MethodPost:
					w.Header().Set("Location", "/v2/containerdisks/fedora/blobs/uploads/1")
					w.WriteHeader(http.StatusAccepted)
				case http.MethodPut:
					if puts.Add(1) == 1 {
						w.WriteHeader(http.StatusServiceUnavailable)
						return
					}
					w.WriteHeader(http.StatusCreated)
				}
			})
			repo := openScripted(t, s, target.RemoteOptions{})
			err := repo.Push(t.Context(), desc, tt.body())
			if (err == nil) != tt.ok {
				t.Errorf("Push: %v, want success %v", err, tt.ok)
			}
			if got := int(puts.Load()); got != tt.puts {
				t.Errorf("%d PUTs, want %d", got, tt.puts)
			}
		})
	}
}

// TestMaxConcurrency sends 12 requests at once through three repositories
// of one registry, and measures how many it answers at a time.
func TestMaxConcurrency(t *testing.T) {
	// Without a limit, all 12 should be in flight at once; more than 5
	// tells the measure works.
	for _, tt := range []struct{ limit, want int }{{2, 2}, {5, 5}, {0, 6}} {
		t.Run(fmt.Sprint("limit ", tt.limit), func(t *testing.T) {
			var inflight, peak atomic.Int32
			s := newScripted(t, func(w http.ResponseWriter, r *http.Request) {
				n := inflight.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(100 * time.Millisecond)
				inflight.Add(-1)
				manifest(w, r)
			})
			var repos []*remote.Repository
			for range 3 {
				repos = append(repos, openScripted(t, s, target.RemoteOptions{MaxConcurrency: tt.limit}))
			}
			var wg sync.WaitGroup
			errs := make(chan error, 12)
			for i := range 12 {
				wg.Go(func() {
					_, err := repos[i%3].Resolve(context.Background(), "41")
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			got := int(peak.Load())
			if (tt.limit > 0 && got != tt.want) || got < tt.want {
				t.Errorf("the registry answered up to %d requests at once, want %d", got, tt.want)
			}
		})
	}
}

// TestConcurrencyAndCancel checks that a request waiting for a slot gives
// up with its context.
func TestConcurrencyAndCancel(t *testing.T) {
	release := make(chan struct{})
	s := newScripted(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		manifest(w, r)
	})
	defer close(release)
	repo := openScripted(t, s, target.RemoteOptions{MaxConcurrency: 1})
	go repo.Resolve(context.Background(), "41")
	for s.count() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := repo.Resolve(ctx, "41"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Resolve while the slot is taken: %v, want the context's deadline", err)
	}
	if n := s.count(); n != 1 {
		t.Errorf("the registry saw %d requests, want 1", n)
	}
}

package target_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	godigest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/containerdisk/kubectl-containerdisk/internal/teststall"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
)

func openHost(t *testing.T, host string, opts target.RemoteOptions) *remote.Repository {
	t.Helper()
	ref, err := target.Parse(host + "/containerdisks/fedora")
	if err != nil {
		t.Fatal(err)
	}
	repo, err := target.OpenRepository(ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// within runs f, failing the test if it takes longer than limit: a stall
// the client misses must not hang the suite.
func within(t *testing.T, limit time.Duration, f func(ctx context.Context) error) (error, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("still waiting after %v: the stall was not detected (%v)", limit, err)
	}
	return err, took
}

// TestStall checks that a registry that never answers, or drips its answer
// a byte a second, fails the request after the stall limit, sent once more,
// with an error naming the host.
func TestStall(t *testing.T) {
	const limit = 1500 * time.Millisecond // longer than the drip's pause
	blob := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: godigest.FromString("x"), Size: 1 << 20}
	tests := []struct {
		name, mode string
		op         func(ctx context.Context, repo *remote.Repository) error
		phase      string
		https      bool
	}{
		{"silent resolve", teststall.Silent, resolve, target.PhaseWaiting, false},
		{"silent TLS handshake", teststall.Silent, resolve, target.PhaseConnecting, true},
		{"dripped headers", teststall.Drip, resolve, target.PhaseWaiting, false},
		{"dripped blob", teststall.Drip, func(ctx context.Context, repo *remote.Repository) error {
			rc, err := repo.Blobs().Fetch(ctx, blob)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(io.Discard, rc)
			return err
		}, target.PhaseReceiving, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := teststall.Start(tt.mode)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			repo := openHost(t, s.Host, target.RemoteOptions{StallTimeout: limit, PlainHTTP: ptr(!tt.https)})
			err, took := within(t, 30*time.Second, func(ctx context.Context) error { return tt.op(ctx, repo) })
			var stall *target.StallError
			if !errors.As(err, &stall) {
				t.Fatalf("got %v, want a *target.StallError", err)
			}
			if stall.Phase != tt.phase || stall.Host != s.Host || stall.Limit != limit {
				t.Errorf("got %+v, want phase %s, host %s, limit %v", stall, tt.phase, s.Host, limit)
			}
			if !strings.Contains(err.Error(), "registry "+s.Host+" ") || !strings.Contains(err.Error(), "--stall-timeout") {
				t.Errorf("error %q does not name the host and the flag", err)
			}
			// A stall is sent once more (unless the body stalled, after the
			// round trip): two limits and a backoff of at most 250 ms.
			want := 2
			if tt.phase == target.PhaseReceiving {
				want = 1
			}
			if n := s.Conns(); n != want {
				t.Errorf("the registry saw %d connections, want %d", n, want)
			}
			if max := time.Duration(want)*limit + time.Second; took < time.Duration(want)*limit-100*time.Millisecond || took > max {
				t.Errorf("failed after %v, want between %v and %v", took, time.Duration(want)*limit, max)
			}
			t.Logf("%v after %v", err, took.Round(time.Millisecond))
		})
	}
}

func resolve(ctx context.Context, repo *remote.Repository) error {
	_, err := repo.Resolve(ctx, "42")
	return err
}

// TestStallSlowTransfer checks that a slow download that keeps moving is
// no stall, however long it takes, and that the caller's own pauses
// between reads do not count.
func TestStallSlowTransfer(t *testing.T) {
	const limit = time.Second
	data := make([]byte, 12*64<<10)
	rand.Read(data)
	desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: godigest.FromBytes(data), Size: int64(len(data))}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+desc.Digest.String()):
			// 64 KiB every 400 ms: 4.8 s in all, more than four limits.
			w.Header().Set("Content-Length", "786432")
			w.Header().Set("Docker-Content-Digest", desc.Digest.String())
			for i := 0; i < len(data); i += 64 << 10 {
				time.Sleep(400 * time.Millisecond)
				w.Write(data[i : i+64<<10])
				w.(http.Flusher).Flush()
			}
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	repo := openHost(t, strings.TrimPrefix(srv.URL, "http://"), target.RemoteOptions{StallTimeout: limit})

	t.Run("download", func(t *testing.T) {
		err, took := within(t, 30*time.Second, func(ctx context.Context) error {
			rc, err := repo.Blobs().Fetch(ctx, desc)
			if err != nil {
				return err
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err == nil && !bytes.Equal(got, data) {
				err = errors.New("the blob read differs from the one served")
			}
			return err
		})
		if err != nil {
			t.Fatalf("slow download failed after %v: %v", took, err)
		}
		if took < 4*limit {
			t.Fatalf("took %v, want a transfer longer than four limits", took)
		}
	})
	t.Run("pauses between reads", func(t *testing.T) {
		fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "786432")
			w.Header().Set("Docker-Content-Digest", desc.Digest.String())
			w.Write(data)
		}))
		defer fast.Close()
		repo := openHost(t, strings.TrimPrefix(fast.URL, "http://"), target.RemoteOptions{StallTimeout: limit})
		err, _ := within(t, 30*time.Second, func(ctx context.Context) error {
			rc, err := repo.Blobs().Fetch(ctx, desc)
			if err != nil {
				return err
			}
			defer rc.Close()
			buf := make([]byte, 32<<10)
			for i := 0; i < 2; i++ {
				if _, err := io.ReadFull(rc, buf); err != nil {
					return err
				}
				time.Sleep(limit + 500*time.Millisecond)
			}
			_, err = io.Copy(io.Discard, rc)
			return err
		})
		if err != nil {
			t.Fatalf("a reader pausing longer than the limit failed: %v", err)
		}
	})
}

// TestStallUpload checks that a registry that stops taking an upload's body
// fails it after the limit.
func TestStallUpload(t *testing.T) {
	const limit = time.Second
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-stop // never reads the body
	}))
	defer srv.Close()
	defer close(stop)
	repo := openHost(t, strings.TrimPrefix(srv.URL, "http://"), target.RemoteOptions{StallTimeout: limit})
	err, took := within(t, 30*time.Second, func(ctx context.Context) error {
		body := io.LimitReader(zeros{}, 1<<30)
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, srv.URL+"/v2/containerdisks/fedora/blobs/uploads/x", body)
		if err != nil {
			return err
		}
		resp, err := repo.Client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	var stall *target.StallError
	if !errors.As(err, &stall) || stall.Phase != target.PhaseSending {
		t.Fatalf("got %v, want a *target.StallError while sending", err)
	}
	if took > limit+2*time.Second {
		t.Errorf("failed after %v, want about %v", took, limit)
	}
	t.Logf("%v after %v", err, took.Round(time.Millisecond))
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

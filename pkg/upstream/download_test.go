package upstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
)

// diskImage is a fixture disk: random blocks between runs of zeros, so
// that it compresses somewhat.
func diskImage(t *testing.T, size int) []byte {
	t.Helper()
	r := rand.New(rand.NewChaCha8([32]byte{1}))
	b := make([]byte, size)
	for i := 0; i < size; i += 8 << 10 {
		if r.IntN(2) == 0 {
			for j := i; j < min(i+4<<10, size); j++ {
				b[j] = byte(r.Uint32())
			}
		}
	}
	return b
}

func sha256Of(b []byte) containerdisk.Checksum {
	s := sha256.Sum256(b)
	return containerdisk.Checksum{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

func sha512Of(b []byte) containerdisk.Checksum {
	s := sha512.Sum512(b)
	return containerdisk.Checksum{Algorithm: "sha512", Hex: hex.EncodeToString(s[:])}
}

func compress(t *testing.T, compression string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch compression {
	case "":
		return b
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "xz":
		w, err = xz.NewWriter(&buf)
	case "zstd":
		w, err = zstd.NewWriter(&buf)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// diskServer serves one file with Range support, records the Range header
// of every request, and lets a test take over any request.
type diskServer struct {
	*httptest.Server
	mu     sync.Mutex
	ranges []string
}

// serveDisk serves data at every path; handle, when set, answers request n
// (from 1) itself when it returns true.
func serveDisk(t *testing.T, data []byte, handle func(n int, w http.ResponseWriter, r *http.Request) bool) *diskServer {
	t.Helper()
	s := &diskServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		n := len(s.ranges)
		s.mu.Unlock()
		if handle != nil && handle(n, w, r) {
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(s.Close)
	return s
}

// Ranges returns the Range header of each request so far.
func (s *diskServer) Ranges() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ranges)
}

// dropAfter answers with the full Content-Length but only n bytes of data,
// then closes the connection.
func dropAfter(w http.ResponseWriter, data []byte, n int) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n", len(data))
	buf.Write(data[:n])
	buf.Flush()
}

// cacheFiles lists the files under dir, relative to it, with slashes.
func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func checkDisk(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s holds %d bytes that differ from the %d of the disk", path, len(got), len(want))
	}
}

func TestDownload(t *testing.T) {
	disk := diskImage(t, 256<<10)
	tests := []struct {
		compression string
		checksum    func([]byte) containerdisk.Checksum
	}{
		{"", sha256Of},
		{"", sha512Of},
		{"gzip", sha256Of},
		{"xz", sha256Of},
		{"zstd", sha512Of},
	}
	for _, tt := range tests {
		file := compress(t, tt.compression, disk)
		sum := tt.checksum(file)
		t.Run(fmt.Sprintf("%s %s", sum.Algorithm, tt.compression), func(t *testing.T) {
			srv := serveDisk(t, file, nil)
			cache := t.TempDir()
			c := NewClient(fastOptions())
			var progress bytes.Buffer
			total := int64(-2)
			d := Download{
				URL:         srv.URL + "/disk",
				Checksum:    sum,
				Compression: tt.compression,
				CacheDir:    cache,
				Progress:    func(n int64) io.Writer { total = n; return &progress },
			}
			got, err := c.Download(t.Context(), d)
			if err != nil {
				t.Fatal(err)
			}
			want := Downloaded{Path: filepath.Join(cache, sum.Algorithm, sum.Hex), Bytes: int64(len(file))}
			if got != want {
				t.Errorf("Download = %+v; want %+v", got, want)
			}
			checkDisk(t, got.Path, disk)
			if total != int64(len(file)) || !bytes.Equal(progress.Bytes(), file) {
				t.Errorf("Progress(%d) got %d bytes; want Progress(%d) and the file", total, progress.Len(), len(file))
			}
			if files := cacheFiles(t, cache); !slices.Equal(files, []string{sum.Algorithm + "/" + sum.Hex, sum.Algorithm + "/" + sum.Hex + ".lock"}) {
				t.Errorf("cache holds %q; want the disk and its lock", files)
			}

			// A second run finds the disk in the cache.
			got, err = NewClient(fastOptions()).Download(t.Context(), d)
			if err != nil {
				t.Fatal(err)
			}
			if want := (Downloaded{Path: want.Path, Cached: true}); got != want {
				t.Errorf("second Download = %+v; want %+v", got, want)
			}
			if n := len(srv.Ranges()); n != 1 {
				t.Errorf("%d requests; want 1, none for the cached disk", n)
			}
		})
	}
}

func TestDownloadConcurrent(t *testing.T) {
	disk := diskImage(t, 256<<10)
	srv := serveDisk(t, disk, nil)
	d := Download{URL: srv.URL, Checksum: sha256Of(disk), CacheDir: t.TempDir()}
	var wg sync.WaitGroup
	results := make([]Downloaded, 8)
	for i := range results {
		wg.Go(func() {
			var err error
			// Two clients, as two runs of the program would have.
			results[i], err = NewClient(fastOptions()).Download(t.Context(), d)
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	downloaded := 0
	for _, r := range results {
		if !r.Cached {
			downloaded++
		}
		checkDisk(t, r.Path, disk)
	}
	if n := len(srv.Ranges()); n != 1 || downloaded != 1 {
		t.Errorf("%d requests, %d downloads; want 1 of each", n, downloaded)
	}
}

func TestDownloadResumes(t *testing.T) {
	disk := diskImage(t, 1<<20)
	half := len(disk) / 2
	sum := sha256Of(disk)
	tests := []struct {
		name       string
		part       []byte // the .part left by an earlier run
		handle     func(n int, w http.ResponseWriter, r *http.Request) bool
		wantRanges []string
		wantBytes  int
		resumed    bool
	}{
		{
			name: "connection dropped mid-body",
			handle: func(n int, w http.ResponseWriter, _ *http.Request) bool {
				if n == 1 {
					dropAfter(w, disk, half)
				}
				return n == 1
			},
			wantRanges: []string{"", fmt.Sprintf("bytes=%d-", half)},
			wantBytes:  len(disk),
			resumed:    true,
		},
		{
			name: "dropped twice, then 503",
			handle: func(n int, w http.ResponseWriter, r *http.Request) bool {
				switch n {
				case 1:
					dropAfter(w, disk, 1000)
				case 2:
					// A 206 that drops mid-body.
					conn, buf, _ := w.(http.Hijacker).Hijack()
					fmt.Fprintf(buf, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 1000-%d/%d\r\nContent-Length: %d\r\n\r\n", len(disk)-1, len(disk), len(disk)-1000)
					buf.Write(disk[1000:half])
					buf.Flush()
					conn.Close()
				case 3:
					w.WriteHeader(http.StatusServiceUnavailable)
				}
				return n <= 3
			},
			wantRanges: []string{"", "bytes=1000-", fmt.Sprintf("bytes=%d-", half), fmt.Sprintf("bytes=%d-", half)},
			wantBytes:  len(disk),
			resumed:    true,
		},
		{
			name: "stalled mid-body",
			handle: func(n int, w http.ResponseWriter, r *http.Request) bool {
				if n == 1 {
					w.Header().Set("Content-Length", fmt.Sprint(len(disk)))
					w.Write(disk[:half])
					w.(http.Flusher).Flush()
					<-r.Context().Done()
				}
				return n == 1
			},
			wantRanges: []string{"", fmt.Sprintf("bytes=%d-", half)},
			wantBytes:  len(disk),
			resumed:    true,
		},
		{
			name:       "partial file of an earlier run",
			part:       disk[:half],
			wantRanges: []string{fmt.Sprintf("bytes=%d-", half)},
			wantBytes:  len(disk) - half,
			resumed:    true,
		},
		{
			name: "server ignores Range",
			part: disk[:half],
			handle: func(_ int, w http.ResponseWriter, r *http.Request) bool {
				r.Header.Del("Range")
				http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(disk))
				return true
			},
			wantRanges: []string{fmt.Sprintf("bytes=%d-", half)},
			wantBytes:  len(disk),
			resumed:    false,
		},
		{
			name:       "complete partial file (416)",
			part:       disk,
			wantRanges: []string{fmt.Sprintf("bytes=%d-", len(disk))},
			wantBytes:  0,
			resumed:    false,
		},
		{
			name:       "partial file longer than the disk (416)",
			part:       append(slices.Clone(disk), "junk"...),
			wantRanges: []string{fmt.Sprintf("bytes=%d-", len(disk)+4), ""},
			wantBytes:  len(disk),
			resumed:    false,
		},
		{
			name:       "corrupt partial file of an earlier run",
			part:       bytes.Repeat([]byte{'x'}, half),
			wantRanges: []string{fmt.Sprintf("bytes=%d-", half), ""},
			wantBytes:  len(disk) - half + len(disk),
			resumed:    false,
		},
		{
			name: "file changed between attempts",
			handle: func(n int, w http.ResponseWriter, r *http.Request) bool {
				if n == 1 {
					// Half of an older version.
					conn, buf, _ := w.(http.Hijacker).Hijack()
					fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: %d\r\n\r\n", len(disk))
					buf.Write(bytes.Repeat([]byte{'x'}, half))
					buf.Flush()
					conn.Close()
					return true
				}
				if got := r.Header.Get("If-Range"); got != `"v1"` {
					t.Errorf("If-Range %q; want the ETag of the first response", got)
				}
				w.Header().Set("ETag", `"v2"`)
				return false
			},
			wantRanges: []string{"", fmt.Sprintf("bytes=%d-", half)},
			wantBytes:  half + len(disk),
			resumed:    false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serveDisk(t, disk, tt.handle)
			cache := t.TempDir()
			final := filepath.Join(cache, sum.Algorithm, sum.Hex)
			if tt.part != nil {
				if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(final+".part", tt.part, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			opts := fastOptions()
			opts.Timeout = 200 * time.Millisecond
			var logged []string
			opts.Log = func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }
			got, err := NewClient(opts).Download(t.Context(), Download{URL: srv.URL, Checksum: sum, CacheDir: cache})
			if ranges := srv.Ranges(); !slices.Equal(ranges, tt.wantRanges) {
				t.Errorf("requests had Range %q; want %q", ranges, tt.wantRanges)
			}
			if err != nil {
				t.Fatalf("Download: %v (logged %q)", err, logged)
			}
			want := Downloaded{Path: final, Bytes: int64(tt.wantBytes), Resumed: tt.resumed}
			if got != want {
				t.Errorf("Download = %+v; want %+v", got, want)
			}
			checkDisk(t, final, disk)
			if _, err := os.Stat(final + ".part"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf(".part remains: %v", err)
			}
		})
	}
}

func TestDownloadFails(t *testing.T) {
	disk := diskImage(t, 256<<10)
	sum := sha256Of(disk)
	wrong := sha256Of([]byte("another disk"))
	tests := []struct {
		name        string
		checksum    containerdisk.Checksum
		compression string
		handle      func(n int, w http.ResponseWriter, r *http.Request) bool
		check       func(t *testing.T, err error)
		requests    int
		files       []string // left in the cache besides the lock
	}{
		{
			name:     "checksum mismatch",
			checksum: wrong,
			check: func(t *testing.T, err error) {
				var mismatch *containerdisk.ChecksumMismatchError
				if !errors.As(err, &mismatch) || mismatch.Expected != wrong || mismatch.Actual != sum || !strings.HasPrefix(mismatch.Path, "http://") {
					t.Errorf("Download = %#v; want a ChecksumMismatchError with the URL, expected and actual checksums", err)
				}
			},
			requests: 1,
		},
		{
			name:     "404",
			checksum: sum,
			handle: func(_ int, w http.ResponseWriter, r *http.Request) bool {
				http.NotFound(w, r)
				return true
			},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, catalog.ErrNotFound) || !strings.Contains(err.Error(), "http://") {
					t.Errorf("Download = %v; want ErrNotFound with the URL", err)
				}
			},
			requests: 1,
		},
		{
			name:     "403",
			checksum: sum,
			handle: func(_ int, w http.ResponseWriter, _ *http.Request) bool {
				w.WriteHeader(http.StatusForbidden)
				return true
			},
			check: func(t *testing.T, err error) {
				if err == nil || !strings.HasSuffix(err.Error(), ": 403 Forbidden") {
					t.Errorf("Download = %v; want 403 Forbidden", err)
				}
			},
			requests: 1,
		},
		{
			name:     "503 until out of retries",
			checksum: sum,
			handle: func(_ int, w http.ResponseWriter, _ *http.Request) bool {
				w.WriteHeader(http.StatusServiceUnavailable)
				return true
			},
			check: func(t *testing.T, err error) {
				if err == nil || !strings.HasSuffix(err.Error(), ": 503 Service Unavailable (after 5 attempts)") {
					t.Errorf("Download = %v; want 503 after 5 attempts", err)
				}
			},
			requests: 5,
		},
		{
			name:        "not the compression announced",
			checksum:    sum,
			compression: "xz",
			check: func(t *testing.T, err error) {
				if err == nil || !strings.Contains(err.Error(), "http://") || !strings.Contains(err.Error(), "decompressing xz: ") {
					t.Errorf("Download = %v; want a decompression error naming the URL and xz", err)
				}
			},
			requests: 1,
			files:    []string{sum.Hex + ".part"}, // verified: kept for the next run
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serveDisk(t, disk, tt.handle)
			cache := t.TempDir()
			got, err := NewClient(fastOptions()).Download(t.Context(), Download{
				URL: srv.URL + "/disk.img", Checksum: tt.checksum, Compression: tt.compression, CacheDir: cache,
			})
			if err == nil {
				t.Fatalf("Download = %+v; want an error", got)
			}
			tt.check(t, err)
			if n := len(srv.Ranges()); n != tt.requests {
				t.Errorf("%d requests; want %d", n, tt.requests)
			}
			want := []string{"sha256/" + tt.checksum.Hex + ".lock"}
			for _, f := range tt.files {
				want = append(want, "sha256/"+f)
			}
			slices.Sort(want)
			if files := cacheFiles(t, cache); !slices.Equal(files, want) {
				t.Errorf("cache holds %q; want %q", files, want)
			}
		})
	}
}

func TestDownloadCanceled(t *testing.T) {
	disk := diskImage(t, 1<<20)
	for _, compression := range []string{"", "zstd"} {
		t.Run("compression "+compression, func(t *testing.T) {
			file := compress(t, compression, disk)
			srv := serveDisk(t, file, func(_ int, w http.ResponseWriter, r *http.Request) bool {
				w.Header().Set("Content-Length", fmt.Sprint(len(file)))
				w.Write(file[:len(file)/2])
				w.(http.Flusher).Flush()
				<-r.Context().Done()
				return true
			})
			cache := t.TempDir()
			ctx, cancel := context.WithCancel(t.Context())
			var received int
			d := Download{
				URL: srv.URL, Checksum: sha256Of(file), Compression: compression, CacheDir: cache,
				Progress: func(int64) io.Writer {
					return writerFunc(func(p []byte) (int, error) {
						if received += len(p); received == len(file)/2 {
							cancel()
						}
						return len(p), nil
					})
				},
			}
			_, err := NewClient(fastOptions()).Download(ctx, d)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Download = %v; want context.Canceled", err)
			}
			want := []string{"sha256/" + d.Checksum.Hex + ".lock", "sha256/" + d.Checksum.Hex + ".part"}
			if files := cacheFiles(t, cache); !slices.Equal(files, want) {
				t.Errorf("cache holds %q; want %q", files, want)
			}
			if part, _ := os.ReadFile(filepath.Join(cache, "sha256", d.Checksum.Hex+".part")); !bytes.Equal(part, file[:len(file)/2]) {
				t.Errorf(".part holds %d bytes; want the %d received", len(part), len(file)/2)
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestDownloadFile(t *testing.T) {
	disk := diskImage(t, 256<<10)
	dir := t.TempDir()
	file := compress(t, "gzip", disk)
	src := filepath.Join(dir, "disk.img.gz")
	if err := os.WriteFile(src, file, 0o644); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	c := NewClient(fastOptions())
	d := Download{URL: fileURL(src), Checksum: sha256Of(file), Compression: "gzip", CacheDir: cache}
	got, err := c.Download(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	if got.Cached || got.Bytes != int64(len(file)) {
		t.Errorf("Download = %+v; want %d bytes copied", got, len(file))
	}
	checkDisk(t, got.Path, disk)

	d.URL = fileURL(filepath.Join(dir, "missing.img"))
	d.Checksum = sha256Of([]byte("missing"))
	if _, err := c.Download(t.Context(), d); !errors.Is(err, catalog.ErrNotFound) || !strings.Contains(err.Error(), d.URL) {
		t.Errorf("Download(missing) = %v; want ErrNotFound naming the URL", err)
	}

	// A resumed local copy.
	sum := sha256Of(disk)
	part := filepath.Join(cache, "sha256", sum.Hex+".part")
	if err := os.WriteFile(part, disk[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(raw, disk, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = c.Download(t.Context(), Download{URL: fileURL(raw), Checksum: sum, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Resumed || got.Bytes != int64(len(disk)-1000) {
		t.Errorf("Download = %+v; want resumed after 1000 bytes", got)
	}
	checkDisk(t, got.Path, disk)
}

func TestDownloadInvalid(t *testing.T) {
	sum := sha256Of(nil)
	tests := []struct {
		name string
		d    Download
		want string
	}{
		{"no URL", Download{Checksum: sum, CacheDir: "c"}, "no URL"},
		{"no checksum", Download{URL: "http://x/d", CacheDir: "c"}, "checksum"},
		{"bad checksum", Download{URL: "http://x/d", CacheDir: "c", Checksum: containerdisk.Checksum{Algorithm: "md5", Hex: "00"}}, "checksum"},
		{"no cache", Download{URL: "http://x/d", Checksum: sum}, "no cache directory"},
		{"compression", Download{URL: "http://x/d", Checksum: sum, CacheDir: "c", Compression: "bzip2"}, `unknown compression "bzip2"`},
		{"scheme", Download{URL: "ftp://x/d", Checksum: sum, CacheDir: t.TempDir()}, `unsupported URL scheme "ftp"`},
	}
	for _, tt := range tests {
		if _, err := NewClient(fastOptions()).Download(t.Context(), tt.d); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Download = %v; want an error about %s", tt.name, err, tt.want)
		}
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in          string
		first, last int64
		ok          bool
	}{
		{"bytes 0-99/100", 0, 99, true},
		{"bytes 100-199/*", 100, 199, true},
		{"bytes 5-5/6", 5, 5, true},
		{"bytes */100", 0, 0, false},
		{"bytes 10-5/100", 0, 0, false},
		{"bits 0-9/10", 0, 0, false},
		{"bytes 0-9", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		first, last, ok := parseContentRange(tt.in)
		if first != tt.first || last != tt.last || ok != tt.ok {
			t.Errorf("parseContentRange(%q) = %d, %d, %v; want %d, %d, %v", tt.in, first, last, ok, tt.first, tt.last, tt.ok)
		}
	}
}

// The cached disk carries the upstream file's Last-Modified time, from which
// an image's creation time comes, so builds agree across machines and runs.
func TestDownloadKeepsModificationTime(t *testing.T) {
	disk := diskImage(t, 64<<10)
	modified := time.Date(2025, 2, 10, 20, 19, 0, 0, time.UTC)
	for _, compression := range []string{"", "gzip"} {
		file := compress(t, compression, disk)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "disk", modified, bytes.NewReader(file))
		}))
		t.Cleanup(srv.Close)
		got, err := NewClient(fastOptions()).Download(t.Context(), Download{URL: srv.URL + "/disk", Checksum: sha256Of(file), Compression: compression, CacheDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(got.Path)
		if err != nil {
			t.Fatal(err)
		}
		if !st.ModTime().Equal(modified) {
			t.Errorf("compression %q: cached disk modified %v, want the upstream's %v", compression, st.ModTime(), modified)
		}
	}
}

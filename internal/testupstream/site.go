// Package testupstream is a fake upstream for tests: a directory tree laid out
// like the distributions' download sites, with metadata files in their real
// formats, served over loopback HTTP with faults on demand.
//
// Each distribution's writer (Fedora, CentOS, …) publishes one build: it
// writes the disk files and regenerates that distribution's metadata files
// so they list the new build, as the real sites do.
package testupstream

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
)

// Site is a fake upstream rooted at Dir. Distribution d's files live under
// Dir/<d> (fedora, centos-stream, almalinux, ubuntu, debian, opensuse), so
// that one server can stand in for every upstream with --mirror '*=URL'.
type Site struct {
	Dir string

	mu       sync.Mutex
	srv      *http.Server
	ln       net.Listener
	faults   map[string][]fault
	requests map[string]int
}

type fault struct {
	status   int   // answer with this status
	truncate int64 // or send only this many bytes of the body (-1: off)
	stall    bool  // and then wait for the client to give up
}

// New returns a site rooted at dir, creating it.
func New(dir string) (*Site, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &Site{Dir: dir, faults: map[string][]fault{}, requests: map[string]int{}}, nil
}

// Start serves the site on a loopback port and returns its base URL.
func (s *Site) Start() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s}
	go s.srv.Serve(ln) //nolint:errcheck // ends with Close
	return s.URL(), nil
}

// URL is the base URL of a started site.
func (s *Site) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the server.
func (s *Site) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// Fail makes the next times requests for path (relative to Dir, e.g.
// "fedora/releases.json") answer status.
func (s *Site) Fail(path string, status, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range times {
		s.faults[cleanPath(path)] = append(s.faults[cleanPath(path)], fault{status: status, truncate: -1})
	}
}

// Truncate makes the next times requests for path send only the first n
// bytes of the body and then drop the connection, while announcing the full
// length.
func (s *Site) Truncate(path string, n int64, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range times {
		s.faults[cleanPath(path)] = append(s.faults[cleanPath(path)], fault{truncate: n})
	}
}

// Stall makes the next request for path send the first n bytes of the body
// and then hang until the client goes away, as a stuck download does.
func (s *Site) Stall(path string, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[cleanPath(path)] = append(s.faults[cleanPath(path)], fault{truncate: n, stall: true})
}

// Requests returns how many requests were made for path.
func (s *Site) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[cleanPath(path)]
}

// Heal drops every pending fault.
func (s *Site) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[string][]fault{}
}

// ResetRequests sets the request counts to zero.
func (s *Site) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = map[string]int{}
}

// TotalRequests returns how many requests were made in all, and how many of
// them were for files other than metadata (disk downloads: names ending in
// .qcow2, .img, .raw, .xz, .gz, .zst).
func (s *Site) TotalRequests() (all, disks int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, n := range s.requests {
		all += n
		if isDiskName(p) {
			disks += n
		}
	}
	return all, disks
}

func isDiskName(p string) bool {
	for _, ext := range []string{".qcow2", ".img", ".raw", ".xz", ".gz", ".zst"} {
		if strings.HasSuffix(p, ext) {
			return true
		}
	}
	return false
}

func cleanPath(p string) string {
	return strings.TrimPrefix(filepath.ToSlash(filepath.Clean("/"+p)), "/")
}

// ServeHTTP serves files and directory listings of Dir, with Range support,
// applying any pending fault for the path first.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := cleanPath(r.URL.Path)
	s.mu.Lock()
	s.requests[p]++
	var f *fault
	if q := s.faults[p]; len(q) > 0 {
		f = &q[0]
		s.faults[p] = q[1:]
	}
	s.mu.Unlock()
	if f != nil && f.status != 0 {
		http.Error(w, http.StatusText(f.status), f.status)
		return
	}
	if f != nil && f.truncate >= 0 {
		data, err := os.ReadFile(filepath.Join(s.Dir, filepath.FromSlash(p)))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Header().Set("Accept-Ranges", "bytes")
		w.WriteHeader(http.StatusOK)
		n := min(f.truncate, int64(len(data)))
		w.Write(data[:n]) //nolint:errcheck
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		if f.stall {
			<-r.Context().Done()
			return
		}
		// Drop the connection so the client sees a short body.
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
		}
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.FileServer(http.Dir(s.Dir)).ServeHTTP(w, r)
}

// WriteFile writes data at path relative to Dir, creating directories.
func (s *Site) WriteFile(path string, data []byte) error {
	full := filepath.Join(s.Dir, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	tmp := full + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, full)
}

// ReadFile reads path relative to Dir; a missing file reads as empty.
func (s *Site) ReadFile(path string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(s.Dir, filepath.FromSlash(path)))
	if os.IsNotExist(err) {
		return nil, nil
	}
	return data, err
}

// WriteDisk writes a small valid qcow2 disk at path whose content depends on
// id, so that every build has its own checksum, and returns its SHA-256 and
// SHA-512 in hex.
func (s *Site) WriteDisk(path, id string) (sha256hex, sha512hex string, err error) {
	data, err := Disk(id)
	if err != nil {
		return "", "", err
	}
	if err := s.WriteFile(path, data); err != nil {
		return "", "", err
	}
	h256 := sha256.Sum256(data)
	h512 := sha512.Sum512(data)
	return hex.EncodeToString(h256[:]), hex.EncodeToString(h512[:]), nil
}

var (
	diskMu    sync.Mutex
	diskCache = map[string][]byte{}
)

// Disk returns a small valid qcow2 disk (converted by the real qemu-img)
// whose content depends on id.
func Disk(id string) ([]byte, error) {
	diskMu.Lock()
	defer diskMu.Unlock()
	if d, ok := diskCache[id]; ok {
		return d, nil
	}
	dir, err := os.MkdirTemp("", "testupstream-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	h := fnv.New64a()
	io.WriteString(h, id) //nolint:errcheck
	raw := filepath.Join(dir, "disk.raw")
	if err := testdisk.WriteRaw(raw, 512<<10, h.Sum64()); err != nil {
		return nil, err
	}
	// Write the id itself into the disk, so that it can be found again.
	f, err := os.OpenFile(raw, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], h.Sum64())
	_, err = f.WriteAt([]byte(fmt.Sprintf("id=%s %x\n", id, b)), 1024)
	f.Close()
	if err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "disk.qcow2")
	if _, err := testdisk.QemuImg("convert", "-f", "raw", "-O", "qcow2", raw, out); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	diskCache[id] = data
	return data, nil
}

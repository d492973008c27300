package testregistry

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
)

// Stats counts what a Registry was asked since it started or since
// [Registry.ResetStats]. Blob uploads (POST, PATCH and PUT under
// /v2/<name>/blobs/uploads/) count as blob requests, so a push of one new
// blob with oras-go is one BlobPost and one BlobPut. Stats is comparable
// with ==.
type Stats struct {
	BlobHead   int64
	BlobGet    int64
	BlobPost   int64
	BlobPatch  int64
	BlobPut    int64
	BlobDelete int64
	// BlobBytesIn is the number of bytes the registry read from the bodies
	// of blob upload requests.
	BlobBytesIn int64
	// BlobBytesOut is the number of blob bytes the registry wrote in
	// successful answers to blob GETs.
	BlobBytesOut int64

	ManifestHead   int64
	ManifestGet    int64
	ManifestPut    int64
	ManifestDelete int64

	// TagsList counts GET /v2/<name>/tags/list.
	TagsList int64
	// Other counts every other request: the /v2/ ping, the catalog,
	// upload status and cancel, and methods the API does not define.
	Other int64
}

// String returns s as lines "key value", one per field in declaration order,
// keys in kebab case ("blob-put 1"). The `registry stats` script command
// prints it.
func (s Stats) String() string {
	var b strings.Builder
	for _, f := range statFields {
		fmt.Fprintf(&b, "%s %d\n", f.key, *f.field(&s))
	}
	return b.String()
}

// Stats returns the counts so far. The counters are independent atomics:
// read them when no request is in flight to get a consistent picture.
func (r *Registry) Stats() Stats {
	var s Stats
	for i, f := range statFields {
		*f.field(&s) = r.counts[i].Load()
	}
	return s
}

// ResetStats sets every count to zero.
func (r *Registry) ResetStats() {
	for i := range r.counts {
		r.counts[i].Store(0)
	}
}

// counter indexes counters and statFields.
type counter int

const (
	blobHead counter = iota
	blobGet
	blobPost
	blobPatch
	blobPut
	blobDelete
	blobBytesIn
	blobBytesOut
	manifestHead
	manifestGet
	manifestPut
	manifestDelete
	tagsList
	other
	numCounters
)

type counters [numCounters]atomic.Int64

// statFields ties each counter to its Stats field and its key in String.
var statFields = [numCounters]struct {
	key   string
	field func(*Stats) *int64
}{
	blobHead:       {"blob-head", func(s *Stats) *int64 { return &s.BlobHead }},
	blobGet:        {"blob-get", func(s *Stats) *int64 { return &s.BlobGet }},
	blobPost:       {"blob-post", func(s *Stats) *int64 { return &s.BlobPost }},
	blobPatch:      {"blob-patch", func(s *Stats) *int64 { return &s.BlobPatch }},
	blobPut:        {"blob-put", func(s *Stats) *int64 { return &s.BlobPut }},
	blobDelete:     {"blob-delete", func(s *Stats) *int64 { return &s.BlobDelete }},
	blobBytesIn:    {"blob-bytes-in", func(s *Stats) *int64 { return &s.BlobBytesIn }},
	blobBytesOut:   {"blob-bytes-out", func(s *Stats) *int64 { return &s.BlobBytesOut }},
	manifestHead:   {"manifest-head", func(s *Stats) *int64 { return &s.ManifestHead }},
	manifestGet:    {"manifest-get", func(s *Stats) *int64 { return &s.ManifestGet }},
	manifestPut:    {"manifest-put", func(s *Stats) *int64 { return &s.ManifestPut }},
	manifestDelete: {"manifest-delete", func(s *Stats) *int64 { return &s.ManifestDelete }},
	tagsList:       {"tags-list", func(s *Stats) *int64 { return &s.TagsList }},
	other:          {"other", func(s *Stats) *int64 { return &s.Other }},
}

// count wraps next so that every request is counted before next sees it,
// and so that the counts of a request are complete by the time its client
// has read the whole answer.
func (r *Registry) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c := classify(req.Method, req.URL.Path)
		r.counts[c].Add(1)
		switch c {
		case blobPost, blobPatch, blobPut:
			req.Body = &countingReader{ReadCloser: req.Body, n: &r.counts[blobBytesIn]}
		case blobGet:
			w = &countingWriter{ResponseWriter: w, n: &r.counts[blobBytesOut]}
		}
		next.ServeHTTP(w, req)
	})
}

// classify names the counter for a request, by the shape of its path in the
// OCI distribution API. Repository names may contain slashes, and the last
// segment (digest, tag or upload id) never does, so it reads from the end.
func classify(method, path string) counter {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return other
	}
	seg := strings.Split(rest, "/")
	n := len(seg)
	switch {
	case n >= 3 && seg[n-2] == "manifests":
		switch method {
		case http.MethodHead:
			return manifestHead
		case http.MethodGet:
			return manifestGet
		case http.MethodPut:
			return manifestPut
		case http.MethodDelete:
			return manifestDelete
		}
	case n >= 4 && seg[n-3] == "blobs" && seg[n-2] == "uploads":
		switch method {
		case http.MethodPost:
			return blobPost
		case http.MethodPatch:
			return blobPatch
		case http.MethodPut:
			return blobPut
		}
	case n >= 3 && seg[n-2] == "blobs":
		switch method {
		case http.MethodHead:
			return blobHead
		case http.MethodGet:
			return blobGet
		case http.MethodDelete:
			return blobDelete
		}
	case n >= 3 && seg[n-2] == "tags" && seg[n-1] == "list":
		if method == http.MethodGet {
			return tagsList
		}
	}
	return other
}

// countingReader adds the bytes read through it to n.
type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.ReadCloser.Read(p)
	c.n.Add(int64(k))
	return k, err
}

// countingWriter adds the body bytes of a 2xx answer written through it to n.
// It counts before writing, so a client that has read the bytes sees them
// counted.
type countingWriter struct {
	http.ResponseWriter
	n      *atomic.Int64
	status int
}

func (c *countingWriter) WriteHeader(status int) {
	if c.status == 0 && status >= 200 {
		c.status = status
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	ok := c.status >= 200 && c.status < 300
	if ok {
		c.n.Add(int64(len(p)))
	}
	k, err := c.ResponseWriter.Write(p)
	if ok && k < len(p) {
		c.n.Add(int64(k - len(p)))
	}
	return k, err
}

// Flush passes a flush on to the server's writer.
func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the server's writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

package upstream_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

// TestModified: the date a download gives the cached disk, read without
// downloading: Last-Modified over HTTP (one HEAD request), the file's own
// over file://, zero when the server sends none.
func TestModified(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "disk.qcow2")
	if err := os.WriteFile(path, []byte("disk"), 0o644); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2024, 5, 1, 13, 0, 0, 0, time.UTC)
	if err := os.Chtimes(path, when, when); err != nil {
		t.Fatal(err)
	}
	var methods []string
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		methods = append(methods, r.Method)
		if r.URL.Path == "/undated" {
			return
		}
		files.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c := upstream.NewClient(upstream.Options{Retries: -1})
	for _, tc := range []struct {
		url  string
		want time.Time
	}{
		{srv.URL + "/disk.qcow2", when},
		{"file://" + path, when},
		{srv.URL + "/undated", time.Time{}},
	} {
		got, err := c.Modified(t.Context(), tc.url)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("Modified(%s) = %v, %v; want %v", tc.url, got, err, tc.want)
		}
	}
	if len(methods) != 2 || methods[0] != http.MethodHead || methods[1] != http.MethodHead {
		t.Errorf("requests %v, want two HEAD", methods)
	}
	if _, err := c.Modified(t.Context(), srv.URL+"/missing"); err == nil {
		t.Errorf("Modified of a missing file: no error")
	}
}

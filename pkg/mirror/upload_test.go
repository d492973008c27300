package mirror_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containerdisk/kubectl-containerdisk/internal/testregistry"
	"github.com/containerdisk/kubectl-containerdisk/pkg/mirror"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/pkg/transfer"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upload"
)

// TestUploadResumes copies a layer to a registry behind a proxy that drops
// the connection midway through an upload request: the upload asks the
// registry what it holds and goes on from there, so that the proxy passes
// on much less than the layer twice.
func TestUploadResumes(t *testing.T) {
	const MiB = 1 << 20
	tests := []struct {
		name string
		size int64
		up   upload.Uploader
		// cut drops the connection of the nth request of a method after
		// its body's first bytes: "PATCH 2" → {2: bytes}.
		method string
		cuts   map[int]int64
		// lose passes the nth request on but drops its answer.
		lose    int
		resumes int
	}{
		{name: "second PATCH cut", size: 24 * MiB, up: upload.Uploader{LargeBlob: MiB, ChunkSize: 8 * MiB}, method: http.MethodPatch, cuts: map[int]int64{2: 3 * MiB}, resumes: 1},
		{name: "two PATCHes cut", size: 24 * MiB, up: upload.Uploader{LargeBlob: MiB, ChunkSize: 8 * MiB}, method: http.MethodPatch, cuts: map[int]int64{1: 5 * MiB, 3: 1 * MiB}, resumes: 2},
		{name: "single PUT cut", size: 6 * MiB, method: http.MethodPut, cuts: map[int]int64{1: 2 * MiB}, resumes: 1},
		{name: "answer to the closing PUT lost", size: 6 * MiB, up: upload.Uploader{LargeBlob: MiB, ChunkSize: 4 * MiB}, method: http.MethodPut, lose: 1, resumes: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			reg := testregistry.New(t)
			f := newFixture(t, tt.size, true, "amd64")
			layer := f.layers["amd64"]
			p := newFaultProxy(t, reg)
			var mu sync.Mutex
			seen := 0
			p.before = func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method != tt.method || !strings.Contains(r.URL.Path, "/blobs/uploads/") || r.ContentLength < MiB && tt.lose == 0 {
					return false
				}
				mu.Lock()
				defer mu.Unlock()
				seen++
				if n, ok := tt.cuts[seen]; ok {
					r.Body = testregistry.CutAfter(r.Body, n)
				}
				return false
			}
			if tt.lose > 0 {
				lost := 0
				p.after = func(r *http.Response) error {
					if r.Request.Method == tt.method && strings.Contains(r.Request.URL.Path, "/blobs/uploads/") && r.Request.URL.Query().Get("digest") == layer.Digest.String() {
						if lost++; lost == tt.lose {
							panic(http.ErrAbortHandler)
						}
					}
					return nil
				}
			}
			dst := openTarget(t, p.host(), "mirror/fedora", tt.up)
			var log eventLog
			rep, err := mirror.CopyImage(ctx, f.store, "41", dst, []string{"41"}, mirror.CopyOptions{OnEvent: log.add})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Uploaded != 3 {
				t.Errorf("report %+v, want 3 nodes copied", rep)
			}
			resumed := log.of(transfer.ActionResumed)
			if len(resumed) != tt.resumes {
				t.Errorf("%d resumes, want %d: %+v", len(resumed), tt.resumes, resumed)
			}
			for _, e := range resumed {
				t.Logf("resumed at byte %d (%.1f MiB)", e.Offset, float64(e.Offset)/MiB)
			}
			if err := verifyGraph(ctx, openRepo(t, reg.Host, "mirror/fedora"), f.root); err != nil {
				t.Error(err)
			}
			sent := p.uploaded.Load()
			st := reg.Stats()
			t.Logf("layer %d bytes; the proxy passed on %d upload bytes (%.2f×); the registry read %d; %d POST, %d PATCH, %d PUT",
				layer.Size, sent, float64(sent)/float64(layer.Size), st.BlobBytesIn, st.BlobPost, st.BlobPatch, st.BlobPut)
			if sent >= 2*layer.Size {
				t.Errorf("the proxy passed on %d bytes, want fewer than twice the layer's %d", sent, layer.Size)
			}
		})
	}
}

// TestUploadWithCredentials uploads in chunks to a registry that asks for
// a password over HTTPS: every request of the upload goes through the
// oras-go auth client.
func TestUploadWithCredentials(t *testing.T) {
	const user, password = "mirror", "s3cret"
	reg := testregistry.NewWithOptions(t, testregistry.Options{TLS: true, Username: user, Password: password})
	config := filepath.Join(t.TempDir(), "config.json")
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	if err := os.WriteFile(config, fmt.Appendf(nil, `{"auths": {%q: {"auth": %q}}}`, reg.Host, auth), 0o600); err != nil {
		t.Fatal(err)
	}
	ref, err := target.Parse(reg.Host + "/mirror/fedora")
	if err != nil {
		t.Fatal(err)
	}
	https := false
	repo, err := target.OpenRepository(ref, target.RemoteOptions{PlainHTTP: &https, CAFile: reg.CAFile, RegistryConfig: config})
	if err != nil {
		t.Fatal(err)
	}
	dst := upload.NewRepository(repo, upload.Uploader{LargeBlob: 1 << 20, ChunkSize: 2 << 20})
	f := newFixture(t, 5<<20, false, "amd64", "arm64")
	rep, err := mirror.CopyImage(t.Context(), f.store, "41", dst, []string{"41"}, mirror.CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := reg.Stats(); rep.Uploaded != 7 || st.BlobPatch != 6 {
		t.Errorf("report %+v; the registry was asked:\n%swant 7 nodes, 3 PATCHes per layer", rep, st)
	}
	if err := verifyGraph(t.Context(), dst, f.root); err != nil {
		t.Error(err)
	}
}

// TestUploadGivesUp cuts every PATCH before its first byte: without
// progress, the upload stops after a few tries, and cancels the upload.
func TestUploadGivesUp(t *testing.T) {
	reg := testregistry.New(t)
	p := newFaultProxy(t, reg)
	p.before = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPatch {
			r.Body = testregistry.CutAfter(r.Body, 0)
		}
		return false
	}
	f := newFixture(t, 2<<20, true, "amd64")
	dst := openTarget(t, p.host(), "mirror/fedora", upload.Uploader{LargeBlob: 1 << 20})
	_, err := mirror.CopyImage(t.Context(), f.store, "41", dst, []string{"41"}, mirror.CopyOptions{})
	if err == nil || !strings.Contains(err.Error(), "giving up after 5 failures in a row at byte 0") {
		t.Fatalf("CopyImage: %v, want it to give up", err)
	}
	t.Logf("error: %v", err)
	if st := reg.Stats(); st.BlobPatch != 6 || st.BlobDelete != 0 || st.ManifestPut != 0 {
		t.Errorf("the registry was asked:\n%swant 6 PATCHes and no manifest", st)
	}
}

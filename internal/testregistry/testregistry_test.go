package testregistry

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/registry/remote"
)

// artifact is a one-layer image packed into an in-memory store, ready to copy.
type artifact struct {
	store  *memory.Store
	root   ocispec.Descriptor
	layer  []byte
	config ocispec.Descriptor
}

func newArtifact(t *testing.T, layer []byte) artifact {
	t.Helper()
	ctx := t.Context()
	store := memory.New()
	layerDesc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageLayer, layer)
	if err := store.Push(ctx, layerDesc, bytes.NewReader(layer)); err != nil {
		t.Fatal(err)
	}
	root, err := oras.PackManifest(ctx, store, oras.PackManifestVersion1_1, "application/vnd.example.test", oras.PackManifestOptions{
		Layers:              []ocispec.Descriptor{layerDesc},
		ManifestAnnotations: map[string]string{ocispec.AnnotationCreated: "2000-01-01T00:00:00Z"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Tag(ctx, root, "v1"); err != nil {
		t.Fatal(err)
	}
	return artifact{store: store, root: root, layer: layer, config: ocispec.DescriptorEmptyJSON}
}

func repository(t *testing.T, r *Registry, name string) *remote.Repository {
	t.Helper()
	repo, err := remote.NewRepository(r.Host + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	return repo
}

func checkStats(t *testing.T, r *Registry, want Stats) {
	t.Helper()
	if got := r.Stats(); got != want {
		t.Errorf("stats:\n%s\nwant:\n%s", got, want)
	}
}

func TestPushPullStats(t *testing.T) {
	ctx := t.Context()
	r := New(t)
	repo := repository(t, r, "demo/disk")
	// Odd-sized and bigger than any buffer, so that partial counts show.
	a := newArtifact(t, bytes.Repeat([]byte("containerdisk\n"), 100_001))

	// A first push asks for each node and uploads the missing blobs; the
	// manifest goes up with its tag.
	if _, err := oras.Copy(ctx, a.store, "v1", repo, "v1", oras.DefaultCopyOptions); err != nil {
		t.Fatal(err)
	}
	checkStats(t, r, Stats{
		ManifestHead: 1,
		BlobHead:     2,
		BlobPost:     2,
		BlobPut:      2,
		BlobBytesIn:  int64(len(a.layer)) + a.config.Size,
		ManifestPut:  1,
	})

	// Reading back resolves the tag and downloads the layer.
	r.ResetStats()
	desc, err := repo.Resolve(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != a.root.Digest {
		t.Errorf("v1 resolves to %s, want %s", desc.Digest, a.root.Digest)
	}
	layer, err := content.FetchAll(ctx, repo, content.NewDescriptorFromBytes(ocispec.MediaTypeImageLayer, a.layer))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(layer, a.layer) {
		t.Errorf("layer read back differs from the one pushed")
	}
	var tags []string
	if err := repo.Tags(ctx, "", func(page []string) error {
		tags = append(tags, page...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(tags, ",") != "v1" {
		t.Errorf("tags %q, want [v1]", tags)
	}
	checkStats(t, r, Stats{
		ManifestHead: 1,
		BlobGet:      1,
		BlobBytesOut: int64(len(a.layer)),
		TagsList:     1,
	})

	// A re-push finds the manifest and only re-tags it: nothing uploaded.
	r.ResetStats()
	if _, err := oras.Copy(ctx, a.store, "v1", repo, "v1", oras.DefaultCopyOptions); err != nil {
		t.Fatal(err)
	}
	checkStats(t, r, Stats{ManifestHead: 1, ManifestPut: 1})

	// Asking for a blob is a HEAD.
	r.ResetStats()
	ok, err := repo.Exists(ctx, a.config)
	if err != nil || !ok {
		t.Errorf("config blob exists = %v, %v; want true", ok, err)
	}
	checkStats(t, r, Stats{BlobHead: 1})
}

// TestChunkedUpload drives a POST, PATCH, PUT upload by hand, as clients that
// stream large blobs do (oras-go puts a blob in one request).
func TestChunkedUpload(t *testing.T) {
	r := New(t)
	blob := bytes.Repeat([]byte("0123456789"), 50_000)
	half := len(blob) / 2

	// do sends body to u and returns where the upload goes on.
	do := func(method string, u *url.URL, body []byte, want int) *url.URL {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, u.String(), bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %s, want %d", method, u, resp.Status, want)
		}
		loc, err := resp.Location()
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}

	u := do(http.MethodPost, &url.URL{Scheme: "http", Host: r.Host, Path: "/v2/demo/blobs/uploads/"}, nil, http.StatusAccepted)
	u = do(http.MethodPatch, u, blob[:half], http.StatusAccepted)
	q := u.Query()
	q.Set("digest", digest.FromBytes(blob).String())
	u.RawQuery = q.Encode()
	do(http.MethodPut, u, blob[half:], http.StatusCreated)

	checkStats(t, r, Stats{BlobPost: 1, BlobPatch: 1, BlobPut: 1, BlobBytesIn: int64(len(blob))})
}

// TestTwoRegistries starts two registries in one process, which distribution
// allows only with its storage health check off.
func TestTwoRegistries(t *testing.T) {
	ctx := t.Context()
	r1, r2 := New(t), New(t)
	if r1.Host == r2.Host || r1.Dir == r2.Dir {
		t.Fatalf("registries share host or directory: %+v, %+v", r1, r2)
	}
	a := newArtifact(t, []byte("one"))
	if _, err := oras.Copy(ctx, a.store, "v1", repository(t, r1, "demo"), "v1", oras.DefaultCopyOptions); err != nil {
		t.Fatal(err)
	}
	ok, err := repository(t, r2, "demo").Exists(ctx, a.root)
	if err != nil || ok {
		t.Errorf("second registry has the first one's manifest: %v, %v", ok, err)
	}
	checkStats(t, r2, Stats{ManifestHead: 1})
}

// TestRestart shows that content outlives Close in Dir.
func TestRestart(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	r, err := Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := newArtifact(t, []byte("kept"))
	if _, err := oras.Copy(ctx, a.store, "v1", repository(t, r, "demo"), "v1", oras.DefaultCopyOptions); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	r, err = Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	desc, err := repository(t, r, "demo").Resolve(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != a.root.Digest {
		t.Errorf("v1 resolves to %s after restart, want %s", desc.Digest, a.root.Digest)
	}
}

func TestStartEmptyDir(t *testing.T) {
	if r, err := Start(""); err == nil {
		r.Close()
		t.Fatal("Start(\"\") succeeded, want an error")
	}
}

func TestClassify(t *testing.T) {
	const d = "sha256:4355a46b19d348dc2f57c046f8ef63d4538ebb936000f3c9ee954a27460dd865"
	tests := []struct {
		method, path string
		want         counter
	}{
		{"GET", "/v2/", other},
		{"GET", "/v2/_catalog", other},
		{"HEAD", "/v2/demo/manifests/v1", manifestHead},
		{"GET", "/v2/demo/manifests/" + d, manifestGet},
		{"PUT", "/v2/a/b/c/manifests/v1", manifestPut},
		{"DELETE", "/v2/demo/manifests/" + d, manifestDelete},
		{"POST", "/v2/demo/manifests/v1", other},
		{"HEAD", "/v2/demo/blobs/" + d, blobHead},
		{"GET", "/v2/demo/blobs/" + d, blobGet},
		{"DELETE", "/v2/demo/blobs/" + d, blobDelete},
		{"POST", "/v2/demo/blobs/uploads/", blobPost},
		{"POST", "/v2/a/b/blobs/uploads/", blobPost},
		{"PATCH", "/v2/demo/blobs/uploads/0c3c7a5e-uuid", blobPatch},
		{"PUT", "/v2/demo/blobs/uploads/0c3c7a5e-uuid", blobPut},
		{"GET", "/v2/demo/blobs/uploads/0c3c7a5e-uuid", other},
		{"DELETE", "/v2/demo/blobs/uploads/0c3c7a5e-uuid", other},
		{"GET", "/v2/demo/tags/list", tagsList},
		{"GET", "/v2/demo/referrers/" + d, other},
		// Repository names may hold the API's words.
		{"GET", "/v2/blobs/uploads/blobs/" + d, blobGet},
		{"PUT", "/v2/x/blobs/blobs/uploads/id", blobPut},
		{"GET", "/v2/manifests/tags/list", tagsList},
		{"HEAD", "/v2/tags/list/manifests/list", manifestHead},
		{"GET", "/healthz", other},
		{"GET", "/v2/manifests/v1", other},
	}
	for _, tt := range tests {
		if got := classify(tt.method, tt.path); got != tt.want {
			t.Errorf("classify(%s %s) = %s, want %s", tt.method, tt.path, statFields[got].key, statFields[tt.want].key)
		}
	}
}

func TestStatsString(t *testing.T) {
	got := Stats{BlobPut: 3, BlobBytesIn: 12345, ManifestPut: 2}.String()
	want := `blob-head 0
blob-get 0
blob-post 0
blob-patch 0
blob-put 3
blob-delete 0
blob-bytes-in 12345
blob-bytes-out 0
manifest-head 0
manifest-get 0
manifest-put 2
manifest-delete 0
tags-list 0
other 0
`
	if got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
}

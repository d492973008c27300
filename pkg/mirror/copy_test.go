package mirror_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
	"github.com/containerdisk/kubectl-containerdisk/internal/testregistry"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/mirror"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/pkg/transfer"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upload"
)

// fixture is a multi-platform image in an OCI layout, tagged "41": one
// image per architecture, each a config and one layer of random bytes.
type fixture struct {
	store *oci.Store
	root  ocispec.Descriptor
	// images, configs and layers are by architecture.
	images, configs, layers map[string]ocispec.Descriptor
}

// newFixture builds an index of the arches with layers of size bytes, or,
// for a single arch and single set, the image alone.
func newFixture(t testing.TB, size int64, single bool, arches ...string) *fixture {
	t.Helper()
	ctx := context.Background()
	store, err := oci.New(filepath.Join(t.TempDir(), "layout"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: store, images: map[string]ocispec.Descriptor{}, configs: map[string]ocispec.Descriptor{}, layers: map[string]ocispec.Descriptor{}}
	var manifests []ocispec.Descriptor
	for _, a := range arches {
		layer := layerBytes(size, a)
		ld, err := oras.PushBytes(ctx, store, ocispec.MediaTypeImageLayer, layer)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: a}})
		cd, err := oras.PushBytes(ctx, store, ocispec.MediaTypeImageConfig, cfg)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := json.Marshal(ocispec.Manifest{Versioned: specsV2, MediaType: ocispec.MediaTypeImageManifest, Config: cd, Layers: []ocispec.Descriptor{ld}})
		md, err := oras.PushBytes(ctx, store, ocispec.MediaTypeImageManifest, m)
		if err != nil {
			t.Fatal(err)
		}
		md.Platform = &ocispec.Platform{OS: "linux", Architecture: a}
		f.images[a], f.configs[a], f.layers[a] = md, cd, ld
		manifests = append(manifests, md)
	}
	if single {
		f.root = manifests[0]
		f.root.Platform = nil
	} else {
		idx, _ := json.Marshal(ocispec.Index{Versioned: specsV2, MediaType: ocispec.MediaTypeImageIndex, Manifests: manifests,
			Annotations: map[string]string{"org.opencontainers.image.version": "41"}})
		if f.root, err = oras.PushBytes(ctx, store, ocispec.MediaTypeImageIndex, idx); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Tag(ctx, f.root, "41"); err != nil {
		t.Fatal(err)
	}
	return f
}

var specsV2 = specs.Versioned{SchemaVersion: 2}

// layerBytes are size random bytes, the same for the same seed.
func layerBytes(size int64, seed string) []byte {
	var s [32]byte
	copy(s[:], seed)
	b := make([]byte, size)
	rand.NewChaCha8(s).Read(b)
	return b
}

// push copies the fixture to a repository of r, tagged "41".
func (f *fixture) pushTo(t testing.TB, r *testregistry.Registry, name string) *remote.Repository {
	t.Helper()
	repo := openRepo(t, r.Host, name)
	if _, err := oras.Copy(context.Background(), f.store, "41", repo, "41", oras.DefaultCopyOptions); err != nil {
		t.Fatal(err)
	}
	return repo
}

func openRepo(t testing.TB, host, name string) *remote.Repository {
	t.Helper()
	ref, err := target.Parse(host + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := target.OpenRepository(ref, target.RemoteOptions{Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// openTarget opens a repository to copy to, whose blobs go up with an
// uploader of u's sizes.
func openTarget(t testing.TB, host, name string, u upload.Uploader) *upload.Repository {
	t.Helper()
	return upload.NewRepository(openRepo(t, host, name), u)
}

// eventLog keeps the events of a copy.
type eventLog struct {
	mu     sync.Mutex
	events []transfer.Event
}

func (l *eventLog) add(e transfer.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) of(a transfer.Action) []transfer.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []transfer.Event
	for _, e := range l.events {
		if e.Action == a {
			out = append(out, e)
		}
	}
	return out
}

// headsOnly checks that a registry was asked nothing but the HEADs given.
func headsOnly(t *testing.T, who string, got testregistry.Stats, manifestHeads, blobHeads int64) {
	t.Helper()
	want := testregistry.Stats{ManifestHead: manifestHeads, BlobHead: blobHeads}
	if got != want {
		t.Errorf("%s was asked:\n%swant only %d manifest and %d blob HEADs", who, got, manifestHeads, blobHeads)
	}
}

func exists(t *testing.T, repo oras.ReadOnlyTarget, d ocispec.Descriptor) bool {
	t.Helper()
	ok, err := repo.Exists(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestCopyAllPlatforms(t *testing.T) {
	ctx := t.Context()
	srcReg, dstReg := testregistry.New(t), testregistry.New(t)
	f := newFixture(t, 64<<10, false, "amd64", "arm64", "s390x")
	src := f.pushTo(t, srcReg, "containerdisks/fedora")
	dst := openTarget(t, dstReg.Host, "mirror/fedora", upload.Uploader{})

	var log eventLog
	rep, err := mirror.CopyImage(ctx, src, "41", dst, []string{"41", "latest"}, mirror.CopyOptions{OnEvent: log.add})
	if err != nil {
		t.Fatal(err)
	}
	want := mirror.Report{
		Source: srcReg.Host + "/containerdisks/fedora:41", Target: dstReg.Host + "/mirror/fedora:41",
		SourceDigest: f.root.Digest, TargetDigest: f.root.Digest, TargetMediaType: f.root.MediaType,
		Platforms: []string{"linux/amd64", "linux/arm64", "linux/s390x"},
		// 3 layers, 3 configs, 3 manifests, the index.
		Report: transfer.Report{Root: f.root, Uploaded: 10, UploadedBytes: rep.UploadedBytes, Tagged: []string{"41", "latest"}},
	}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if rep.UploadedBytes < 3*64<<10 {
		t.Errorf("copied %d bytes, want at least the layers' %d", rep.UploadedBytes, 3*64<<10)
	}
	// Every blob went in one POST and one PUT, and the tags came last.
	if st := dstReg.Stats(); st.BlobPost != 6 || st.BlobPut != 6 || st.BlobPatch != 0 {
		t.Errorf("target was asked:\n%swant a POST and a PUT per blob", st)
	}
	if n := len(log.events); n < 2 || log.events[n-1].Tag != "latest" || log.events[n-2].Tag != "41" {
		t.Errorf("the tags were not written last: %+v", log.events)
	}
	for _, tag := range []string{"41", "latest"} {
		if d, err := dst.Resolve(ctx, tag); err != nil || d.Digest != f.root.Digest {
			t.Errorf("target tag %s: %v, %v; want %s", tag, d.Digest, err, f.root.Digest)
		}
	}

	// A sync with nothing to do: HEAD requests only, one at the source,
	// one per tag at the target.
	srcReg.ResetStats()
	dstReg.ResetStats()
	rep, err = mirror.CopyImage(ctx, src, "41", dst, []string{"41", "latest"}, mirror.CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.UpToDate() || rep.Uploaded != 0 || len(rep.Tagged) != 0 {
		t.Errorf("second copy: %+v, want up to date", rep)
	}
	headsOnly(t, "the source", srcReg.Stats(), 1, 0)
	headsOnly(t, "the target", dstReg.Stats(), 2, 0)

	// A new tag of an image the target has: only the tag is written, with
	// the manifest read from the source.
	srcReg.ResetStats()
	dstReg.ResetStats()
	rep, err = mirror.CopyImage(ctx, src, "41", dst, []string{"41", "41-1.5"}, mirror.CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.UpToDate() || rep.Uploaded != 0 || rep.Existing != 1 || !slices.Equal(rep.Tagged, []string{"41-1.5"}) {
		t.Errorf("new tag: %+v, want the index found and one tag", rep)
	}
	if st := dstReg.Stats(); st != (testregistry.Stats{ManifestHead: 3, ManifestPut: 1}) {
		t.Errorf("new tag: the target was asked:\n%swant 3 manifest HEADs and one PUT", st)
	}
	if st := srcReg.Stats(); st != (testregistry.Stats{ManifestHead: 1, ManifestGet: 1}) {
		t.Errorf("new tag: the source was asked:\n%swant a HEAD and a GET of the index", st)
	}
}

func TestCopyRewrite(t *testing.T) {
	ctx := t.Context()
	srcReg, dstReg := testregistry.New(t), testregistry.New(t)
	f := newFixture(t, 64<<10, false, "amd64", "arm64")
	src := f.pushTo(t, srcReg, "containerdisks/fedora")
	dst := openTarget(t, dstReg.Host, "mirror/fedora", upload.Uploader{})

	opts := mirror.CopyOptions{Platforms: []string{"aarch64"}}
	rep, err := mirror.CopyImage(ctx, src, "41", dst, []string{"41"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.TargetDigest == f.root.Digest || rep.SourceDigest != f.root.Digest || rep.Mode != mirror.PlatformRewrite ||
		!slices.Equal(rep.Platforms, []string{"linux/arm64"}) || rep.Uploaded != 4 {
		t.Errorf("report %+v; want a new index of linux/arm64 and 4 nodes copied", rep)
	}
	root, err := dst.Resolve(ctx, "41")
	if err != nil || root.Digest != rep.TargetDigest {
		t.Fatalf("target tag: %v, %v; want %s", root.Digest, err, rep.TargetDigest)
	}
	raw, err := content.FetchAll(ctx, dst, root)
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != f.images["arm64"].Digest {
		t.Errorf("index lists %+v, want only the arm64 image", idx.Manifests)
	}
	wantAnn := map[string]string{"org.opencontainers.image.version": "41", mirror.AnnotationSourceDigest: f.root.Digest.String()}
	if diff := cmp.Diff(wantAnn, idx.Annotations); diff != "" {
		t.Errorf("index annotations (-want +got):\n%s", diff)
	}
	for a, in := range map[string]bool{"arm64": true, "amd64": false} {
		for _, d := range []ocispec.Descriptor{f.images[a], f.configs[a], f.layers[a]} {
			if got := exists(t, dst, d); got != in {
				t.Errorf("%s %s at the target: %v, want %v", a, d.MediaType, got, in)
			}
		}
	}

	// Again: the source index is read (one GET) to make the same index,
	// which the target has under the tag.
	srcReg.ResetStats()
	dstReg.ResetStats()
	rep, err = mirror.CopyImage(ctx, src, "41", dst, []string{"41"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.UpToDate() || rep.TargetDigest != root.Digest {
		t.Errorf("second copy: %+v, want up to date at %s", rep, root.Digest)
	}
	if st := srcReg.Stats(); st != (testregistry.Stats{ManifestHead: 1, ManifestGet: 1}) {
		t.Errorf("second copy: the source was asked:\n%swant a HEAD and a GET of the index", st)
	}
	headsOnly(t, "the target", dstReg.Stats(), 1, 0)

	// Both platforms chosen: the source index, unchanged.
	rep, err = mirror.CopyImage(ctx, src, "41", dst, []string{"41"}, mirror.CopyOptions{Platforms: []string{"linux/amd64", "linux/arm64/v8"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.TargetDigest != f.root.Digest || rep.Mode != "" || rep.Uploaded != 4 || rep.Existing != 1 {
		t.Errorf("every platform: %+v; want the source index, the amd64 image copied (4 nodes), the arm64 one found", rep)
	}
}

// TestCopyDockerManifestList rewrites a Docker manifest list, the format of
// the images of quay.io/containerdisks, built by containerdisk.Build.
func TestCopyDockerManifestList(t *testing.T) {
	ctx := t.Context()
	srcReg, dstReg := testregistry.New(t), testregistry.New(t)
	dir := t.TempDir()
	var disks []containerdisk.Disk
	for i, a := range []string{"amd64", "arm64", "s390x"} {
		p := filepath.Join(dir, a+".img")
		if err := testdisk.WriteRaw(p, 1<<20, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, containerdisk.Disk{Architecture: a, Path: p})
	}
	src := openRepo(t, srcReg.Host, "containerdisks/fedora")
	res, err := containerdisk.Build(ctx, src, disks, containerdisk.Options{Format: containerdisk.FormatDocker, TempDir: t.TempDir(), Created: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Tag(ctx, res.Root, "41"); err != nil {
		t.Fatal(err)
	}
	dst := openTarget(t, dstReg.Host, "mirror/fedora", upload.Uploader{})
	rep, err := mirror.CopyImage(ctx, src, "41", dst, []string{"41"}, mirror.CopyOptions{Platforms: []string{"amd64", "s390x"}})
	if err != nil {
		t.Fatal(err)
	}
	root, err := dst.Resolve(ctx, "41")
	if err != nil {
		t.Fatal(err)
	}
	if root.MediaType != containerdisk.MediaTypeDockerManifestList || root.Digest != rep.TargetDigest || rep.TargetDigest == res.Root.Digest {
		t.Errorf("target root %+v, report %+v; want a new Docker manifest list", root, rep)
	}
	if !slices.Equal(rep.Platforms, []string{"linux/amd64", "linux/s390x"}) || rep.Uploaded != 7 {
		t.Errorf("report %+v; want amd64 and s390x, 7 nodes", rep)
	}
}

func TestCopySparse(t *testing.T) {
	ctx := t.Context()
	srcReg, dstReg := testregistry.New(t), testregistry.New(t)
	f := newFixture(t, 64<<10, false, "amd64", "arm64", "s390x")
	src := f.pushTo(t, srcReg, "containerdisks/fedora")
	sparse := mirror.CopyOptions{Platforms: []string{"arm64"}, Mode: mirror.PlatformSparse}

	// distribution/v3 in its default configuration checks that every
	// image of an index is there.
	dst := openTarget(t, dstReg.Host, "mirror/fedora", upload.Uploader{})
	_, err := mirror.CopyImage(ctx, src, "41", dst, []string{"41"}, sparse)
	var serr *mirror.SparseIndexError
	if !errors.As(err, &serr) || serr.Index != f.root.Digest || !strings.Contains(err.Error(), `copy with platform mode "rewrite"`) ||
		!strings.Contains(err.Error(), "manifest blob unknown") {
		t.Fatalf("sparse copy to distribution: %v, want a *SparseIndexError suggesting rewrite", err)
	}
	t.Logf("distribution/v3: %v", err)
	if _, err := dst.Resolve(ctx, "41"); !errors.Is(err, errdef.ErrNotFound) {
		t.Errorf("target tag after the refusal: %v, want not found", err)
	}
	if st := dstReg.Stats(); st.ManifestPut != 2 {
		t.Errorf("target was asked:\n%swant 2 manifest PUTs (the image, the refused index)", st)
	}

	// An OCI layout takes the sparse index, with the source's digest.
	layout, err := oci.New(filepath.Join(t.TempDir(), "layout"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := mirror.CopyImage(ctx, src, "41", layout, []string{"41"}, sparse)
	if err != nil {
		t.Fatal(err)
	}
	if rep.TargetDigest != f.root.Digest || rep.Mode != mirror.PlatformSparse || rep.Uploaded != 4 {
		t.Errorf("report %+v, want the source digest and 4 nodes copied", rep)
	}
	if d, err := layout.Resolve(ctx, "41"); err != nil || d.Digest != f.root.Digest {
		t.Errorf("layout tag: %v, %v", d.Digest, err)
	}
	if !exists(t, layout, f.layers["arm64"]) || exists(t, layout, f.images["amd64"]) || exists(t, layout, f.layers["s390x"]) {
		t.Error("the layout should hold the arm64 image only")
	}

	// Again: the index is read at the source, the target has it all.
	srcReg.ResetStats()
	if rep, err = mirror.CopyImage(ctx, src, "41", layout, []string{"41"}, sparse); err != nil || !rep.UpToDate() {
		t.Errorf("second sparse copy: %+v, %v; want up to date", rep, err)
	}
	if st := srcReg.Stats(); st != (testregistry.Stats{ManifestHead: 1, ManifestGet: 1}) {
		t.Errorf("second copy: the source was asked:\n%swant a HEAD and a GET of the index", st)
	}
	// One platform more: the index is there under the tag already, but
	// the s390x image is not; it is copied.
	sparse.Platforms = append(sparse.Platforms, "s390x")
	if rep, err = mirror.CopyImage(ctx, src, "41", layout, []string{"41"}, sparse); err != nil || rep.UpToDate() || rep.Uploaded != 3 {
		t.Errorf("sparse copy of one more platform: %+v, %v; want the s390x image copied (3 nodes)", rep, err)
	}
	if !exists(t, layout, f.layers["s390x"]) || exists(t, layout, f.layers["amd64"]) {
		t.Error("the layout should hold the arm64 and s390x images")
	}
}

func TestCopyPlatformErrors(t *testing.T) {
	ctx := t.Context()
	reg := testregistry.New(t)
	single := newFixture(t, 1024, true, "arm64")
	index := newFixture(t, 1024, false, "amd64", "arm64")
	dst := openTarget(t, reg.Host, "mirror/x", upload.Uploader{})
	tests := []struct {
		name string
		src  *fixture
		opts mirror.CopyOptions
		want string
	}{
		{"single image of another platform", single, mirror.CopyOptions{Platforms: []string{"amd64"}}, "no chosen platform in 41: chose linux/amd64, and it has linux/arm64"},
		{"index without the platform", index, mirror.CopyOptions{Platforms: []string{"s390x", "linux/ppc64le"}}, "chose linux/s390x, linux/ppc64le, and it has linux/amd64, linux/arm64"},
		{"bad platform", index, mirror.CopyOptions{Platforms: []string{"linux/amd46"}}, `platform "linux/amd46": unknown architecture "amd46"`},
		{"bad mode", index, mirror.CopyOptions{Mode: "partial"}, `unknown platform mode "partial"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg.ResetStats()
			_, err := mirror.CopyImage(ctx, tt.src.store, "41", dst, []string{"41"}, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CopyImage: %v, want an error with %q", err, tt.want)
			}
			if st := reg.Stats(); st.ManifestPut+st.BlobPost+st.BlobPut+st.BlobPatch+st.ManifestGet+st.BlobGet != 0 {
				t.Errorf("the target was asked:\n%s", st)
			}
		})
	}
	var perr *mirror.NoPlatformError
	if _, err := mirror.CopyImage(ctx, single.store, "41", dst, nil, tests[0].opts); !errors.As(err, &perr) {
		t.Errorf("error %v is not a *NoPlatformError", err)
	}
	// The single image of a chosen platform goes as it is.
	rep, err := mirror.CopyImage(ctx, single.store, "41", dst, []string{"41"}, mirror.CopyOptions{Platforms: []string{"linux/arm64"}})
	if err != nil || rep.TargetDigest != single.root.Digest || rep.Mode != "" || !slices.Equal(rep.Platforms, []string{"linux/arm64"}) {
		t.Errorf("single image: %+v, %v", rep, err)
	}
}

func TestCopyMount(t *testing.T) {
	ctx := t.Context()
	srcReg, dstReg := testregistry.New(t), testregistry.New(t)
	f := newFixture(t, 256<<10, false, "amd64", "arm64", "s390x")
	src := f.pushTo(t, srcReg, "containerdisks/fedora")
	if _, err := mirror.CopyImage(ctx, src, "41", openTarget(t, dstReg.Host, "team-a/fedora", upload.Uploader{}), []string{"41"}, mirror.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := openTarget(t, dstReg.Host, "team-b/fedora", upload.Uploader{})

	// A dry run says what would be mounted, with HEAD requests only.
	dstReg.ResetStats()
	opts := mirror.CopyOptions{MountFrom: []string{"nowhere/fedora", "team-a/fedora"}, DryRun: true}
	rep, err := mirror.CopyImage(ctx, src, "41", dst, []string{"41"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Mounted != 6 || rep.Uploaded != 4 || !slices.Equal(rep.Tagged, []string{"41"}) {
		t.Errorf("dry run: %+v, want 6 blobs to mount, 4 manifests to copy, a tag", rep)
	}
	if st := dstReg.Stats(); st.ManifestGet+st.BlobGet+st.BlobPost+st.BlobPut+st.BlobPatch+st.ManifestPut != 0 {
		t.Errorf("dry run: the target was asked:\n%swant HEAD requests only", st)
	}

	dstReg.ResetStats()
	opts.DryRun = false
	var log eventLog
	opts.OnEvent = log.add
	rep, err = mirror.CopyImage(ctx, src, "41", dst, []string{"41"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Mounted != 6 || rep.Uploaded != 4 || len(log.of(transfer.ActionMounted)) != 6 {
		t.Errorf("report %+v, want 6 blobs mounted and 4 manifests copied", rep)
	}
	// The first candidate lacks the blobs: its upload is cancelled.
	st := dstReg.Stats()
	if st.BlobBytesIn != 0 || st.BlobPost != 12 || st.BlobPut != 0 {
		t.Errorf("target was asked:\n%swant 12 POSTs (2 mounts a blob) and no blob byte", st)
	}
	t.Logf("mount: %d POSTs, %d other requests (the cancels)", st.BlobPost, st.Other)
}

func TestCopyDryRun(t *testing.T) {
	ctx := t.Context()
	dstReg := testregistry.New(t)
	f := newFixture(t, 100_000, false, "amd64", "arm64")
	dst := openTarget(t, dstReg.Host, "mirror/fedora", upload.Uploader{})
	var log eventLog
	rep, err := mirror.CopyImage(ctx, f.store, "41", dst, []string{"41"}, mirror.CopyOptions{DryRun: true, Platforms: []string{"amd64"}, OnEvent: log.add})
	if err != nil {
		t.Fatal(err)
	}
	wantBytes := f.layers["amd64"].Size + f.configs["amd64"].Size + f.images["amd64"].Size
	if rep.Uploaded != 4 || rep.UploadedBytes <= wantBytes || rep.UploadedBytes > wantBytes+1000 || len(log.of(transfer.ActionWouldUpload)) != 4 || len(log.of(transfer.ActionWouldTag)) != 1 {
		t.Errorf("dry run: %+v, want 4 nodes, %d bytes and the new index", rep, wantBytes)
	}
	// The index, its image, the config and the layer.
	headsOnly(t, "the target", dstReg.Stats(), 3, 2)
}

// faultProxy is a reverse proxy to a registry that can fail requests.
type faultProxy struct {
	*httptest.Server
	// before, when set, may answer a request itself (true), or change it.
	before func(w http.ResponseWriter, r *http.Request) bool
	// after, when set, may change an answer.
	after func(r *http.Response) error
	// uploaded counts the body bytes of blob uploads passed on.
	uploaded atomic.Int64
}

func newFaultProxy(t *testing.T, reg *testregistry.Registry) *faultProxy {
	p := &faultProxy{}
	backend := &url.URL{Scheme: "http", Host: reg.Host}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(backend)
			// The registry writes upload URLs for the host asked.
			pr.Out.Host = pr.In.Host
		},
		ModifyResponse: func(r *http.Response) error {
			if p.after != nil {
				return p.after(r)
			}
			return nil
		},
		// A failed request drops the client's connection.
		ErrorHandler: func(http.ResponseWriter, *http.Request, error) { panic(http.ErrAbortHandler) },
		ErrorLog:     log.New(io.Discard, "", 0),
	}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.before != nil && p.before(w, r) {
			return
		}
		if strings.Contains(r.URL.Path, "/blobs/uploads/") {
			r.Body = &countingBody{ReadCloser: r.Body, n: &p.uploaded}
		}
		rp.ServeHTTP(w, r)
	}))
	p.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(p.Close)
	return p
}

func (p *faultProxy) host() string { return strings.TrimPrefix(p.URL, "http://") }

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(b []byte) (int, error) {
	k, err := c.ReadCloser.Read(b)
	c.n.Add(int64(k))
	return k, err
}

// isBlobGet reports a GET of blob d.
func isBlobGet(r *http.Request, d ocispec.Descriptor) bool {
	return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+d.Digest.String())
}

func TestCopyTooManyRequests(t *testing.T) {
	ctx := t.Context()
	srcReg, dstReg := testregistry.New(t), testregistry.New(t)
	f := newFixture(t, 64<<10, false, "amd64", "arm64")
	f.pushTo(t, srcReg, "containerdisks/fedora")
	// Each proxy refuses the first request of each kind (method and
	// manifest, blob or upload) with a 429, and lets the next one by.
	var refused atomic.Int32
	limit := func(p *faultProxy) {
		var mu sync.Mutex
		seen := map[string]bool{}
		p.before = func(w http.ResponseWriter, r *http.Request) bool {
			kind := r.Method
			for _, k := range []string{"/manifests/", "/blobs/uploads/", "/blobs/"} {
				if strings.Contains(r.URL.Path, k) {
					kind += " " + k
					break
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[kind] {
				return false
			}
			seen[kind] = true
			refused.Add(1)
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
	}
	srcProxy, dstProxy := newFaultProxy(t, srcReg), newFaultProxy(t, dstReg)
	limit(srcProxy)
	limit(dstProxy)
	src := openRepo(t, srcProxy.host(), "containerdisks/fedora")
	dst := openTarget(t, dstProxy.host(), "mirror/fedora", upload.Uploader{})
	rep, err := mirror.CopyImage(ctx, src, "41", dst, []string{"41"}, mirror.CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.TargetDigest != f.root.Digest || rep.Uploaded != 7 {
		t.Errorf("report %+v", rep)
	}
	t.Logf("%d requests refused with 429", refused.Load())
	if refused.Load() < 8 {
		t.Errorf("only %d requests were refused", refused.Load())
	}
	if d, err := openRepo(t, dstReg.Host, "mirror/fedora").Resolve(ctx, "41"); err != nil || d.Digest != f.root.Digest {
		t.Errorf("target tag: %v, %v", d.Digest, err)
	}
}

// TestCopySourceCut cuts the stream of a blob from the source midway: the
// copy reads on from where it stopped, with a range request.
func TestCopySourceCut(t *testing.T) {
	ctx := t.Context()
	srcReg, dstReg := testregistry.New(t), testregistry.New(t)
	f := newFixture(t, 4<<20, true, "amd64")
	f.pushTo(t, srcReg, "containerdisks/fedora")
	p := newFaultProxy(t, srcReg)
	var cut atomic.Bool
	var ranges []string
	var mu sync.Mutex
	p.before = func(w http.ResponseWriter, r *http.Request) bool {
		if isBlobGet(r, f.layers["amd64"]) {
			mu.Lock()
			ranges = append(ranges, r.Header.Get("Range"))
			mu.Unlock()
		}
		return false
	}
	p.after = func(r *http.Response) error {
		if isBlobGet(r.Request, f.layers["amd64"]) && cut.CompareAndSwap(false, true) {
			r.Body = testregistry.CutAfter(r.Body, 1<<20)
		}
		return nil
	}
	src := openRepo(t, p.host(), "containerdisks/fedora")
	dst := openTarget(t, dstReg.Host, "mirror/fedora", upload.Uploader{})
	rep, err := mirror.CopyImage(ctx, src, "41", dst, []string{"41"}, mirror.CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Uploaded != 3 || !exists(t, dst, f.layers["amd64"]) {
		t.Errorf("report %+v", rep)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ranges) != 2 || ranges[0] != "" || !strings.HasPrefix(ranges[1], "bytes=") {
		t.Errorf("the source was asked for the layer with ranges %q, want all then a range", ranges)
	}
	t.Logf("source ranges: %q", ranges)
	// One PUT: the target never saw the cut.
	if st := dstReg.Stats(); st.BlobPut != 2 || st.BlobPatch != 0 || st.BlobBytesIn != f.layers["amd64"].Size+f.configs["amd64"].Size {
		t.Errorf("target was asked:\n%s", st)
	}
}

// TestCopyCorruptBlob has a proxy change a byte of a layer coming from the
// source: the copy fails, and the target neither has the blob nor the tag.
func TestCopyCorruptBlob(t *testing.T) {
	for _, tt := range []struct {
		name string
		size int64
		up   upload.Uploader
	}{
		{"one PUT", 2 << 20, upload.Uploader{}},
		{"chunks", 3 << 20, upload.Uploader{LargeBlob: 1 << 20, ChunkSize: 1 << 20}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			srcReg, dstReg := testregistry.New(t), testregistry.New(t)
			f := newFixture(t, tt.size, true, "amd64")
			f.pushTo(t, srcReg, "containerdisks/fedora")
			p := newFaultProxy(t, srcReg)
			p.after = func(r *http.Response) error {
				if isBlobGet(r.Request, f.layers["amd64"]) {
					r.Body = &flipBody{ReadCloser: r.Body, at: tt.size - 10}
				}
				return nil
			}
			src := openRepo(t, p.host(), "containerdisks/fedora")
			dst := openTarget(t, dstReg.Host, "mirror/fedora", tt.up)
			_, err := mirror.CopyImage(ctx, src, "41", dst, []string{"41"}, mirror.CopyOptions{})
			if !errors.Is(err, content.ErrMismatchedDigest) {
				t.Fatalf("CopyImage: %v, want a mismatched digest", err)
			}
			t.Logf("error: %v", err)
			if _, err := dst.Resolve(ctx, "41"); !errors.Is(err, errdef.ErrNotFound) {
				t.Errorf("target tag: %v, want not found", err)
			}
			if exists(t, dst, f.layers["amd64"]) {
				t.Error("the target has the layer")
			}
			if st := dstReg.Stats(); st.ManifestPut != 0 {
				t.Errorf("the target was asked:\n%s", st)
			}
		})
	}
}

// flipBody changes the byte at offset at.
type flipBody struct {
	io.ReadCloser
	at, off int64
}

func (f *flipBody) Read(b []byte) (int, error) {
	k, err := f.ReadCloser.Read(b)
	if i := f.at - f.off; i >= 0 && i < int64(k) {
		b[i] ^= 0xff
	}
	f.off += int64(k)
	return k, err
}

// TestCopyToLayout copies between layouts and from a registry to a
// layout: the path without the registry uploader.
func TestCopyToLayout(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, 1<<20, false, "amd64", "arm64")
	layout, err := oci.New(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := mirror.CopyImage(ctx, f.store, "41", layout, []string{"41"}, mirror.CopyOptions{Platforms: []string{"amd64"}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := layout.Resolve(ctx, "41")
	if err != nil || d.Digest != rep.TargetDigest || rep.Uploaded != 4 {
		t.Errorf("layout: %v %v, report %+v", d, err, rep)
	}
	if err := verifyGraph(ctx, layout, d); err != nil {
		t.Error(err)
	}
}

// verifyGraph reads every node under root, checking its digest.
func verifyGraph(ctx context.Context, s content.ReadOnlyStorage, root ocispec.Descriptor) error {
	b, err := content.FetchAll(ctx, s, root)
	if err != nil {
		return fmt.Errorf("%s: %w", root.Digest, err)
	}
	succ, err := content.Successors(ctx, rawStore(b), root)
	if err != nil {
		return err
	}
	for _, d := range succ {
		if err := verifyGraph(ctx, s, d); err != nil {
			return err
		}
	}
	return nil
}

type rawStore []byte

func (r rawStore) Fetch(context.Context, ocispec.Descriptor) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(r)), nil
}

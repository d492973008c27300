package transfer_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
	"github.com/containerdisk/kubectl-containerdisk/internal/testregistry"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/pkg/transfer"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upload"
)

// image builds a containerdisk index of the given architectures into a new
// OCI layout and returns the layout and the index.
func image(t testing.TB, arches ...string) (*oci.Store, string, ocispec.Descriptor) {
	t.Helper()
	dir := t.TempDir()
	var disks []containerdisk.Disk
	for i, a := range arches {
		p := filepath.Join(dir, a+".img")
		if err := testdisk.WriteRaw(p, 1<<20, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, containerdisk.Disk{Architecture: a, Path: p})
	}
	root := filepath.Join(dir, "layout")
	store, err := oci.New(root)
	if err != nil {
		t.Fatal(err)
	}
	res, err := containerdisk.Build(context.Background(), store, disks, containerdisk.Options{
		Created: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return store, root, res.Root
}

func repo(t testing.TB, r *testregistry.Registry, name string) *remote.Repository {
	t.Helper()
	ref, err := target.Parse(r.Host + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := target.OpenRepository(ref, target.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// recorder keeps the events of a push in order.
type recorder struct {
	mu     sync.Mutex
	events []transfer.Event
}

func (r *recorder) add(e transfer.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func TestPushWritesTagsLastAndOnlyOnce(t *testing.T) {
	ctx := context.Background()
	reg := testregistry.New(t)
	src, _, root := image(t, "amd64", "arm64", "s390x")
	dst := repo(t, reg, "containerdisks/demo")

	var rec recorder
	rep, err := transfer.Push(ctx, src, root, dst, transfer.Options{Tags: []string{"1.0-1", "1.0"}, OnEvent: rec.add})
	if err != nil {
		t.Fatal(err)
	}
	// 3 layers, 3 configs, 3 manifests, 1 index.
	if rep.Uploaded != 10 || len(rep.Tagged) != 2 || rep.Existing != 0 {
		t.Errorf("report = %+v, want 10 uploads and 2 tags", rep)
	}
	// Tags come after every node, the moving tag last; the index is the
	// last node before them.
	n := len(rec.events)
	if n != 12 || rec.events[n-2].Tag != "1.0-1" || rec.events[n-1].Tag != "1.0" || rec.events[n-3].Descriptor.Digest != root.Digest {
		for _, e := range rec.events {
			t.Logf("%s %s %s", e.Action, e.Descriptor.MediaType, e.Tag)
		}
		t.Fatalf("events out of order")
	}
	for _, tag := range []string{"1.0-1", "1.0"} {
		d, err := dst.Resolve(ctx, tag)
		if err != nil || d.Digest != root.Digest {
			t.Errorf("tag %s resolves to %v, %v; want %s", tag, d.Digest, err, root.Digest)
		}
	}

	// Again: only the tags are resolved, nothing is sent.
	reg.ResetStats()
	rep, err = transfer.Push(ctx, src, root, dst, transfer.Options{Tags: []string{"1.0-1", "1.0"}})
	if err != nil {
		t.Fatal(err)
	}
	st := reg.Stats()
	if !rep.UpToDate() || st.BlobBytesIn != 0 || st.BlobHead != 0 || st.BlobPost != 0 || st.ManifestPut != 0 || st.ManifestHead != 2 {
		t.Errorf("re-push: report %+v, registry saw %+v; want only 2 manifest HEADs", rep, st)
	}

	// A new tag for the same image: blobs are checked from the top and the
	// index is found, so only the tag is written.
	reg.ResetStats()
	rep, err = transfer.Push(ctx, src, root, dst, transfer.Options{Tags: []string{"latest"}})
	if err != nil {
		t.Fatal(err)
	}
	st = reg.Stats()
	if rep.Uploaded != 0 || !slices.Equal(rep.Tagged, []string{"latest"}) || st.BlobBytesIn != 0 || st.ManifestPut != 1 {
		t.Errorf("new tag: report %+v, registry saw %+v", rep, st)
	}
}

func TestPushMountsFromAnotherRepository(t *testing.T) {
	ctx := context.Background()
	reg := testregistry.New(t)
	src, _, root := image(t, "amd64")
	if _, err := transfer.Push(ctx, src, root, repo(t, reg, "staging/demo"), transfer.Options{Tags: []string{"1"}}); err != nil {
		t.Fatal(err)
	}
	reg.ResetStats()
	rep, err := transfer.Push(ctx, src, root, repo(t, reg, "release/demo"), transfer.Options{Tags: []string{"1"}, MountFrom: []string{"staging/demo"}})
	if err != nil {
		t.Fatal(err)
	}
	st := reg.Stats()
	// The layer and config are mounted; only the manifest is sent.
	if rep.Mounted != 2 || st.BlobBytesIn != 0 {
		t.Errorf("report %+v, registry saw %+v; want 2 mounts and no blob bytes", rep, st)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	ctx := context.Background()
	reg := testregistry.New(t)
	src, _, root := image(t, "amd64", "arm64")
	dst := repo(t, reg, "containerdisks/demo")
	var rec recorder
	rep, err := transfer.Push(ctx, src, root, dst, transfer.Options{Tags: []string{"1"}, DryRun: true, OnEvent: rec.add})
	if err != nil {
		t.Fatal(err)
	}
	st := reg.Stats()
	if st.BlobPost != 0 || st.BlobPut != 0 || st.ManifestPut != 0 {
		t.Errorf("dry run wrote to the registry: %+v", st)
	}
	if rep.Uploaded != 7 || !slices.Equal(rep.Tagged, []string{"1"}) {
		t.Errorf("dry run plan = %+v, want 7 uploads and tag 1", rep)
	}
	if last := rec.events[len(rec.events)-1]; last.Action != transfer.ActionWouldTag {
		t.Errorf("last event = %s, want the tag", last.Action)
	}
}

// A copy that fails part-way leaves the tags where they were: the moving tag
// never points at an image that is not whole.
func TestFailedCopyLeavesTagsAlone(t *testing.T) {
	ctx := context.Background()
	reg := testregistry.New(t)
	dst := repo(t, reg, "containerdisks/demo")
	oldSrc, _, oldRoot := image(t, "amd64")
	if _, err := transfer.Push(ctx, oldSrc, oldRoot, dst, transfer.Options{Tags: []string{"1"}}); err != nil {
		t.Fatal(err)
	}

	src, layout, root := image(t, "arm64", "s390x")
	// Lose one layer of the new image from the source.
	res := mustLayers(t, src, root)
	if err := os.Remove(filepath.Join(layout, "blobs", "sha256", res[1].Digest.Encoded())); err != nil {
		t.Fatal(err)
	}
	_, err := transfer.Push(ctx, src, root, dst, transfer.Options{Tags: []string{"1-2", "1"}})
	if err == nil {
		t.Fatal("push of an image with a missing layer succeeded")
	}
	for tag, want := range map[string]string{"1": oldRoot.Digest.String(), "1-2": ""} {
		d, err := dst.Resolve(ctx, tag)
		got := ""
		if err == nil {
			got = d.Digest.String()
		}
		if got != want {
			t.Errorf("after the failed push, tag %s = %q, want %q", tag, got, want)
		}
	}
	if exists, _ := dst.Exists(ctx, root); exists {
		t.Errorf("the index was pushed although one of its layers was missing")
	}
}

// TestPushRejectsCorruptSource alters a layer's bytes in the source layout:
// the push fails with a digest mismatch read from the source, before the
// destination commits the layer, and writes neither the index nor the tag. A
// registry repository is taken as it is (CopyGraph's own copy) and as an
// *upload.Repository (the uploader).
func TestPushRejectsCorruptSource(t *testing.T) {
	for _, tt := range []struct {
		name string
		open func(*remote.Repository) oras.Target
	}{
		{"remote.Repository", func(r *remote.Repository) oras.Target { return r }},
		{"upload.Repository", func(r *remote.Repository) oras.Target { return upload.NewRepository(r, upload.Uploader{}) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			reg := testregistry.New(t)
			src, layout, root := image(t, "amd64", "arm64")
			layer := mustLayers(t, src, root)[0]
			path := filepath.Join(layout, "blobs", "sha256", layer.Digest.Encoded())
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-10] ^= 0xff
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			plain := repo(t, reg, "containerdisks/demo")
			_, err = transfer.Push(ctx, src, root, tt.open(plain), transfer.Options{Tags: []string{"1"}})
			if !errors.Is(err, content.ErrMismatchedDigest) {
				t.Fatalf("push of a corrupt layer: %v, want a mismatched digest", err)
			}
			t.Logf("error: %v", err)
			if ok, err := plain.Exists(ctx, layer); err != nil || ok {
				t.Errorf("the registry has the corrupt layer (%v)", err)
			}
			if ok, err := plain.Exists(ctx, root); err != nil || ok {
				t.Errorf("the registry has the index (%v)", err)
			}
			if _, err := plain.Resolve(ctx, "1"); !errors.Is(err, errdef.ErrNotFound) {
				t.Errorf("tag 1: %v, want not found", err)
			}
		})
	}
}

func mustLayers(t *testing.T, s *oci.Store, root ocispec.Descriptor) []ocispec.Descriptor {
	t.Helper()
	var idx ocispec.Index
	fetch(t, s, root, &idx)
	var layers []ocispec.Descriptor
	for _, m := range idx.Manifests {
		var man ocispec.Manifest
		fetch(t, s, m, &man)
		layers = append(layers, man.Layers...)
	}
	return layers
}

// BenchmarkNoopRepush measures a push of an unchanged three-architecture
// index whose tags are in place: the common case of a scheduled run.
// Target: under 100 ms on loopback, with no blob bytes sent.
func BenchmarkNoopRepush(b *testing.B) {
	ctx := context.Background()
	reg := testregistry.New(b)
	src, _, root := image(b, "amd64", "arm64", "s390x")
	dst := repo(b, reg, "containerdisks/demo")
	tags := []string{"1.0-2405010000", "1.0", "latest"}
	if _, err := transfer.Push(ctx, src, root, dst, transfer.Options{Tags: tags}); err != nil {
		b.Fatal(err)
	}
	reg.ResetStats()
	b.ResetTimer()
	for b.Loop() {
		rep, err := transfer.Push(ctx, src, root, repo(b, reg, "containerdisks/demo"), transfer.Options{Tags: tags})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.UpToDate() {
			b.Fatalf("no-op push did something: %+v", rep)
		}
	}
	st := reg.Stats()
	b.ReportMetric(float64(st.BlobBytesIn), "blob-bytes-sent")
	b.ReportMetric(float64(st.ManifestHead+st.BlobHead+st.BlobGet+st.ManifestGet)/float64(b.N), "requests/op")
	if st.BlobBytesIn != 0 || st.BlobGet != 0 {
		b.Fatalf("no-op push sent or fetched blobs: %+v", st)
	}
	if per := b.Elapsed() / time.Duration(b.N); per > 100*time.Millisecond {
		b.Errorf("no-op push took %v, target under 100ms", per)
	}
}

func fetch(t testing.TB, s *oci.Store, d ocispec.Descriptor, v any) {
	t.Helper()
	b, err := content.FetchAll(context.Background(), s, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding %s: %v", d.Digest, err)
	}
}

// A unique tag pins an image: a second image pushed with the same unique tag
// (a build published within the same minute) leaves it where it is, while
// the moving tag moves.
func TestPushNeverMovesAUniqueTag(t *testing.T) {
	ctx := context.Background()
	reg := testregistry.New(t)
	dst := repo(t, reg, "containerdisks/fedora")
	src1, _, root1 := image(t, "amd64")
	src2, _, root2 := image(t, "amd64", "arm64")
	opts := transfer.Options{Tags: []string{"42-2612031327", "42-1.1", "42"}, Unique: []string{"42-2612031327", "42-1.1"}}
	if _, err := transfer.Push(ctx, src1, root1, dst, opts); err != nil {
		t.Fatal(err)
	}

	opts.Tags = []string{"42-2612031327", "42-1.2", "42"}
	opts.Unique = []string{"42-2612031327", "42-1.2"}
	for _, dryRun := range []bool{true, false} {
		var rec recorder
		opts.DryRun, opts.OnEvent = dryRun, rec.add
		rep, err := transfer.Push(ctx, src2, root2, dst, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rep.Kept, []string{"42-2612031327"}) || len(rep.Tagged) != 2 || rep.Tagged[0] != "42-1.2" || rep.Tagged[1] != "42" {
			t.Errorf("dry run %v: report %+v, want 42-2612031327 kept and 42-1.2, 42 tagged", dryRun, rep)
		}
		var kept []transfer.Event
		for _, e := range rec.events {
			if e.Action == transfer.ActionKept {
				kept = append(kept, e)
			}
		}
		if len(kept) != 1 || kept[0].Was.Digest != root1.Digest || kept[0].Descriptor.Digest != root2.Digest {
			t.Errorf("dry run %v: kept events %+v, want one saying the tag names %s", dryRun, kept, root1.Digest)
		}
	}
	for tag, want := range map[string]ocispec.Descriptor{"42-2612031327": root1, "42-1.1": root1, "42-1.2": root2, "42": root2} {
		d, err := dst.Resolve(ctx, tag)
		if err != nil || d.Digest != want.Digest {
			t.Errorf("tag %s resolves to %v, %v; want %s", tag, d.Digest, err, want.Digest)
		}
	}
}

package mirror_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
	"github.com/containerdisk/kubectl-containerdisk/internal/testregistry"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/mirror"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
)

// disk is one architecture of a test image: the same seed makes the same
// disk, layer and (with the same format) manifest.
type disk struct {
	arch string
	seed uint64
}

// buildImage builds a containerdisk of the disks into a new OCI layout and
// returns the layout and the build's result.
func buildImage(t testing.TB, format containerdisk.Format, disks ...disk) (*oci.Store, containerdisk.Result) {
	t.Helper()
	dir := t.TempDir()
	var in []containerdisk.Disk
	for _, d := range disks {
		p := filepath.Join(dir, d.arch, "disk.img")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := testdisk.WriteRaw(p, 256<<10, d.seed); err != nil {
			t.Fatal(err)
		}
		in = append(in, containerdisk.Disk{Architecture: d.arch, Path: p})
	}
	store, err := oci.New(filepath.Join(dir, "layout"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := containerdisk.Build(t.Context(), store, in, containerdisk.Options{
		Format: format, Created: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return store, res
}

// push builds an image and pushes it to repository:tag of r.
func push(t testing.TB, r *testregistry.Registry, ref string, format containerdisk.Format, disks ...disk) containerdisk.Result {
	t.Helper()
	store, res := buildImage(t, format, disks...)
	name, tag, _ := strings.Cut(ref, ":")
	if _, err := oras.Copy(t.Context(), store, res.Root.Digest.String(), repository(t, r, name), tag, oras.DefaultCopyOptions); err != nil {
		t.Fatal(err)
	}
	return res
}

func repository(t testing.TB, r *testregistry.Registry, name string) *remote.Repository {
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

// copyRef copies name:tag from src to dst, tagged dstRef, and returns the
// root's digest.
func copyRef(t testing.TB, src oras.ReadOnlyTarget, srcRef string, dst oras.Target, dstRef string) digest.Digest {
	t.Helper()
	desc, err := oras.Copy(t.Context(), src, srcRef, dst, dstRef, oras.DefaultCopyOptions)
	if err != nil {
		t.Fatalf("copying %s: %v", srcRef, err)
	}
	return desc.Digest
}

func resolve(t testing.TB, src oras.ReadOnlyTarget, ref string) digest.Digest {
	t.Helper()
	desc, err := src.Resolve(t.Context(), ref)
	if err != nil {
		t.Fatalf("resolving %s: %v", ref, err)
	}
	return desc.Digest
}

// blobFiles returns the blob files of a layout and their total size.
func blobFiles(t testing.TB, layout string) (map[string]int64, int64) {
	t.Helper()
	files := map[string]int64{}
	var total int64
	err := filepath.WalkDir(filepath.Join(layout, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files[d.Name()] = fi.Size()
		total += fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, total
}

// tarEntries lists the headers of a tar file.
func tarEntries(t testing.TB, path string) []*tar.Header {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*tar.Header
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
}

// airGap is a source registry with two multi-platform images that share a
// layer, one in Docker's format, copied into an OCI layout under the names
// "containerdisks/fedora:41" and "containerdisks/centos:9".
type airGap struct {
	reg            *testregistry.Registry
	layout         string
	fedora, centos containerdisk.Result
}

func newAirGap(t *testing.T) *airGap {
	t.Helper()
	a := &airGap{reg: testregistry.New(t), layout: filepath.Join(t.TempDir(), "layout")}
	a.fedora = push(t, a.reg, "containerdisks/fedora:41", containerdisk.FormatOCI, disk{"amd64", 1}, disk{"arm64", 2})
	a.centos = push(t, a.reg, "containerdisks/centos:9", containerdisk.FormatDocker, disk{"amd64", 1}, disk{"s390x", 3})
	store, err := oci.New(a.layout)
	if err != nil {
		t.Fatal(err)
	}
	copyRef(t, repository(t, a.reg, "containerdisks/fedora"), "41", store, "containerdisks/fedora:41")
	copyRef(t, repository(t, a.reg, "containerdisks/centos"), "9", store, "containerdisks/centos:9")
	return a
}

func TestArchiveRoundTrip(t *testing.T) {
	ctx := t.Context()
	a := newAirGap(t)
	dir := t.TempDir()
	archive := filepath.Join(dir, "mirror.tar")
	if err := mirror.WriteArchive(ctx, a.layout, archive); err != nil {
		t.Fatal(err)
	}

	// The same layout gives the same bytes, and a rewrite replaces the file
	// without leaving a temporary one behind.
	first, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := mirror.WriteArchive(ctx, a.layout, archive); err != nil {
		t.Fatal(err)
	}
	second, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Error("writing the same layout twice gave different archives")
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*")); len(names) != 1 {
		t.Errorf("the archive's directory holds %q, want the archive only", names)
	}
	if fi, err := os.Stat(archive); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("archive mode: %v %v, want 0644", fi.Mode(), err)
	}

	// The tar: oci-layout and index.json first, then each blob once, in
	// order, all with the fixed time and no owner.
	entries := tarEntries(t, archive)
	var names []string
	for _, h := range entries {
		names = append(names, h.Name)
		if !h.ModTime.Equal(time.Unix(0, 0)) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" {
			t.Errorf("%s: time %s, owner %d:%d %q; want 1970-01-01, 0:0", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname)
		}
	}
	files, _ := blobFiles(t, a.layout)
	var blobs []string
	for name := range files {
		blobs = append(blobs, "blobs/sha256/"+name)
	}
	slices.Sort(blobs)
	want := append([]string{"oci-layout", "index.json", "blobs/", "blobs/sha256/"}, blobs...)
	if !slices.Equal(names, want) {
		t.Errorf("archive entries\n got %q\nwant %q", names, want)
	}
	// The amd64 layer is in both images and in the archive once; the
	// layout holds only what the two images need.
	if a.fedora.Images[0].Layer.Digest != a.centos.Images[0].Layer.Digest {
		t.Fatal("the two images share no layer")
	}
	unique := map[digest.Digest]bool{}
	for _, res := range []containerdisk.Result{a.fedora, a.centos} {
		unique[res.Root.Digest] = true
		for _, img := range res.Images {
			unique[img.Manifest.Digest], unique[img.Config.Digest], unique[img.Layer.Digest] = true, true, true
		}
	}
	if len(blobs) != len(unique) {
		t.Errorf("%d blobs, want %d", len(blobs), len(unique))
	}

	// Read in place, the archive is a target to copy from: the digests
	// stay those of the source.
	ar, err := target.OpenArchive(ctx, archive)
	if err != nil {
		t.Fatal(err)
	}
	defer ar.Close()
	tags, err := registryTags(ctx, ar)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"containerdisks/centos:9", "containerdisks/fedora:41"}; !slices.Equal(tags, want) {
		t.Errorf("archive tags %q, want %q", tags, want)
	}
	dst := testregistry.New(t)
	for _, c := range []struct {
		ref, repo, tag string
		root           digest.Digest
	}{
		{"containerdisks/fedora:41", "fedora", "41", a.fedora.Root.Digest},
		{"containerdisks/centos:9", "centos", "9", a.centos.Root.Digest},
	} {
		if got := copyRef(t, ar, c.ref, repository(t, dst, c.repo), c.tag); got != c.root {
			t.Errorf("%s copied from the archive is %s, want %s", c.ref, got, c.root)
		}
		if got := resolve(t, repository(t, dst, c.repo), c.tag); got != c.root {
			t.Errorf("%s in the registry is %s, want %s", c.ref, got, c.root)
		}
	}

	// Extracted by tar, it is a layout that oci:DIR reads.
	extracted := t.TempDir()
	if out, err := exec.Command("tar", "-xf", archive, "-C", extracted).CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	src, err := target.OpenSource(ctx, target.Reference{Kind: target.KindLayout, Path: extracted}, target.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := copyRef(t, src, "containerdisks/fedora:41", repository(t, dst, "extracted/fedora"), "41"); got != a.fedora.Root.Digest {
		t.Errorf("fedora copied from the extracted layout is %s, want %s", got, a.fedora.Root.Digest)
	}

	// Every blob copied from the archive is intact: the registry verified
	// them, and the child manifests resolve.
	for _, img := range a.centos.Images {
		if got := resolve(t, repository(t, dst, "centos"), img.Manifest.Digest.String()); got != img.Manifest.Digest {
			t.Errorf("centos %s manifest: %s", img.Platform.Architecture, got)
		}
	}
}

// registryTags lists every tag of a tag lister.
func registryTags(ctx context.Context, l registry.TagLister) ([]string, error) {
	var out []string
	err := mirror.Tags(ctx, l, func(tags []string) error {
		out = append(out, tags...)
		return nil
	})
	return out, err
}

func TestArchiveIndexSorted(t *testing.T) {
	a := newAirGap(t)
	archive := filepath.Join(t.TempDir(), "mirror.tar")
	if err := mirror.WriteArchive(t.Context(), a.layout, archive); err != nil {
		t.Fatal(err)
	}
	ar, err := target.OpenArchive(t.Context(), archive)
	if err != nil {
		t.Fatal(err)
	}
	defer ar.Close()
	// index.json: the named roots first, by name, then any untagged
	// ones (a layout written by an earlier version lists the platform
	// manifests of its indexes so), by digest.
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var index ocispec.Index
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "index.json" {
			if err := json.NewDecoder(tr).Decode(&index); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	var keys []string
	for _, m := range index.Manifests {
		keys = append(keys, m.Annotations[ocispec.AnnotationRefName]+"@"+string(m.Digest))
	}
	if len(keys) < 2 || !strings.HasPrefix(keys[0], "containerdisks/centos:9@"+string(a.centos.Root.Digest)) ||
		!strings.HasPrefix(keys[1], "containerdisks/fedora:41@"+string(a.fedora.Root.Digest)) || !slices.IsSorted(keys[2:]) {
		t.Errorf("index.json entries %q", keys)
	}
}

func TestLayoutIncremental(t *testing.T) {
	ctx := t.Context()
	reg := testregistry.New(t)
	f41 := push(t, reg, "containerdisks/fedora:41", containerdisk.FormatOCI, disk{"amd64", 1}, disk{"arm64", 2})
	f42 := push(t, reg, "containerdisks/fedora:42", containerdisk.FormatOCI, disk{"amd64", 1}, disk{"arm64", 4})
	repo := repository(t, reg, "containerdisks/fedora")
	layout := filepath.Join(t.TempDir(), "layout")
	store, err := oci.New(layout)
	if err != nil {
		t.Fatal(err)
	}

	copyRef(t, repo, "41", store, "containerdisks/fedora:41")
	files41, bytes41 := blobFiles(t, layout)
	if got, want := len(files41), 1+2*3; got != want {
		t.Fatalf("after 41 the layout holds %d blobs, want %d", got, want)
	}

	// 42 shares its amd64 image with 41: the copy fetches only the arm64
	// config and layer (and the manifests), and adds only those files.
	reg.ResetStats()
	copyRef(t, repo, "42", store, "containerdisks/fedora:42")
	stats := reg.Stats()
	arm := f42.Images[1]
	if stats.BlobGet != 2 || stats.BlobBytesOut != arm.Config.Size+arm.Layer.Size {
		t.Errorf("copying 42 fetched %d blobs, %d bytes; want 2, %d (the arm64 config and layer)", stats.BlobGet, stats.BlobBytesOut, arm.Config.Size+arm.Layer.Size)
	}
	files42, bytes42 := blobFiles(t, layout)
	var added []string
	for name := range files42 {
		if _, ok := files41[name]; !ok {
			added = append(added, name)
		}
	}
	slices.Sort(added)
	wantAdded := []string{f42.Root.Digest.Encoded(), arm.Manifest.Digest.Encoded(), arm.Config.Digest.Encoded(), arm.Layer.Digest.Encoded()}
	slices.Sort(wantAdded)
	if !slices.Equal(added, wantAdded) {
		t.Errorf("copying 42 added %q, want %q", added, wantAdded)
	}
	if got, want := bytes42-bytes41, f42.Root.Size+arm.Manifest.Size+arm.Config.Size+arm.Layer.Size; got != want {
		t.Errorf("copying 42 added %d bytes, want %d", got, want)
	}

	// Copying 41 again fetches no blob and adds nothing.
	reg.ResetStats()
	copyRef(t, repo, "41", store, "containerdisks/fedora:41")
	if stats := reg.Stats(); stats.BlobGet != 0 || stats.ManifestGet > 1 {
		t.Errorf("copying 41 again: %+v, want no blob fetched", stats)
	}
	if files, _ := blobFiles(t, layout); len(files) != len(files42) {
		t.Errorf("copying 41 again changed the layout from %d to %d blobs", len(files42), len(files))
	}

	// The archive written again from the grown layout has both.
	archive := filepath.Join(t.TempDir(), "mirror.tar")
	if err := mirror.WriteArchive(ctx, layout, archive); err != nil {
		t.Fatal(err)
	}
	ar, err := target.OpenArchive(ctx, archive)
	if err != nil {
		t.Fatal(err)
	}
	defer ar.Close()
	if got := resolve(t, ar, "containerdisks/fedora:41"); got != f41.Root.Digest {
		t.Errorf("41 in the archive: %s, want %s", got, f41.Root.Digest)
	}
	if got := resolve(t, ar, "containerdisks/fedora:42"); got != f42.Root.Digest {
		t.Errorf("42 in the archive: %s, want %s", got, f42.Root.Digest)
	}
	if got, want := len(tarEntries(t, archive)), 4+len(files42); got != want {
		t.Errorf("the archive has %d entries, want %d", got, want)
	}
}

func TestWriteArchiveErrors(t *testing.T) {
	ctx := t.Context()
	_, res := buildImage(t, containerdisk.FormatOCI, disk{"amd64", 1})
	layer := res.Images[0].Layer

	// layout copies the built image into a new layout tagged "1".
	layout := func(t *testing.T) string {
		src, _ := buildImage(t, containerdisk.FormatOCI, disk{"amd64", 1})
		dir := filepath.Join(t.TempDir(), "layout")
		store, err := oci.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		copyRef(t, src, res.Root.Digest.String(), store, "1")
		return dir
	}
	layerPath := func(dir string) string { return filepath.Join(dir, "blobs", "sha256", layer.Digest.Encoded()) }

	tests := []struct {
		name  string
		setup func(t *testing.T) string
		want  string
	}{
		{"not a layout", func(t *testing.T) string { return t.TempDir() }, "is not an OCI image layout"},
		{"empty layout", func(t *testing.T) string {
			dir := t.TempDir()
			if _, err := oci.New(dir); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "holds no image"},
		{"missing layer", func(t *testing.T) string {
			dir := layout(t)
			if err := os.Remove(layerPath(dir)); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "is incomplete"},
		{"truncated layer", func(t *testing.T) string {
			dir := layout(t)
			if err := os.Truncate(layerPath(dir), layer.Size-1); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "the descriptor (application/vnd.oci.image.layer.v1.tar+gzip) says"},
		{"corrupt layer", func(t *testing.T) string {
			dir := layout(t)
			f, err := os.OpenFile(layerPath(dir), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte("garbage"), 100); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "does not match its digest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.setup(t)
			out := t.TempDir()
			archive := filepath.Join(out, "mirror.tar")
			err := mirror.WriteArchive(ctx, dir, archive)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), archive) {
				t.Fatalf("WriteArchive = %v, want an error with %q", err, tt.want)
			}
			if names, _ := filepath.Glob(filepath.Join(out, "*")); len(names) > 0 {
				t.Errorf("a failed write left %q", names)
			}
		})
	}

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := mirror.WriteArchive(ctx, layout(t), filepath.Join(t.TempDir(), "a.tar")); !errors.Is(err, context.Canceled) {
			t.Errorf("WriteArchive = %v, want context.Canceled", err)
		}
	})
}

// writeTar writes a tar of the given entries, headers as given.
func writeTar(t testing.TB, path string, entries ...tarFile) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

type tarFile struct {
	hdr  tar.Header
	data []byte
}

// tinyLayout returns the files of a layout with one small image tagged "v1".
func tinyLayout(t testing.TB) (files map[string][]byte, root ocispec.Descriptor) {
	t.Helper()
	files = map[string][]byte{}
	add := func(mediaType string, b []byte) ocispec.Descriptor {
		d := content.NewDescriptorFromBytes(mediaType, b)
		files["blobs/sha256/"+d.Digest.Encoded()] = b
		return d
	}
	config := add(ocispec.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`))
	layer := add(ocispec.MediaTypeImageLayer, []byte("not really a tar"))
	m, _ := json.Marshal(ocispec.Manifest{Versioned: specVersion, MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: []ocispec.Descriptor{layer}})
	root = add(ocispec.MediaTypeImageManifest, m)
	tagged := root
	tagged.Annotations = map[string]string{ocispec.AnnotationRefName: "v1"}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specVersion, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{tagged}})
	files["index.json"] = idx
	files["oci-layout"] = []byte(`{"imageLayoutVersion":"1.0.0"}`)
	return files, root
}

func TestOpenArchiveForeignTars(t *testing.T) {
	ctx := t.Context()
	files, root := tinyLayout(t)
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	})

	t.Run("PAX headers and ./ names", func(t *testing.T) {
		// Headers of several blocks (a PAX record each), names with "./",
		// and index.json last, as other tools write them.
		var entries []tarFile
		for _, n := range slices.Backward(names) {
			entries = append(entries, tarFile{hdr: tar.Header{Name: "./" + n, Format: tar.FormatPAX, PAXRecords: map[string]string{"comment": strings.Repeat("x", 1000)}}, data: files[n]})
		}
		path := filepath.Join(t.TempDir(), "pax.tar")
		writeTar(t, path, entries...)
		ar, err := target.OpenArchive(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer ar.Close()
		desc, err := ar.Resolve(ctx, "v1")
		if err != nil || desc.Digest != root.Digest {
			t.Fatalf("Resolve(v1) = %v, %v; want %s", desc.Digest, err, root.Digest)
		}
		// Every blob reads back verified.
		var man ocispec.Manifest
		b, err := content.FetchAll(ctx, ar, root)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &man); err != nil {
			t.Fatal(err)
		}
		for _, d := range append([]ocispec.Descriptor{man.Config}, man.Layers...) {
			if _, err := content.FetchAll(ctx, ar, d); err != nil {
				t.Errorf("fetching %s: %v", d.MediaType, err)
			}
		}
	})

	errorCases := []struct {
		name  string
		write func(t *testing.T, path string)
		want  string
	}{
		{"gzip", func(t *testing.T, path string) {
			os.WriteFile(path, []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0}, 0o644)
		}, "it is gzip-compressed; expected an uncompressed tar: decompress it first (gunzip)"},
		{"not a tar", func(t *testing.T, path string) {
			os.WriteFile(path, bytes.Repeat([]byte("hello world\n"), 100), 0o644)
		}, "it is not a tar, or is cut short"},
		{"truncated", func(t *testing.T, path string) {
			writeTar(t, path, tarFile{hdr: tar.Header{Name: "oci-layout"}, data: files["oci-layout"]}, tarFile{hdr: tar.Header{Name: "index.json"}, data: files["index.json"]})
			// Cut in index.json's data, which starts at byte 1536.
			os.Truncate(path, 1536+10)
		}, "it is cut short: its entry index.json has 10 of its"},
		{"bad index", func(t *testing.T, path string) {
			writeTar(t, path, tarFile{hdr: tar.Header{Name: "oci-layout"}, data: files["oci-layout"]}, tarFile{hdr: tar.Header{Name: "index.json"}, data: []byte(`{"schemaVersion":2,"manifests":[`)})
		}, "index.json: not a JSON image index"},
		{"symlink", func(t *testing.T, path string) {
			writeTar(t, path, tarFile{hdr: tar.Header{Name: "index.json", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}})
		}, `its entry index.json is of type '2'`},
		{"outside", func(t *testing.T, path string) {
			writeTar(t, path, tarFile{hdr: tar.Header{Name: "../index.json"}, data: files["index.json"]})
		}, "is outside the archive's root"},
		{"no layout file", func(t *testing.T, path string) {
			writeTar(t, path, tarFile{hdr: tar.Header{Name: "index.json"}, data: files["index.json"]})
		}, "oci-layout"},
	}
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.tar")
			tt.write(t, path)
			ar, err := target.OpenArchive(ctx, path)
			if err == nil {
				ar.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("OpenArchive = %v, want an error with %q", err, tt.want)
			}
			// A malformed archive is an input error (exit code 2).
			var le *target.LayoutError
			if !errors.As(err, &le) || le.Path != path || !le.Archive {
				t.Errorf("OpenArchive = %#v, want a *target.LayoutError for %s", err, path)
			}
		})
	}
}

// TestOpenArchiveHugeBlob reads a blob of more than 8 GiB, whose size takes
// a PAX record, from a sparse archive file that costs no disk space.
func TestOpenArchiveHugeBlob(t *testing.T) {
	ctx := t.Context()
	const size = 8<<30 + 3
	// The digest is not checked unless the blob is fetched whole.
	huge := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Size: size, Digest: digest.FromString("stand-in")}
	config := content.NewDescriptorFromBytes(ocispec.MediaTypeImageConfig, []byte(`{}`))
	m, _ := json.Marshal(ocispec.Manifest{Versioned: specVersion, MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: []ocispec.Descriptor{huge}})
	root := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, m)
	root.Annotations = map[string]string{ocispec.AnnotationRefName: "huge"}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specVersion, Manifests: []ocispec.Descriptor{root}})

	path := filepath.Join(t.TempDir(), "huge.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	small := func(name string, b []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	small("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	small("index.json", idx)
	small("blobs/sha256/"+root.Digest.Encoded(), m)
	small("blobs/sha256/"+config.Digest.Encoded(), []byte(`{}`))
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + huge.Digest.Encoded(), Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Flush(); err != nil && !strings.Contains(err.Error(), "missed writing") {
		t.Fatal(err)
	}
	// The data: a hole, then the last three bytes; then padding to the
	// block and the two zero blocks that end a tar.
	start, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("end"), start+size-3); err != nil {
		t.Fatal(err)
	}
	end := start + size
	end += (512 - end%512) % 512
	if err := f.Truncate(end + 1024); err != nil {
		t.Fatal(err)
	}

	ar, err := target.OpenArchive(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ar.Close()
	desc, err := ar.Resolve(ctx, huge.Digest.String())
	if err != nil || desc.Size != size {
		t.Fatalf("Resolve(huge layer) = %+v, %v; want size %d", desc, err, size)
	}
	rc, err := ar.Fetch(ctx, huge)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rs, ok := rc.(io.ReadSeeker)
	if !ok {
		t.Fatalf("the blob reader %T cannot seek", rc)
	}
	if _, err := rs.Seek(size-4, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	tail, err := io.ReadAll(rs)
	if err != nil || string(tail) != "\x00end" {
		t.Errorf("the blob ends %q, %v; want \"\\x00end\"", tail, err)
	}
}

var specVersion = specs.Versioned{SchemaVersion: 2}

// TestArchiveSkopeo has skopeo read an archive: it finds an image by the
// name in index.json and copies all its platforms to a registry, digests
// unchanged.
func TestArchiveSkopeo(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatalf("skopeo: %v; install it (apt-get install skopeo): this test checks that skopeo reads the archives", err)
	}
	a := newAirGap(t)
	// Both a repository-and-tag name and a bare tag.
	store, err := oci.New(a.layout)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Tag(t.Context(), a.fedora.Root, "41"); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "mirror.tar")
	if err := mirror.WriteArchive(t.Context(), a.layout, archive); err != nil {
		t.Fatal(err)
	}
	dst := testregistry.New(t)
	for _, name := range []string{"containerdisks/fedora:41", "41"} {
		raw, err := exec.Command(skopeo, "inspect", "--raw", "oci-archive:"+archive+":"+name).Output()
		if err != nil {
			t.Fatalf("skopeo inspect %s: %v\n%s", name, err, stderr(err))
		}
		if got := digest.FromBytes(raw); got != a.fedora.Root.Digest {
			t.Errorf("skopeo inspect --raw %s: digest %s, want %s", name, got, a.fedora.Root.Digest)
		}
	}
	// skopeo 1.9 does not find the Docker-format centos:9 (see WriteArchive).
	cmd := exec.Command(skopeo, "copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
		"oci-archive:"+archive+":containerdisks/fedora:41", "docker://"+dst.Host+"/fedora:41")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	if got := resolve(t, repository(t, dst, "fedora"), "41"); got != a.fedora.Root.Digest {
		t.Errorf("skopeo copied fedora:41 as %s, want %s", got, a.fedora.Root.Digest)
	}
	for _, img := range a.fedora.Images {
		if got := resolve(t, repository(t, dst, "fedora"), img.Manifest.Digest.String()); got != img.Manifest.Digest {
			t.Errorf("the %s manifest: %s", img.Platform.Architecture, got)
		}
	}
}

func stderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

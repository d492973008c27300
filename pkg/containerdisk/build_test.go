package containerdisk_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/oci"

	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/disk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/inputerr"
)

// disks makes an amd64 qcow2 and an arm64 raw disk once for the package.
func disks(t *testing.T) (amd64, arm64 string) {
	t.Helper()
	dir := t.TempDir()
	amd64 = filepath.Join(dir, "amd64.qcow2")
	arm64 = filepath.Join(dir, "arm64.img")
	if err := testdisk.WriteQCOW2(amd64, 4<<20, 1, false); err != nil {
		t.Fatal(err)
	}
	if err := testdisk.WriteRaw(arm64, 2<<20, 2); err != nil {
		t.Fatal(err)
	}
	return amd64, arm64
}

func layout(t *testing.T) *oci.Store {
	t.Helper()
	s, err := oci.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBuildIsReproducible(t *testing.T) {
	amd64, arm64 := disks(t)
	created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		format      containerdisk.Format
		compression containerdisk.Compression
		wantRoot    string
	}{
		{containerdisk.FormatOCI, containerdisk.CompressionGzip, ocispec.MediaTypeImageIndex},
		{containerdisk.FormatOCI, containerdisk.CompressionZstd, ocispec.MediaTypeImageIndex},
		{containerdisk.FormatOCI, containerdisk.CompressionNone, ocispec.MediaTypeImageIndex},
		{containerdisk.FormatDocker, containerdisk.CompressionGzip, containerdisk.MediaTypeDockerManifestList},
	} {
		t.Run(fmt.Sprintf("%s-%s", tc.format, tc.compression), func(t *testing.T) {
			build := func() containerdisk.Result {
				t.Helper()
				res, err := containerdisk.Build(context.Background(), layout(t), []containerdisk.Disk{
					// arm64 first: the index must not depend on input order.
					{Architecture: "aarch64", Path: arm64, Name: "disk.img"},
					{Architecture: "amd64", Path: amd64, Name: "disk.img"},
				}, containerdisk.Options{Format: tc.format, Compression: tc.compression, Created: created, TempDir: t.TempDir()})
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			first, second := build(), build()
			if first.Root.Digest != second.Root.Digest {
				t.Errorf("root digests differ between two builds of the same input: %s, %s", first.Root.Digest, second.Root.Digest)
			}
			if first.Root.MediaType != tc.wantRoot {
				t.Errorf("root media type = %s, want %s", first.Root.MediaType, tc.wantRoot)
			}
			for i := range first.Images {
				if a, b := first.Images[i].Manifest.Digest, second.Images[i].Manifest.Digest; a != b {
					t.Errorf("%s manifest digests differ: %s, %s", first.Images[i].Platform.Architecture, a, b)
				}
			}
			if got := []string{first.Images[0].Platform.Architecture, first.Images[1].Platform.Architecture}; !slices.Equal(got, []string{"amd64", "arm64"}) {
				t.Errorf("index order = %v, want amd64, arm64", got)
			}
		})
	}
}

func TestBuildWritesAContainerdisk(t *testing.T) {
	amd64, _ := disks(t)
	raw, err := os.ReadFile(amd64)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(raw)
	checksum := containerdisk.Checksum{Algorithm: "sha256", Hex: fmt.Sprintf("%x", want)}
	store := layout(t)
	created := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	res, err := containerdisk.Build(context.Background(), store, []containerdisk.Disk{
		{Architecture: "amd64", Path: amd64, Checksum: checksum},
	}, containerdisk.Options{
		Created: created, Source: "https://example.com/fedora.qcow2", Version: "41",
		Preference: "fedora", TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if res.Root.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("one disk gives a %s, want a manifest", res.Root.MediaType)
	}
	var m ocispec.Manifest
	fetchJSON(t, store, res.Root, &m)
	if len(m.Layers) != 1 || m.Layers[0].MediaType != ocispec.MediaTypeImageLayerGzip {
		t.Fatalf("layers = %+v, want one gzip layer", m.Layers)
	}
	for k, v := range map[string]string{
		ocispec.AnnotationCreated: "2024-05-01T12:00:00Z",
		ocispec.AnnotationSource:  "https://example.com/fedora.qcow2",
		ocispec.AnnotationVersion: "41",
	} {
		if m.Annotations[k] != v {
			t.Errorf("manifest annotation %s = %q, want %q", k, m.Annotations[k], v)
		}
	}

	var cfg ocispec.Image
	fetchJSON(t, store, m.Config, &cfg)
	if cfg.OS != "linux" || cfg.Architecture != "amd64" {
		t.Errorf("config platform = %s/%s, want linux/amd64", cfg.OS, cfg.Architecture)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"no-entrypoint"}) {
		t.Errorf("entrypoint = %v", cfg.Config.Entrypoint)
	}
	wantEnv := []string{
		"INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.medium",
		"INSTANCETYPE_KUBEVIRT_IO_DEFAULT_PREFERENCE=fedora",
	}
	if !slices.Equal(cfg.Config.Env, wantEnv) {
		t.Errorf("env = %v, want %v", cfg.Config.Env, wantEnv)
	}
	if cfg.Config.Labels["shasum"] != checksum.Hex || cfg.Config.Labels[containerdisk.LabelChecksum] != checksum.String() {
		t.Errorf("labels = %v, want the checksum %s", cfg.Config.Labels, checksum)
	}
	if cfg.Created == nil || !cfg.Created.Equal(created) {
		t.Errorf("created = %v, want %v", cfg.Created, created)
	}

	rc, err := store.Fetch(ctx, m.Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	diff := sha256.New()
	tr := tar.NewReader(io.TeeReader(zr, diff))
	var entries []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, fmt.Sprintf("%c %o %d:%d %d %s", h.Typeflag, h.Mode, h.Uid, h.Gid, h.ModTime.Unix(), h.Name))
		if h.Typeflag == tar.TypeReg {
			got := sha256.New()
			if _, err := io.Copy(got, tr); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Sum(nil), want[:]) {
				t.Errorf("disk in the layer differs from the input")
			}
		}
	}
	io.Copy(diff, zr)
	wantEntries := []string{
		fmt.Sprintf("%c 555 107:107 0 disk/", tar.TypeDir),
		fmt.Sprintf("%c 444 107:107 0 disk/amd64.qcow2", tar.TypeReg),
	}
	if !slices.Equal(entries, wantEntries) {
		t.Errorf("layer entries:\n%s\nwant:\n%s", entries, wantEntries)
	}
	if got := fmt.Sprintf("sha256:%x", diff.Sum(nil)); len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0].String() != got {
		t.Errorf("diff_ids = %v, want [%s]", cfg.RootFS.DiffIDs, got)
	}
}

func TestBuildZstdLayerDecompresses(t *testing.T) {
	amd64, _ := disks(t)
	store := layout(t)
	res, err := containerdisk.Build(context.Background(), store, []containerdisk.Disk{{Architecture: "amd64", Path: amd64}},
		containerdisk.Options{Compression: containerdisk.CompressionZstd, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Images[0].Layer.MediaType != ocispec.MediaTypeImageLayerZstd {
		t.Fatalf("layer media type = %s", res.Images[0].Layer.MediaType)
	}
	rc, err := store.Fetch(context.Background(), res.Images[0].Layer)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	zr, err := zstd.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	h := sha256.New()
	if _, err := io.Copy(h, zr); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("sha256:%x", h.Sum(nil)); got != res.Images[0].DiffID.String() {
		t.Errorf("decompressed layer is %s, want the diff ID %s", got, res.Images[0].DiffID)
	}
}

func TestBuildRefusesBadInputBeforeWriting(t *testing.T) {
	amd64, arm64 := disks(t)
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, bytes.Repeat([]byte("not a disk\n"), 1000), 0o644)
	overlay := filepath.Join(dir, "overlay.qcow2")
	if err := testdisk.WriteOverlay(overlay, amd64); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.qcow2")
	raw, _ := os.ReadFile(amd64)
	os.WriteFile(truncated, raw[:len(raw)/2], 0o644)
	wrongSum := containerdisk.Checksum{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", 1)}

	for _, tc := range []struct {
		name  string
		disks []containerdisk.Disk
		opts  containerdisk.Options
		check func(error) bool
	}{
		{"text file", []containerdisk.Disk{{Architecture: "amd64", Path: text}}, containerdisk.Options{},
			func(err error) bool { return errors.Is(err, disk.ErrNotDisk) }},
		{"backing file", []containerdisk.Disk{{Architecture: "amd64", Path: overlay}}, containerdisk.Options{},
			func(err error) bool { return errors.Is(err, disk.ErrBackingFile) }},
		{"truncated", []containerdisk.Disk{{Architecture: "amd64", Path: truncated}}, containerdisk.Options{},
			func(err error) bool { return errors.Is(err, disk.ErrTruncated) }},
		{"unknown arch", []containerdisk.Disk{{Architecture: "riscv64", Path: amd64}}, containerdisk.Options{},
			inputerr.Is},
		{"two disks for one arch", []containerdisk.Disk{{Architecture: "amd64", Path: amd64}, {Architecture: "x86_64", Path: arm64}}, containerdisk.Options{},
			func(err error) bool { return err != nil }},
		{"docker and zstd", []containerdisk.Disk{{Architecture: "amd64", Path: amd64}}, containerdisk.Options{Format: containerdisk.FormatDocker, Compression: containerdisk.CompressionZstd},
			inputerr.Is},
		// The good amd64 disk is made first: the bad checksum of arm64 must
		// still leave the target untouched.
		{"checksum mismatch", []containerdisk.Disk{{Architecture: "amd64", Path: amd64}, {Architecture: "arm64", Path: arm64, Checksum: wrongSum}}, containerdisk.Options{},
			func(err error) bool { var m *containerdisk.ChecksumMismatchError; return errors.As(err, &m) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			store, err := oci.New(root)
			if err != nil {
				t.Fatal(err)
			}
			tc.opts.TempDir = t.TempDir()
			_, err = containerdisk.Build(context.Background(), store, tc.disks, tc.opts)
			if err == nil || !tc.check(err) {
				t.Fatalf("Build() error = %v, want a %s error", err, tc.name)
			}
			blobs, _ := os.ReadDir(filepath.Join(root, "blobs", "sha256"))
			if len(blobs) != 0 {
				t.Errorf("%d blobs written after the error, want none", len(blobs))
			}
			tmp, _ := os.ReadDir(tc.opts.TempDir)
			if len(tmp) != 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
		})
	}
}

func TestParseChecksum(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"sha256:" + fmt.Sprintf("%064x", 7), "sha256:" + fmt.Sprintf("%064x", 7), true},
		{"SHA512:" + fmt.Sprintf("%0128X", 7), "sha512:" + fmt.Sprintf("%0128x", 7), true},
		{"md5:d41d8cd98f00b204e9800998ecf8427e", "", false},
		{"sha256:abc", "", false},
		{fmt.Sprintf("%064x", 7), "", false},
		{"sha256:" + fmt.Sprintf("%063x", 7) + "g", "", false},
	} {
		got, err := containerdisk.ParseChecksum(tc.in)
		if (err == nil) != tc.ok || got.String() != tc.want {
			t.Errorf("ParseChecksum(%q) = %q, %v; want %q, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func fetchJSON(t *testing.T, s content.Fetcher, d ocispec.Descriptor, v any) {
	t.Helper()
	b, err := content.FetchAll(context.Background(), s, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// A disk's own source URL, instancetype and preference go into its image;
// the index keeps the build's.
func TestBuildPerDiskMetadata(t *testing.T) {
	amd64, arm64 := disks(t)
	store := layout(t)
	sum := func(path string) containerdisk.Checksum {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return containerdisk.Checksum{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(data))}
	}
	// Verified: the checksum is recorded as given, without reading the
	// file for it (it may be of the compressed upstream file).
	given := containerdisk.Checksum{Algorithm: "sha512", Hex: fmt.Sprintf("%0128x", 7)}
	res, err := containerdisk.Build(context.Background(), store, []containerdisk.Disk{
		{Architecture: "amd64", Path: amd64, Checksum: sum(amd64), Source: "https://x/amd64.qcow2", Preference: "fedora"},
		{Architecture: "arm64", Path: arm64, Checksum: given, Verified: true, Source: "https://x/arm64.img", Preference: "fedora.arm64", Instancetype: "u1.large"},
	}, containerdisk.Options{Source: "https://x/", Version: "42", Created: time.Unix(0, 0), TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	fetchJSON(t, store, res.Root, &idx)
	if idx.Annotations[ocispec.AnnotationSource] != "https://x/" {
		t.Errorf("index source = %q", idx.Annotations[ocispec.AnnotationSource])
	}
	want := map[string][3]string{
		"amd64": {"https://x/amd64.qcow2", "u1.medium", "fedora"},
		"arm64": {"https://x/arm64.img", "u1.large", "fedora.arm64"},
	}
	for _, img := range res.Images {
		var m ocispec.Manifest
		fetchJSON(t, store, img.Manifest, &m)
		var cfg ocispec.Image
		fetchJSON(t, store, m.Config, &cfg)
		w := want[cfg.Architecture]
		env := []string{containerdisk.EnvInstancetype + "=" + w[1], containerdisk.EnvPreference + "=" + w[2]}
		if m.Annotations[ocispec.AnnotationSource] != w[0] || cfg.Config.Labels[ocispec.AnnotationSource] != w[0] || !slices.Equal(cfg.Config.Env, env) {
			t.Errorf("%s: source %q, env %q; want %q, %q", cfg.Architecture, m.Annotations[ocispec.AnnotationSource], cfg.Config.Env, w[0], env)
		}
		if cfg.Architecture == "arm64" && cfg.Config.Labels[containerdisk.LabelChecksum] != given.String() {
			t.Errorf("arm64 checksum label = %q, want the verified %s", cfg.Config.Labels[containerdisk.LabelChecksum], given)
		}
	}
}

// pushRecorder is a layout that records the order of the blobs pushed to
// it, and fails the push of one of them when told to.
type pushRecorder struct {
	*oci.Store
	mu     sync.Mutex
	pushed []string
	fail   func(ocispec.Descriptor) error
}

func (p *pushRecorder) Push(ctx context.Context, d ocispec.Descriptor, r io.Reader) error {
	if p.fail != nil {
		if err := p.fail(d); err != nil {
			return err
		}
	}
	p.mu.Lock()
	p.pushed = append(p.pushed, d.MediaType)
	p.mu.Unlock()
	return p.Store.Push(ctx, d, r)
}

// TestBuildVerifiedDisksPushWhilePacking: with verified disks, the first
// image is pushed while the second disk is packed, and the result is the
// one of packing everything first.
func TestBuildVerifiedDisksPushWhilePacking(t *testing.T) {
	amd64, arm64 := disks(t)
	given := func(n int) containerdisk.Checksum {
		return containerdisk.Checksum{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", n)}
	}
	input := []containerdisk.Disk{
		{Architecture: "amd64", Path: amd64, Checksum: given(1), Verified: true},
		{Architecture: "arm64", Path: arm64, Checksum: given(2), Verified: true},
	}
	opts := containerdisk.Options{Version: "1", Created: time.Unix(0, 0), TempDir: t.TempDir()}

	// While arm64 is being packed (its progress writer is asked for), the
	// amd64 layer is already in the store.
	rec := &pushRecorder{Store: layout(t)}
	var atArm64 []string
	opts.Progress = func(d containerdisk.Disk, _ int64) io.Writer {
		if d.Architecture == "arm64" {
			deadline := time.Now().Add(10 * time.Second)
			for {
				rec.mu.Lock()
				atArm64 = slices.Clone(rec.pushed)
				rec.mu.Unlock()
				if slices.Contains(atArm64, ocispec.MediaTypeImageManifest) || time.Now().After(deadline) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		return io.Discard
	}
	res, err := containerdisk.Build(context.Background(), rec, input, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(atArm64, ocispec.MediaTypeImageLayerGzip) || !slices.Contains(atArm64, ocispec.MediaTypeImageManifest) {
		t.Errorf("when arm64's packing began, the store had %q: want amd64's layer and manifest", atArm64)
	}

	if tmp, _ := os.ReadDir(opts.TempDir); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}

	opts.Progress = nil
	l, err := containerdisk.MakeLayers(context.Background(), input, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	want, err := l.Push(context.Background(), layout(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Root.Digest != want.Root.Digest {
		t.Errorf("root %s, want %s as when everything is packed first", res.Root.Digest, want.Root.Digest)
	}
}

// TestBuildPushFailureStopsPacking: a failed push is the error, not the
// cancellation it causes, and nothing is left behind.
func TestBuildPushFailureStopsPacking(t *testing.T) {
	amd64, arm64 := disks(t)
	sum := containerdisk.Checksum{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", 3)}
	refused := errors.New("the registry refused the layer")
	rec := &pushRecorder{Store: layout(t), fail: func(d ocispec.Descriptor) error {
		if d.MediaType == ocispec.MediaTypeImageLayerGzip {
			return refused
		}
		return nil
	}}
	tmp := t.TempDir()
	_, err := containerdisk.Build(context.Background(), rec, []containerdisk.Disk{
		{Architecture: "amd64", Path: amd64, Checksum: sum, Verified: true},
		{Architecture: "arm64", Path: arm64, Checksum: sum, Verified: true},
	}, containerdisk.Options{Created: time.Unix(0, 0), TempDir: tmp})
	if !errors.Is(err, refused) {
		t.Errorf("error %v, want the push's", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

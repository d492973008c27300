package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/content/oci"
)

// buildLayout builds a containerdisk of one raw disk per architecture into
// a fresh OCI layout and returns the layout, the root and the disk files.
func buildLayout(t *testing.T, opts containerdisk.Options, arches ...string) (*oci.Store, ocispec.Descriptor, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	var disks []containerdisk.Disk
	paths := map[string]string{}
	for i, arch := range arches {
		p := filepath.Join(dir, arch+".raw")
		if err := testdisk.WriteRaw(p, 2<<20, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, containerdisk.Disk{Architecture: arch, Path: p, Name: "disk-" + arch + ".img"})
		paths[arch] = p
	}
	store, err := oci.New(filepath.Join(dir, "layout"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := containerdisk.Build(context.Background(), store, disks, opts)
	if err != nil {
		t.Fatal(err)
	}
	return store, res.Root, paths
}

func TestExtractDisk(t *testing.T) {
	tests := []struct {
		name   string
		opts   containerdisk.Options
		arches []string
		arch   string // asked for
		want   string // architecture whose disk comes out
	}{
		{"oci gzip", containerdisk.Options{Format: containerdisk.FormatOCI, Compression: containerdisk.CompressionGzip}, []string{"amd64"}, "amd64", "amd64"},
		{"oci zstd", containerdisk.Options{Format: containerdisk.FormatOCI, Compression: containerdisk.CompressionZstd}, []string{"amd64"}, "amd64", "amd64"},
		{"oci uncompressed", containerdisk.Options{Format: containerdisk.FormatOCI, Compression: containerdisk.CompressionNone}, []string{"amd64"}, "amd64", "amd64"},
		{"docker gzip", containerdisk.Options{Format: containerdisk.FormatDocker, Compression: containerdisk.CompressionGzip}, []string{"amd64"}, "amd64", "amd64"},
		{"docker uncompressed", containerdisk.Options{Format: containerdisk.FormatDocker, Compression: containerdisk.CompressionNone}, []string{"amd64"}, "amd64", "amd64"},
		{"single manifest, no arch asked", containerdisk.Options{}, []string{"arm64"}, "", "arm64"},
		{"oci index", containerdisk.Options{Compression: containerdisk.CompressionZstd}, []string{"amd64", "arm64", "s390x"}, "arm64", "arm64"},
		{"oci index, upstream arch name", containerdisk.Options{}, []string{"amd64", "arm64"}, "aarch64", "arm64"},
		{"docker manifest list", containerdisk.Options{Format: containerdisk.FormatDocker}, []string{"amd64", "arm64"}, "amd64", "amd64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, root, paths := buildLayout(t, tt.opts, tt.arches...)
			out := t.TempDir()
			got, err := ExtractDisk(context.Background(), store, root, tt.arch, out)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(out, "disk-"+tt.want+".img"); got != want {
				t.Errorf("path %s, want %s", got, want)
			}
			gotBytes, err := os.ReadFile(got)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes, err := os.ReadFile(paths[tt.want])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gotBytes, wantBytes) {
				t.Errorf("extracted disk differs from the %s disk that was built", tt.want)
			}
			if entries, _ := os.ReadDir(out); len(entries) != 1 {
				t.Errorf("%d files in the output directory, want only the disk", len(entries))
			}
			// A quarter of the test disk is zeros: it stays holes.
			if blocks, ok := allocatedBytes(t, got); ok && blocks >= int64(len(gotBytes)) {
				t.Errorf("extracted disk allocates %d bytes of its %d: the zeros were written, not skipped", blocks, len(gotBytes))
			}
		})
	}
}

// allocatedBytes is the space a file takes on disk, where the platform
// says (st_blocks).
func allocatedBytes(t *testing.T, p string) (int64, bool) {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	v := reflect.ValueOf(fi.Sys())
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return 0, false
	}
	f := v.Elem().FieldByName("Blocks")
	if !f.IsValid() || !f.CanInt() {
		return 0, false
	}
	return f.Int() * 512, true
}

func TestExtractDiskArchitectures(t *testing.T) {
	ctx := context.Background()
	store, root, _ := buildLayout(t, containerdisk.Options{}, "amd64", "arm64")
	_, err := ExtractDisk(ctx, store, root, "s390x", t.TempDir())
	var ae *ArchNotFoundError
	if !errors.As(err, &ae) {
		t.Fatalf("s390x from an amd64+arm64 index: %v, want an *ArchNotFoundError", err)
	}
	if !reflect.DeepEqual(ae.Available, []string{"amd64", "arm64"}) || !strings.Contains(err.Error(), "it has amd64, arm64") {
		t.Errorf("error %q (available %v): want it to list amd64, arm64", err, ae.Available)
	}
	if _, err := ExtractDisk(ctx, store, root, "", t.TempDir()); err == nil || !strings.Contains(err.Error(), "amd64, arm64") {
		t.Errorf("no arch asked of a two-arch index: %v, want an error listing them", err)
	}
	if _, err := ExtractDisk(ctx, store, root, "sparc", t.TempDir()); err == nil || !strings.Contains(err.Error(), "architecture") {
		t.Errorf("unknown arch: %v", err)
	}

	single, sroot, _ := buildLayout(t, containerdisk.Options{}, "amd64")
	_, err = ExtractDisk(ctx, single, sroot, "arm64", t.TempDir())
	if !errors.As(err, &ae) || !reflect.DeepEqual(ae.Available, []string{"amd64"}) {
		t.Errorf("arm64 from an amd64 manifest: %v, want an *ArchNotFoundError naming amd64", err)
	}
	// Resolved from a tag, the manifest's descriptor has no platform: the
	// config says the architecture.
	sroot.Platform = nil
	_, err = ExtractDisk(ctx, single, sroot, "arm64", t.TempDir())
	if !errors.As(err, &ae) || !reflect.DeepEqual(ae.Available, []string{"amd64"}) {
		t.Errorf("arm64 from an amd64 manifest without platform: %v, want an *ArchNotFoundError naming amd64", err)
	}
	if _, err := ExtractDisk(ctx, single, sroot, "amd64", t.TempDir()); err != nil {
		t.Errorf("amd64 from an amd64 manifest without platform: %v", err)
	}
}

// tarEntry is one entry of a hand-made layer.
type tarEntry struct {
	name     string
	typeflag byte
	body     string
	link     string
}

// handMadeImage stores a one-layer image with the given entries, the way a
// hostile or broken image could be made, and returns the store and its
// manifest. corrupt flips a byte of the layer as the fetcher serves it.
func handMadeImage(t *testing.T, entries []tarEntry, mediaType string) (*memory.Store, ocispec.Descriptor) {
	t.Helper()
	ctx := context.Background()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typeflag, Mode: 0o444, Linkname: e.link}
		if e.typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if e.typeflag == tar.TypeDir {
			hdr.Mode = 0o555
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	store := memory.New()
	push := func(mt string, b []byte) ocispec.Descriptor {
		d := content.NewDescriptorFromBytes(mt, b)
		if err := store.Push(ctx, d, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		return d
	}
	layer := push(mediaType, buf.Bytes())
	cfg, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}})
	m, _ := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    push(ocispec.MediaTypeImageConfig, cfg),
		Layers:    []ocispec.Descriptor{layer},
	})
	return store, push(ocispec.MediaTypeImageManifest, m)
}

func TestExtractDiskRefuses(t *testing.T) {
	disk := tarEntry{name: "disk/disk.img", typeflag: tar.TypeReg, body: "a disk"}
	dir := tarEntry{name: "disk/", typeflag: tar.TypeDir}
	tests := []struct {
		name      string
		entries   []tarEntry
		mediaType string
		want      string
	}{
		{"path traversal out of disk/", []tarEntry{dir, {name: "disk/../../evil.img", typeflag: tar.TypeReg, body: "x"}}, "", "path traversal"},
		{"path traversal at the root", []tarEntry{{name: "../evil", typeflag: tar.TypeReg, body: "x"}, dir, disk}, "", "path traversal"},
		{"two disks", []tarEntry{dir, disk, {name: "disk/second.qcow2", typeflag: tar.TypeReg, body: "b"}}, "", "two disk files"},
		{"symbolic link", []tarEntry{dir, {name: "disk/disk.img", typeflag: tar.TypeSymlink, link: "/etc/passwd"}}, "", "symbolic link"},
		{"hard link", []tarEntry{dir, {name: "disk/disk.img", typeflag: tar.TypeLink, link: "etc/passwd"}}, "", "hard link"},
		{"subdirectory", []tarEntry{dir, {name: "disk/sub/disk.img", typeflag: tar.TypeReg, body: "x"}}, "", "subdirectory"},
		{"no disk", []tarEntry{{name: "etc/hostname", typeflag: tar.TypeReg, body: "x"}}, "", "no file under disk/"},
		{"unknown media type", []tarEntry{dir, disk}, "application/vnd.example.layer", "media type"},
		{"gzip media type, tar content", []tarEntry{dir, disk}, ocispec.MediaTypeImageLayerGzip, "gzip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mt := tt.mediaType
			if mt == "" {
				mt = ocispec.MediaTypeImageLayer
			}
			store, root := handMadeImage(t, tt.entries, mt)
			out := t.TempDir()
			_, err := ExtractDisk(context.Background(), store, root, "amd64", out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ExtractDisk: %v, want an error about %q", err, tt.want)
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("a refused layer left %d files in the output directory", len(entries))
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(out), "evil.img")); err == nil {
				t.Error("a path traversal wrote outside the output directory")
			}
		})
	}
}

// TestExtractDiskCorruptLayer serves a layer with one byte changed: the
// digest check fails and no disk is left behind.
func TestExtractDiskCorruptLayer(t *testing.T) {
	store, root, _ := buildLayout(t, containerdisk.Options{Compression: containerdisk.CompressionNone}, "amd64")
	ctx := context.Background()
	b, err := content.FetchAll(ctx, store, root)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	corrupt := content.FetcherFunc(func(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
		rc, err := store.Fetch(ctx, d)
		if err != nil || d.Digest != m.Layers[0].Digest {
			return rc, err
		}
		defer rc.Close()
		body, err := io.ReadAll(rc)
		if err != nil {
			return nil, err
		}
		body[len(body)/2] ^= 0xff // inside the disk's data
		return io.NopCloser(bytes.NewReader(body)), nil
	})
	out := t.TempDir()
	_, err = ExtractDisk(ctx, corrupt, root, "amd64", out)
	if err == nil || !strings.Contains(err.Error(), "verifying layer") {
		t.Fatalf("ExtractDisk of a corrupt layer: %v, want a digest error", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("a corrupt layer left %d files in the output directory", len(entries))
	}
}

package publish

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/oci"

	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/customize"
)

func sum(c byte) containerdisk.Checksum {
	return containerdisk.Checksum{Algorithm: "sha256", Hex: strings.Repeat(string(c), 63) + "0"}
}

func TestTags(t *testing.T) {
	g := catalog.Group{Name: "fedora", Version: "42", Releases: []catalog.Release{
		{Arch: "amd64", Tags: []string{"42-1.2", "42"}, Latest: true},
		{Arch: "arm64", Tags: []string{"42-1.2", "42-arm-only"}, Latest: true},
	}}
	now := time.Date(2026, 11, 23, 13, 5, 0, 0, time.FixedZone("CET", 3600))
	if got, want := Tags(g, now), []string{"42-2611231205", "42-1.2", "42", "latest"}; !slices.Equal(got, want) {
		t.Errorf("Tags = %q, want %q", got, want)
	}
	g.Releases[0].Latest, g.Releases[1].Latest = false, false
	if got := Tags(g, now); slices.Contains(got, "latest") {
		t.Errorf("Tags = %q, want no latest", got)
	}
	// Architectures with different builds share no unique tag.
	g.Releases[1].Tags = []string{"42-1.1"}
	if got := UniqueTags(g); len(got) != 0 {
		t.Errorf("UniqueTags = %q, want none", got)
	}
}

func TestDiskName(t *testing.T) {
	for _, tt := range []struct{ url, compression, want string }{
		{"https://x/a/disk.qcow2", "", "disk.qcow2"},
		{"https://x/a/disk.qcow2.xz", "xz", "disk.qcow2"},
		{"https://x/a/disk.raw.gz", "gzip", "disk.raw"},
		{"https://x/a/disk.img.zst", "zstd", "disk.img"},
		{"https://x/a/disk.tar.gz", "", "disk.tar.gz"},
	} {
		if got := DiskName(catalog.Release{URL: tt.url, Compression: tt.compression}); got != tt.want {
			t.Errorf("DiskName(%s, %q) = %q, want %q", tt.url, tt.compression, got, tt.want)
		}
	}
}

// What a registry has is read from the configs' checksum labels: those this
// project writes, and the bare "shasum" of quay.io/containerdisks images.
func TestReadPublished(t *testing.T) {
	ctx := context.Background()
	store, err := oci.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var disks []containerdisk.Disk
	for i, arch := range []string{"amd64", "arm64"} {
		p := filepath.Join(dir, arch+".qcow2")
		if err := testdisk.WriteQCOW2(p, 1<<20, uint64(i), false); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, containerdisk.Disk{Architecture: arch, Path: p, Checksum: sum(byte('a' + i)), Verified: true})
	}
	res, err := containerdisk.Build(ctx, store, disks, containerdisk.Options{Created: time.Unix(0, 0), TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Tag(ctx, res.Root, "42"); err != nil {
		t.Fatal(err)
	}
	// A Docker manifest list has no room for the checksums beside its
	// manifests: they come from the configs.
	docker, err := containerdisk.Build(ctx, store, disks, containerdisk.Options{Format: containerdisk.FormatDocker, Created: time.Unix(0, 0), TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Tag(ctx, docker.Root, "42-docker"); err != nil {
		t.Fatal(err)
	}
	g := catalog.Group{Name: "fedora", Version: "42", Releases: []catalog.Release{
		{Arch: "amd64", Checksum: sum('a')}, {Arch: "arm64", Checksum: sum('b')},
	}}
	p, err := ReadPublished(ctx, store, "42")
	if err != nil {
		t.Fatal(err)
	}
	if p.Root.Digest != res.Root.Digest || !p.UpToDate(g) {
		t.Errorf("published %+v is not up to date with %+v", p, g)
	}
	pd, err := ReadPublished(ctx, store, "42-docker")
	if err != nil || !pd.UpToDate(g) {
		t.Errorf("docker list: %+v, %v; want up to date from the configs", pd, err)
	}
	g.Releases[1].Checksum = sum('c')
	g.Releases = append(g.Releases, catalog.Release{Arch: "s390x", Checksum: sum('d')})
	if p.UpToDate(g) {
		t.Error("a changed checksum and a new architecture are up to date")
	}
	if d := p.Diff(g); !strings.Contains(d, "arm64 sha256:bbbbbbbbbbbb -> sha256:cccccccccccc") || !strings.Contains(d, "s390x new") {
		t.Errorf("Diff = %q", d)
	}
	missing, err := ReadPublished(ctx, store, "41")
	if err != nil || missing.Root.Digest != "" || missing.Diff(g) != "not published yet" {
		t.Errorf("ReadPublished(41) = %+v, %v; want nothing", missing, err)
	}

	// A single-architecture image as quay.io/containerdisks publishes it:
	// Docker schema2, the checksum only in the bare shasum label.
	cfg, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "s390x"},
		Config: ocispec.ImageConfig{Labels: map[string]string{"shasum": strings.Repeat("e", 128)}}})
	cfgDesc := content.NewDescriptorFromBytes(containerdisk.MediaTypeDockerConfig, cfg)
	man, _ := json.Marshal(ocispec.Manifest{MediaType: containerdisk.MediaTypeDockerManifest, Config: cfgDesc})
	manDesc := content.NewDescriptorFromBytes(containerdisk.MediaTypeDockerManifest, man)
	for _, b := range []struct {
		d ocispec.Descriptor
		b []byte
	}{{cfgDesc, cfg}, {manDesc, man}} {
		if err := store.Push(ctx, b.d, strings.NewReader(string(b.b))); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Tag(ctx, manDesc, "old"); err != nil {
		t.Fatal(err)
	}
	old, err := ReadPublished(ctx, store, "old")
	if err != nil {
		t.Fatal(err)
	}
	if c := old.Checksums["s390x"]; c.Algorithm != "sha512" || c.Hex != strings.Repeat("e", 128) {
		t.Errorf("checksum from shasum = %v", c)
	}
}

// One policy names the tags of push --focus and of a pushed record: the
// unique ones first, the moving ones last, each once, and only the
// timestamped and build tags unique.
func TestPolicy(t *testing.T) {
	now := time.Date(2026, 12, 3, 13, 27, 0, 0, time.UTC)
	for _, tt := range []struct {
		name         string
		p            Policy
		tags, unique []string
	}{
		{"catalog release", Policy{Version: "42", Stamp: now, Unique: []string{"42-1.1"}, Latest: true},
			[]string{"42-2612031327", "42-1.1", "42", "latest"}, []string{"42-2612031327", "42-1.1"}},
		{"with --tag", Policy{Version: "42", Stamp: now, Unique: []string{"42-1.1"}, Moving: []string{"stable"}},
			[]string{"42-2612031327", "42-1.1", "stable", "42"}, []string{"42-2612031327", "42-1.1"}},
		{"a build tag that is the version moves", Policy{Version: "42", Unique: []string{"42", "latest", "x", "x"}},
			[]string{"42", "latest", "x"}, []string{"x"}},
		{"no version", Policy{Unique: []string{"a"}, Moving: []string{"b"}}, []string{"a", "b"}, []string{"a"}},
	} {
		if got := tt.p.Tags(); !slices.Equal(got, tt.tags) {
			t.Errorf("%s: Tags = %q, want %q", tt.name, got, tt.tags)
		}
		if got := tt.p.UniqueTags(); !slices.Equal(got, tt.unique) {
			t.Errorf("%s: UniqueTags = %q, want %q", tt.name, got, tt.unique)
		}
	}
}

// The digest of a customization is recorded beside the checksum, and a
// changed (or added, or removed) spec makes the release out of date, read
// from the index's annotations (OCI) or the configs (Docker).
func TestReadPublishedCustomize(t *testing.T) {
	ctx := context.Background()
	store, err := oci.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	spec := &customize.Spec{Commands: []string{"write /etc/motd:hello"}}
	var disks []containerdisk.Disk
	for i, arch := range []string{"amd64", "arm64"} {
		p := filepath.Join(dir, arch+".qcow2")
		if err := testdisk.WriteQCOW2(p, 1<<20, uint64(i), false); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, containerdisk.Disk{Architecture: arch, Path: p, Checksum: sum(byte('a' + i)), Verified: true, Customize: spec.Digest()})
	}
	for tag, format := range map[string]containerdisk.Format{"oci": containerdisk.FormatOCI, "docker": containerdisk.FormatDocker} {
		res, err := containerdisk.Build(ctx, store, disks, containerdisk.Options{Format: format, Created: time.Unix(0, 0), TempDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Tag(ctx, res.Root, tag); err != nil {
			t.Fatal(err)
		}
		p, err := ReadPublished(ctx, store, tag)
		if err != nil {
			t.Fatal(err)
		}
		g := catalog.Group{Name: "web", Version: "1", Releases: []catalog.Release{
			{Arch: "amd64", Checksum: sum('a'), Customize: spec}, {Arch: "arm64", Checksum: sum('b'), Customize: spec},
		}}
		if !p.UpToDate(g) {
			t.Errorf("%s: %+v is not up to date with the same spec", tag, p)
		}
		changed := &customize.Spec{Commands: []string{"write /etc/motd:hello again"}}
		g.Releases[1].Customize = changed
		if p.UpToDate(g) {
			t.Errorf("%s: a changed spec is up to date", tag)
		}
		want := "arm64 customize " + spec.Digest()[:19] + " -> " + changed.Digest()[:19]
		if d := p.Diff(g); d != want {
			t.Errorf("%s: Diff = %q, want %q", tag, d, want)
		}
		g.Releases[1].Customize = nil
		if p.UpToDate(g) || !strings.Contains(p.Diff(g), "arm64 customize sha256:") || !strings.HasSuffix(p.Diff(g), "-> none") {
			t.Errorf("%s: a removed spec: up to date %v, Diff %q", tag, p.UpToDate(g), p.Diff(g))
		}
	}
}

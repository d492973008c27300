// The golden test pins what build and push produce for a fixed input: the
// digests of every index, manifest, config and layer, for each format,
// compression and number of architectures, whether the image goes to an OCI
// layout, to a registry directly, or to a registry by push of the layout,
// and for a catalog entry published by push --focus. It also pins the JSON
// lines those commands print. A change that moves a digest changes what
// every user's scheduled publish pushes again, so it must be deliberate:
// update the literals here in the same commit and say why.
package build_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"oras.land/oras-go/v2/content"

	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
	"github.com/containerdisk/kubectl-containerdisk/internal/testregistry"
	"github.com/containerdisk/kubectl-containerdisk/internal/testupstream"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/plugins/build"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/push"
)

var update = flag.Bool("update", false, "rewrite the golden JSON lines under testdata")

// upstreamHost is the catalog entry's upstream. Its name, not a loopback
// port, goes into the image's source annotation, so the digests are the
// same on every run; requests for it reach upstream through the proxy
// TestMain sets up.
const upstreamHost = "golden.upstream.test"

// upstream serves upstreamHost; see TestMain.
var upstream atomic.Pointer[http.Handler]

func TestMain(m *testing.M) {
	// The in-process registry must not send traces to a collector.
	os.Setenv("OTEL_TRACES_EXPORTER", "none")
	// http.ProxyFromEnvironment reads the variables once, at the first
	// request, and never proxies loopback addresses: the registry is
	// reached directly, upstreamHost through this server.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := upstream.Load()
		if h == nil || r.URL.Host != upstreamHost {
			http.Error(w, "no upstream for "+r.URL.Host, http.StatusBadGateway)
			return
		}
		(*h).ServeHTTP(w, r)
	}))
	os.Setenv("HTTP_PROXY", proxy.URL)
	os.Setenv("http_proxy", proxy.URL)
	os.Unsetenv("NO_PROXY")
	os.Unsetenv("no_proxy")
	code := m.Run()
	proxy.Close()
	os.Exit(code)
}

// Inputs: a qcow2 kept in testdata (made once by qemu-img convert -c -o
// cluster_size=4096 from testdisk.WriteRaw(256 KiB, seed 7), since
// qemu-img's output may differ between its versions), and a raw disk
// testdisk writes the same on every machine. Their checksums are pinned
// too, so a changed input is told apart from a changed build.
const (
	amd64Disk   = "testdata/golden-amd64.qcow2"
	amd64SHA256 = "d596d851d0c4b50424289869d2c6cf667f7e9d6b3787fc36a581b8926e5d3f08"
	arm64SHA256 = "14c78cd9dd578da9ee3f7dc5ae4b1e4e212b65cc9c02910892ba945708e3c6d1"
	created     = "2024-05-01T12:00:00Z"
)

// goldenBuilds are the digests of the images build makes from the inputs,
// by format, compression and architectures, as describe lists them.
var goldenBuilds = map[string]string{
	"docker-gzip-1": `manifest application/vnd.docker.distribution.manifest.v2+json sha256:047a3d6007b4022c5c06f03eb4b4070076031f03254bca80a0a3cbeec8d4fe77
  config sha256:e978d7c653856d4d97916b4ff2dcef4bc52377792092d33d2a78dea1b8c0bd87
  layer application/vnd.docker.image.rootfs.diff.tar.gzip sha256:fd88ab1faf574ba168972c20e165d39f496fedd44c278432ff7c5034f71c62f3
`,
	"docker-gzip-2": `index application/vnd.docker.distribution.manifest.list.v2+json sha256:b5616a7393bf392a03137bad01e0f2e405d84f84d6fe0ec249aff262fff2b160
  manifest linux/amd64 application/vnd.docker.distribution.manifest.v2+json sha256:047a3d6007b4022c5c06f03eb4b4070076031f03254bca80a0a3cbeec8d4fe77
    config sha256:e978d7c653856d4d97916b4ff2dcef4bc52377792092d33d2a78dea1b8c0bd87
    layer application/vnd.docker.image.rootfs.diff.tar.gzip sha256:fd88ab1faf574ba168972c20e165d39f496fedd44c278432ff7c5034f71c62f3
  manifest linux/arm64 application/vnd.docker.distribution.manifest.v2+json sha256:ea8975e75bdad9bca3d0acbca1297e9ee5eb6ad03ddaa27a4f314e2ca34d9960
    config sha256:c81cb36d0e011ea9ad4e0d74f154b0e7ff721601306cc58abbc55f640a7e2e93
    layer application/vnd.docker.image.rootfs.diff.tar.gzip sha256:f8f1bfd75469ad747b98cc8ed1bd60556a30c056206eb81209e11c411e90e5fb
`,
	"docker-none-1": `manifest application/vnd.docker.distribution.manifest.v2+json sha256:75fb25d2d35f6542c6ddcfbfb609e4696941f983bc61d0ec74fcc0986795bcac
  config sha256:e978d7c653856d4d97916b4ff2dcef4bc52377792092d33d2a78dea1b8c0bd87
  layer application/vnd.docker.image.rootfs.diff.tar sha256:0d068eb4d9a41f80db75b979f551f32aae94e54401d909fc1b60c6a4efc7183c
`,
	"docker-none-2": `index application/vnd.docker.distribution.manifest.list.v2+json sha256:01410d7e4deb684dc64400b58b46ee99d54cd7e4c9ca14a343410d4078a3e229
  manifest linux/amd64 application/vnd.docker.distribution.manifest.v2+json sha256:75fb25d2d35f6542c6ddcfbfb609e4696941f983bc61d0ec74fcc0986795bcac
    config sha256:e978d7c653856d4d97916b4ff2dcef4bc52377792092d33d2a78dea1b8c0bd87
    layer application/vnd.docker.image.rootfs.diff.tar sha256:0d068eb4d9a41f80db75b979f551f32aae94e54401d909fc1b60c6a4efc7183c
  manifest linux/arm64 application/vnd.docker.distribution.manifest.v2+json sha256:f899e88e76313b6a65723d54c1a213cf6b7a875e4a23f7c44b35b7013f35d16e
    config sha256:c81cb36d0e011ea9ad4e0d74f154b0e7ff721601306cc58abbc55f640a7e2e93
    layer application/vnd.docker.image.rootfs.diff.tar sha256:e140c34527994dfd884c5dbd961ff77a40e4ced6cce94ef6775236307303d3f5
`,
	"oci-gzip-1": `manifest application/vnd.oci.image.manifest.v1+json sha256:6a972916fd7ea99bbcd0b22c44128d63fddfbe99aabb750347b2e2b2c5a858c3
  config sha256:e978d7c653856d4d97916b4ff2dcef4bc52377792092d33d2a78dea1b8c0bd87
  layer application/vnd.oci.image.layer.v1.tar+gzip sha256:fd88ab1faf574ba168972c20e165d39f496fedd44c278432ff7c5034f71c62f3
`,
	"oci-gzip-2": `index application/vnd.oci.image.index.v1+json sha256:8934740ab56753fcc5bc45270a8467acc3a1942cd33e9dbd4fc284d23df5af99
  manifest linux/amd64 application/vnd.oci.image.manifest.v1+json sha256:6a972916fd7ea99bbcd0b22c44128d63fddfbe99aabb750347b2e2b2c5a858c3
    config sha256:e978d7c653856d4d97916b4ff2dcef4bc52377792092d33d2a78dea1b8c0bd87
    layer application/vnd.oci.image.layer.v1.tar+gzip sha256:fd88ab1faf574ba168972c20e165d39f496fedd44c278432ff7c5034f71c62f3
  manifest linux/arm64 application/vnd.oci.image.manifest.v1+json sha256:f0a179a5ef881a3bd27edf84f2cea952d078cebdfc7f21deefa2e95f3b192d11
    config sha256:c81cb36d0e011ea9ad4e0d74f154b0e7ff721601306cc58abbc55f640a7e2e93
    layer application/vnd.oci.image.layer.v1.tar+gzip sha256:f8f1bfd75469ad747b98cc8ed1bd60556a30c056206eb81209e11c411e90e5fb
`,
	"oci-none-1": `manifest application/vnd.oci.image.manifest.v1+json sha256:0b6d543498043844ec3348d55fe3afb5422a8039f2e5b2b7ce92cd479b534d65
  config sha256:e978d7c653856d4d97916b4ff2dcef4bc52377792092d33d2a78dea1b8c0bd87
  layer application/vnd.oci.image.layer.v1.tar sha256:0d068eb4d9a41f80db75b979f551f32aae94e54401d909fc1b60c6a4efc7183c
`,
	"oci-none-2": `index application/vnd.oci.image.index.v1+json sha256:512ec0f14e70794586a5cb5fc11383656fb3ab6ed84e33d2b2dc2543ab9d27ff
  manifest linux/amd64 application/vnd.oci.image.manifest.v1+json sha256:0b6d543498043844ec3348d55fe3afb5422a8039f2e5b2b7ce92cd479b534d65
    config sha256:e978d7c653856d4d97916b4ff2dcef4bc52377792092d33d2a78dea1b8c0bd87
    layer application/vnd.oci.image.layer.v1.tar sha256:0d068eb4d9a41f80db75b979f551f32aae94e54401d909fc1b60c6a4efc7183c
  manifest linux/arm64 application/vnd.oci.image.manifest.v1+json sha256:f98c4e270fecbe65ddbaa191ceb9fb2392d5271cec9ab04b5d3eeb8ac9405441
    config sha256:c81cb36d0e011ea9ad4e0d74f154b0e7ff721601306cc58abbc55f640a7e2e93
    layer application/vnd.oci.image.layer.v1.tar sha256:e140c34527994dfd884c5dbd961ff77a40e4ced6cce94ef6775236307303d3f5
`,
	"oci-zstd-1": `manifest application/vnd.oci.image.manifest.v1+json sha256:6f0cc428848e5a4172f6228b927facf84e0294d52243176a5f41cdc9145c061c
  config sha256:e978d7c653856d4d97916b4ff2dcef4bc52377792092d33d2a78dea1b8c0bd87
  layer application/vnd.oci.image.layer.v1.tar+zstd sha256:01cd35772bf295fce56ebd5cfeeb6f783fbcf8d8c8b03fb512df3bead09173b5
`,
	"oci-zstd-2": `index application/vnd.oci.image.index.v1+json sha256:889e201dfca28a51bcb6cd56f509551c56c2c23098680dc851900e2194e44920
  manifest linux/amd64 application/vnd.oci.image.manifest.v1+json sha256:6f0cc428848e5a4172f6228b927facf84e0294d52243176a5f41cdc9145c061c
    config sha256:e978d7c653856d4d97916b4ff2dcef4bc52377792092d33d2a78dea1b8c0bd87
    layer application/vnd.oci.image.layer.v1.tar+zstd sha256:01cd35772bf295fce56ebd5cfeeb6f783fbcf8d8c8b03fb512df3bead09173b5
  manifest linux/arm64 application/vnd.oci.image.manifest.v1+json sha256:7139f3915e16f1c9182649bc7316709783f00ada5ad4b1b6c122b322bad33795
    config sha256:c81cb36d0e011ea9ad4e0d74f154b0e7ff721601306cc58abbc55f640a7e2e93
    layer application/vnd.oci.image.layer.v1.tar+zstd sha256:ec228735d7c51fe4c4b0b39af69736743260e8651c0d0ebd167a6338325a22ef
`,
}

// goldenCatalog are the digests push --focus publishes for the catalog
// entry golden:1.0, by format and compression.
var goldenCatalog = map[string]string{
	"docker-gzip": `index application/vnd.docker.distribution.manifest.list.v2+json sha256:eb95bc3815885c56ba269e28fcef768d808e77c38063b1197b770c4a301af0b6
  manifest linux/amd64 application/vnd.docker.distribution.manifest.v2+json sha256:ac11a9e5a1aad6f89a2f9534c0444e406743ee1a0479bcdba5d93458fbe80a53
    config sha256:62921871cb78fd702ff84eef5b2c081a98255ec558f7df81a08ce353225903b0
    layer application/vnd.docker.image.rootfs.diff.tar.gzip sha256:39c24b22b0f6068990d5a0cb64d9d97df8e6dfcc0629c09d19cc09aa8fda98db
  manifest linux/arm64 application/vnd.docker.distribution.manifest.v2+json sha256:7e07f23c8069771f1b1cc140d57ad6978116f1f430c1991f47e02c99b99b703e
    config sha256:ac6e4c7fa31332312c2280744065bc38bb377cb680e5d7a176e1b4923f6d96c0
    layer application/vnd.docker.image.rootfs.diff.tar.gzip sha256:e36238d07f2f88927325d54c20923481b6b049d1c788b9c5cd5abb0ece2de60d
`,
	"oci-gzip": `index application/vnd.oci.image.index.v1+json sha256:2d406b49efd51820d6d9950997177bce66a8d2871b9d292b7eeca76eee94934b
  manifest linux/amd64 application/vnd.oci.image.manifest.v1+json sha256:c11f26e1f8d54fd3a484213bd826f43d7b158e91e3a50fbac2781e2d88ce9639
    config sha256:62921871cb78fd702ff84eef5b2c081a98255ec558f7df81a08ce353225903b0
    layer application/vnd.oci.image.layer.v1.tar+gzip sha256:39c24b22b0f6068990d5a0cb64d9d97df8e6dfcc0629c09d19cc09aa8fda98db
  manifest linux/arm64 application/vnd.oci.image.manifest.v1+json sha256:84dc927f84a19c169369fe9a228f4a4f47f25b212896062cc7b4397ac3cc1a3a
    config sha256:ac6e4c7fa31332312c2280744065bc38bb377cb680e5d7a176e1b4923f6d96c0
    layer application/vnd.oci.image.layer.v1.tar+gzip sha256:e36238d07f2f88927325d54c20923481b6b049d1c788b9c5cd5abb0ece2de60d
`,
	"oci-zstd": `index application/vnd.oci.image.index.v1+json sha256:bc9753b14ee6e53bd897d8a51ee4b8777a152809fe983175c19dd32e5e56a1c9
  manifest linux/amd64 application/vnd.oci.image.manifest.v1+json sha256:5462cde055e57b122ab0d6afa266e28ba411e9a2a3e87b095bb3dd27e826e9ae
    config sha256:62921871cb78fd702ff84eef5b2c081a98255ec558f7df81a08ce353225903b0
    layer application/vnd.oci.image.layer.v1.tar+zstd sha256:5420d66d0ee376411ca8b13ab586900e4019536fafc71e93ee953f0051361db9
  manifest linux/arm64 application/vnd.oci.image.manifest.v1+json sha256:b2e1e92c01f76fcafaf4201be610c132c6bed42b97f0c6be2d3bc6bd3fe553ff
    config sha256:ac6e4c7fa31332312c2280744065bc38bb377cb680e5d7a176e1b4923f6d96c0
    layer application/vnd.oci.image.layer.v1.tar+zstd sha256:795523118a26292defa96dd15fd177e0456087953e187b36b5dd9177bc08a87b
`,
}

// writeInputs writes the disks into dir and returns their paths, checking
// that they are the pinned bytes.
func writeInputs(t *testing.T, dir string) (amd64, arm64 string) {
	t.Helper()
	data, err := os.ReadFile(amd64Disk)
	if err != nil {
		t.Fatal(err)
	}
	amd64 = filepath.Join(dir, "amd64.qcow2")
	if err := os.WriteFile(amd64, data, 0o644); err != nil {
		t.Fatal(err)
	}
	arm64 = filepath.Join(dir, "arm64.raw")
	if err := testdisk.WriteRaw(arm64, 320<<10, 8); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{amd64: amd64SHA256, arm64: arm64SHA256} {
		if got := fileSHA256(t, path); got != want {
			t.Fatalf("input %s has sha256 %s, want %s: the input changed, not the build", filepath.Base(path), got, want)
		}
	}
	return amd64, arm64
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestGoldenDigests builds every format × compression (but Docker with
// zstd, which build refuses) × one or two
// architectures into a layout and into the registry, pushes each layout
// to the registry, and checks that all three hold the pinned digests.
func TestGoldenDigests(t *testing.T) {
	ctx := t.Context()
	t.Setenv("SOURCE_DATE_EPOCH", "")
	work := t.TempDir()
	amd64, arm64 := writeInputs(t, work)
	reg := testregistry.New(t)
	var records bytes.Buffer
	got := map[string]string{}
	for _, format := range []string{"oci", "docker"} {
		for _, compression := range []string{"gzip", "zstd", "none"} {
			if format == "docker" && compression == "zstd" {
				continue // refused: Docker schema2 has no zstd layers
			}
			for _, arches := range []int{1, 2} {
				name := fmt.Sprintf("%s-%s-%d", format, compression, arches)
				args := []string{"--disk", "amd64=" + amd64, "--format", format, "--compression", compression,
					"--created", created, "--version", "1.0", "--source", "https://example.org/golden", "-q", "-o", "json"}
				if arches == 2 {
					args = append(args, "--disk", "arm64="+arm64)
				}
				layout := "oci:" + filepath.Join(work, name) + ":1.0"
				built := reg.Host + "/built/" + name + ":1.0"
				pushed := reg.Host + "/pushed/" + name + ":1.0"
				out := run(ctx, t, build.NewCommand, append(args, layout)...)
				keep(&records, name == "oci-gzip-2", out)
				out = run(ctx, t, build.NewCommand, append(args, built)...)
				keep(&records, name == "oci-gzip-2", out)
				out = run(ctx, t, push.NewCommand, layout, "--to", pushed, "--dry-run=false", "-q", "-o", "json")
				keep(&records, name == "oci-gzip-2", out)

				want := describe(ctx, t, layout)
				got[name] = want
				for _, ref := range []string{built, pushed} {
					if d := describe(ctx, t, ref); d != want {
						t.Errorf("%s: %s holds\n%s\nwhile the layout holds\n%s", name, ref, d, want)
					}
				}
			}
		}
	}
	checkGolden(t, "goldenBuilds", got, goldenBuilds)
	checkRecords(t, "testdata/golden-build-push.jsonl", records.Bytes(), map[string]string{work: "$WORK", reg.Host: "$REGISTRY"})
}

// TestGoldenCatalog publishes a two-architecture catalog entry with push
// --focus, from an upstream whose files have a fixed modification time,
// and checks the digests and the records.
func TestGoldenCatalog(t *testing.T) {
	ctx := t.Context()
	t.Setenv("SOURCE_DATE_EPOCH", "")
	work := t.TempDir()
	amd64, arm64 := writeInputs(t, work)
	site, err := testupstream.New(filepath.Join(work, "upstream"))
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = site
	upstream.Store(&h)
	t.Cleanup(func() { upstream.Store(nil) })
	// The creation time of a catalog image is its upstream file's
	// Last-Modified date.
	mtime := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for arch, path := range map[string]string{"amd64": amd64, "arm64": arm64} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		name := "golden/1.0/disk-" + arch + ".img"
		if err := site.WriteFile(name, data); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(site.Dir, filepath.FromSlash(name)), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	catalogFile := filepath.Join(work, "catalog.yaml")
	cat := fmt.Sprintf(`entries:
- name: golden
  base: http://%s
  versions: ["1.0"]
  arches: [amd64, arm64]
  url: "{{.Base}}/golden/{{.Version}}/disk-{{.Arch}}.img"
  checksum:
    algorithm: sha256
    values:
      amd64: %s
      arm64: %s
`, upstreamHost, amd64SHA256, arm64SHA256)
	if err := os.WriteFile(catalogFile, []byte(cat), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := testregistry.New(t)
	var records bytes.Buffer
	got := map[string]string{}
	for _, c := range []struct{ format, compression string }{{"oci", "gzip"}, {"oci", "zstd"}, {"docker", "gzip"}} {
		name := c.format + "-" + c.compression
		prefix := reg.Host + "/" + name
		out := run(ctx, t, push.NewCommand, "--catalog", catalogFile, "--focus", "golden:1.0", "--dry-run=false",
			"--to", prefix, "--format", c.format, "--compression", c.compression,
			"--cache-dir", filepath.Join(work, "cache-"+name), "--temp-dir", work, "-q", "-o", "json")
		keep(&records, true, out)
		got[name] = describe(ctx, t, prefix+"/golden:1.0")
	}
	checkGolden(t, "goldenCatalog", got, goldenCatalog)
	// The timestamped tag is the clock's: VERSION-YYMMDDhhmm.
	stamp := regexp.MustCompile(`"1\.0-[0-9]{10}"`)
	checkRecords(t, "testdata/golden-catalog.jsonl", stamp.ReplaceAll(records.Bytes(), []byte(`"1.0-YYMMDDhhmm"`)),
		map[string]string{work: "$WORK", reg.Host: "$REGISTRY"})
}

// run runs a command in-process and returns its stdout; any exit status
// but 0 fails t.
func run(ctx context.Context, t *testing.T, newCmd func(cli.Streams) *cobra.Command, args ...string) []byte {
	t.Helper()
	var out, errOut bytes.Buffer
	streams := cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	if code := cli.Run(ctx, streams, "kubectl containerdisk", args, newCmd); code != cli.ExitOK {
		t.Fatalf("%s: exit status %d\n%s", strings.Join(args, " "), code, errOut.String())
	}
	return out.Bytes()
}

func keep(w *bytes.Buffer, ok bool, out []byte) {
	if ok {
		w.Write(out)
	}
}

// describe lists the graph under ref, depth first in the order of the
// index and the manifests: each node's kind, platform and digest.
func describe(ctx context.Context, t *testing.T, ref string) string {
	t.Helper()
	r, err := target.Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	src, err := target.OpenSource(ctx, r, target.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root, err := src.Resolve(ctx, r.Reference)
	if err != nil {
		t.Fatalf("resolving %s: %v", ref, err)
	}
	var b strings.Builder
	// A platform is told only as an index lists it: a layout records one
	// for its tagged root too, a registry does not.
	var walk func(d ocispec.Descriptor, indent string, inIndex bool)
	walk = func(d ocispec.Descriptor, indent string, inIndex bool) {
		data, err := content.FetchAll(ctx, src, d)
		if err != nil {
			t.Fatalf("fetching %s from %s: %v", d.Digest, ref, err)
		}
		var m struct {
			Manifests []ocispec.Descriptor `json:"manifests"`
			Config    *ocispec.Descriptor  `json:"config"`
			Layers    []ocispec.Descriptor `json:"layers"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("reading %s from %s: %v", d.Digest, ref, err)
		}
		if m.Config == nil {
			fmt.Fprintf(&b, "%sindex %s %s\n", indent, d.MediaType, d.Digest)
			for _, c := range m.Manifests {
				walk(c, indent+"  ", true)
			}
			return
		}
		platform := ""
		if inIndex && d.Platform != nil {
			platform = " " + d.Platform.OS + "/" + d.Platform.Architecture
		}
		fmt.Fprintf(&b, "%smanifest%s %s %s\n", indent, platform, d.MediaType, d.Digest)
		fmt.Fprintf(&b, "%s  config %s\n", indent, m.Config.Digest)
		for _, l := range m.Layers {
			if _, err := content.FetchAll(ctx, src, l); err != nil {
				t.Fatalf("fetching layer %s from %s: %v", l.Digest, ref, err)
			}
			fmt.Fprintf(&b, "%s  layer %s %s\n", indent, l.MediaType, l.Digest)
		}
	}
	walk(root, "", false)
	return b.String()
}

// checkGolden compares got with the pinned want and, when they differ,
// prints got as Go source to paste over the literal named name.
func checkGolden(t *testing.T, name string, got, want map[string]string) {
	t.Helper()
	same := len(got) == len(want)
	for k, v := range got {
		if want[k] != v {
			same = false
			t.Errorf("%s: digests changed:\ngot\n%s\nwant\n%s", k, v, want[k])
		}
	}
	if same {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "var %s = map[string]string{\n", name)
	for _, k := range sortedKeys(got) {
		fmt.Fprintf(&b, "\t%q: `%s`,\n", k, got[k])
	}
	b.WriteString("}\n")
	dump := filepath.Join(os.TempDir(), name+".go.txt")
	if err := os.WriteFile(dump, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Errorf("if the change is deliberate, paste %s, which holds the new %s, over it", dump, name)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checkRecords compares the JSON lines got, with the strings of replace
// replaced by their placeholders, with the golden file.
func checkRecords(t *testing.T, golden string, got []byte, replace map[string]string) {
	t.Helper()
	for from, to := range replace {
		got = bytes.ReplaceAll(got, []byte(from), []byte(to))
	}
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the JSON lines differ from %s (go test -run %s -update rewrites it):\ngot\n%s\nwant\n%s", golden, t.Name(), got, want)
	}
}

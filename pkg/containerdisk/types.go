// Package containerdisk builds KubeVirt containerdisk images: OCI images
// whose single layer holds disk/<file>, owned by uid/gid 107 (qemu), that
// KubeVirt boots a virtual machine from.
package containerdisk

import (
	"fmt"
	"slices"
	"strings"

	"github.com/containerdisk/kubectl-containerdisk/pkg/inputerr"
)

// Media types of the two manifest formats the builder writes.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
)

// Labels and environment written into every image config.
const (
	// LabelShasum carries the bare upstream checksum, as the images of
	// quay.io/containerdisks do; consumers compare it to decide on rebuilds.
	LabelShasum = "shasum"
	// LabelChecksum carries the upstream checksum with its algorithm
	// ("sha256:…", "sha512:…"), which LabelShasum leaves out.
	LabelChecksum = "io.containerdisk.checksum"
	// LabelCustomize carries the digest of the customization applied to
	// the upstream disk (customize.Spec.Digest), on customized images
	// only: with LabelChecksum it says what the disk was made from.
	LabelCustomize = "io.containerdisk.customize.digest"
	// EnvInstancetype names the default KubeVirt instancetype.
	EnvInstancetype = "INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE"
	// EnvPreference names the default KubeVirt preference.
	EnvPreference = "INSTANCETYPE_KUBEVIRT_IO_DEFAULT_PREFERENCE"
	// NoEntrypoint is the entrypoint crun-vm expects of a containerdisk.
	NoEntrypoint = "no-entrypoint"
	// QemuID is the uid and gid of the qemu user that reads the disk.
	QemuID = 107
)

// Format is the manifest format written.
type Format string

// Manifest formats.
const (
	FormatOCI    Format = "oci"
	FormatDocker Format = "docker"
)

// Compression is the layer compression.
type Compression string

// Layer compressions.
const (
	CompressionGzip Compression = "gzip"
	CompressionZstd Compression = "zstd"
	CompressionNone Compression = "none"
)

// Architectures KubeVirt runs containerdisks on, in the order images list them.
var Architectures = []string{"amd64", "arm64", "s390x"}

// archAliases maps upstream architecture names to OCI ones.
var archAliases = map[string]string{"x86_64": "amd64", "aarch64": "arm64"}

// NormalizeArch returns the OCI name of an architecture, accepting the
// names upstream distributions use (x86_64, aarch64).
func NormalizeArch(arch string) (string, error) {
	a := strings.ToLower(strings.TrimSpace(arch))
	if alias, ok := archAliases[a]; ok {
		a = alias
	}
	if !slices.Contains(Architectures, a) {
		return "", &inputerr.Error{Input: arch, What: "unknown architecture", Expected: "one of " + strings.Join(Architectures, ", ") + " (x86_64 and aarch64 are accepted too)"}
	}
	return a, nil
}

// ParseFormat parses a manifest format name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case FormatOCI, FormatDocker:
		return f, nil
	}
	return "", &inputerr.Error{Input: s, What: "unknown format", Expected: "oci or docker"}
}

// ParseCompression parses a layer compression name.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(strings.ToLower(s)); c {
	case CompressionGzip, CompressionZstd, CompressionNone:
		return c, nil
	}
	return "", &inputerr.Error{Input: s, What: "unknown compression", Expected: "gzip, zstd or none"}
}

// Checksum is a checksum of the upstream disk file with its algorithm.
type Checksum struct {
	Algorithm string
	Hex       string
}

// String formats the checksum as "algorithm:hex".
func (c Checksum) String() string {
	if c.Hex == "" {
		return ""
	}
	return c.Algorithm + ":" + c.Hex
}

// IsZero reports whether no checksum is set.
func (c Checksum) IsZero() bool { return c.Hex == "" }

// ParseChecksum parses "sha256:hex" or "sha512:hex".
func ParseChecksum(s string) (Checksum, error) {
	alg, hex, ok := strings.Cut(strings.TrimSpace(s), ":")
	c := Checksum{Algorithm: strings.ToLower(alg), Hex: strings.ToLower(hex)}
	want, known := hexLengths[c.Algorithm]
	if !ok || !known {
		return Checksum{}, &inputerr.Error{Input: s, What: "unknown checksum", Expected: "ALGORITHM:HEX with algorithm sha256 or sha512"}
	}
	if len(c.Hex) != want || strings.Trim(c.Hex, "0123456789abcdef") != "" {
		return Checksum{}, &inputerr.Error{Input: s, What: "unknown checksum", Expected: fmt.Sprintf("%d hex digits after %q", want, c.Algorithm+":")}
	}
	return c, nil
}

var hexLengths = map[string]int{"sha256": 64, "sha512": 128}

// ChecksumMismatchError reports a disk file whose checksum differs from the
// one it was announced with.
type ChecksumMismatchError struct {
	Path     string
	Expected Checksum
	Actual   Checksum
}

func (e *ChecksumMismatchError) Error() string {
	return fmt.Sprintf("disk %q: checksum mismatch: expected %s, got %s; the file is corrupt or not the announced release, download it again", e.Path, e.Expected, e.Actual)
}

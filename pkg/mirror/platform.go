package mirror

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PlatformMode says how CopyImage leaves platforms out of a
// multi-platform image: PlatformRewrite or PlatformSparse.
type PlatformMode string

// AnnotationSourceDigest records, in an index PlatformRewrite wrote, the
// digest of the source index it was made from.
const AnnotationSourceDigest = "io.containerdisk.mirror.source-digest"

// Annotations with which docker buildx ties an attestation manifest to the
// image it describes, in an index where its platform is unknown/unknown.
const (
	annotationReferenceType   = "vnd.docker.reference.type"
	annotationReferenceDigest = "vnd.docker.reference.digest"
	attestationManifest       = "attestation-manifest"
)

// platformSpec is a chosen platform, normalised.
type platformSpec struct {
	os, arch, variant string
}

// Names of operating systems and architectures, as Go and OCI spell them:
// a name outside these is most likely a typing error.
var (
	knownOS   = []string{"aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios", "js", "linux", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows"}
	knownArch = []string{"386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64", "ppc64le", "riscv64", "s390x", "wasm"}
	// archAlias maps the names distributions use (NOTES: Fedora, CentOS
	// and openSUSE say x86_64 and aarch64) to the OCI name.
	archAlias = map[string]string{"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "i386": "386", "i686": "386"}
)

const platformForms = "os/architecture[/variant] such as linux/amd64 or linux/arm64/v8, or an architecture alone such as amd64 (meaning linux/amd64)"

// NormalizePlatform returns the canonical form of a platform name:
// "os/architecture" or "os/architecture/variant", lower case, with "linux"
// for an architecture given alone, the OCI name for x86_64 and aarch64, and
// no variant where it is the architecture's default (arm64/v8, amd64/v1).
func NormalizePlatform(s string) (string, error) {
	p, err := parsePlatform(s)
	if err != nil {
		return "", err
	}
	return p.String(), nil
}

func parsePlatform(s string) (platformSpec, error) {
	bad := func(reason string) (platformSpec, error) {
		return platformSpec{}, fmt.Errorf("platform %q: %s; expected %s", s, reason, platformForms)
	}
	parts := strings.Split(strings.ToLower(strings.TrimSpace(s)), "/")
	var p platformSpec
	switch len(parts) {
	case 1:
		p = platformSpec{os: "linux", arch: parts[0]}
	case 2:
		p = platformSpec{os: parts[0], arch: parts[1]}
	case 3:
		p = platformSpec{os: parts[0], arch: parts[1], variant: parts[2]}
	default:
		return bad("too many parts")
	}
	if slices.Contains(parts, "") {
		return bad("an empty part")
	}
	if !slices.Contains(knownOS, p.os) {
		return bad(fmt.Sprintf("unknown operating system %q", p.os))
	}
	p.arch, p.variant = normalizeArch(p.arch, p.variant)
	if !slices.Contains(knownArch, p.arch) {
		return bad(fmt.Sprintf("unknown architecture %q", p.arch))
	}
	return p, nil
}

// normalizeArch maps aliases to OCI names, writes a bare variant number as
// "v8", and drops default variants.
func normalizeArch(arch, variant string) (string, string) {
	arch, variant = strings.ToLower(arch), strings.ToLower(variant)
	if a, ok := archAlias[arch]; ok {
		arch = a
	}
	if variant != "" && strings.Trim(variant, "0123456789") == "" {
		variant = "v" + variant
	}
	if (arch == "arm64" && variant == "v8") || (arch == "amd64" && variant == "v1") {
		variant = ""
	}
	return arch, variant
}

// String returns the canonical "os/arch[/variant]".
func (p platformSpec) String() string {
	s := p.os + "/" + p.arch
	if p.variant != "" {
		s += "/" + p.variant
	}
	return s
}

// matches reports whether an image of platform q is chosen by p. A choice
// without a variant takes every variant of its architecture.
func (p platformSpec) matches(q *ocispec.Platform) bool {
	if q == nil {
		return false
	}
	arch, variant := normalizeArch(q.Architecture, q.Variant)
	return strings.ToLower(q.OS) == p.os && arch == p.arch && (p.variant == "" || variant == p.variant)
}

// platformName is the canonical name of an image's platform, "unknown"
// when it has none.
func platformName(q *ocispec.Platform) string {
	if q == nil || q.Architecture == "" {
		return "unknown"
	}
	arch, variant := normalizeArch(q.Architecture, q.Variant)
	return platformSpec{os: strings.ToLower(q.OS), arch: arch, variant: variant}.String()
}

func parsePlatforms(names []string) ([]platformSpec, error) {
	var out []platformSpec
	var errs []error
	for _, n := range names {
		p, err := parsePlatform(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, errors.Join(errs...)
}

func chosenBy(chosen []platformSpec, q *ocispec.Platform) bool {
	return slices.ContainsFunc(chosen, func(p platformSpec) bool { return p.matches(q) })
}

// NoPlatformError reports an image that has none of the chosen platforms.
type NoPlatformError struct {
	// Image is the source reference.
	Image string
	// Chosen are the chosen platforms and Available the image's, both in
	// canonical form.
	Chosen, Available []string
}

func (e *NoPlatformError) Error() string {
	return fmt.Sprintf("no chosen platform in %s: chose %s, and it has %s; choose one of its platforms, or none to copy them all",
		e.Image, strings.Join(e.Chosen, ", "), strings.Join(e.Available, ", "))
}

// chooseManifests returns the entries of an index that the chosen
// platforms keep, in index order: the images of a chosen platform, and the
// attestation manifests that describe those images.
func chooseManifests(manifests []ocispec.Descriptor, chosen []platformSpec) []ocispec.Descriptor {
	kept := map[digest.Digest]bool{}
	for _, m := range manifests {
		if chosenBy(chosen, m.Platform) {
			kept[m.Digest] = true
		}
	}
	var out []ocispec.Descriptor
	for _, m := range manifests {
		if kept[m.Digest] || (m.Annotations[annotationReferenceType] == attestationManifest && kept[digest.Digest(m.Annotations[annotationReferenceDigest])]) {
			out = append(out, m)
		}
	}
	return out
}

// rewriteIndex returns the index raw with only the manifests keep (a
// subset of its own, by digest) and the annotation AnnotationSourceDigest
// set to source. Every other field, known to this program or not, and
// every kept entry, stays as the source wrote it, so that the same source
// and choice always give the same bytes.
func rewriteIndex(raw []byte, keep []ocispec.Descriptor, source digest.Digest) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("reading index %s: %w", source, err)
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(fields["manifests"], &entries); err != nil {
		return nil, fmt.Errorf("reading the manifests of index %s: %w", source, err)
	}
	want := map[digest.Digest]bool{}
	for _, d := range keep {
		want[d.Digest] = true
	}
	kept := []json.RawMessage{}
	for _, e := range entries {
		var d ocispec.Descriptor
		if err := json.Unmarshal(e, &d); err != nil {
			return nil, fmt.Errorf("reading the manifests of index %s: %w", source, err)
		}
		if want[d.Digest] {
			kept = append(kept, e)
		}
	}
	annotations := map[string]string{}
	if a, ok := fields["annotations"]; ok {
		if err := json.Unmarshal(a, &annotations); err != nil {
			return nil, fmt.Errorf("reading the annotations of index %s: %w", source, err)
		}
		if annotations == nil { // "annotations": null
			annotations = map[string]string{}
		}
	}
	annotations[AnnotationSourceDigest] = source.String()
	var err error
	if fields["manifests"], err = json.Marshal(kept); err != nil {
		return nil, err
	}
	if fields["annotations"], err = json.Marshal(annotations); err != nil {
		return nil, err
	}
	return json.Marshal(fields)
}

package opensuse

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/containerdisk/kubectl-containerdisk/artifacts/internal/tree"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

// NewLeap returns openSUSE Leap: every N.M version directory under
// distribution/leap/ with 15 <= N < 42, and in its appliances/ directory the
// Minimal-VM Cloud image of each architecture that has a checksum file.
//
// The image is found by its unversioned name (an alias upstream replaces
// with each build):
//
//	15.x:  openSUSE-Leap-<v>-Minimal-VM.<arch>-Cloud.qcow2
//	16.0+: Leap-<v>-Minimal-VM.<arch>-Cloud.qcow2
//
// with <arch>-Cloud written "s390x-s390x-Cloud" for s390x, and its checksum
// is read from the alias + ".sha256". When the directory also lists the
// build-stamped file of the same image,
//
//	<alias without "-Cloud.qcow2">-<kiwi version>-Cloud-Build<build>.qcow2
//
// (e.g. openSUSE-Leap-15.6-Minimal-VM.x86_64-15.6.0-Cloud-Build16.35.qcow2)
// whose own .sha256 has the same checksum, the release points at that
// immutable file instead, with Build "16.35" and the unique tag
// "<v>-<build>" ("15.6-16.35"). Without one it keeps the alias, and has no
// Build and no unique tag.
//
// Every release is Stable: a version directory's name carries no
// prerelease mark.
func NewLeap() catalog.Distro { return leap{} }

type leap struct{}

// Name is the image repository name.
func (leap) Name() string { return "opensuse-leap" }

// DefaultBase is download.opensuse.org.
func (leap) DefaultBase() string { return defaultBase }

// leapVersionDir matches the version directories of distribution/leap/.
// Leap 42.x is the numbering used before 15, and so older than it; 14 and
// below never were Leap versions.
var leapVersionDir = regexp.MustCompile(`^(\d+)\.(\d+)$`)

// Releases returns the latest Minimal-VM Cloud image of every Leap version
// and architecture, ordered by version, then architecture. A version
// directory without any such image (an old one, or one opened before its
// first build) is left out, as is an architecture without a checksum file.
func (l leap) Releases(ctx context.Context, env catalog.Env) ([]catalog.Release, error) {
	indexURL := env.URL("distribution", "leap") + "/"
	versions, err := tree.Versions(ctx, env, indexURL, func(dir string) (string, bool) {
		m := leapVersionDir.FindStringSubmatch(dir)
		if m == nil {
			return "", false
		}
		major, _ := strconv.Atoi(m[1])
		return dir, major >= 15 && major < 42
	})
	if err != nil {
		return nil, fmt.Errorf("listing Leap versions: %w", err)
	}
	if len(versions) == 0 {
		return nil, fmt.Errorf("%s lists no Leap version: expected directories N.M/ with 15 <= N < 42, such as 15.6/ (check the --mirror URL)", indexURL)
	}
	rels, err := tree.ForEach(ctx, versions, func(v string) []catalog.Release { return l.version(ctx, env, v) })
	if err != nil {
		return nil, err
	}
	if len(rels) == 0 {
		return nil, errNothingFound("Leap Minimal-VM Cloud image", indexURL)
	}
	return rels, nil
}

// version returns the releases of one Leap version, in architecture order.
func (l leap) version(ctx context.Context, env catalog.Env, v string) []catalog.Release {
	dir := env.URL("distribution", "leap", v, "appliances") + "/"
	var (
		rels    []catalog.Release
		index   []string
		indexed bool
	)
	for _, arch := range containerdisk.Architectures {
		img := newLeapImage(v, tree.UpstreamArch[arch])
		rel := catalog.Release{
			Name:    l.Name(),
			Version: v,
			Arch:    arch,
			Stable:  true,
			Metadata: metadata(
				fmt.Sprintf("openSUSE Leap %s, the regular openSUSE release built on SUSE Linux Enterprise sources, as its Minimal-VM cloud image.", v),
				defaultUser, "opensuse.leap"),
		}
		sumURL := dir + img.alias + ".sha256"
		data, found, err := fetchOptional(ctx, env, sumURL)
		if err != nil {
			rel.Err = fmt.Errorf("reading the checksum of %s: %w", dir+img.alias, err)
			rels = append(rels, rel)
			continue
		}
		if !found {
			continue // upstream does not build this architecture
		}
		file, sum, err := img.parseChecksum(data)
		if err != nil {
			rel.Err = fmt.Errorf("checksum file %s: %w", sumURL, err)
			rels = append(rels, rel)
			continue
		}
		rel.URL, rel.Checksum = dir+file, sum
		build := img.build(file)
		if build == "" {
			if !indexed {
				// A listing that cannot be read costs only the unique
				// tag: the alias is still a good image.
				if page, err := env.Fetch.Fetch(ctx, dir); err == nil {
					index = upstream.ParseIndex(page)
				}
				indexed = true
			}
			if f, b := img.findBuild(ctx, env, dir, index, sum); f != "" {
				rel.URL, build = dir+f, b
			}
		}
		if build != "" {
			rel.Build = build
			rel.Tags = []string{v + "-" + build}
		}
		rels = append(rels, rel)
	}
	return rels
}

// leapImage names the Minimal-VM Cloud image of one Leap version and
// architecture.
type leapImage struct {
	// alias is the unversioned name, e.g.
	// "openSUSE-Leap-15.6-Minimal-VM.x86_64-Cloud.qcow2".
	alias string
	// stamped matches the build-stamped names of the same image, e.g.
	// "openSUSE-Leap-15.6-Minimal-VM.x86_64-15.6.0-Cloud-Build16.35.qcow2";
	// group 1 is the build.
	stamped *regexp.Regexp
}

func newLeapImage(version, suseArch string) leapImage {
	prefix := "openSUSE-Leap-" + version
	if major, _ := strconv.Atoi(strings.Split(version, ".")[0]); major >= 16 {
		// Leap 16 dropped the "openSUSE-" of its image names.
		prefix = "Leap-" + version
	}
	prefix += "-Minimal-VM." + suseArch
	// KIWI names the s390x cloud profile after the architecture.
	profile := "Cloud"
	if suseArch == "s390x" {
		profile = "s390x-Cloud"
	}
	return leapImage{
		alias:   prefix + "-" + profile + ".qcow2",
		stamped: regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `-\d+(?:\.\d+)*-` + regexp.QuoteMeta(profile) + `-Build(\d+(?:\.\d+)*)\.qcow2$`),
	}
}

// build returns the build of a build-stamped file name, or "" for any other
// name.
func (img leapImage) build(file string) string {
	if m := img.stamped.FindStringSubmatch(file); m != nil {
		return m[1]
	}
	return ""
}

// parseChecksum reads a .sha256 file: one line "HEX  NAME" naming the alias
// or a build-stamped file of the image. Leap 15 writes it with a single
// space ("HEX NAME"), which is not GNU's form, so that is accepted too.
func (img leapImage) parseChecksum(data []byte) (string, containerdisk.Checksum, error) {
	ours := func(name string) bool { return name == img.alias || img.build(name) != "" }
	for _, s := range upstream.ParseSums(data) {
		if ours(s.File) {
			sum, err := upstream.ParseDigest(s.Checksum.Algorithm+":"+s.Checksum.Hex, "sha256")
			return s.File, sum, err
		}
	}
	for line := range bytes.Lines(data) {
		f := strings.Fields(string(line))
		if len(f) != 2 || !ours(strings.TrimPrefix(f[1], "*")) {
			continue
		}
		sum, err := upstream.ParseDigest(f[0], "sha256")
		return strings.TrimPrefix(f[1], "*"), sum, err
	}
	return "", containerdisk.Checksum{}, fmt.Errorf("expected a line \"<sha256>  %s\", got %q", img.alias, firstLine(data))
}

// findBuild returns the newest build-stamped file of the image in the
// directory listing whose own checksum file says sum, the checksum of the
// alias, and its build.
func (img leapImage) findBuild(ctx context.Context, env catalog.Env, dir string, index []string, sum containerdisk.Checksum) (file, build string) {
	type stamped struct{ file, build string }
	var cands []stamped
	for _, e := range index {
		if b := img.build(e); b != "" && slices.Contains(index, e+".sha256") {
			cands = append(cands, stamped{e, b})
		}
	}
	slices.SortFunc(cands, func(a, b stamped) int { return catalog.CompareVersions(b.build, a.build) })
	for _, c := range cands {
		data, err := env.Fetch.Fetch(ctx, dir+c.file+".sha256")
		if err != nil {
			continue
		}
		if f, s, err := img.parseChecksum(data); err == nil && f == c.file && s == sum {
			return c.file, c.build
		}
	}
	return "", ""
}

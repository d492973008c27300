// Package ubuntu finds the latest Ubuntu Server cloud images on
// cloud-images.ubuntu.com/releases.
//
// Versions are the numeric YY.MM/ directories of the releases index; the
// codename directories beside them (noble/, jammy/) are aliases of the same
// builds, and streams/, server/ and the like are not versions. Each
// version's builds are dated directories release-YYYYMMDD[.n]/ that never
// change; release/ moves to each new build.
//
// End of life is a rule computed from the version, not a list to keep up to
// date: a long-term support release (even year, April: 20.04, 24.04) is
// built for five years after its release month, an interim release (22.10,
// 25.04) for nine months, each through the end of that month. So 22.10 is
// dropped from August 2023, 23.04 from February 2024 and 20.04 from May 2025.
// Canonical's announced dates fall within a few weeks of these.
package ubuntu

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/artifacts/internal/tree"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

const (
	name        = "ubuntu"
	defaultBase = "https://cloud-images.ubuntu.com/releases"
	user        = "ubuntu"
)

// Support periods of the end-of-life rule, in months after the release month.
const (
	ltsMonths     = 5 * 12
	interimMonths = 9
)

var (
	versionDir = regexp.MustCompile(`^([0-9]{2})\.(0[1-9]|1[0-2])$`)
	buildDir   = regexp.MustCompile(`^release-([0-9]{8}(?:\.[0-9]+)?)$`)
)

type distro struct{}

// New returns Ubuntu: for every version directory of the base that is not
// past its end of life at Env.Now (see the package documentation) and each
// of amd64, arm64 and s390x its newest build lists in SHA256SUMS, the
// ubuntu-<version>-server-cloudimg-<arch>.img disk of that build.
//
// The newest build is the release-<serial>/ directory with the highest
// serial, compared numerically ("20240423.1" after "20240423"); the URL
// points into that directory, so it names exactly one file for good. The
// build is the serial and the unique tag "<version>-<serial>", e.g.
// "24.04-20240423". Should the newest build directory have no SHA256SUMS
// yet (it is still being uploaded), the one before it is read. A version
// without dated directories is read from release/: its serial is unknown,
// so it has no build and no unique tag.
func New() catalog.Distro { return distro{} }

// Name returns "ubuntu".
func (distro) Name() string { return name }

// DefaultBase returns the Ubuntu cloud image releases directory.
func (distro) DefaultBase() string { return defaultBase }

// Releases lists the base for versions and reads the newest build of each
// live one, concurrently.
func (distro) Releases(ctx context.Context, env catalog.Env) ([]catalog.Release, error) {
	indexURL := env.URL() + "/"
	versions, err := tree.Versions(ctx, env, indexURL, func(dir string) (string, bool) {
		_, ok := EndOfLife(dir)
		return dir, ok
	})
	if err != nil {
		return nil, fmt.Errorf("reading the Ubuntu releases index: %w", err)
	}
	if len(versions) == 0 {
		return nil, fmt.Errorf("%s lists no YY.MM/ version directory: expected Ubuntu's cloud image releases, such as %s/", indexURL, defaultBase)
	}
	now := env.Now
	if now.IsZero() {
		now = time.Now()
	}
	versions = slices.DeleteFunc(versions, func(v string) bool {
		eol, _ := EndOfLife(v)
		return !now.Before(eol)
	})
	return tree.ForEach(ctx, versions, func(v string) []catalog.Release { return version(ctx, env, v) })
}

// EndOfLife returns when Ubuntu version v ("24.04") stops being built by the
// rule of the package documentation: the first instant after its support
// period. It reports false for a name that is not a YY.MM version.
func EndOfLife(v string) (time.Time, bool) {
	yy, mm, ok := parseVersion(v)
	if !ok {
		return time.Time{}, false
	}
	months := interimMonths
	if isLTS(yy, mm) {
		months = ltsMonths
	}
	// Supported through the end of the month: gone on the first of the next.
	return time.Date(2000+yy, time.Month(mm+months+1), 1, 0, 0, 0, 0, time.UTC), true
}

// parseVersion splits "24.04" into year 24 and month 4.
func parseVersion(v string) (yy, mm int, ok bool) {
	m := versionDir.FindStringSubmatch(v)
	if m == nil {
		return 0, 0, false
	}
	yy, _ = strconv.Atoi(m[1])
	mm, _ = strconv.Atoi(m[2])
	return yy, mm, true
}

// isLTS reports whether the release of year yy and month mm is a long-term
// support release: every other April.
func isLTS(yy, mm int) bool { return yy%2 == 0 && mm == 4 }

// build is one build directory of a version and its checksums.
type build struct {
	dir    string // "release-20240423.1", or "release"
	serial string // "20240423.1"; "" when read from release/
	sums   []upstream.Sum
}

// version returns the releases of version v, one per architecture its
// newest build has.
func version(ctx context.Context, env catalog.Env, v string) []catalog.Release {
	b, err := newestBuild(ctx, env, v)
	if err != nil {
		// Which architectures the version has is unknown: all of them fail.
		return failAll(v, err)
	}
	var out []catalog.Release
	for _, arch := range containerdisk.Architectures {
		file := imageName(v, arch)
		sum, ok := upstream.Lookup(b.sums, file)
		if !ok {
			continue
		}
		r := newRelease(v, arch)
		r.URL = env.URL(v, b.dir, file)
		r.Checksum = sum
		r.Build = b.serial
		if b.serial != "" {
			r.Tags = []string{v + "-" + b.serial}
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return failAll(v, fmt.Errorf("%s lists none of %s: expected the server cloud image of at least one architecture KubeVirt runs",
			env.URL(v, b.dir, "SHA256SUMS"), imageName(v, "{"+strings.Join(containerdisk.Architectures, ",")+"}")))
	}
	return out
}

// newestBuild lists the build directories of version v and reads the
// checksums of the newest one.
func newestBuild(ctx context.Context, env catalog.Env, v string) (build, error) {
	dirURL := env.URL(v) + "/"
	page, err := env.Fetch.Fetch(ctx, dirURL)
	if err != nil {
		return build{}, fmt.Errorf("listing the builds of Ubuntu %s: %w", v, err)
	}
	var dated []build
	moving := false
	for _, dir := range upstream.Dirs(page) {
		if m := buildDir.FindStringSubmatch(dir); m != nil {
			dated = append(dated, build{dir: dir, serial: m[1]})
		} else if dir == "release" {
			moving = true
		}
	}
	slices.SortFunc(dated, func(a, b build) int { return catalog.CompareVersions(b.serial, a.serial) })
	var candidates []build
	switch {
	case len(dated) > 0:
		// The newest, and the one before in case the newest is still
		// being uploaded.
		candidates = dated[:min(2, len(dated))]
	case moving:
		candidates = []build{{dir: "release"}}
	default:
		return build{}, fmt.Errorf("%s lists no release-YYYYMMDD/ or release/ directory: expected one directory per published build", dirURL)
	}
	var missing []string
	for _, b := range candidates {
		sumsURL := env.URL(v, b.dir, "SHA256SUMS")
		data, err := env.Fetch.Fetch(ctx, sumsURL)
		if errors.Is(err, catalog.ErrNotFound) {
			missing = append(missing, sumsURL)
			continue
		}
		if err != nil {
			return build{}, fmt.Errorf("reading the checksums of Ubuntu %s: %w", v, err)
		}
		b.sums = upstream.ParseSums(data)
		return b, nil
	}
	return build{}, fmt.Errorf("no SHA256SUMS for Ubuntu %s at %s: %w", v, strings.Join(missing, ", "), catalog.ErrNotFound)
}

// imageName is the file name of the server cloud image of version v for arch.
func imageName(v, arch string) string {
	return "ubuntu-" + v + "-server-cloudimg-" + arch + ".img"
}

// failAll fails each of KubeVirt's architectures of version v with err:
// which the version has is unknown.
func failAll(v string, err error) []catalog.Release {
	return tree.FailAll(containerdisk.Architectures, func(arch string) catalog.Release { return newRelease(v, arch) }, err)
}

func newRelease(v, arch string) catalog.Release {
	return catalog.Release{Name: name, Version: v, Arch: arch, Stable: true, Metadata: metadata(v)}
}

// metadata describes the image of version v.
func metadata(v string) catalog.Metadata {
	kind := "interim release"
	if yy, mm, _ := parseVersion(v); isLTS(yy, mm) {
		kind = "long-term support release"
	}
	return catalog.Metadata{
		Description:  fmt.Sprintf("Ubuntu Server %s cloud image, a %s from Canonical, set up at first boot by cloud-init.", v, kind),
		DefaultUser:  user,
		Instancetype: "u1.medium",
		Preference:   "ubuntu",
		UserData:     catalog.DefaultUserData(user),
	}
}

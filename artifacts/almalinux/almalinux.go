// Package almalinux finds the latest AlmaLinux OS GenericCloud images in the
// CHECKSUM files of repo.almalinux.org.
package almalinux

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"sync"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

const (
	name        = "almalinux"
	defaultBase = "https://repo.almalinux.org/almalinux"
	user        = "almalinux"
)

// upstreamArch is how repo.almalinux.org names KubeVirt's architectures.
var upstreamArch = map[string]string{"amd64": "x86_64", "arm64": "aarch64", "s390x": "s390x"}

var majorDir = regexp.MustCompile(`^[0-9]+$`)

type distro struct{}

// New returns AlmaLinux: for every major version directory of the base
// ("9/", "10/"; not the minor "9.6/" copies nor "vault/") and each of amd64,
// arm64 and s390x under its cloud/, the newest
// AlmaLinux-N-GenericCloud-<N.M>-<date>.<arch>.qcow2 its CHECKSUM lists.
//
// Images are ordered by minor version, then date, both numerically; the
// "-latest" aliases and the other variants (ext4, OpenNebula, Vagrant) are
// not read. The build, and the unique tag, is "<N.M>-<date>", e.g.
// "9.6-20250522" or "10.0-20250528.0": it starts with the version and
// names the minor release, so it is both unique and readable.
func New() catalog.Distro { return distro{} }

// Name returns "almalinux".
func (distro) Name() string { return name }

// DefaultBase returns the top of the AlmaLinux repository.
func (distro) DefaultBase() string { return defaultBase }

// Releases lists the base for major versions and reads each one's CHECKSUM
// files, concurrently.
func (d distro) Releases(ctx context.Context, env catalog.Env) ([]catalog.Release, error) {
	indexURL := env.URL() + "/"
	page, err := env.Fetch.Fetch(ctx, indexURL)
	if err != nil {
		return nil, err
	}
	var versions []string
	for _, dir := range upstream.Dirs(page) {
		if majorDir.MatchString(dir) && !slices.Contains(versions, dir) {
			versions = append(versions, dir)
		}
	}
	if len(versions) == 0 {
		return nil, fmt.Errorf("%s lists no major version directory: expected the AlmaLinux repository, with 9/, 10/…", indexURL)
	}
	slices.SortFunc(versions, catalog.CompareVersions)
	results := make([][]catalog.Release, len(versions))
	var wg sync.WaitGroup
	for i, v := range versions {
		wg.Go(func() { results[i] = d.version(ctx, env, v) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return slices.Concat(results...), nil
}

// version returns the releases of major version v, one per architecture
// its cloud/ directory has.
func (d distro) version(ctx context.Context, env catalog.Env, v string) []catalog.Release {
	page, err := env.Fetch.Fetch(ctx, env.URL(v, "cloud")+"/")
	if errors.Is(err, catalog.ErrNotFound) {
		// A major version without cloud images (yet).
		return nil
	}
	if err != nil {
		// Which architectures the version has is unknown: all of them fail.
		var out []catalog.Release
		for _, arch := range containerdisk.Architectures {
			r := newRelease(v, arch)
			r.Err = fmt.Errorf("listing the architectures of AlmaLinux %s: %w", v, err)
			out = append(out, r)
		}
		return out
	}
	var out []catalog.Release
	dirs := upstream.Dirs(page)
	for _, arch := range containerdisk.Architectures {
		if slices.Contains(dirs, upstreamArch[arch]) {
			out = append(out, d.release(ctx, env, v, arch))
		}
	}
	return out
}

// release reads the CHECKSUM of major version v and arch.
func (d distro) release(ctx context.Context, env catalog.Env, v, arch string) catalog.Release {
	r := newRelease(v, arch)
	up := upstreamArch[arch]
	sumsURL := env.URL(v, "cloud", up, "images", "CHECKSUM")
	data, err := env.Fetch.Fetch(ctx, sumsURL)
	if err != nil {
		r.Err = fmt.Errorf("reading the checksums of AlmaLinux %s for %s, whose directory is listed: %w", v, up, err)
		return r
	}
	q := regexp.QuoteMeta(v)
	image := regexp.MustCompile(`^AlmaLinux-` + q + `-GenericCloud-(` + q + `\.[0-9]+)-([0-9]{8}(?:\.[0-9]+)*)\.` + regexp.QuoteMeta(up) + `\.qcow2$`)
	var best upstream.Sum
	var minor, date string
	for _, s := range upstream.ParseSums(data) {
		m := image.FindStringSubmatch(s.File)
		if m == nil {
			continue
		}
		if minor == "" || catalog.CompareVersions(m[1], minor) > 0 || (m[1] == minor && catalog.CompareVersions(m[2], date) > 0) {
			best, minor, date = s, m[1], m[2]
		}
	}
	if minor == "" {
		r.Err = fmt.Errorf("%s lists no AlmaLinux-%s-GenericCloud-%s.<minor>-<YYYYMMDD>.%s.qcow2 image", sumsURL, v, v, up)
		return r
	}
	r.Build = minor + "-" + date
	r.URL = env.URL(v, "cloud", up, "images", best.File)
	r.Checksum = best.Checksum
	r.Tags = []string{r.Build}
	return r
}

func newRelease(v, arch string) catalog.Release {
	return catalog.Release{Name: name, Version: v, Arch: arch, Stable: true, Metadata: metadata(v, arch)}
}

// metadata describes the image of major version v for arch.
func metadata(v, arch string) catalog.Metadata {
	return catalog.Metadata{
		Description:  "AlmaLinux OS GenericCloud, the cloud image of the community-owned rebuild of Red Hat Enterprise Linux, set up at first boot by cloud-init.",
		DefaultUser:  user,
		Instancetype: "u1.medium",
		Preference:   preference(v, arch),
		UserData:     catalog.DefaultUserData(user),
	}
}

// preference names KubeVirt's preference for AlmaLinux v on arch.
// common-instancetypes has none for AlmaLinux, a rebuild of RHEL, whose
// preferences fit it: "rhel.8" for every architecture, and from 9 on one per
// architecture ("rhel.9", "rhel.9.arm64", "rhel.10.s390x").
func preference(v, arch string) string {
	if major, _ := strconv.Atoi(v); major >= 9 && arch != "amd64" {
		return "rhel." + v + "." + arch
	}
	return "rhel." + v
}

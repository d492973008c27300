// Package almalinux finds the latest AlmaLinux OS GenericCloud images in the
// CHECKSUM files of repo.almalinux.org.
package almalinux

import (
	"context"
	"fmt"
	"regexp"
	"strconv"

	"github.com/containerdisk/kubectl-containerdisk/artifacts/internal/tree"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

const (
	name        = "almalinux"
	defaultBase = "https://repo.almalinux.org/almalinux"
	user        = "almalinux"
)

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
	versions, err := tree.Versions(ctx, env, indexURL, tree.Match(majorDir))
	if err != nil {
		return nil, err
	}
	if len(versions) == 0 {
		return nil, fmt.Errorf("%s lists no major version directory: expected the AlmaLinux repository, with 9/, 10/…", indexURL)
	}
	return tree.ForEach(ctx, versions, func(v string) []catalog.Release {
		// A major version without a cloud/ directory has no cloud images
		// (yet).
		return tree.ReadArchDirs(ctx, env, env.URL(v, "cloud")+"/", "AlmaLinux "+v,
			func(arch string) catalog.Release { return newRelease(v, arch) },
			func(arch string) catalog.Release { return d.release(ctx, env, v, arch) })
	})
}

// release reads the CHECKSUM of major version v and arch.
func (d distro) release(ctx context.Context, env catalog.Env, v, arch string) catalog.Release {
	r := newRelease(v, arch)
	up := tree.UpstreamArch[arch]
	sumsURL := env.URL(v, "cloud", up, "images", "CHECKSUM")
	data, err := env.Fetch.Fetch(ctx, sumsURL)
	if err != nil {
		r.Err = fmt.Errorf("reading the checksums of AlmaLinux %s for %s, whose directory is listed: %w", v, up, err)
		return r
	}
	q := regexp.QuoteMeta(v)
	image := regexp.MustCompile(`^AlmaLinux-` + q + `-GenericCloud-(` + q + `\.[0-9]+)-([0-9]{8}(?:\.[0-9]+)*)\.` + regexp.QuoteMeta(up) + `\.qcow2$`)
	// Ordered by minor version, then date.
	best, m, ok := tree.Newest(upstream.ParseSums(data), image)
	if !ok {
		r.Err = fmt.Errorf("%s lists no AlmaLinux-%s-GenericCloud-%s.<minor>-<YYYYMMDD>.%s.qcow2 image", sumsURL, v, v, up)
		return r
	}
	r.Build = m[0] + "-" + m[1]
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
		// The GenericCloud and Cloud Base images ship qemu-guest-agent.
		GuestAgent: true,
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

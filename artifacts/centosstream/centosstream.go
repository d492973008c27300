// Package centosstream finds the latest CentOS Stream GenericCloud images in
// the CHECKSUM files of cloud.centos.org.
package centosstream

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

const (
	name        = "centos-stream"
	defaultBase = "https://cloud.centos.org/centos"
	user        = "cloud-user"
)

// upstreamArch is how cloud.centos.org names KubeVirt's architectures.
var upstreamArch = map[string]string{"amd64": "x86_64", "arm64": "aarch64", "s390x": "s390x"}

var streamDir = regexp.MustCompile(`^([0-9]+)-stream$`)

type distro struct{}

// New returns CentOS Stream: for every "N-stream/" directory of the base and
// each of amd64, arm64 and s390x it publishes, the newest
// CentOS-Stream-GenericCloud-N-<build>.<arch>.qcow2 its CHECKSUM lists.
//
// The build is upstream's compose id ("20240101.0"), compared numerically;
// the "-latest" aliases and the other variants (UEFI, ec2, Vagrant,
// Container) are not read. The unique tag is "<version>-<build>", e.g.
// "9-20240101.0". Every version found is returned: end of life is the
// catalog's to apply.
func New() catalog.Distro { return distro{} }

// Name returns "centos-stream".
func (distro) Name() string { return name }

// DefaultBase returns the top of CentOS's cloud image tree.
func (distro) DefaultBase() string { return defaultBase }

// Releases lists the base for versions and reads each version's CHECKSUM
// files, concurrently.
func (d distro) Releases(ctx context.Context, env catalog.Env) ([]catalog.Release, error) {
	indexURL := env.URL() + "/"
	page, err := env.Fetch.Fetch(ctx, indexURL)
	if err != nil {
		return nil, err
	}
	var versions []string
	for _, dir := range upstream.Dirs(page) {
		if m := streamDir.FindStringSubmatch(dir); m != nil && !slices.Contains(versions, m[1]) {
			versions = append(versions, m[1])
		}
	}
	if len(versions) == 0 {
		return nil, fmt.Errorf("%s lists no N-stream/ directory: expected CentOS's cloud image tree, with 9-stream/, 10-stream/…", indexURL)
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

// version returns the releases of version v, one per architecture its
// directory has.
func (d distro) version(ctx context.Context, env catalog.Env, v string) []catalog.Release {
	dirURL := env.URL(v+"-stream") + "/"
	page, err := env.Fetch.Fetch(ctx, dirURL)
	if errors.Is(err, catalog.ErrNotFound) {
		// Listed but gone, as on a mirror mid-sync: nothing is published.
		return nil
	}
	if err != nil {
		// Which architectures the version has is unknown: all of them fail.
		var out []catalog.Release
		for _, arch := range containerdisk.Architectures {
			r := newRelease(v, arch)
			r.Err = fmt.Errorf("listing the architectures of CentOS Stream %s: %w", v, err)
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

// release reads the CHECKSUM of version v and arch.
func (d distro) release(ctx context.Context, env catalog.Env, v, arch string) catalog.Release {
	r := newRelease(v, arch)
	up := upstreamArch[arch]
	sumsURL := env.URL(v+"-stream", up, "images", "CHECKSUM")
	data, err := env.Fetch.Fetch(ctx, sumsURL)
	if err != nil {
		r.Err = fmt.Errorf("reading the checksums of CentOS Stream %s for %s, whose directory is listed: %w", v, up, err)
		return r
	}
	image := regexp.MustCompile(`^CentOS-Stream-GenericCloud-` + regexp.QuoteMeta(v) + `-([0-9]{8}(?:\.[0-9]+)*)\.` + regexp.QuoteMeta(up) + `\.qcow2$`)
	var best upstream.Sum
	for _, s := range upstream.ParseSums(data) {
		m := image.FindStringSubmatch(s.File)
		if m != nil && (r.Build == "" || catalog.CompareVersions(m[1], r.Build) > 0) {
			best, r.Build = s, m[1]
		}
	}
	if r.Build == "" {
		r.Err = fmt.Errorf("%s lists no CentOS-Stream-GenericCloud-%s-<YYYYMMDD.n>.%s.qcow2 image", sumsURL, v, up)
		return r
	}
	r.URL = env.URL(v+"-stream", up, "images", best.File)
	r.Checksum = best.Checksum
	r.Tags = []string{v + "-" + r.Build}
	return r
}

func newRelease(v, arch string) catalog.Release {
	return catalog.Release{Name: name, Version: v, Arch: arch, Stable: true, Metadata: metadata(v)}
}

// metadata describes the images of version v. KubeVirt's
// common-instancetypes have one preference per CentOS Stream version for
// every architecture ("centos.stream9", "centos.stream10").
func metadata(v string) catalog.Metadata {
	return catalog.Metadata{
		Description:  "CentOS Stream GenericCloud, the CentOS Project's cloud image of the distribution that tracks just ahead of Red Hat Enterprise Linux, set up at first boot by cloud-init.",
		DefaultUser:  user,
		Instancetype: "u1.medium",
		Preference:   "centos.stream" + v,
		UserData:     catalog.DefaultUserData(user),
	}
}

// Package centosstream finds the latest CentOS Stream GenericCloud images in
// the CHECKSUM files of cloud.centos.org.
package centosstream

import (
	"context"
	"fmt"
	"regexp"

	"github.com/containerdisk/kubectl-containerdisk/artifacts/internal/tree"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

const (
	name        = "centos-stream"
	defaultBase = "https://cloud.centos.org/centos"
	user        = "cloud-user"
)

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
	versions, err := tree.Versions(ctx, env, indexURL, tree.Match(streamDir))
	if err != nil {
		return nil, err
	}
	if len(versions) == 0 {
		return nil, fmt.Errorf("%s lists no N-stream/ directory: expected CentOS's cloud image tree, with 9-stream/, 10-stream/…", indexURL)
	}
	return tree.ForEach(ctx, versions, func(v string) []catalog.Release {
		// A version directory listed but gone, as on a mirror mid-sync,
		// has nothing published.
		return tree.ReadArchDirs(ctx, env, env.URL(v+"-stream")+"/", "CentOS Stream "+v,
			func(arch string) catalog.Release { return newRelease(v, arch) },
			func(arch string) catalog.Release { return d.release(ctx, env, v, arch) })
	})
}

// release reads the CHECKSUM of version v and arch.
func (d distro) release(ctx context.Context, env catalog.Env, v, arch string) catalog.Release {
	r := newRelease(v, arch)
	up := tree.UpstreamArch[arch]
	sumsURL := env.URL(v+"-stream", up, "images", "CHECKSUM")
	data, err := env.Fetch.Fetch(ctx, sumsURL)
	if err != nil {
		r.Err = fmt.Errorf("reading the checksums of CentOS Stream %s for %s, whose directory is listed: %w", v, up, err)
		return r
	}
	image := regexp.MustCompile(`^CentOS-Stream-GenericCloud-` + regexp.QuoteMeta(v) + `-([0-9]{8}(?:\.[0-9]+)*)\.` + regexp.QuoteMeta(up) + `\.qcow2$`)
	best, m, ok := tree.Newest(upstream.ParseSums(data), image)
	if !ok {
		r.Err = fmt.Errorf("%s lists no CentOS-Stream-GenericCloud-%s-<YYYYMMDD.n>.%s.qcow2 image", sumsURL, v, up)
		return r
	}
	r.Build = m[0]
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
		// The GenericCloud and Cloud Base images ship qemu-guest-agent.
		GuestAgent: true,
	}
}

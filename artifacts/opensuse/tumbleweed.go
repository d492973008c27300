package opensuse

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/containerdisk/kubectl-containerdisk/artifacts/internal/tree"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

// rollingDirs are the appliances directories of Tumbleweed (and of MicroOS,
// which is built from it) by architecture, relative to the base URL. Each
// holds a SHA256SUMS listing every image of the current snapshot.
var rollingDirs = map[string]string{
	"amd64": "tumbleweed/appliances",
	"arm64": "ports/aarch64/tumbleweed/appliances",
	"s390x": "ports/zsystems/tumbleweed/appliances",
}

// tumbleweedVersion is the moving tag of Tumbleweed. The version in its
// file names is KIWI's, not the distribution's, and differs between
// architectures (1.0.0 on x86_64 and aarch64, 16.0.0 on s390x), so it is
// not used: the releases of all architectures are one image.
const tumbleweedVersion = "1.0.0"

// microOSVersion is the version given to a MicroOS architecture whose
// SHA256SUMS could not be read, when no other architecture tells the
// current one.
const microOSVersion = "16.0.0"

// NewTumbleweed returns openSUSE Tumbleweed: in each architecture's
// SHA256SUMS, the Minimal-VM Cloud image of the newest snapshot,
//
//	openSUSE-Tumbleweed-Minimal-VM.<arch>-<kiwi version>-Cloud-Snapshot<date>.qcow2
//
// ("-s390x-Cloud-" on s390x). Every release has Version "1.0.0", Build the
// snapshot date, and the unique tag "1.0.0-<date>" ("1.0.0-20240629").
// The KVM-and-Xen, sdboot, VMware, Hyper-V and Vagrant images and the
// unversioned aliases of the same files are ignored.
func NewTumbleweed() catalog.Distro {
	return &rolling{
		name:    "opensuse-tumbleweed",
		product: "openSUSE-Tumbleweed-Minimal-VM",
		profile: "Cloud",
		version: tumbleweedVersion,
		meta: metadata("openSUSE Tumbleweed, the rolling openSUSE release, as its Minimal-VM cloud image of the latest snapshot.",
			defaultUser, "opensuse.tumbleweed"),
	}
}

// NewMicroOS returns openSUSE MicroOS: in each architecture's SHA256SUMS,
// the OpenStack Cloud image of the newest snapshot,
//
//	openSUSE-MicroOS.<arch>-<version>-OpenStack-Cloud-Snapshot<date>.qcow2
//
// ("-s390x-Cloud-" on s390x). Version is the one in the file name
// ("16.0.0"), Build the snapshot date, and the unique tag
// "<version>-<date>" ("16.0.0-20240629"). The ContainerHost, DigitalOcean,
// KVM-and-Xen, VMware and other variants are ignored.
//
// MicroOS's cloud-init configures only root, so that is its DefaultUser.
// KubeVirt has no MicroOS preference; Tumbleweed's fits the same kernel and
// devices.
func NewMicroOS() catalog.Distro {
	meta := metadata("openSUSE MicroOS, the transactional, self-updating openSUSE for container hosts, as its OpenStack cloud image of the latest snapshot.",
		"root", "opensuse.tumbleweed")
	meta.UserData = "#cloud-config\nchpasswd:\n  expire: false\n  users:\n    - {name: root, password: changeme, type: text}\n"
	return &rolling{
		name:            "opensuse-microos",
		product:         "openSUSE-MicroOS",
		profile:         "OpenStack-Cloud",
		fallbackVersion: microOSVersion,
		meta:            meta,
	}
}

// rolling is a product of the Tumbleweed appliances directories.
type rolling struct {
	name string
	// product is the file name up to ".<arch>".
	product string
	// profile is the KIWI profile of the cloud image on x86_64 and
	// aarch64; s390x writes "s390x-Cloud".
	profile string
	// version, when set, is the Version of every release; otherwise the
	// version of the file name is.
	version string
	// fallbackVersion is the Version of an architecture that failed, when
	// version is not set and no other architecture was read.
	fallbackVersion string
	meta            catalog.Metadata
}

// Name is the image repository name.
func (r *rolling) Name() string { return r.name }

// DefaultBase is download.opensuse.org.
func (r *rolling) DefaultBase() string { return defaultBase }

// pattern matches the cloud image of one architecture in SHA256SUMS: group
// 1 is the version, group 2 the snapshot.
func (r *rolling) pattern(suseArch string) *regexp.Regexp {
	a := regexp.QuoteMeta(suseArch)
	return regexp.MustCompile(`^` + regexp.QuoteMeta(r.product) + `\.` + a +
		`-(\d+(?:\.\d+)*)-(?:` + regexp.QuoteMeta(r.profile) + `|` + a + `-Cloud)-Snapshot(\d+)\.qcow2$`)
}

// example is a name pattern's description for error messages.
func (r *rolling) example(suseArch string) string {
	profile := r.profile
	if suseArch == "s390x" {
		profile = "s390x-Cloud"
	}
	return fmt.Sprintf("%s.%s-<version>-%s-Snapshot<date>.qcow2", r.product, suseArch, profile)
}

// Releases returns the newest snapshot's cloud image of each architecture
// (and of each version, should one SHA256SUMS list two), ordered by
// version, then architecture.
//
// A SHA256SUMS that is not there (404) means openSUSE does not build that
// architecture, and so does one that lists no image at all of the product
// for it. A SHA256SUMS that lists images of the product but not the cloud
// image, or that cannot be read, is that architecture's Release.Err. When no
// SHA256SUMS can be read at all, or none lists the product, Releases fails.
func (r *rolling) Releases(ctx context.Context, env catalog.Env) ([]catalog.Release, error) {
	type listing struct {
		url   string
		data  []byte
		found bool
		err   error
	}
	lists := make([]listing, len(containerdisk.Architectures))
	var wg sync.WaitGroup
	for i, arch := range containerdisk.Architectures {
		lists[i].url = env.URL(rollingDirs[arch], "SHA256SUMS")
		wg.Go(func() {
			l := &lists[i]
			l.data, l.found, l.err = fetchOptional(ctx, env, l.url)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	var (
		rels, failed []catalog.Release
		errs         []error
		readable     bool
	)
	for i, arch := range containerdisk.Architectures {
		l := lists[i]
		switch {
		case l.err != nil:
			errs = append(errs, l.err)
			failed = append(failed, r.release(arch, "", fmt.Errorf("reading the %s checksums: %w", r.name, l.err)))
		case l.found:
			readable = true
			got, err := r.fromSums(arch, l.url, l.data)
			if err != nil {
				failed = append(failed, r.release(arch, "", err))
			}
			rels = append(rels, got...)
		}
	}
	if !readable {
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		return nil, errNothingFound("SHA256SUMS of the Tumbleweed appliances", env.Base)
	}
	if len(rels) == 0 && len(failed) == 0 {
		return nil, errNothingFound(r.product+" images in the SHA256SUMS of the Tumbleweed appliances", env.Base)
	}

	// A failed architecture joins the image its siblings make.
	version := ""
	for _, rel := range rels {
		if version == "" || catalog.CompareVersions(rel.Version, version) > 0 {
			version = rel.Version
		}
	}
	if version == "" {
		version = r.fallbackVersion
	}
	for _, rel := range failed {
		if rel.Version == "" {
			rel.Version = version
		}
		rels = append(rels, rel)
	}
	tree.SortReleases(rels)
	return rels, nil
}

// fromSums returns the newest cloud image of each version listed in the
// SHA256SUMS at url of arch. It returns no release and no error when the
// file lists nothing of the product for the architecture.
func (r *rolling) fromSums(arch, url string, data []byte) ([]catalog.Release, error) {
	type image struct {
		file, snapshot, kiwi string
		sum                  containerdisk.Checksum
	}
	suseArch := tree.UpstreamArch[arch]
	re := r.pattern(suseArch)
	dir := url[:strings.LastIndex(url, "/")+1]
	newest := map[string]image{}
	listed := false
	for _, s := range upstream.ParseSums(data) {
		listed = listed || strings.HasPrefix(s.File, r.product+"."+suseArch+"-")
		m := re.FindStringSubmatch(s.File)
		if m == nil {
			continue
		}
		version := r.version
		if version == "" {
			version = m[1]
		}
		img := image{file: s.File, kiwi: m[1], snapshot: m[2], sum: s.Checksum}
		cur, ok := newest[version]
		if c := catalog.CompareVersions(img.snapshot, cur.snapshot); !ok || c > 0 || (c == 0 && catalog.CompareVersions(img.kiwi, cur.kiwi) > 0) {
			newest[version] = img
		}
	}
	if len(newest) == 0 {
		if !listed {
			return nil, nil
		}
		return nil, fmt.Errorf("%s lists %s.%s images but no cloud image: expected a line for %s", url, r.product, suseArch, r.example(suseArch))
	}
	var rels []catalog.Release
	for version, img := range newest {
		rel := r.release(arch, version, nil)
		rel.URL = dir + img.file
		rel.Build = img.snapshot
		rel.Tags = []string{version + "-" + img.snapshot}
		sum, err := upstream.ParseDigest(img.sum.Algorithm+":"+img.sum.Hex, "sha256")
		if err != nil {
			rel.Err = fmt.Errorf("%s: checksum of %s: %w", url, img.file, err)
		}
		rel.Checksum = sum
		rels = append(rels, rel)
	}
	return rels, nil
}

// release returns a release of the product for arch with its metadata.
func (r *rolling) release(arch, version string, err error) catalog.Release {
	if r.version != "" {
		version = r.version
	}
	return catalog.Release{
		Name:     r.name,
		Version:  version,
		Arch:     arch,
		Stable:   true,
		Metadata: r.meta,
		Err:      err,
	}
}

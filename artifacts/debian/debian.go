// Package debian finds the latest Debian genericcloud images on
// cloud.debian.org/images/cloud.
//
// Each release has a codename directory (bookworm/, trixie/) whose latest/
// holds one JSON image list per architecture,
// debian-<N>-genericcloud-<arch>.json, that names the build, the dated
// directory its files are in, and their SHA-512 digests. A directory whose
// latest/ has no such list is not a release and is skipped: sid/ (daily
// builds only), OpenStack/, and the -backports/ directories, whose lists
// are named debian-<N>-backports-genericcloud-<arch>.json.
//
// Every version found is returned: which are too old to build is the
// catalog's minVersion rule, not this package's.
package debian

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/containerdisk/kubectl-containerdisk/artifacts/internal/tree"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

const (
	name        = "debian"
	defaultBase = "https://cloud.debian.org/images/cloud"
	user        = "debian"
)

// Labels and annotations of the image lists.
const (
	labelFormat      = "upload.cloud.debian.org/image-format"
	annotationDigest = "cloud.debian.org/digest"
)

// publishedArches are the architectures KubeVirt runs that Debian publishes
// genericcloud images for; a codename whose images cannot be listed fails
// for each of them.
var publishedArches = []string{"amd64", "arm64"}

var (
	// Codenames are one lowercase word; "bookworm-backports" and
	// "OpenStack" are not releases.
	codenameDir = regexp.MustCompile(`^[a-z]+$`)
	imageList   = regexp.MustCompile(`^debian-([0-9]+)-genericcloud-([a-z0-9_]+)\.json$`)
)

type distro struct{}

// New returns Debian: for every codename directory of the base and each of
// amd64, arm64 and s390x its latest/ has an image list for, the qcow2 image
// that list names.
//
// The version is N of debian-<N>-genericcloud-<arch>.json ("12"); the build
// is the Build item's data.info.version ("20250210-2019"), and the unique
// tag "<N>-<build>" ("12-20250210-2019"). The URL is the qcow2 Upload item's
// data.ref under the base, in the dated directory that never changes, and
// the checksum its "cloud.debian.org/digest" annotation, a SHA-512 in
// base64.
func New() catalog.Distro { return distro{} }

// Name returns "debian".
func (distro) Name() string { return name }

// DefaultBase returns the Debian cloud images directory.
func (distro) DefaultBase() string { return defaultBase }

// Releases lists the base for codenames and reads the image lists in each
// one's latest/, concurrently.
func (distro) Releases(ctx context.Context, env catalog.Env) ([]catalog.Release, error) {
	indexURL := env.URL() + "/"
	codenames, err := tree.Versions(ctx, env, indexURL, tree.Match(codenameDir))
	if err != nil {
		return nil, fmt.Errorf("reading the Debian cloud images index: %w", err)
	}
	if len(codenames) == 0 {
		return nil, fmt.Errorf("%s lists no codename directory: expected Debian's cloud images, such as %s/, with bookworm/, trixie/…", indexURL, defaultBase)
	}
	out, err := tree.ForEach(ctx, codenames, func(c string) []catalog.Release { return codename(ctx, env, c) })
	if err != nil {
		return nil, err
	}
	// By version, which the codenames do not tell.
	tree.SortReleases(out)
	return out, nil
}

// codename returns the releases whose image lists codename's latest/ holds.
func codename(ctx context.Context, env catalog.Env, c string) []catalog.Release {
	latestURL := env.URL(c, "latest") + "/"
	page, err := env.Fetch.Fetch(ctx, latestURL)
	if errors.Is(err, catalog.ErrNotFound) {
		// Not a release: no latest/ at all.
		return nil
	}
	if err != nil {
		// Neither the version nor the architectures are known: the
		// codename stands for the version.
		return tree.FailAll(publishedArches, func(arch string) catalog.Release { return newRelease(c, c, arch) },
			fmt.Errorf("listing the latest images of Debian %s: %w", c, err))
	}
	var out []catalog.Release
	for _, file := range upstream.ParseIndex(page) {
		m := imageList.FindStringSubmatch(file)
		if m == nil {
			continue
		}
		arch, err := containerdisk.NormalizeArch(m[2])
		if err != nil {
			// ppc64el, riscv64: KubeVirt does not run them.
			continue
		}
		out = append(out, release(ctx, env, c, m[1], arch, env.URL(c, "latest", file)))
	}
	return out
}

// list is the part of a Debian image list that is read.
type list struct {
	Kind  string `json:"kind"`
	Items []item `json:"items"`
}

// item is a Build or Upload item of a list.
type item struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Data struct {
		Info struct {
			Version string `json:"version"`
		} `json:"info"`
		Ref string `json:"ref"`
	} `json:"data"`
}

// release reads the image list at listURL of Debian version v (codename c)
// for arch.
func release(ctx context.Context, env catalog.Env, c, v, arch, listURL string) catalog.Release {
	r := newRelease(v, c, arch)
	data, err := env.Fetch.Fetch(ctx, listURL)
	if err != nil {
		r.Err = fmt.Errorf("reading the image list of Debian %s for %s, which latest/ lists: %w", v, arch, err)
		return r
	}
	var l list
	if err := json.Unmarshal(data, &l); err != nil {
		r.Err = fmt.Errorf("%s: %v: expected a Debian cloud image list (JSON, kind List)", listURL, err)
		return r
	}
	for _, it := range l.Items {
		if it.Kind == "Build" && r.Build == "" {
			r.Build = strings.TrimSpace(it.Data.Info.Version)
		}
	}
	if r.Build == "" {
		r.Err = fmt.Errorf("%s has no Build item with data.info.version: expected the build, such as 20250210-2019", listURL)
		return r
	}
	i := slices.IndexFunc(l.Items, func(it item) bool {
		return it.Kind == "Upload" && it.Metadata.Labels[labelFormat] == "qcow2"
	})
	if i < 0 {
		r.Err = fmt.Errorf("%s has no Upload item labelled %s=qcow2: expected one for the qcow2 image of build %s", listURL, labelFormat, r.Build)
		return r
	}
	up := l.Items[i]
	ref := up.Data.Ref
	if u, err := url.Parse(ref); ref == "" || err != nil || u.IsAbs() || u.Host != "" || strings.HasPrefix(ref, "/") || slices.Contains(strings.Split(ref, "/"), "..") {
		r.Err = fmt.Errorf("%s: qcow2 upload has data.ref %q: expected a path under %s, such as %s/%s/debian-%s-genericcloud-%s-%s.qcow2", listURL, ref, env.URL(), c, r.Build, v, arch, r.Build)
		return r
	}
	digest, ok := up.Metadata.Annotations[annotationDigest]
	if !ok {
		r.Err = fmt.Errorf("%s: qcow2 upload %s has no %s annotation: expected its sha512", listURL, ref, annotationDigest)
		return r
	}
	sum, err := upstream.ParseDigest(digest, "sha512")
	if err != nil {
		r.Err = fmt.Errorf("%s: qcow2 upload %s: %w", listURL, ref, err)
		return r
	}
	r.URL = env.URL(ref)
	r.Checksum = sum
	r.Tags = []string{v + "-" + r.Build}
	return r
}

func newRelease(v, c, arch string) catalog.Release {
	return catalog.Release{Name: name, Version: v, Arch: arch, Stable: true, Metadata: metadata(v, c)}
}

// metadata describes the image of Debian version v, codename c.
func metadata(v, c string) catalog.Metadata {
	release := v
	if c != v {
		release += " (" + c + ")"
	}
	return catalog.Metadata{
		Description:  "Debian " + release + " genericcloud image, the official Debian cloud image for any platform, set up at first boot by cloud-init.",
		DefaultUser:  user,
		Instancetype: "u1.medium",
		Preference:   "debian",
		UserData:     catalog.DefaultUserData(user),
	}
}

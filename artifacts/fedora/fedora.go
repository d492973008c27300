// Package fedora finds the latest Fedora Cloud Base images in releases.json,
// the list of current releases and prereleases behind Fedora's download
// pages.
package fedora

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/containerdisk/kubectl-containerdisk/artifacts/internal/tree"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

const (
	name        = "fedora"
	defaultBase = "https://getfedora.org"
	user        = "fedora"
)

type distro struct{}

// New returns Fedora: the Cloud Base Generic qcow2 of every release and
// prerelease that releases.json lists, for amd64, arm64 and s390x.
//
// A prerelease "41 Beta" has the version "41-beta" and is not stable. The
// unique tag is "<version>-<build>", e.g. "40-1.14" or "41-beta-1.2".
// releases.json links to download.fedoraproject.org; with a mirror as
// base, the links are read as paths under it (base + "/pub/fedora/..."),
// so a mirror serves releases.json at its root and the images at their
// upstream paths.
func New() catalog.Distro { return distro{} }

// Name returns "fedora".
func (distro) Name() string { return name }

// DefaultBase returns where releases.json is published.
func (distro) DefaultBase() string { return defaultBase }

// entry is one item of releases.json. The size is left out: it is written
// as a string today, and nothing here needs it.
type entry struct {
	Version    string `json:"version"`
	Arch       string `json:"arch"`
	Link       string `json:"link"`
	Variant    string `json:"variant"`
	Subvariant string `json:"subvariant"`
	SHA256     string `json:"sha256"`
}

// candidate is a Cloud Base qcow2 of one version and architecture.
type candidate struct {
	entry
	file    string // the link's file name
	build   string // "" when the file name has none
	generic bool
}

// better reports whether c is preferred to o: the Generic image (Fedora 40
// on lists UKI and other images next to it), then the highest build, then,
// to stay independent of the order of releases.json, the greater link.
func (c candidate) better(o candidate) bool {
	if c.generic != o.generic {
		return c.generic
	}
	if n := catalog.CompareVersions(c.build, o.build); n != 0 {
		return n > 0
	}
	return c.Link > o.Link
}

// Releases reads releases.json and returns the latest Cloud Base image of
// each version and architecture.
func (d distro) Releases(ctx context.Context, env catalog.Env) ([]catalog.Release, error) {
	listURL := env.URL("releases.json")
	data, err := env.Fetch.Fetch(ctx, listURL)
	if err != nil {
		return nil, err
	}
	var entries []entry
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("reading %s: expected a JSON array of {version, arch, link, variant, subvariant, sha256}: %w", listURL, err)
	}
	type key struct{ version, arch string }
	best := map[key]candidate{}
	for _, e := range entries {
		if e.Variant != "Cloud" || e.Subvariant != "Cloud_Base" {
			continue
		}
		u, err := url.Parse(e.Link)
		if err != nil || !strings.HasSuffix(u.Path, ".qcow2") {
			continue
		}
		arch, err := containerdisk.NormalizeArch(e.Arch)
		if err != nil {
			continue // ppc64le and others KubeVirt does not run
		}
		file := path.Base(u.Path)
		c := candidate{entry: e, file: file, build: buildID(file, e.Arch, e.Version), generic: strings.Contains(file, "Generic")}
		k := key{tagVersion(e.Version), arch}
		if old, ok := best[k]; !ok || c.better(old) {
			best[k] = c
		}
	}
	if len(best) == 0 {
		return nil, fmt.Errorf("%s lists no Cloud Base qcow2 image: expected entries with variant \"Cloud\", subvariant \"Cloud_Base\" and a link ending in .qcow2", listURL)
	}
	var out []catalog.Release
	for k, c := range best {
		out = append(out, d.release(env, listURL, k.version, k.arch, c))
	}
	tree.SortReleases(out)
	return out, nil
}

func (d distro) release(env catalog.Env, listURL, version, arch string, c candidate) catalog.Release {
	r := catalog.Release{
		Name:     name,
		Version:  version,
		Arch:     arch,
		URL:      d.imageURL(env, listURL, c.Link),
		Build:    c.build,
		Stable:   !catalog.IsPrerelease(c.Version),
		Metadata: metadata(arch),
	}
	if c.build == "" {
		r.Err = fmt.Errorf("%s lists %s, whose name has no build id: expected Fedora-Cloud-Base-Generic.<arch>-<version>-<build>.qcow2 or Fedora-Cloud-Base-<version>-<build>.<arch>.qcow2", listURL, c.Link)
		return r
	}
	r.Tags = []string{version + "-" + c.build}
	sum, err := upstream.ParseDigest(c.SHA256, "sha256")
	switch {
	case errors.Is(err, upstream.ErrPlaceholderChecksum):
		r.Err = fmt.Errorf("%s lists %s without a usable sha256 yet (%w): the image cannot be verified, so it is left out until upstream publishes its checksum", listURL, c.file, err)
	case err != nil:
		r.Err = fmt.Errorf("%s lists %s with a malformed sha256: %w", listURL, c.file, err)
	}
	r.Checksum = sum
	return r
}

// imageURL returns where the image a link names is downloaded from: the
// link itself from the default base, the same path under a mirror.
func (d distro) imageURL(env catalog.Env, listURL, link string) string {
	u, err := url.Parse(link)
	if err != nil {
		return link
	}
	if !u.IsAbs() {
		base, err := url.Parse(listURL)
		if err != nil {
			return link
		}
		return base.ResolveReference(u).String()
	}
	if strings.TrimSuffix(env.Base, "/") == defaultBase {
		return link
	}
	return env.URL(u.EscapedPath())
}

// tagVersion turns a releases.json version into a tag: "41 Beta" into
// "41-beta".
func tagVersion(v string) string {
	v = strings.ToLower(strings.Join(strings.Fields(v), "-"))
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, v)
}

// buildID returns the build id in an image's file name: the field after the
// version, e.g. "1.14" in "Fedora-Cloud-Base-Generic.x86_64-40-1.14.qcow2",
// "1.5" in "Fedora-Cloud-Base-39-1.5.x86_64.qcow2" and "1.2" in
// "Fedora-Cloud-Base-Generic-41_Beta-1.2.x86_64.qcow2". It is "" when the
// name does not have the version (with "_" for spaces) and a build there.
func buildID(file, arch, version string) string {
	stem := strings.TrimSuffix(strings.TrimSuffix(file, ".qcow2"), "."+arch)
	fields := strings.Split(stem, "-")
	if len(fields) < 3 {
		return ""
	}
	build, ver := fields[len(fields)-1], fields[len(fields)-2]
	if !strings.EqualFold(ver, strings.Join(strings.Fields(version), "_")) || !isBuild(build) {
		return ""
	}
	return build
}

// isBuild reports whether s looks like a build id: dot-separated, starting
// with a digit ("1.14", "20240101.n.0").
func isBuild(s string) bool {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return false
	}
	for _, p := range strings.Split(s, ".") {
		if p == "" {
			return false
		}
		for _, r := range p {
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
	}
	return true
}

// metadata describes the image of arch. KubeVirt's common-instancetypes
// name Fedora's preference per architecture: "fedora" (amd64, with secure
// boot), "fedora.arm64" and "fedora.s390x".
func metadata(arch string) catalog.Metadata {
	preference := "fedora"
	if arch != "amd64" {
		preference += "." + arch
	}
	return catalog.Metadata{
		Description:  "Fedora Cloud Base, the Fedora Project's general-purpose cloud image, set up at first boot by cloud-init.",
		DefaultUser:  user,
		Instancetype: "u1.medium",
		Preference:   preference,
		UserData:     catalog.DefaultUserData(user),
		// The GenericCloud and Cloud Base images ship qemu-guest-agent.
		GuestAgent: true,
	}
}

// Package catalog describes the curated containerdisks: for each distribution,
// where its upstream publishes cloud images, how the latest release of each
// version and architecture is found, and what the image records about it.
//
// A Distro reads its upstream through a Fetcher and returns Releases; the
// Catalog gathers them for every distribution, applies the end-of-life rules,
// marks the newest stable version "latest", and selects what --focus and
// --shard ask for.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/customize"
)

// Fetcher reads upstream metadata files (release lists, checksum files,
// directory indexes). Implementations retry, time out and read each URL at
// most once per run; a missing file is reported as an error wrapping
// ErrNotFound.
type Fetcher interface {
	Fetch(ctx context.Context, url string) ([]byte, error)
}

// Env is what a Distro needs to read its upstream.
type Env struct {
	// Base is the upstream base URL: the distribution's default, or the
	// mirror the user gave with --mirror. No trailing slash.
	Base string
	// Fetch reads metadata files.
	Fetch Fetcher
	// Now is the time end-of-life rules are evaluated at.
	Now time.Time
}

// URL joins Base and a path relative to it.
func (e Env) URL(path ...string) string {
	u := strings.TrimSuffix(e.Base, "/")
	for _, p := range path {
		u += "/" + strings.Trim(p, "/")
	}
	return u
}

// Distro is one curated distribution.
type Distro interface {
	// Name is the image repository name, e.g. "fedora" or "centos-stream".
	Name() string
	// DefaultBase is the upstream base URL that --mirror NAME=URL replaces.
	DefaultBase() string
	// Releases returns the latest release of every version and
	// architecture the upstream publishes. A problem with one version or
	// architecture is reported in that Release's Err, so that the others
	// still go on; the error return is for an upstream that cannot be read
	// at all.
	Releases(ctx context.Context, env Env) ([]Release, error)
}

// Release is the latest upstream build of one version of a distribution for
// one architecture: everything needed to build its containerdisk.
type Release struct {
	// Name is the image repository name, e.g. "fedora".
	Name string `json:"name"`
	// Version is the release version, e.g. "41", "24.04", "9". It is the
	// moving tag.
	Version string `json:"version"`
	// Arch is amd64, arm64 or s390x.
	Arch string `json:"arch"`
	// URL is where the disk file is downloaded from.
	URL string `json:"url,omitempty"`
	// Checksum is the upstream checksum of the file at URL.
	Checksum containerdisk.Checksum `json:"-"`
	// Compression is how the file at URL is compressed: "" (not), gzip, xz
	// or zstd.
	Compression string `json:"compression,omitempty"`
	// Build is the upstream build id, e.g. "1.14" or "20240101.0".
	Build string `json:"build,omitempty"`
	// Tags are the unique tags of this build, e.g. "40-1.14".
	Tags []string `json:"tags,omitempty"`
	// Stable is false for betas and release candidates.
	Stable bool `json:"stable"`
	// Latest is set on the newest stable version of a name, which is also
	// tagged "latest".
	Latest bool `json:"latest,omitempty"`
	// Metadata describes the image.
	Metadata Metadata `json:"metadata"`
	// Customize, when set, is applied to the downloaded disk before it is
	// built (a catalog file's customize: block); CustomizeDir is the
	// directory its relative host paths (copy-in…) are read from. Neither
	// travels in gather's records: a spec can read host files, so only a
	// catalog file the user names gives one.
	Customize    *customize.Spec `json:"-"`
	CustomizeDir string          `json:"-"`
	// CustomizeSum, when set, is Customize.InputsDigest(CustomizeDir),
	// read once when the spec is loaded: it covers the host files the
	// spec reads as well as the spec.
	CustomizeSum string `json:"-"`
	// Err is why this release cannot be built, e.g. a missing checksum.
	Err error `json:"-"`
}

// CustomizeDigest is the digest of Customize (and of the host files it
// reads, when CustomizeSum is set), which the image records; "" for a
// release that is not customized.
func (r Release) CustomizeDigest() string {
	switch {
	case r.Customize == nil:
		return ""
	case r.CustomizeSum != "":
		return r.CustomizeSum
	}
	return r.Customize.Digest()
}

// Key is "name:version", the unit that is built and pushed.
func (r Release) Key() string { return r.Name + ":" + r.Version }

// Metadata describes an image for its users and for verification.
type Metadata struct {
	// Description is one sentence about the image.
	Description string `json:"description,omitempty" yaml:"description"`
	// DefaultUser is the login user cloud-init configures.
	DefaultUser string `json:"defaultUser,omitempty" yaml:"defaultUser"`
	// Instancetype and Preference are KubeVirt's defaults for the image.
	Instancetype string `json:"instancetype,omitempty" yaml:"instancetype"`
	Preference   string `json:"preference,omitempty" yaml:"preference"`
	// UserData is an example cloud-init user-data.
	UserData string `json:"userData,omitempty" yaml:"userData"`
	// EFI says the image boots only with UEFI.
	EFI bool `json:"efi,omitempty" yaml:"efi"`
	// GuestAgent says the image runs qemu-guest-agent, so that verify
	// checks that it answers.
	GuestAgent bool `json:"guestAgent,omitempty" yaml:"guestAgent"`
	// NoDocs leaves the image out of the generated documentation (a
	// catalog file's docs: false).
	NoDocs bool `json:"noDocs,omitempty" yaml:"-"`
}

// DefaultUserData is the example user-data of images whose distribution
// gives none of its own.
func DefaultUserData(user string) string {
	return fmt.Sprintf("#cloud-config\nuser: %s\npassword: changeme\nchpasswd: { expire: False }\n", user)
}

// ErrNotFound is wrapped by Fetcher errors for a file the upstream does not
// have (HTTP 404, or a missing file:// path).
var ErrNotFound = errors.New("not found")

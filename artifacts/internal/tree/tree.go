// Package tree holds what the curated distributions do alike in reading
// their upstream trees: listing version directories, reading the versions
// concurrently, listing architecture directories, picking the newest image
// a checksum file lists, and ordering the releases found.
package tree

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

// UpstreamArch is how the trees of Fedora, CentOS Stream, AlmaLinux and
// openSUSE (and uname -m) name KubeVirt's architectures.
var UpstreamArch = map[string]string{"amd64": "x86_64", "arm64": "aarch64", "s390x": "s390x"}

// Versions lists the directory at url and returns the version each of its
// subdirectories names, each once, ordered by catalog.CompareVersions.
// version returns a subdirectory's version, or false for one that is not a
// version. An empty list is no error: what the caller expected to find is
// the caller's to say.
func Versions(ctx context.Context, env catalog.Env, url string, version func(dir string) (string, bool)) ([]string, error) {
	page, err := env.Fetch.Fetch(ctx, url)
	if err != nil {
		return nil, err
	}
	var versions []string
	for _, dir := range upstream.Dirs(page) {
		if v, ok := version(dir); ok && !slices.Contains(versions, v) {
			versions = append(versions, v)
		}
	}
	slices.SortFunc(versions, catalog.CompareVersions)
	return versions, nil
}

// Match returns a version function for Versions: a directory re matches
// names the version of re's first group or, when re has none, the version
// that is its name.
func Match(re *regexp.Regexp) func(dir string) (string, bool) {
	return func(dir string) (string, bool) {
		switch m := re.FindStringSubmatch(dir); {
		case m == nil:
			return "", false
		case len(m) > 1:
			return m[1], true
		}
		return dir, true
	}
}

// ForEach calls read for each version, concurrently, and returns the
// releases read returns in the order of versions. It returns ctx's error
// when ctx ended meanwhile, since the releases are then incomplete.
func ForEach(ctx context.Context, versions []string, read func(v string) []catalog.Release) ([]catalog.Release, error) {
	results := make([][]catalog.Release, len(versions))
	var wg sync.WaitGroup
	for i, v := range versions {
		wg.Go(func() { results[i] = read(v) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return slices.Concat(results...), nil
}

// FailAll returns a release of each of arches, as newRelease makes it,
// failing with err: what a version reports when which of them it has
// cannot be known.
func FailAll(arches []string, newRelease func(arch string) catalog.Release, err error) []catalog.Release {
	out := make([]catalog.Release, 0, len(arches))
	for _, arch := range arches {
		r := newRelease(arch)
		r.Err = err
		out = append(out, r)
	}
	return out
}

// ReadArchDirs returns the releases of what, a version ("AlmaLinux 9") whose
// directory listed at url holds one subdirectory per architecture named as
// UpstreamArch spells it: for each of KubeVirt's architectures that has
// one, in their order, the release read returns.
//
// A listing that is not there gives no release: the version has no images
// (yet, or any more, as on a mirror mid-sync). A listing that cannot be
// read fails every one of KubeVirt's architectures, as newRelease makes
// them, since which the version has is unknown.
func ReadArchDirs(ctx context.Context, env catalog.Env, url, what string, newRelease, read func(arch string) catalog.Release) []catalog.Release {
	page, err := env.Fetch.Fetch(ctx, url)
	if err != nil {
		if errors.Is(err, catalog.ErrNotFound) {
			return nil
		}
		return FailAll(containerdisk.Architectures, newRelease, fmt.Errorf("listing the architectures of %s: %w", what, err))
	}
	dirs := upstream.Dirs(page)
	var out []catalog.Release
	for _, arch := range containerdisk.Architectures {
		if slices.Contains(dirs, UpstreamArch[arch]) {
			out = append(out, read(arch))
		}
	}
	return out
}

// Newest returns the entry of sums for the newest file re matches: the one
// whose groups are the greatest, compared in turn by
// catalog.CompareVersions, the first listed of equals. It returns the
// groups too, and false when re matches no file.
func Newest(sums []upstream.Sum, re *regexp.Regexp) (best upstream.Sum, groups []string, ok bool) {
	for _, s := range sums {
		m := re.FindStringSubmatch(s.File)
		if m == nil {
			continue
		}
		if !ok || compareGroups(m[1:], groups) > 0 {
			best, groups, ok = s, m[1:], true
		}
	}
	return best, groups, ok
}

func compareGroups(a, b []string) int {
	for i := range a {
		if c := catalog.CompareVersions(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

// SortReleases orders releases by version (catalog.CompareVersions), then by
// architecture, in the order of containerdisk.Architectures, and last by
// the version as text, so that the order does not depend on the order the
// releases were found in.
func SortReleases(rels []catalog.Release) {
	slices.SortStableFunc(rels, func(a, b catalog.Release) int {
		if c := catalog.CompareVersions(a.Version, b.Version); c != 0 {
			return c
		}
		if c := slices.Index(containerdisk.Architectures, a.Arch) - slices.Index(containerdisk.Architectures, b.Arch); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
}

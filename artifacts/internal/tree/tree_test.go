package tree

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"testing"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

// pages is an upstream of directory listings by URL; any other URL is not
// found, and one listed with a nil page fails.
type pages map[string][]string

func (p pages) Fetch(_ context.Context, url string) ([]byte, error) {
	dirs, ok := p[url]
	switch {
	case !ok:
		return nil, fmt.Errorf("fetching %s: %w", url, catalog.ErrNotFound)
	case dirs == nil:
		return nil, fmt.Errorf("fetching %s: 502 Bad Gateway", url)
	}
	var page []byte
	for _, d := range dirs {
		page = fmt.Appendf(page, "<a href=\"%s/\">%s/</a>\n", d, d)
	}
	return page, nil
}

func TestUpstreamArch(t *testing.T) {
	if len(UpstreamArch) != len(containerdisk.Architectures) {
		t.Errorf("UpstreamArch = %q, want a name for each of %q and no other", UpstreamArch, containerdisk.Architectures)
	}
	for _, arch := range containerdisk.Architectures {
		if back, err := containerdisk.NormalizeArch(UpstreamArch[arch]); back != arch {
			t.Errorf("UpstreamArch[%s] = %q, which is architecture %q (%v)", arch, UpstreamArch[arch], back, err)
		}
	}
}

func TestVersions(t *testing.T) {
	env := catalog.Env{Base: "https://example.org", Fetch: pages{
		"https://example.org/":        {"10-stream", "9-stream", "HEADER", "7", "9-stream-old", "10-stream"},
		"https://example.org/broken/": nil,
	}}
	got, err := Versions(t.Context(), env, "https://example.org/", Match(regexp.MustCompile(`^([0-9]+)-stream$`)))
	if want := []string{"9", "10"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("Versions by group = %q, %v; want %q", got, err, want)
	}
	got, err = Versions(t.Context(), env, "https://example.org/", Match(regexp.MustCompile(`^[0-9]+$`)))
	if want := []string{"7"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("Versions by name = %q, %v; want %q", got, err, want)
	}
	got, err = Versions(t.Context(), env, "https://example.org/", Match(regexp.MustCompile(`^none$`)))
	if err != nil || len(got) != 0 {
		t.Errorf("Versions of nothing = %q, %v; want none and no error", got, err)
	}
	if got, err := Versions(t.Context(), env, "https://example.org/broken/", Match(regexp.MustCompile(`.`))); err == nil {
		t.Errorf("Versions of an unreadable listing = %q, want its error", got)
	}
}

func TestForEach(t *testing.T) {
	read := func(v string) []catalog.Release {
		return []catalog.Release{{Version: v, Arch: "amd64"}, {Version: v, Arch: "arm64"}}
	}
	rels, err := ForEach(t.Context(), []string{"9", "10", "11"}, read)
	var got []string
	for _, r := range rels {
		got = append(got, r.Version+" "+r.Arch)
	}
	if want := []string{"9 amd64", "9 arm64", "10 amd64", "10 arm64", "11 amd64", "11 arm64"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("ForEach = %q, %v; want %q, in the order of the versions", got, err, want)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if rels, err := ForEach(ctx, []string{"9"}, read); !errors.Is(err, context.Canceled) {
		t.Errorf("ForEach after cancel = %d releases, %v; want context.Canceled", len(rels), err)
	}
}

func TestReadArchDirs(t *testing.T) {
	env := catalog.Env{Base: "https://example.org", Fetch: pages{
		"https://example.org/9/":  {"x86_64", "ppc64le", "s390x", "isos"},
		"https://example.org/10/": nil,
	}}
	newRelease := func(arch string) catalog.Release { return catalog.Release{Name: "d", Version: "v", Arch: arch} }
	read := func(arch string) catalog.Release {
		r := newRelease(arch)
		r.Build = "read"
		return r
	}
	describe := func(rels []catalog.Release) []string {
		var out []string
		for _, r := range rels {
			out = append(out, fmt.Sprintf("%s %s %s %v", r.Arch, r.Build, r.Name, r.Err))
		}
		return out
	}
	for _, tc := range []struct {
		url  string
		want []string
	}{
		{"https://example.org/9/", []string{"amd64 read d <nil>", "s390x read d <nil>"}},
		{"https://example.org/11/", nil},
		{"https://example.org/10/", []string{
			"amd64  d listing the architectures of D 10: fetching https://example.org/10/: 502 Bad Gateway",
			"arm64  d listing the architectures of D 10: fetching https://example.org/10/: 502 Bad Gateway",
			"s390x  d listing the architectures of D 10: fetching https://example.org/10/: 502 Bad Gateway",
		}},
	} {
		got := describe(ReadArchDirs(t.Context(), env, tc.url, "D 10", newRelease, read))
		if !slices.Equal(got, tc.want) {
			t.Errorf("ReadArchDirs(%s) = %q, want %q", tc.url, got, tc.want)
		}
	}
}

func TestNewest(t *testing.T) {
	sum := func(file string) upstream.Sum {
		return upstream.Sum{File: file, Checksum: containerdisk.Checksum{Algorithm: "sha256", Hex: file}}
	}
	sums := []upstream.Sum{
		sum("img-9.9-20251001.qcow2"),
		sum("img-9.10-20250521.qcow2"),
		sum("img-9.10-20250522.qcow2"),
		sum("disk-9.10-20250522.qcow2"), // the same groups as the one before
		sum("img-9.10-20250520.qcow2"),
		sum("img-10.0-latest.qcow2"),
	}
	best, groups, ok := Newest(sums, regexp.MustCompile(`^(?:img|disk)-([0-9.]+)-([0-9]{8})\.qcow2$`))
	if !ok || best.File != "img-9.10-20250522.qcow2" || !slices.Equal(groups, []string{"9.10", "20250522"}) {
		t.Errorf("Newest = %s %q %v; want img-9.10-20250522.qcow2, the first of the greatest groups", best.File, groups, ok)
	}
	if best, _, ok := Newest(sums, regexp.MustCompile(`^other-(.*)$`)); ok {
		t.Errorf("Newest of no match = %s, want none", best.File)
	}
}

func TestSortReleases(t *testing.T) {
	rels := []catalog.Release{
		{Version: "41_beta", Arch: "amd64"}, // the same version as 41-beta
		{Version: "41", Arch: "s390x"},
		{Version: "41-beta", Arch: "amd64"},
		{Version: "10", Arch: "arm64"},
		{Version: "41", Arch: "amd64"},
		{Version: "10", Arch: "amd64"},
		{Version: "9", Arch: "amd64"},
	}
	SortReleases(rels)
	var got []string
	for _, r := range rels {
		got = append(got, r.Version+" "+r.Arch)
	}
	if want := []string{"9 amd64", "10 amd64", "10 arm64", "41-beta amd64", "41_beta amd64", "41 amd64", "41 s390x"}; !slices.Equal(got, want) {
		t.Errorf("SortReleases = %q, want %q", got, want)
	}
}

func TestFailAll(t *testing.T) {
	err := errors.New("broken")
	rels := FailAll([]string{"amd64", "arm64"}, func(arch string) catalog.Release { return catalog.Release{Name: "d", Version: "1", Arch: arch} }, err)
	if len(rels) != 2 || rels[0].Arch != "amd64" || rels[1].Arch != "arm64" {
		t.Fatalf("FailAll = %+v, want amd64 and arm64", rels)
	}
	for _, r := range rels {
		if r.Name != "d" || r.Version != "1" || r.Err != err {
			t.Errorf("FailAll gives %+v, want the release newRelease makes, failing with %v", r, err)
		}
	}
}

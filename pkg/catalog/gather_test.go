package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/pkg/inputerr"
)

// listDistro is a distribution whose upstream is a fixed list, for testing
// what the catalog does around the distributions.
type listDistro struct {
	name     string
	versions []string // "41 Beta"-like prerelease when containing "beta"
	arches   []string
	err      error
	bases    *[]string
}

func (d listDistro) Name() string        { return d.name }
func (d listDistro) DefaultBase() string { return "https://" + d.name + ".example" }
func (d listDistro) Releases(_ context.Context, env Env) ([]Release, error) {
	if d.bases != nil {
		*d.bases = append(*d.bases, env.Base)
	}
	if d.err != nil {
		return nil, d.err
	}
	var out []Release
	// Upstream order is deliberately not sorted.
	for _, a := range d.arches {
		for _, v := range d.versions {
			out = append(out, Release{Name: d.name, Version: v, Arch: a, Stable: !strings.Contains(v, "beta"), URL: env.URL(v, a)})
		}
	}
	return out, nil
}

func keys(rels []Release) []string {
	var out []string
	for _, r := range rels {
		k := r.Key() + "/" + r.Arch
		if r.Latest {
			k += "*"
		}
		if r.Err != nil {
			k += "!"
		}
		out = append(out, k)
	}
	return out
}

func TestGather(t *testing.T) {
	cat := &Catalog{
		Distros: []Distro{
			listDistro{name: "fedora", versions: []string{"42-beta", "40", "41"}, arches: []string{"s390x", "amd64"}},
			listDistro{name: "debian", versions: []string{"10", "13", "11", "12"}, arches: []string{"arm64", "amd64"}},
			listDistro{name: "ubuntu", versions: []string{"22.04", "24.04", "23.10"}, arches: []string{"amd64"}},
		},
		Policies: map[string]Policy{
			"debian": {MinVersion: "11", EOL: map[string]string{"11": "2026-08-31"}},
			"ubuntu": {Keep: 2},
		},
		Now: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
	}
	tests := []struct {
		sel  Selection
		want []string
	}{
		{Selection{}, []string{
			"fedora:40/amd64", "fedora:40/s390x", "fedora:41/amd64*", "fedora:41/s390x*", "fedora:42-beta/amd64", "fedora:42-beta/s390x",
			"debian:12/amd64", "debian:12/arm64", "debian:13/amd64*", "debian:13/arm64*",
			"ubuntu:23.10/amd64", "ubuntu:24.04/amd64*",
		}},
		{Selection{Focus: []string{"fedora:4?"}}, []string{"fedora:40/amd64", "fedora:40/s390x", "fedora:41/amd64*", "fedora:41/s390x*"}},
		{Selection{Focus: []string{"debian", "ubuntu:24.04"}}, []string{"debian:12/amd64", "debian:12/arm64", "debian:13/amd64*", "debian:13/arm64*", "ubuntu:24.04/amd64*"}},
		{Selection{Focus: []string{"*:1*"}}, []string{"debian:12/amd64", "debian:12/arm64", "debian:13/amd64*", "debian:13/arm64*"}},
		{Selection{Focus: []string{"*:*"}, Shards: 1}, nil}, // same as everything; checked below
	}
	for _, tt := range tests[:4] {
		got, err := cat.Gather(context.Background(), tt.sel)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(keys(got), tt.want) {
			t.Errorf("Gather(%+v) =\n%q\nwant\n%q", tt.sel, keys(got), tt.want)
		}
	}
	all, _ := cat.Gather(context.Background(), Selection{})
	star, _ := cat.Gather(context.Background(), tests[4].sel)
	if !slices.Equal(keys(all), keys(star)) {
		t.Errorf("*:* selected %q, want everything %q", keys(star), keys(all))
	}
}

func TestGatherShards(t *testing.T) {
	var versions []string
	for i := range 40 {
		versions = append(versions, fmt.Sprint(i))
	}
	cat := &Catalog{Distros: []Distro{listDistro{name: "d", versions: versions, arches: []string{"amd64", "arm64"}}}}
	all, _ := cat.Gather(context.Background(), Selection{})
	seen := map[string]int{}
	for k := range 4 {
		part, err := cat.Gather(context.Background(), Selection{Shard: k, Shards: 4})
		if err != nil {
			t.Fatal(err)
		}
		if len(part) == 0 || len(part) == len(all) {
			t.Errorf("shard %d/4 has %d of %d releases", k, len(part), len(all))
		}
		for _, g := range GroupReleases(part) {
			seen[g.Key()]++
			if len(g.Releases) != 2 {
				t.Errorf("shard %d split the architectures of %s", k, g.Key())
			}
		}
		again, _ := cat.Gather(context.Background(), Selection{Shard: k, Shards: 4})
		if !slices.Equal(keys(part), keys(again)) {
			t.Errorf("shard %d/4 differs between runs", k)
		}
	}
	if len(seen) != 40 {
		t.Errorf("the shards cover %d of 40 entries", len(seen))
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s is in %d shards", k, n)
		}
	}
}

func TestGatherErrorsAndMirrors(t *testing.T) {
	var bases []string
	cat := &Catalog{
		Distros: []Distro{
			listDistro{name: "down", err: errors.New("503 Service Unavailable")},
			listDistro{name: "fedora", versions: []string{"41"}, arches: []string{"amd64"}, bases: &bases},
			listDistro{name: "ubuntu", versions: []string{"24.04"}, arches: []string{"amd64"}, bases: &bases},
		},
		Mirrors: map[string]string{"fedora": "file:///srv/fedora/", "*": "http://127.0.0.1:8080/up"},
	}
	got, err := cat.Gather(context.Background(), Selection{Focus: []string{"*:41", "down:1"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"down:*/!", "fedora:41/amd64*"}; !slices.Equal(keys(got), want) {
		t.Errorf("Gather = %q, want %q", keys(got), want)
	}
	var ge *GatherError
	if !errors.As(got[0].Err, &ge) || ge.Name != "down" {
		t.Errorf("error = %v, want a GatherError for down", got[0].Err)
	}
	if got[1].URL != "file:///srv/fedora/41/amd64" {
		t.Errorf("fedora URL = %s, want it below the mirror", got[1].URL)
	}
	bases = nil
	cat.Gather(context.Background(), Selection{Focus: []string{"ubuntu"}})
	if !slices.Equal(bases, []string{"http://127.0.0.1:8080/up/ubuntu"}) {
		t.Errorf("ubuntu base = %q, want the * mirror with the name appended", bases)
	}
}

func TestValidate(t *testing.T) {
	cat := &Catalog{Distros: []Distro{listDistro{name: "fedora"}, listDistro{name: "ubuntu"}}}
	for _, sel := range []Selection{
		{Focus: []string{"fedroa:*"}},
		{Focus: []string{"[:*"}},
		{Focus: []string{":41"}},
		{Shard: 4, Shards: 4},
	} {
		if err := cat.Validate(sel); !inputerr.Is(err) {
			t.Errorf("Validate(%+v) = %v, want an input error", sel, err)
		}
	}
	cat.Mirrors = map[string]string{"fedroa": "https://x"}
	if err := cat.Validate(Selection{}); err == nil || !strings.Contains(err.Error(), "fedora") {
		t.Errorf("Validate with a misspelt mirror = %v, want an error listing the names", err)
	}
	for _, s := range []string{"1/1", "-1/2", "a/b", "2"} {
		if _, _, err := ParseShard(s); err == nil {
			t.Errorf("ParseShard(%q) succeeded", s)
		}
	}
	if k, n, err := ParseShard("3/8"); err != nil || k != 3 || n != 8 {
		t.Errorf("ParseShard(3/8) = %d, %d, %v", k, n, err)
	}
}

func TestGroupLatest(t *testing.T) {
	rels := []Release{
		{Name: "a", Version: "1", Arch: "amd64", Stable: true, Latest: true},
		{Name: "a", Version: "1", Arch: "arm64", Stable: true, Latest: true, Err: errors.New("no checksum")},
		{Name: "a", Version: "2", Arch: "amd64"},
	}
	groups := GroupReleases(rels)
	if len(groups) != 2 || groups[0].Key() != "a:1" || len(groups[0].Releases) != 2 {
		t.Fatalf("groups = %+v", groups)
	}
	if !groups[0].Latest() || groups[1].Latest() {
		t.Error("Latest wrong")
	}
	if err := groups[0].Err(); err == nil || !strings.Contains(err.Error(), "no checksum") {
		t.Errorf("Err = %v", err)
	}
}

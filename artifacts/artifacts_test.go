package artifacts

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/internal/testupstream"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

// The whole curated catalog, read from a fake upstream holding a build of
// every curated version: every distribution and architecture the issue of
// record lists is there, with a usable checksum, and the end-of-life
// policies apply.
func TestCatalog(t *testing.T) {
	site, err := testupstream.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := site.PublishCurated(now); err != nil {
		t.Fatal(err)
	}
	// End-of-life versions upstream still lists drop out by policy.
	for _, b := range [][]string{{"debian", "10", "buster", "20240703-1797"}, {"centos-stream", "8", "20240101.0"}, {"almalinux", "8", "8.10", "20240530"}} {
		if err := site.Publish(b[0], b[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	u, err := site.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer site.Close()
	c := Catalog(upstream.NewClient(upstream.Options{}))
	c.Mirrors = map[string]string{"*": u}
	c.Now = now
	rels, err := c.Gather(context.Background(), catalog.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	arches := map[string][]string{}
	latest := map[string]string{}
	for _, r := range rels {
		if r.Err != nil {
			t.Errorf("%s %s: %v", r.Key(), r.Arch, r.Err)
			continue
		}
		if r.Checksum.IsZero() || r.URL == "" || r.Metadata.DefaultUser == "" || r.Metadata.Instancetype == "" {
			t.Errorf("%s %s is missing something build needs: %+v", r.Key(), r.Arch, r)
		}
		arches[r.Key()] = append(arches[r.Key()], r.Arch)
		if r.Latest {
			latest[r.Name] = r.Version
		}
	}
	all := containerdisk.Architectures
	want := map[string][]string{
		"fedora:41": all, "fedora:42": all,
		"centos-stream:9": all, "centos-stream:10": all,
		"almalinux:9": all, "almalinux:10": all,
		"debian:11": {"amd64", "arm64"}, "debian:12": {"amd64", "arm64"}, "debian:13": {"amd64", "arm64"},
		"opensuse-leap:15.6": {"amd64", "arm64"}, "opensuse-leap:16.0": all,
		"opensuse-tumbleweed:1.0.0": all, "opensuse-microos:16.0.0": all,
	}
	for key, w := range want {
		if !slices.Equal(arches[key], w) {
			t.Errorf("%s has %v, want %v", key, arches[key], w)
		}
	}
	ubuntu := 0
	for key := range arches {
		if _, ok := want[key]; !ok && len(key) > 7 && key[:7] == "ubuntu:" {
			ubuntu++
			if !slices.Equal(arches[key], all) {
				t.Errorf("%s has %v, want %v", key, arches[key], all)
			}
		} else if !ok {
			t.Errorf("unexpected entry %s (end of life?)", key)
		}
	}
	if ubuntu != 2 {
		t.Errorf("%d Ubuntu versions, want the 2 current LTS", ubuntu)
	}
	for name, v := range map[string]string{"fedora": "42", "debian": "13", "centos-stream": "10", "opensuse-leap": "16.0"} {
		if latest[name] != v {
			t.Errorf("latest %s = %q, want %s", name, latest[name], v)
		}
	}
}

func TestDistrosAndPolicies(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range Distros() {
		if seen[d.Name()] {
			t.Errorf("%s registered twice", d.Name())
		}
		seen[d.Name()] = true
		if d.DefaultBase() == "" || d.DefaultBase()[:8] != "https://" {
			t.Errorf("%s: default base %q, want an https URL", d.Name(), d.DefaultBase())
		}
	}
	for name := range Policies() {
		if !seen[name] {
			t.Errorf("policy for %s, which is not a distribution", name)
		}
	}
	if p := Policies()["debian"]; p.MinVersion != "11" {
		t.Errorf("debian policy = %+v", p)
	}
}

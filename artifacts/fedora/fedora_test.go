package fedora

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/internal/testupstream"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

// releases reads the site as a mirror of Fedora, as a new run does.
func releases(t *testing.T, site *testupstream.Site) []catalog.Release {
	t.Helper()
	return testupstream.Releases(t, New(), site.Env(New(), time.Now()))
}

func TestReleases(t *testing.T) {
	site := testupstream.Serve(t)
	// Build 1.10 after 1.9: numerically newer, though not as text.
	for _, p := range []struct {
		version, build string
		arches         []string
	}{
		{"40", "1.10", nil},
		{"40", "1.9", nil},
		{"39", "1.5", []string{"amd64", "aarch64", "ppc64le"}},
		{"41 Beta", "1.2", []string{"x86_64", "arm64"}},
	} {
		if err := site.PublishFedora(p.version, p.build, p.arches...); err != nil {
			t.Fatal(err)
		}
	}

	want := []struct {
		version, arch, build, path, preference string
		stable                                 bool
	}{
		{"39", "amd64", "1.5", "pub/fedora/linux/releases/39/Cloud/x86_64/images/Fedora-Cloud-Base-39-1.5.x86_64.qcow2", "fedora", true},
		{"39", "arm64", "1.5", "pub/fedora/linux/releases/39/Cloud/aarch64/images/Fedora-Cloud-Base-39-1.5.aarch64.qcow2", "fedora.arm64", true},
		{"40", "amd64", "1.10", "pub/fedora/linux/releases/40/Cloud/x86_64/images/Fedora-Cloud-Base-Generic.x86_64-40-1.10.qcow2", "fedora", true},
		{"40", "arm64", "1.10", "pub/fedora/linux/releases/40/Cloud/aarch64/images/Fedora-Cloud-Base-Generic.aarch64-40-1.10.qcow2", "fedora.arm64", true},
		{"40", "s390x", "1.10", "pub/fedora-secondary/releases/40/Cloud/s390x/images/Fedora-Cloud-Base-Generic.s390x-40-1.10.qcow2", "fedora.s390x", true},
		{"41-beta", "amd64", "1.2", "pub/fedora/linux/releases/test/41_Beta/Cloud/x86_64/images/Fedora-Cloud-Base-Generic-41_Beta-1.2.x86_64.qcow2", "fedora", false},
		{"41-beta", "arm64", "1.2", "pub/fedora/linux/releases/test/41_Beta/Cloud/aarch64/images/Fedora-Cloud-Base-Generic-41_Beta-1.2.aarch64.qcow2", "fedora.arm64", false},
	}
	rels := releases(t, site)
	if len(rels) != len(want) {
		t.Fatalf("got %d releases, want %d:\n%s", len(rels), len(want), strings.Join(testupstream.Lines(rels), "\n"))
	}
	for i, w := range want {
		t.Run(w.version+"/"+w.arch, func(t *testing.T) {
			// The link to download.fedoraproject.org, read under the mirror.
			testupstream.CheckRelease(t, site, rels[i], testupstream.Want{
				Name: "fedora", Version: w.version, Arch: w.arch, Build: w.build, Stable: w.stable,
				Tags:        []string{w.version + "-" + w.build},
				Path:        w.path,
				DefaultUser: "fedora", Preference: w.preference,
			})
		})
	}
}

func TestReleasesPicksUpNewBuild(t *testing.T) {
	site := testupstream.Serve(t)
	if err := site.PublishFedora("40", "1.14", "amd64"); err != nil {
		t.Fatal(err)
	}
	before := releases(t, site)
	if len(before) != 1 || before[0].Build != "1.14" {
		t.Fatalf("before: %q", testupstream.Lines(before))
	}

	if err := site.PublishFedora("40", "1.15", "amd64"); err != nil {
		t.Fatal(err)
	}
	after := releases(t, site)
	if len(after) != 1 || after[0].Build != "1.15" || !strings.HasSuffix(after[0].URL, "/Fedora-Cloud-Base-Generic.x86_64-40-1.15.qcow2") {
		t.Fatalf("after: %q", testupstream.Lines(after))
	}
	if after[0].Checksum == before[0].Checksum {
		t.Errorf("builds 1.14 and 1.15 have the same checksum %s", after[0].Checksum)
	}
	testupstream.CheckDownload(t, after[0], "sha256")
}

func TestReleasesPlaceholderChecksum(t *testing.T) {
	site := testupstream.Serve(t)
	if err := site.PublishFedora("41", "1.4"); err != nil {
		t.Fatal(err)
	}
	// x86_64 "aaaa…", aarch64 "bbbb…", s390x without a sha256.
	if err := site.PublishFedoraPlaceholder("42 Beta", "1.1"); err != nil {
		t.Fatal(err)
	}
	rels := releases(t, site)
	if len(rels) != 6 {
		t.Fatalf("got %q, want 41 and 42-beta for three architectures", testupstream.Lines(rels))
	}
	for _, r := range rels {
		if r.Version == "41" {
			if r.Err != nil {
				t.Errorf("41 %s: a placeholder of another version fails it: %v", r.Arch, r.Err)
			}
			continue
		}
		if r.Version != "42-beta" || r.Stable {
			t.Errorf("got %s stable %v, want 42-beta, not stable", r.Version, r.Stable)
		}
		if r.Err == nil {
			t.Errorf("42-beta %s: no error for a placeholder checksum (Checksum %s)", r.Arch, r.Checksum)
			continue
		}
		if !errors.Is(r.Err, upstream.ErrPlaceholderChecksum) {
			t.Errorf("42-beta %s: Err %v does not wrap ErrPlaceholderChecksum", r.Arch, r.Err)
		}
		upArch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "s390x": "s390x"}[r.Arch]
		file := "Fedora-Cloud-Base-Generic-42_Beta-1.1." + upArch + ".qcow2"
		if msg := r.Err.Error(); !strings.Contains(msg, file) || !strings.Contains(msg, "releases.json") || !strings.Contains(msg, "sha256") {
			t.Errorf("42-beta %s: Err %q should name releases.json, the file %s and the missing sha256", r.Arch, msg, file)
		}
		if r.Name != "fedora" || r.Arch == "" {
			t.Errorf("a failed release still says what it is: %+v", r)
		}
	}
}

// fileFetcher serves files of a site under another base, so that the
// default base can be tested without the network.
type fileFetcher struct {
	site *testupstream.Site
	base string
}

func (f fileFetcher) Fetch(_ context.Context, url string) ([]byte, error) {
	p, ok := strings.CutPrefix(url, f.base+"/")
	if !ok {
		return nil, fmt.Errorf("fetching %s: outside %s: %w", url, f.base, catalog.ErrNotFound)
	}
	data, err := f.site.ReadFile("fedora/" + p)
	if err == nil && data == nil {
		err = fmt.Errorf("fetching %s: %w", url, catalog.ErrNotFound)
	}
	return data, err
}

func TestReleasesLinksOfDefaultBase(t *testing.T) {
	site := testupstream.Serve(t)
	if err := site.PublishFedora("40", "1.14", "s390x"); err != nil {
		t.Fatal(err)
	}
	d := New()
	rels := testupstream.Releases(t, d, catalog.Env{Base: d.DefaultBase(), Fetch: fileFetcher{site, d.DefaultBase()}})
	want := "https://download.fedoraproject.org/pub/fedora-secondary/releases/40/Cloud/s390x/images/Fedora-Cloud-Base-Generic.s390x-40-1.14.qcow2"
	if len(rels) != 1 || rels[0].URL != want {
		t.Errorf("got %q, want the link of releases.json, %s", testupstream.Lines(rels), want)
	}
}

func TestReleasesOrderIsDeterministic(t *testing.T) {
	site := testupstream.Serve(t)
	for _, p := range [][2]string{{"40", "1.14"}, {"39", "1.5"}, {"41 Beta", "1.3"}, {"41", "1.4"}, {"40", "1.2"}} {
		if err := site.PublishFedora(p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	first := testupstream.Lines(releases(t, site))
	wantOrder := []string{"39 amd64", "39 arm64", "39 s390x", "40 amd64", "40 arm64", "40 s390x", "41-beta amd64", "41-beta arm64", "41-beta s390x", "41 amd64", "41 arm64", "41 s390x"}
	if len(first) != len(wantOrder) {
		t.Fatalf("got %q", first)
	}
	for i, w := range wantOrder {
		if !strings.HasPrefix(first[i], w+" ") {
			t.Errorf("release %d is %q, want %s", i, first[i], w)
		}
	}

	// The same list in another order gives the same releases.
	data, err := site.ReadFile("fedora/releases.json")
	if err != nil {
		t.Fatal(err)
	}
	var entries []map[string]any
	if err := json.Unmarshal(data, &entries); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(entries)
	if data, err = json.Marshal(entries); err != nil {
		t.Fatal(err)
	}
	if err := site.WriteFile("fedora/releases.json", data); err != nil {
		t.Fatal(err)
	}
	if second := testupstream.Lines(releases(t, site)); !slices.Equal(first, second) {
		t.Errorf("reversed releases.json:\n%s\nwant\n%s", strings.Join(second, "\n"), strings.Join(first, "\n"))
	}
}

func TestReleasesSelection(t *testing.T) {
	const images = "https://download.fedoraproject.org/pub/fedora/linux/releases/40/Cloud/x86_64/images/"
	item := func(file string) map[string]string {
		return map[string]string{"version": "40", "arch": "x86_64", "link": images + file, "variant": "Cloud", "subvariant": "Cloud_Base", "sha256": strings.Repeat("0123", 16)}
	}
	tests := []struct {
		name  string
		files []string
		want  string
	}{
		{"generic over a higher build of another image", []string{"Fedora-Cloud-Base-Azure.x86_64-40-1.20.qcow2", "Fedora-Cloud-Base-Generic.x86_64-40-1.14.qcow2"}, "Fedora-Cloud-Base-Generic.x86_64-40-1.14.qcow2"},
		{"generic over a higher build of another image, listed last", []string{"Fedora-Cloud-Base-Generic.x86_64-40-1.14.qcow2", "Fedora-Cloud-Base-Azure.x86_64-40-1.20.qcow2"}, "Fedora-Cloud-Base-Generic.x86_64-40-1.14.qcow2"},
		{"highest build, numerically", []string{"Fedora-Cloud-Base-Generic.x86_64-40-1.9.qcow2", "Fedora-Cloud-Base-Generic.x86_64-40-1.10.qcow2", "Fedora-Cloud-Base-Generic.x86_64-40-1.2.qcow2"}, "Fedora-Cloud-Base-Generic.x86_64-40-1.10.qcow2"},
		{"a name with a build over one without", []string{"Fedora-Cloud-Base-Generic.x86_64-40-1.9.qcow2", "Fedora-Cloud-Base-Generic.x86_64.qcow2"}, "Fedora-Cloud-Base-Generic.x86_64-40-1.9.qcow2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			site := testupstream.Serve(t)
			var entries []map[string]string
			for _, f := range tt.files {
				entries = append(entries, item(f))
			}
			data, err := json.Marshal(entries)
			if err != nil {
				t.Fatal(err)
			}
			if err := site.WriteFile("fedora/releases.json", data); err != nil {
				t.Fatal(err)
			}
			rels := releases(t, site)
			if len(rels) != 1 || !strings.HasSuffix(rels[0].URL, "/"+tt.want) {
				t.Errorf("got %q, want %s", testupstream.Lines(rels), tt.want)
			}
		})
	}
}

func TestReleasesUnreadable(t *testing.T) {
	testupstream.CheckUnreadable(t, New(), time.Now(), []testupstream.Unreadable{
		{Name: "missing", Set: func(*testupstream.Site) error { return nil }, Is: catalog.ErrNotFound},
		{Name: "server error", Set: func(s *testupstream.Site) error {
			s.Fail("fedora/releases.json", http.StatusInternalServerError, 100)
			return s.PublishFedora("40", "1.14", "amd64")
		}},
		{Name: "not JSON", Set: func(s *testupstream.Site) error {
			return s.WriteFile("fedora/releases.json", []byte("<html>moved</html>"))
		}, Want: "expected a JSON array"},
		{Name: "no cloud image", Set: func(s *testupstream.Site) error {
			return s.WriteFile("fedora/releases.json", []byte(`[{"version":"40","arch":"x86_64","link":"https://download.fedoraproject.org/pub/fedora/linux/releases/40/Server/x86_64/iso/Fedora-Server-dvd-x86_64-40-1.14.iso","variant":"Server","subvariant":"Server","sha256":"`+strings.Repeat("12", 32)+`"}]`))
		}, Want: "lists no Cloud Base qcow2 image"},
	})
}

func TestBuildID(t *testing.T) {
	tests := []struct {
		file, arch, version, want string
	}{
		{"Fedora-Cloud-Base-Generic.x86_64-40-1.14.qcow2", "x86_64", "40", "1.14"},
		{"Fedora-Cloud-Base-Generic.s390x-41-1.4.qcow2", "s390x", "41", "1.4"},
		{"Fedora-Cloud-Base-39-1.5.x86_64.qcow2", "x86_64", "39", "1.5"},
		{"Fedora-Cloud-Base-Generic-41_Beta-1.2.x86_64.qcow2", "x86_64", "41 Beta", "1.2"},
		{"Fedora-Cloud-Base-Generic-42_RC-1.1.aarch64.qcow2", "aarch64", "42 RC", "1.1"},
		{"Fedora-Cloud-Base-Generic.x86_64-Rawhide-20240101.n.0.qcow2", "x86_64", "Rawhide", "20240101.n.0"},
		// Not the version in front of the build.
		{"Fedora-Cloud-Base-Generic.x86_64-40-1.14.qcow2", "x86_64", "41", ""},
		{"Fedora-Cloud-Base-Generic.x86_64-40.qcow2", "x86_64", "40", ""},
		{"Fedora-Cloud-Base-Generic.x86_64-40-latest.qcow2", "x86_64", "40", ""},
		{"disk.qcow2", "x86_64", "40", ""},
	}
	for _, tt := range tests {
		if got := buildID(tt.file, tt.arch, tt.version); got != tt.want {
			t.Errorf("buildID(%q, %q, %q) = %q, want %q", tt.file, tt.arch, tt.version, got, tt.want)
		}
	}
}

func TestTagVersion(t *testing.T) {
	for in, want := range map[string]string{"40": "40", "41 Beta": "41-beta", "42 RC": "42-rc", " 43  Beta ": "43-beta", "44 Beta+1": "44-beta-1"} {
		if got := tagVersion(in); got != want {
			t.Errorf("tagVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReleasesFromLocalMirror(t *testing.T) {
	site := testupstream.Serve(t)
	if err := site.PublishFedora("40", "1.14", "amd64"); err != nil {
		t.Fatal(err)
	}
	rels := testupstream.Releases(t, New(), site.LocalEnv(New()))
	path := "fedora/pub/fedora/linux/releases/40/Cloud/x86_64/images/Fedora-Cloud-Base-Generic.x86_64-40-1.14.qcow2"
	if len(rels) != 1 || rels[0].URL != site.FileURL()+"/"+path || rels[0].Checksum.Hex != testupstream.FileSHA256(t, site, path) {
		t.Errorf("got %q (%s), want the image at %s", testupstream.Lines(rels), rels[0].Checksum, path)
	}
}

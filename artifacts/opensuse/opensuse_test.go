package opensuse

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/internal/testupstream"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
)

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		d    catalog.Distro
		name string
	}{
		{NewLeap(), "opensuse-leap"},
		{NewTumbleweed(), "opensuse-tumbleweed"},
		{NewMicroOS(), "opensuse-microos"},
	} {
		if tc.d.Name() != tc.name || tc.d.DefaultBase() != "https://download.opensuse.org" {
			t.Errorf("Name, DefaultBase = %q, %q; want %q, https://download.opensuse.org", tc.d.Name(), tc.d.DefaultBase(), tc.name)
		}
	}
}

// june2025 is when the tests read openSUSE.
var june2025 = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

// releases reads d's tree of site as a new run does.
func releases(t *testing.T, site *testupstream.Site, d catalog.Distro) []catalog.Release {
	t.Helper()
	return testupstream.Releases(t, d, site.Env(d, june2025))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// want is an expected release: path relative to the distribution's tree,
// and the id of the disk published there.
type want struct {
	version, arch, path, build, tag, disk string
}

// checkReleases compares releases with wants, in order, and downloads
// every URL to check that it serves the disk the checksum says.
func checkReleases(t *testing.T, site *testupstream.Site, d catalog.Distro, rels []catalog.Release, wants []want) {
	t.Helper()
	var got, exp []string
	for _, r := range rels {
		got = append(got, r.Version+"/"+r.Arch)
	}
	for _, w := range wants {
		exp = append(exp, w.version+"/"+w.arch)
	}
	if !slices.Equal(got, exp) {
		t.Fatalf("releases %q, want %q", got, exp)
	}
	for i, w := range wants {
		r := rels[i]
		if r.Err != nil {
			t.Errorf("%s/%s: %v", w.version, w.arch, r.Err)
			continue
		}
		if r.Name != d.Name() || !r.Stable || r.Compression != "" {
			t.Errorf("%s/%s: Name %q Stable %v Compression %q; want %q true \"\"", w.version, w.arch, r.Name, r.Stable, r.Compression, d.Name())
		}
		if want := site.URL() + "/" + d.Name() + "/" + w.path; r.URL != want {
			t.Errorf("%s/%s: URL\n %s\nwant\n %s", w.version, w.arch, r.URL, want)
		}
		var tags []string
		if w.tag != "" {
			tags = []string{w.tag}
		}
		if r.Build != w.build || !slices.Equal(r.Tags, tags) {
			t.Errorf("%s/%s: Build %q Tags %q; want %q %q", w.version, w.arch, r.Build, r.Tags, w.build, tags)
		}
		disk, err := testupstream.Disk(w.disk)
		if err != nil {
			t.Fatal(err)
		}
		if want := sha256hex(disk); r.Checksum != (containerdisk.Checksum{Algorithm: "sha256", Hex: want}) {
			t.Errorf("%s/%s: Checksum %v, want sha256 of disk %q, %s", w.version, w.arch, r.Checksum, w.disk, want)
		}
		testupstream.CheckDownload(t, r, "sha256")
	}
}

// removeSiteFile removes path, relative to the site's Dir.
func removeSiteFile(site *testupstream.Site, path string) error {
	return os.Remove(filepath.Join(site.Dir, filepath.FromSlash(path)))
}

func sha256hex(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// checkErr checks that rel is a failed release of version and arch whose
// error mentions every one of parts.
func checkErr(t *testing.T, rel catalog.Release, version, arch string, parts ...string) {
	t.Helper()
	if rel.Version != version || rel.Arch != arch {
		t.Errorf("failed release is %s/%s, want %s/%s", rel.Version, rel.Arch, version, arch)
	}
	if rel.Err == nil {
		t.Errorf("%s/%s: no Err, want one mentioning %q (URL %s)", version, arch, parts, rel.URL)
		return
	}
	for _, p := range parts {
		if !strings.Contains(rel.Err.Error(), p) {
			t.Errorf("%s/%s: Err %q does not mention %q", version, arch, rel.Err, p)
		}
	}
}

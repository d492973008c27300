package ubuntu_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/artifacts/ubuntu"
	"github.com/containerdisk/kubectl-containerdisk/internal/testupstream"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
)

// jan2025 is a day on which 20.04, 22.04 and 24.04 are all supported.
var jan2025 = time.Date(2025, time.January, 15, 12, 0, 0, 0, time.UTC)

func TestNameAndBase(t *testing.T) {
	d := ubuntu.New()
	if d.Name() != "ubuntu" || d.DefaultBase() != "https://cloud-images.ubuntu.com/releases" {
		t.Errorf("Name, DefaultBase = %q, %q", d.Name(), d.DefaultBase())
	}
}

func TestReleasesNewestBuildOfEachVersion(t *testing.T) {
	site := testupstream.Serve(t)
	// Published out of order: neither the last published nor the
	// lexicographically greatest serial is the newest.
	publish(t, site, "24.04", "20240423.1")
	publish(t, site, "24.04", "20240423")
	publish(t, site, "24.04", "20240409")
	publish(t, site, "22.04", "20250101.10", "amd64", "arm64")
	publish(t, site, "22.04", "20250101.9", "amd64", "arm64")

	rels := releases(t, site, jan2025)
	want := []string{
		"22.04 amd64 build=20250101.10 tags=[22.04-20250101.10] " + site.URL() + "/ubuntu/22.04/release-20250101.10/ubuntu-22.04-server-cloudimg-amd64.img",
		"22.04 arm64 build=20250101.10 tags=[22.04-20250101.10] " + site.URL() + "/ubuntu/22.04/release-20250101.10/ubuntu-22.04-server-cloudimg-arm64.img",
		"24.04 amd64 build=20240423.1 tags=[24.04-20240423.1] " + site.URL() + "/ubuntu/24.04/release-20240423.1/ubuntu-24.04-server-cloudimg-amd64.img",
		"24.04 arm64 build=20240423.1 tags=[24.04-20240423.1] " + site.URL() + "/ubuntu/24.04/release-20240423.1/ubuntu-24.04-server-cloudimg-arm64.img",
		"24.04 s390x build=20240423.1 tags=[24.04-20240423.1] " + site.URL() + "/ubuntu/24.04/release-20240423.1/ubuntu-24.04-server-cloudimg-s390x.img",
	}
	testupstream.CheckReleases(t, rels, want)
	for _, r := range rels {
		testupstream.CheckDownload(t, r, "sha256")
		if r.Name != "ubuntu" || !r.Stable || r.Compression != "" || r.Latest {
			t.Errorf("%s %s: name %q, stable %v, compression %q, latest %v; want ubuntu, true, \"\", false", r.Version, r.Arch, r.Name, r.Stable, r.Compression, r.Latest)
		}
		m := r.Metadata
		if !strings.Contains(m.Description, "Ubuntu Server "+r.Version+" ") || !strings.Contains(m.Description, "long-term support") ||
			m.DefaultUser != "ubuntu" || m.Instancetype != "u1.medium" || m.Preference != "ubuntu" || m.UserData != catalog.DefaultUserData("ubuntu") {
			t.Errorf("%s %s: metadata %+v", r.Version, r.Arch, m)
		}
	}

	// The codename directories list the same builds; they are not read.
	for _, p := range []string{"ubuntu/noble", "ubuntu/noble/release/SHA256SUMS", "ubuntu/jammy", "ubuntu/streams", "ubuntu/server"} {
		if n := site.Requests(p); n != 0 {
			t.Errorf("%d requests for %s; want none", n, p)
		}
	}
	// The result does not depend on the order requests are answered in.
	testupstream.CheckReleases(t, releases(t, site, jan2025), want)
}

func TestReleasesPicksUpNewBuild(t *testing.T) {
	site := testupstream.Serve(t)
	publish(t, site, "24.04", "20240423", "amd64")
	before := releases(t, site, jan2025)
	testupstream.CheckReleases(t, before, []string{
		"24.04 amd64 build=20240423 tags=[24.04-20240423] " + site.URL() + "/ubuntu/24.04/release-20240423/ubuntu-24.04-server-cloudimg-amd64.img",
	})

	publish(t, site, "24.04", "20240501", "amd64")
	after := releases(t, site, jan2025)
	testupstream.CheckReleases(t, after, []string{
		"24.04 amd64 build=20240501 tags=[24.04-20240501] " + site.URL() + "/ubuntu/24.04/release-20240501/ubuntu-24.04-server-cloudimg-amd64.img",
	})
	testupstream.CheckDownload(t, after[0], "sha256")
	if after[0].Checksum == before[0].Checksum {
		t.Errorf("the new build has the checksum of the old one: %s", after[0].Checksum.Hex)
	}
}

func TestReleasesEndOfLife(t *testing.T) {
	site := testupstream.Serve(t)
	for _, v := range []string{"20.04", "22.04", "22.10", "23.04", "24.04"} {
		publish(t, site, v, "20230601", "amd64")
	}
	for _, tc := range []struct {
		now  time.Time
		want []string
	}{
		{time.Date(2023, time.July, 31, 23, 59, 0, 0, time.UTC), []string{"20.04", "22.04", "22.10", "23.04", "24.04"}},
		{time.Date(2023, time.August, 1, 0, 0, 0, 0, time.UTC), []string{"20.04", "22.04", "23.04", "24.04"}},
		{time.Date(2024, time.February, 1, 0, 0, 0, 0, time.UTC), []string{"20.04", "22.04", "24.04"}},
		{time.Date(2025, time.April, 30, 0, 0, 0, 0, time.UTC), []string{"20.04", "22.04", "24.04"}},
		{time.Date(2025, time.May, 1, 0, 0, 0, 0, time.UTC), []string{"22.04", "24.04"}},
		{time.Date(2027, time.May, 1, 0, 0, 0, 0, time.UTC), []string{"24.04"}},
		{time.Date(2029, time.May, 1, 0, 0, 0, 0, time.UTC), nil},
	} {
		t.Run(tc.now.Format("2006-01-02"), func(t *testing.T) {
			var got []string
			for _, r := range releases(t, site, tc.now) {
				got = append(got, r.Version)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("versions at %s = %q; want %q", tc.now, got, tc.want)
			}
		})
	}
}

func TestEndOfLife(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    string // "" when not a version
	}{
		{"20.04", "2025-05-01"},
		{"22.10", "2023-08-01"},
		{"23.04", "2024-02-01"}, // odd year: not an LTS
		{"24.04", "2029-05-01"},
		{"25.10", "2026-08-01"},
		{"noble", ""},
		{"24.13", ""},
		{"2404", ""},
	} {
		eol, ok := ubuntu.EndOfLife(tc.version)
		got := ""
		if ok {
			got = eol.Format("2006-01-02")
		}
		if got != tc.want {
			t.Errorf("EndOfLife(%q) = %q; want %q", tc.version, got, tc.want)
		}
	}
}

func TestReleasesWithoutDatedDirectories(t *testing.T) {
	site := testupstream.Serve(t)
	publish(t, site, "24.04", "20240423", "amd64")
	if err := os.RemoveAll(filepath.Join(site.Dir, "ubuntu", "24.04", "release-20240423")); err != nil {
		t.Fatal(err)
	}
	rels := releases(t, site, jan2025)
	testupstream.CheckReleases(t, rels, []string{
		"24.04 amd64 build= tags=[] " + site.URL() + "/ubuntu/24.04/release/ubuntu-24.04-server-cloudimg-amd64.img",
	})
	testupstream.CheckDownload(t, rels[0], "sha256")
}

func TestReleasesNewestBuildStillUploading(t *testing.T) {
	site := testupstream.Serve(t)
	publish(t, site, "24.04", "20240423", "amd64")
	publish(t, site, "24.04", "20240501", "amd64")
	if err := os.Remove(filepath.Join(site.Dir, "ubuntu", "24.04", "release-20240501", "SHA256SUMS")); err != nil {
		t.Fatal(err)
	}
	rels := releases(t, site, jan2025)
	testupstream.CheckReleases(t, rels, []string{
		"24.04 amd64 build=20240423 tags=[24.04-20240423] " + site.URL() + "/ubuntu/24.04/release-20240423/ubuntu-24.04-server-cloudimg-amd64.img",
	})
	testupstream.CheckDownload(t, rels[0], "sha256")
}

func TestReleasesReportsEachVersionsProblem(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, site *testupstream.Site)
		want   string // in the Err of each arch of 22.04
		is     error
	}{
		{
			name: "version directory unreadable",
			damage: func(t *testing.T, site *testupstream.Site) {
				site.Fail("ubuntu/22.04", http.StatusNotFound, 1)
			},
			want: "/ubuntu/22.04/",
			is:   catalog.ErrNotFound,
		},
		{
			name: "no SHA256SUMS",
			damage: func(t *testing.T, site *testupstream.Site) {
				for _, s := range []string{"20250101", "20250102"} {
					if err := os.Remove(filepath.Join(site.Dir, "ubuntu", "22.04", "release-"+s, "SHA256SUMS")); err != nil {
						t.Fatal(err)
					}
				}
			},
			want: "/ubuntu/22.04/release-20250102/SHA256SUMS, ",
			is:   catalog.ErrNotFound,
		},
		{
			name: "no image of a known architecture",
			damage: func(t *testing.T, site *testupstream.Site) {
				sums := fmt.Sprintf("%x *ubuntu-22.04-server-cloudimg-amd64-disk-kvm.img\n%x *ubuntu-22.04-server-cloudimg-ppc64el.img\n", sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b")))
				if err := site.WriteFile("ubuntu/22.04/release-20250102/SHA256SUMS", []byte(sums)); err != nil {
					t.Fatal(err)
				}
			},
			want: "/ubuntu/22.04/release-20250102/SHA256SUMS lists none of ubuntu-22.04-server-cloudimg-{amd64,arm64,s390x}.img",
		},
		{
			name: "no build directory",
			damage: func(t *testing.T, site *testupstream.Site) {
				for _, d := range []string{"release", "release-20250101", "release-20250102"} {
					if err := os.RemoveAll(filepath.Join(site.Dir, "ubuntu", "22.04", d)); err != nil {
						t.Fatal(err)
					}
				}
			},
			want: "/ubuntu/22.04/ lists no release-YYYYMMDD/ or release/ directory",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			site := testupstream.Serve(t)
			publish(t, site, "22.04", "20250101", "amd64", "arm64")
			publish(t, site, "22.04", "20250102", "amd64", "arm64")
			publish(t, site, "24.04", "20240423", "amd64")
			tc.damage(t, site)

			rels := releases(t, site, jan2025)
			var got []string
			for _, r := range rels {
				got = append(got, r.Version+" "+r.Arch)
				switch {
				case r.Version == "24.04" && r.Err != nil:
					t.Errorf("24.04 %s: %v; want no error", r.Arch, r.Err)
				case r.Version == "22.04" && r.Err == nil:
					t.Errorf("22.04 %s: no error; want one", r.Arch)
				case r.Version == "22.04":
					if !strings.Contains(r.Err.Error(), tc.want) {
						t.Errorf("22.04 %s: error %q; want it to say %q", r.Arch, r.Err, tc.want)
					}
					if tc.is != nil && !errors.Is(r.Err, tc.is) {
						t.Errorf("22.04 %s: error %q is not %v", r.Arch, r.Err, tc.is)
					}
					if r.Name != "ubuntu" || r.URL != "" {
						t.Errorf("22.04 %s: name %q, URL %q; want ubuntu and none", r.Arch, r.Name, r.URL)
					}
				}
			}
			// Which architectures 22.04 has is unknown: each of KubeVirt's fails.
			want := []string{"22.04 amd64", "22.04 arm64", "22.04 s390x", "24.04 amd64"}
			if !slices.Equal(got, want) {
				t.Errorf("releases %q; want %q", got, want)
			}
		})
	}
}

func TestReleasesUnreadableUpstream(t *testing.T) {
	testupstream.CheckUnreadable(t, ubuntu.New(), jan2025, []testupstream.Unreadable{
		{Name: "missing index", Set: func(s *testupstream.Site) error {
			s.Fail("ubuntu", http.StatusNotFound, 1)
			return s.PublishUbuntu("24.04", "20240423", "amd64")
		}, Is: catalog.ErrNotFound},
		{Name: "not Ubuntu's releases", Set: func(s *testupstream.Site) error {
			return s.WriteFile("ubuntu/streams/v1/index.json", []byte("{}"))
		}, Want: "lists no YY.MM/ version directory"},
	})
}

func publish(t *testing.T, site *testupstream.Site, version, serial string, arches ...string) {
	t.Helper()
	if err := site.PublishUbuntu(version, serial, arches...); err != nil {
		t.Fatal(err)
	}
}

// releases reads the site as a mirror of Ubuntu at now, as a new run does.
func releases(t *testing.T, site *testupstream.Site, now time.Time) []catalog.Release {
	t.Helper()
	return testupstream.Releases(t, ubuntu.New(), site.Env(ubuntu.New(), now))
}

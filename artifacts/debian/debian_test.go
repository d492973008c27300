package debian_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/artifacts/debian"
	"github.com/containerdisk/kubectl-containerdisk/internal/testupstream"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
)

func TestNameAndBase(t *testing.T) {
	d := debian.New()
	if d.Name() != "debian" || d.DefaultBase() != "https://cloud.debian.org/images/cloud" {
		t.Errorf("Name, DefaultBase = %q, %q", d.Name(), d.DefaultBase())
	}
}

func TestReleasesLatestBuildOfEachVersion(t *testing.T) {
	site := testupstream.Serve(t)
	publish(t, site, "12", "bookworm", "20250210-2019")
	// An older build published later does not replace latest/.
	publish(t, site, "12", "bookworm", "20250101-0001")
	publish(t, site, "11", "bullseye", "20250210-2019", "amd64")
	publish(t, site, "10", "buster", "20240703-1797")
	// KubeVirt does not run ppc64el or riscv64.
	publish(t, site, "13", "trixie", "20250814-2204", "amd64", "arm64", "ppc64el", "riscv64")

	rels := releases(t, site)
	d := site.URL() + "/debian"
	want := []string{
		"10 amd64 build=20240703-1797 tags=[10-20240703-1797] " + d + "/buster/20240703-1797/debian-10-genericcloud-amd64-20240703-1797.qcow2",
		"10 arm64 build=20240703-1797 tags=[10-20240703-1797] " + d + "/buster/20240703-1797/debian-10-genericcloud-arm64-20240703-1797.qcow2",
		"11 amd64 build=20250210-2019 tags=[11-20250210-2019] " + d + "/bullseye/20250210-2019/debian-11-genericcloud-amd64-20250210-2019.qcow2",
		"12 amd64 build=20250210-2019 tags=[12-20250210-2019] " + d + "/bookworm/20250210-2019/debian-12-genericcloud-amd64-20250210-2019.qcow2",
		"12 arm64 build=20250210-2019 tags=[12-20250210-2019] " + d + "/bookworm/20250210-2019/debian-12-genericcloud-arm64-20250210-2019.qcow2",
		"13 amd64 build=20250814-2204 tags=[13-20250814-2204] " + d + "/trixie/20250814-2204/debian-13-genericcloud-amd64-20250814-2204.qcow2",
		"13 arm64 build=20250814-2204 tags=[13-20250814-2204] " + d + "/trixie/20250814-2204/debian-13-genericcloud-arm64-20250814-2204.qcow2",
	}
	testupstream.CheckReleases(t, rels, want)
	for _, r := range rels {
		// The digest is the base64 of the SHA-512: the download proves it
		// was decoded right.
		testupstream.CheckDownload(t, r, "sha512")
		if r.Name != "debian" || !r.Stable || r.Compression != "" || r.Latest {
			t.Errorf("%s %s: name %q, stable %v, compression %q, latest %v; want debian, true, \"\", false", r.Version, r.Arch, r.Name, r.Stable, r.Compression, r.Latest)
		}
		m := r.Metadata
		if !strings.Contains(m.Description, "Debian "+r.Version+" (") || m.DefaultUser != "debian" || m.Instancetype != "u1.medium" ||
			m.Preference != "debian" || m.UserData != catalog.DefaultUserData("debian") {
			t.Errorf("%s %s: metadata %+v", r.Version, r.Arch, m)
		}
	}

	// sid/ has no genericcloud image list in latest/; backports and
	// OpenStack/ are not codenames and are not even listed.
	if n := site.Requests("debian/sid/latest"); n != 1 {
		t.Errorf("%d requests for sid/latest/; want 1", n)
	}
	for _, p := range []string{"debian/bookworm-backports/latest", "debian/OpenStack/latest", "debian/bookworm/daily"} {
		if n := site.Requests(p); n != 0 {
			t.Errorf("%d requests for %s; want none", n, p)
		}
	}
	// The order does not depend on the order answers come in.
	testupstream.CheckReleases(t, releases(t, site), want)
}

func TestReleasesPicksUpNewBuild(t *testing.T) {
	site := testupstream.Serve(t)
	publish(t, site, "12", "bookworm", "20250101-0001", "amd64")
	before := releases(t, site)
	testupstream.CheckReleases(t, before, []string{
		"12 amd64 build=20250101-0001 tags=[12-20250101-0001] " + site.URL() + "/debian/bookworm/20250101-0001/debian-12-genericcloud-amd64-20250101-0001.qcow2",
	})

	publish(t, site, "12", "bookworm", "20250210-2019", "amd64")
	after := releases(t, site)
	testupstream.CheckReleases(t, after, []string{
		"12 amd64 build=20250210-2019 tags=[12-20250210-2019] " + site.URL() + "/debian/bookworm/20250210-2019/debian-12-genericcloud-amd64-20250210-2019.qcow2",
	})
	testupstream.CheckDownload(t, after[0], "sha512")
	if after[0].Checksum == before[0].Checksum {
		t.Errorf("the new build has the checksum of the old one: %s", after[0].Checksum.Hex)
	}
}

func TestReleasesReportsEachImageListsProblem(t *testing.T) {
	const amd64List = "debian/bookworm/latest/debian-12-genericcloud-amd64.json"
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, site *testupstream.Site)
		want   string // in the Err of 12 amd64
		is     error
	}{
		{
			name: "no qcow2 upload",
			damage: func(t *testing.T, site *testupstream.Site) {
				editList(t, site, amd64List, func(item map[string]any) bool {
					labels := item["metadata"].(map[string]any)["labels"].(map[string]any)
					if labels["upload.cloud.debian.org/image-format"] == "qcow2" {
						labels["upload.cloud.debian.org/image-format"] = "vhd"
					}
					return true
				})
			},
			want: "/debian/bookworm/latest/debian-12-genericcloud-amd64.json has no Upload item labelled upload.cloud.debian.org/image-format=qcow2",
		},
		{
			name: "no digest",
			damage: func(t *testing.T, site *testupstream.Site) {
				editList(t, site, amd64List, func(item map[string]any) bool {
					if strings.HasSuffix(ref(item), ".qcow2") {
						delete(item["metadata"].(map[string]any), "annotations")
					}
					return true
				})
			},
			want: "debian-12-genericcloud-amd64-20250210-2019.qcow2 has no cloud.debian.org/digest annotation",
		},
		{
			name: "digest of the wrong length",
			damage: func(t *testing.T, site *testupstream.Site) {
				editList(t, site, amd64List, func(item map[string]any) bool {
					if strings.HasSuffix(ref(item), ".qcow2") {
						item["metadata"].(map[string]any)["annotations"] = map[string]any{"cloud.debian.org/digest": "sha512:pY2GUl11"}
					}
					return true
				})
			},
			want: `checksum "sha512:pY2GUl11": expected 128 hex digits or the base64 of a sha512 digest`,
		},
		{
			name: "no build",
			damage: func(t *testing.T, site *testupstream.Site) {
				editList(t, site, amd64List, func(item map[string]any) bool { return item["kind"] != "Build" })
			},
			want: "has no Build item with data.info.version",
		},
		{
			name: "ref outside the base",
			damage: func(t *testing.T, site *testupstream.Site) {
				editList(t, site, amd64List, func(item map[string]any) bool {
					if strings.HasSuffix(ref(item), ".qcow2") {
						item["data"].(map[string]any)["ref"] = "https://elsewhere.example/debian-12-genericcloud-amd64.qcow2"
					}
					return true
				})
			},
			want: `qcow2 upload has data.ref "https://elsewhere.example/debian-12-genericcloud-amd64.qcow2": expected a path under`,
		},
		{
			name: "not JSON",
			damage: func(t *testing.T, site *testupstream.Site) {
				if err := site.WriteFile(amd64List, []byte("<html>503 Service Unavailable</html>")); err != nil {
					t.Fatal(err)
				}
			},
			want: "expected a Debian cloud image list (JSON, kind List)",
		},
		{
			name: "list unreadable",
			damage: func(t *testing.T, site *testupstream.Site) {
				site.Fail(amd64List, http.StatusNotFound, 1)
			},
			want: "reading the image list of Debian 12 for amd64, which latest/ lists: ",
			is:   catalog.ErrNotFound,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			site := testupstream.Serve(t)
			publish(t, site, "12", "bookworm", "20250210-2019")
			publish(t, site, "13", "trixie", "20250814-2204", "amd64")
			tc.damage(t, site)

			var got []string
			for _, r := range releases(t, site) {
				got = append(got, r.Version+" "+r.Arch)
				if r.Version != "12" || r.Arch != "amd64" {
					if r.Err != nil {
						t.Errorf("%s %s: %v; want no error", r.Version, r.Arch, r.Err)
					}
					continue
				}
				switch {
				case r.Err == nil:
					t.Errorf("12 amd64: no error; want one saying %q", tc.want)
				case !strings.Contains(r.Err.Error(), tc.want):
					t.Errorf("12 amd64: error %q; want it to say %q", r.Err, tc.want)
				case tc.is != nil && !errors.Is(r.Err, tc.is):
					t.Errorf("12 amd64: error %q is not %v", r.Err, tc.is)
				}
				if r.URL != "" || r.Tags != nil {
					t.Errorf("12 amd64: URL %q, tags %q; want none with an error", r.URL, r.Tags)
				}
			}
			if want := []string{"12 amd64", "12 arm64", "13 amd64"}; !slices.Equal(got, want) {
				t.Errorf("releases %q; want %q", got, want)
			}
		})
	}
}

func TestReleasesCodenameUnreadable(t *testing.T) {
	site := testupstream.Serve(t)
	publish(t, site, "12", "bookworm", "20250210-2019")
	publish(t, site, "13", "trixie", "20250814-2204")
	site.Fail("debian/trixie/latest", http.StatusForbidden, 1)

	var got []string
	for _, r := range releases(t, site) {
		got = append(got, r.Version+" "+r.Arch)
		if (r.Version == "trixie") != (r.Err != nil) {
			t.Errorf("%s %s: error %v", r.Version, r.Arch, r.Err)
		}
		if r.Err != nil && !strings.Contains(r.Err.Error(), "listing the latest images of Debian trixie: ") {
			t.Errorf("%s %s: error %q; want it to name trixie", r.Version, r.Arch, r.Err)
		}
	}
	// Its version is unknown: the codename stands for it.
	if want := []string{"trixie amd64", "trixie arm64", "12 amd64", "12 arm64"}; !slices.Equal(got, want) {
		t.Errorf("releases %q; want %q", got, want)
	}
}

func TestReleasesUnreadableUpstream(t *testing.T) {
	testupstream.CheckUnreadable(t, debian.New(), time.Now(), []testupstream.Unreadable{
		{Name: "missing index", Set: func(s *testupstream.Site) error {
			s.Fail("debian", http.StatusNotFound, 1)
			return s.PublishDebian("12", "bookworm", "20250210-2019")
		}, Is: catalog.ErrNotFound},
		{Name: "not Debian's cloud images", Set: func(s *testupstream.Site) error {
			return s.WriteFile("debian/OpenStack/README", []byte("moved\n"))
		}, Want: "lists no codename directory"},
	})
}

func publish(t *testing.T, site *testupstream.Site, version, codename, build string, arches ...string) {
	t.Helper()
	if err := site.PublishDebian(version, codename, build, arches...); err != nil {
		t.Fatal(err)
	}
}

// editList rewrites the image list at path, keeping the items keep returns
// true for (after it changed them as it likes).
func editList(t *testing.T, site *testupstream.Site, path string, keep func(item map[string]any) bool) {
	t.Helper()
	data, err := site.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var list map[string]any
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatal(err)
	}
	var items []any
	for _, it := range list["items"].([]any) {
		if keep(it.(map[string]any)) {
			items = append(items, it)
		}
	}
	list["items"] = items
	if data, err = json.MarshalIndent(list, "", "    "); err != nil {
		t.Fatal(err)
	}
	if err := site.WriteFile(path, data); err != nil {
		t.Fatal(err)
	}
}

// ref returns the data.ref of an Upload item, "" for others.
func ref(item map[string]any) string {
	r, _ := item["data"].(map[string]any)["ref"].(string)
	return r
}

// releases reads the site as a mirror of Debian, as a new run does.
func releases(t *testing.T, site *testupstream.Site) []catalog.Release {
	t.Helper()
	return testupstream.Releases(t, debian.New(), site.Env(debian.New(), time.Now()))
}

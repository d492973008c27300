package opensuse

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/containerdisk/kubectl-containerdisk/internal/testupstream"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
)

const leapDir = "opensuse-leap/distribution/leap/"

func TestLeapReleases(t *testing.T) {
	site := testupstream.Serve(t)
	must(t, site.PublishLeap("15.5", "13.1"))
	must(t, site.PublishLeap("15.6", "16.34"))
	must(t, site.PublishLeap("15.6", "16.35"))
	must(t, site.PublishLeap("16.0", "2.1", "amd64", "arm64", "s390x"))
	// Leap 42.3 came before 15 and is not looked at, nor are directories
	// that are no version, nor a version without cloud images yet.
	must(t, site.PublishLeap("42.3", "1.1"))
	must(t, site.WriteFile(leapDir+"16.1/iso/README", []byte("soon\n")))
	must(t, site.WriteFile(leapDir+"jump/README", []byte("\n")))

	d := NewLeap()
	wants := []want{
		{"15.5", "amd64", "distribution/leap/15.5/appliances/openSUSE-Leap-15.5-Minimal-VM.x86_64-15.5.0-Cloud-Build13.1.qcow2", "13.1", "15.5-13.1", "opensuse-leap/15.5/13.1/x86_64"},
		{"15.5", "arm64", "distribution/leap/15.5/appliances/openSUSE-Leap-15.5-Minimal-VM.aarch64-15.5.0-Cloud-Build13.1.qcow2", "13.1", "15.5-13.1", "opensuse-leap/15.5/13.1/aarch64"},
		{"15.6", "amd64", "distribution/leap/15.6/appliances/openSUSE-Leap-15.6-Minimal-VM.x86_64-15.6.0-Cloud-Build16.35.qcow2", "16.35", "15.6-16.35", "opensuse-leap/15.6/16.35/x86_64"},
		{"15.6", "arm64", "distribution/leap/15.6/appliances/openSUSE-Leap-15.6-Minimal-VM.aarch64-15.6.0-Cloud-Build16.35.qcow2", "16.35", "15.6-16.35", "opensuse-leap/15.6/16.35/aarch64"},
		{"16.0", "amd64", "distribution/leap/16.0/appliances/Leap-16.0-Minimal-VM.x86_64-16.0.0-Cloud-Build2.1.qcow2", "2.1", "16.0-2.1", "opensuse-leap/16.0/2.1/x86_64"},
		{"16.0", "arm64", "distribution/leap/16.0/appliances/Leap-16.0-Minimal-VM.aarch64-16.0.0-Cloud-Build2.1.qcow2", "2.1", "16.0-2.1", "opensuse-leap/16.0/2.1/aarch64"},
		{"16.0", "s390x", "distribution/leap/16.0/appliances/Leap-16.0-Minimal-VM.s390x-16.0.0-s390x-Cloud-Build2.1.qcow2", "2.1", "16.0-2.1", "opensuse-leap/16.0/2.1/s390x"},
	}
	rels := releases(t, site, d)
	checkReleases(t, site, d, rels, wants)

	m := rels[0].Metadata
	if m.DefaultUser != "opensuse" || m.Instancetype != "u1.medium" || m.Preference != "opensuse.leap" ||
		m.UserData != catalog.DefaultUserData("opensuse") || !strings.Contains(m.Description, "Leap 15.5") {
		t.Errorf("metadata %+v", m)
	}

	// A second run, with its requests in another order, lists the same.
	again := releases(t, site, d)
	for i := range rels {
		if rels[i].URL != again[i].URL || rels[i].Checksum != again[i].Checksum {
			t.Errorf("second run: release %d is %s, was %s", i, again[i].URL, rels[i].URL)
		}
	}

	// A new build replaces the old one on the next run.
	must(t, site.PublishLeap("15.6", "16.36", "amd64"))
	rels = releases(t, site, d)
	checkReleases(t, site, d, rels[2:3], []want{
		{"15.6", "amd64", "distribution/leap/15.6/appliances/openSUSE-Leap-15.6-Minimal-VM.x86_64-15.6.0-Cloud-Build16.36.qcow2", "16.36", "15.6-16.36", "opensuse-leap/15.6/16.36/x86_64"},
	})
}

// TestLeapBuild checks how the build-stamped file behind the alias is found.
func TestLeapBuild(t *testing.T) {
	const (
		dir     = leapDir + "15.6/appliances/"
		alias   = "openSUSE-Leap-15.6-Minimal-VM.x86_64-Cloud.qcow2"
		stamped = "openSUSE-Leap-15.6-Minimal-VM.x86_64-15.6.0-Cloud-Build16.35.qcow2"
		newer   = "openSUSE-Leap-15.6-Minimal-VM.x86_64-15.6.0-Cloud-Build16.36.qcow2"
	)
	writeDisk := func(t *testing.T, site *testupstream.Site, name, id string) {
		t.Helper()
		sum, _, err := site.WriteDisk(dir+name, id)
		must(t, err)
		must(t, site.WriteFile(dir+name+".sha256", fmt.Appendf(nil, "%s %s\n", sum, name)))
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, site *testupstream.Site)
		want  want
	}{{
		name:  "stamped file with the alias's checksum",
		setup: func(*testing.T, *testupstream.Site) {},
		want:  want{path: stamped, build: "16.35", tag: "15.6-16.35", disk: "opensuse-leap/15.6/16.35/x86_64"},
	}, {
		// Mirrors sync the new build's files before the alias.
		name:  "newer stamped file, alias not yet replaced",
		setup: func(t *testing.T, site *testupstream.Site) { writeDisk(t, site, newer, "next") },
		want:  want{path: stamped, build: "16.35", tag: "15.6-16.35", disk: "opensuse-leap/15.6/16.35/x86_64"},
	}, {
		name:  "alias replaced, its stamped file not yet there",
		setup: func(t *testing.T, site *testupstream.Site) { writeDisk(t, site, alias, "hotfix") },
		want:  want{path: alias, disk: "hotfix"},
	}, {
		name: "stamped file without a checksum file",
		setup: func(t *testing.T, site *testupstream.Site) {
			must(t, removeSiteFile(site, dir+stamped+".sha256"))
		},
		want: want{path: alias, disk: "opensuse-leap/15.6/16.35/x86_64"},
	}, {
		name: "listing unreadable",
		setup: func(t *testing.T, site *testupstream.Site) {
			site.Fail(dir, 500, 10)
		},
		want: want{path: alias, disk: "opensuse-leap/15.6/16.35/x86_64"},
	}, {
		name: "alias checksum file names the stamped file",
		setup: func(t *testing.T, site *testupstream.Site) {
			data, err := site.ReadFile(dir + stamped + ".sha256")
			must(t, err)
			must(t, site.WriteFile(dir+alias+".sha256", data))
			site.Fail(dir, 500, 10) // and the listing is not needed
		},
		want: want{path: stamped, build: "16.35", tag: "15.6-16.35", disk: "opensuse-leap/15.6/16.35/x86_64"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			site := testupstream.Serve(t)
			must(t, site.PublishLeap("15.6", "16.35", "amd64"))
			tc.setup(t, site)
			d := NewLeap()
			w := tc.want
			w.version, w.arch, w.path = "15.6", "amd64", "distribution/leap/15.6/appliances/"+w.path
			checkReleases(t, site, d, releases(t, site, d), []want{w})
		})
	}
}

func TestLeapProblems(t *testing.T) {
	const (
		dir   = leapDir + "15.6/appliances/"
		arm64 = "openSUSE-Leap-15.6-Minimal-VM.aarch64-Cloud.qcow2"
	)
	tests := []struct {
		name  string
		setup func(t *testing.T, site *testupstream.Site)
		// parts of the arm64 release's error; none: arm64 is absent.
		parts []string
	}{{
		name: "architecture not built",
		setup: func(t *testing.T, site *testupstream.Site) {
			must(t, removeSiteFile(site, dir+arm64+".sha256"))
		},
	}, {
		name: "checksum file of another format",
		setup: func(t *testing.T, site *testupstream.Site) {
			must(t, site.WriteFile(dir+arm64+".sha256", []byte("<html>mirror maintenance</html>\n")))
		},
		parts: []string{dir + arm64 + ".sha256", "expected a line", arm64, "mirror maintenance"},
	}, {
		name: "checksum of another file",
		setup: func(t *testing.T, site *testupstream.Site) {
			must(t, site.WriteFile(dir+arm64+".sha256", []byte(strings.Repeat("ab", 32)+"  other.qcow2\n")))
		},
		parts: []string{dir + arm64 + ".sha256", "expected a line", arm64},
	}, {
		name: "placeholder checksum",
		setup: func(t *testing.T, site *testupstream.Site) {
			must(t, site.WriteFile(dir+arm64+".sha256", []byte(strings.Repeat("0", 64)+"  "+arm64+"\n")))
		},
		parts: []string{dir + arm64 + ".sha256", "placeholder"},
	}, {
		name:  "checksum file unreadable",
		setup: func(t *testing.T, site *testupstream.Site) { site.Fail(dir+arm64+".sha256", 503, 10) },
		parts: []string{dir + arm64 + ".sha256", "503"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			site := testupstream.Serve(t)
			must(t, site.PublishLeap("15.6", "16.35"))
			tc.setup(t, site)
			d := NewLeap()
			rels := releases(t, site, d)
			good := want{"15.6", "amd64", "distribution/leap/15.6/appliances/openSUSE-Leap-15.6-Minimal-VM.x86_64-15.6.0-Cloud-Build16.35.qcow2", "16.35", "15.6-16.35", "opensuse-leap/15.6/16.35/x86_64"}
			if tc.parts == nil {
				checkReleases(t, site, d, rels, []want{good})
				return
			}
			if len(rels) != 2 {
				t.Fatalf("%d releases, want amd64 and a failed arm64", len(rels))
			}
			checkReleases(t, site, d, rels[:1], []want{good})
			checkErr(t, rels[1], "15.6", "arm64", tc.parts...)
		})
	}
}

func TestLeapUnreadable(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, site *testupstream.Site)
		want  string
	}{
		{"no leap directory", func(*testing.T, *testupstream.Site) {}, "404"},
		{"listing fails", func(t *testing.T, site *testupstream.Site) {
			must(t, site.PublishLeap("15.6", "16.35"))
			site.Fail(leapDir, 500, 10)
		}, "500"},
		{"only 42.x", func(t *testing.T, site *testupstream.Site) {
			must(t, site.PublishLeap("42.3", "1.1"))
		}, "no Leap version"},
		{"versions without images", func(t *testing.T, site *testupstream.Site) {
			must(t, site.WriteFile(leapDir+"15.6/iso/README", []byte("\n")))
		}, "no Leap Minimal-VM Cloud image"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			site := testupstream.Serve(t)
			tc.setup(t, site)
			d := NewLeap()
			rels, err := d.Releases(t.Context(), site.Env(d, june2025))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), leapDir) {
				t.Fatalf("Releases = %d releases, %v; want an error mentioning %s and %q", len(rels), err, leapDir, tc.want)
			}
		})
	}
}

func TestLeapImageNames(t *testing.T) {
	tests := []struct {
		version, arch, alias string
		stamped, other       []string // other: names that are not this image
	}{
		{"15.6", "x86_64", "openSUSE-Leap-15.6-Minimal-VM.x86_64-Cloud.qcow2",
			[]string{"openSUSE-Leap-15.6-Minimal-VM.x86_64-15.6.0-Cloud-Build16.35.qcow2"},
			[]string{
				"openSUSE-Leap-15.6-Minimal-VM.x86_64-15.6.0-kvm-and-xen-Build16.35.qcow2",
				"openSUSE-Leap-15.6-Minimal-VM.x86_64-15.6.0-Cloud-Build16.35.qcow2.sha256",
				"openSUSE-Leap-15.6-Minimal-VM.aarch64-15.6.0-Cloud-Build16.35.qcow2",
				"openSUSE-Leap-15.6-Minimal-VM.x86_64-15.6.0-Cloud-Build16.35.packages",
				"openSUSE-Leap-15.5-Minimal-VM.x86_64-15.5.0-Cloud-Build16.35.qcow2",
			}},
		{"16.0", "s390x", "Leap-16.0-Minimal-VM.s390x-s390x-Cloud.qcow2",
			[]string{"Leap-16.0-Minimal-VM.s390x-16.0.0-s390x-Cloud-Build3.4.qcow2"},
			[]string{"openSUSE-Leap-16.0-Minimal-VM.s390x-16.0.0-s390x-Cloud-Build3.4.qcow2", "Leap-16.0-Minimal-VM.s390x-16.0.0-Cloud-Build3.4.qcow2"}},
		{"16.0", "aarch64", "Leap-16.0-Minimal-VM.aarch64-Cloud.qcow2", nil, nil},
	}
	for _, tc := range tests {
		img := newLeapImage(tc.version, tc.arch)
		if img.alias != tc.alias {
			t.Errorf("%s %s: alias %q, want %q", tc.version, tc.arch, img.alias, tc.alias)
		}
		for _, n := range tc.stamped {
			if img.build(n) == "" {
				t.Errorf("%s %s: %q not seen as a build of the image", tc.version, tc.arch, n)
			}
		}
		for _, n := range slices.Concat(tc.other, []string{tc.alias}) {
			if b := img.build(n); b != "" {
				t.Errorf("%s %s: %q seen as build %q of the image", tc.version, tc.arch, n, b)
			}
		}
	}
}

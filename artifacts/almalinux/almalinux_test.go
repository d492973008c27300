package almalinux

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/internal/testupstream"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
)

// releases reads the site as a mirror of AlmaLinux, as a new run does.
func releases(t *testing.T, site *testupstream.Site) []catalog.Release {
	t.Helper()
	return testupstream.Releases(t, New(), site.Env(New(), time.Now()))
}

func publish(t *testing.T, site *testupstream.Site, major, minor, date string, arches ...string) {
	t.Helper()
	if err := site.PublishAlmaLinux(major, minor, date, arches...); err != nil {
		t.Fatal(err)
	}
}

func TestReleases(t *testing.T) {
	site := testupstream.Serve(t)
	// 9.10 is newer than 9.9 though not as text, and newer than a later
	// 9.9 rebuild; the "-latest" aliases name 9.10-20250521, published last.
	publish(t, site, "9", "9.9", "20251001")
	publish(t, site, "9", "9.10", "20250522")
	publish(t, site, "9", "9.10", "20250521")
	// 10 numbers its builds of a day; 10 has no s390x.
	publish(t, site, "10", "10.0", "20250528.0", "amd64", "arm64")
	publish(t, site, "10", "10.0", "20250528.1", "amd64", "arm64")
	// 8 for amd64 only, and for an architecture KubeVirt does not run.
	publish(t, site, "8", "8.10", "20240530", "x86_64", "ppc64le")

	want := []struct{ version, arch, up, minor, date, preference string }{
		{"8", "amd64", "x86_64", "8.10", "20240530", "rhel.8"},
		{"9", "amd64", "x86_64", "9.10", "20250522", "rhel.9"},
		{"9", "arm64", "aarch64", "9.10", "20250522", "rhel.9.arm64"},
		{"9", "s390x", "s390x", "9.10", "20250522", "rhel.9.s390x"},
		{"10", "amd64", "x86_64", "10.0", "20250528.1", "rhel.10"},
		{"10", "arm64", "aarch64", "10.0", "20250528.1", "rhel.10.arm64"},
	}
	rels := releases(t, site)
	if len(rels) != len(want) {
		t.Fatalf("got\n%s\nwant %d releases", strings.Join(testupstream.Summary(rels), "\n"), len(want))
	}
	for i, w := range want {
		t.Run(w.version+"/"+w.arch, func(t *testing.T) {
			build := w.minor + "-" + w.date
			testupstream.CheckRelease(t, site, rels[i], testupstream.Want{
				Name: "almalinux", Version: w.version, Arch: w.arch, Build: build, Stable: true,
				Tags:        []string{build},
				Path:        fmt.Sprintf("%s/cloud/%s/images/AlmaLinux-%s-GenericCloud-%s-%s.%s.qcow2", w.version, w.up, w.version, w.minor, w.date, w.up),
				DefaultUser: "almalinux", Preference: w.preference,
			})
		})
	}
	if again := testupstream.Summary(releases(t, site)); !slices.Equal(again, testupstream.Summary(rels)) {
		t.Errorf("a second read gives\n%s\nnot\n%s", strings.Join(again, "\n"), strings.Join(testupstream.Summary(rels), "\n"))
	}
}

func TestReleasesIgnoresOtherImages(t *testing.T) {
	// Each line lists a newer image that is not the GenericCloud qcow2 of 9
	// for x86_64.
	const sum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, file := range []string{
		"AlmaLinux-9-GenericCloud-ext4-9.99-20991231.x86_64.qcow2",
		"AlmaLinux-9-OpenNebula-9.99-20991231.x86_64.qcow2",
		"AlmaLinux-9-GenericCloud-latest.x86_64.qcow2",
		"AlmaLinux-9-GenericCloud-10.0-20991231.x86_64.qcow2",
		"AlmaLinux-10-GenericCloud-10.0-20991231.x86_64.qcow2",
		"AlmaLinux-9-GenericCloud-9.99-20991231.aarch64.qcow2",
		"AlmaLinux-9-GenericCloud-9.99-20991231.x86_64.raw",
		"AlmaLinux-9-Vagrant-libvirt-9.99-20991231.x86_64.box",
	} {
		t.Run(file, func(t *testing.T) {
			site := testupstream.Serve(t)
			publish(t, site, "9", "9.6", "20250522", "amd64")
			testupstream.AppendFile(t, site, "almalinux/9/cloud/x86_64/images/CHECKSUM",
				"# junk: no checksum line",
				sum+"  "+file)
			rels := releases(t, site)
			if len(rels) != 1 || rels[0].Err != nil || rels[0].Build != "9.6-20250522" || !strings.HasSuffix(rels[0].URL, "/AlmaLinux-9-GenericCloud-9.6-20250522.x86_64.qcow2") {
				t.Errorf("got %q, want build 9.6-20250522", testupstream.Summary(rels))
			}
		})
	}
}

func TestReleasesPicksUpNewVersionAndBuild(t *testing.T) {
	site := testupstream.Serve(t)
	publish(t, site, "9", "9.5", "20241120", "amd64")
	before := releases(t, site)
	if got := testupstream.Summary(before); !slices.Equal(got, []string{"9 amd64 9.5-20241120"}) {
		t.Fatalf("before: %q", got)
	}

	publish(t, site, "9", "9.6", "20250522", "amd64")
	publish(t, site, "10", "10.0", "20250528", "amd64")
	after := releases(t, site)
	if got := testupstream.Summary(after); !slices.Equal(got, []string{"9 amd64 9.6-20250522", "10 amd64 10.0-20250528"}) {
		t.Fatalf("after: %q", got)
	}
	if after[0].Checksum == before[0].Checksum {
		t.Errorf("two builds have the same checksum %s", after[0].Checksum)
	}
	for _, r := range after {
		testupstream.CheckDownload(t, r, "sha256")
	}
}

func TestReleasesArchProblems(t *testing.T) {
	testupstream.CheckVersionProblems(t, New(), testupstream.VersionProblems{
		Publish: func(s *testupstream.Site) error {
			if err := s.PublishAlmaLinux("9", "9.6", "20250522", "amd64"); err != nil {
				return err
			}
			return s.PublishAlmaLinux("10", "10.0", "20250528", "amd64")
		},
		Version: "9",
		Others:  []string{"10 amd64 10.0-20250528"},
		Cases: []testupstream.VersionProblem{
			{
				Name: "major version without cloud images",
				Set: func(s *testupstream.Site) error {
					return s.WriteFile("almalinux/11/isos/x86_64/CHECKSUM", nil)
				},
				Want: []string{"9 amd64 9.6-20250522"},
			},
			{
				Name: "architecture directory without CHECKSUM",
				Set: func(s *testupstream.Site) error {
					return s.WriteFile("almalinux/9/cloud/aarch64/images/README", []byte("empty\n"))
				},
				Want:     []string{"9 amd64 9.6-20250522", "9 arm64  error: reading the checksums of AlmaLinux 9 for aarch64, whose directory is listed: "},
				Mentions: "BASE/9/cloud/aarch64/images/CHECKSUM",
				NotFound: true,
			},
			{
				Name: "CHECKSUM without GenericCloud image",
				Set: func(s *testupstream.Site) error {
					return s.WriteFile("almalinux/9/cloud/s390x/images/CHECKSUM", []byte(strings.Repeat("ab", 32)+"  AlmaLinux-9-GenericCloud-latest.s390x.qcow2\n"))
				},
				Want:     []string{"9 amd64 9.6-20250522", "9 s390x  error: BASE/9/cloud/s390x/images/CHECKSUM lists no AlmaLinux-9-GenericCloud-9.<minor>-<YYYYMMDD>.s390x.qcow2 image"},
				Mentions: "BASE/9/cloud/s390x/images/CHECKSUM",
			},
			{
				Name: "CHECKSUM that fails",
				Set: func(s *testupstream.Site) error {
					s.Fail("almalinux/9/cloud/x86_64/images/CHECKSUM", http.StatusServiceUnavailable, 100)
					return nil
				},
				Want:     []string{"9 amd64  error: reading the checksums of AlmaLinux 9 for x86_64, whose directory is listed: "},
				Mentions: "BASE/9/cloud/x86_64/images/CHECKSUM",
			},
			{
				Name: "cloud directory that fails",
				Set: func(s *testupstream.Site) error {
					s.Fail("almalinux/9/cloud", http.StatusBadGateway, 100)
					return nil
				},
				Want: []string{
					"9 amd64  error: listing the architectures of AlmaLinux 9: ",
					"9 arm64  error: listing the architectures of AlmaLinux 9: ",
					"9 s390x  error: listing the architectures of AlmaLinux 9: ",
				},
				Mentions: "BASE/9/cloud/",
			},
		},
	})
}

func TestReleasesUnreadable(t *testing.T) {
	testupstream.CheckUnreadable(t, New(), time.Now(), []testupstream.Unreadable{
		{Name: "missing", Set: func(*testupstream.Site) error { return nil }, Is: catalog.ErrNotFound},
		{Name: "server error", Set: func(s *testupstream.Site) error {
			s.Fail("almalinux", http.StatusInternalServerError, 100)
			return s.PublishAlmaLinux("9", "9.6", "20250522", "amd64")
		}},
		{Name: "no major version directory", Set: func(s *testupstream.Site) error {
			return s.WriteFile("almalinux/9.6/cloud/x86_64/images/CHECKSUM", nil)
		}, Want: "lists no major version directory"},
	})
}

func TestReleasesFromLocalMirror(t *testing.T) {
	site := testupstream.Serve(t)
	publish(t, site, "9", "9.6", "20250522")
	publish(t, site, "10", "10.0", "20250528.0", "amd64")
	testupstream.CheckLocalMirror(t, site, New())
}

package centosstream

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

// releases reads the site as a mirror of CentOS, as a new run does.
func releases(t *testing.T, site *testupstream.Site) []catalog.Release {
	t.Helper()
	return testupstream.Releases(t, New(), site.Env(New(), time.Now()))
}

func publish(t *testing.T, site *testupstream.Site, version, build string, arches ...string) {
	t.Helper()
	if err := site.PublishCentOSStream(version, build, arches...); err != nil {
		t.Fatal(err)
	}
}

func TestReleases(t *testing.T) {
	site := testupstream.Serve(t)
	// 20240101.10 is the newest build of 9, though not as text, and the
	// "-latest" aliases name 20240101.9, published last.
	publish(t, site, "9", "20231113.0", "amd64")
	publish(t, site, "9", "20240101.10")
	publish(t, site, "9", "20240101.9")
	// 10 without s390x, with an architecture KubeVirt does not run.
	publish(t, site, "10", "20241118.0", "x86_64", "aarch64", "ppc64le")
	// A version without images yet.
	if err := site.WriteFile("centos-stream/11-stream/README", []byte("soon\n")); err != nil {
		t.Fatal(err)
	}

	want := []struct{ version, arch, up, build string }{
		{"9", "amd64", "x86_64", "20240101.10"},
		{"9", "arm64", "aarch64", "20240101.10"},
		{"9", "s390x", "s390x", "20240101.10"},
		{"10", "amd64", "x86_64", "20241118.0"},
		{"10", "arm64", "aarch64", "20241118.0"},
	}
	rels := releases(t, site)
	if len(rels) != len(want) {
		t.Fatalf("got\n%s\nwant %d releases", strings.Join(testupstream.Summary(rels), "\n"), len(want))
	}
	for i, w := range want {
		t.Run(w.version+"/"+w.arch, func(t *testing.T) {
			testupstream.CheckRelease(t, site, rels[i], testupstream.Want{
				Name: "centos-stream", Version: w.version, Arch: w.arch, Build: w.build, Stable: true,
				Tags:        []string{w.version + "-" + w.build},
				Path:        fmt.Sprintf("%s-stream/%s/images/CentOS-Stream-GenericCloud-%s-%s.%s.qcow2", w.version, w.up, w.version, w.build, w.up),
				DefaultUser: "cloud-user", Preference: "centos.stream" + w.version,
			})
		})
	}
	if again := testupstream.Summary(releases(t, site)); !slices.Equal(again, testupstream.Summary(rels)) {
		t.Errorf("a second read gives\n%s\nnot\n%s", strings.Join(again, "\n"), strings.Join(testupstream.Summary(rels), "\n"))
	}
}

func TestReleasesIgnoresOtherImages(t *testing.T) {
	// Each line lists a newer build that is not the GenericCloud qcow2 of
	// 9 for x86_64.
	const sum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, file := range []string{
		"CentOS-Stream-GenericCloud-UEFI-9-20991231.0.x86_64.qcow2",
		"CentOS-Stream-GenericCloud-x86_64-9-20991231.0.x86_64.qcow2",
		"CentOS-Stream-GenericCloud-9-20991231.0.x86_64.raw.xz",
		"CentOS-Stream-GenericCloud-9-20991231.0.aarch64.qcow2",
		"CentOS-Stream-GenericCloud-10-20991231.0.x86_64.qcow2",
		"CentOS-Stream-GenericCloud-9-latest.x86_64.qcow2",
		"CentOS-Stream-GenericCloud-9-20991231.0.x86_64.qcow2.sig",
	} {
		t.Run(file, func(t *testing.T) {
			site := testupstream.Serve(t)
			publish(t, site, "9", "20240101.0", "amd64")
			testupstream.AppendFile(t, site, "centos-stream/9-stream/x86_64/images/CHECKSUM",
				"# "+file+": 1 bytes",
				"SHA256 ("+file+") = "+sum,
				"junk that is no checksum line")
			rels := releases(t, site)
			if len(rels) != 1 || rels[0].Err != nil || rels[0].Build != "20240101.0" || !strings.HasSuffix(rels[0].URL, "/CentOS-Stream-GenericCloud-9-20240101.0.x86_64.qcow2") {
				t.Errorf("got %q, want build 20240101.0", testupstream.Summary(rels))
			}
		})
	}
}

func TestReleasesPicksUpNewVersionAndBuild(t *testing.T) {
	site := testupstream.Serve(t)
	publish(t, site, "9", "20240101.0", "amd64")
	before := releases(t, site)
	if got := testupstream.Summary(before); !slices.Equal(got, []string{"9 amd64 20240101.0"}) {
		t.Fatalf("before: %q", got)
	}

	publish(t, site, "9", "20240201.0", "amd64")
	publish(t, site, "10", "20241118.0", "amd64")
	after := releases(t, site)
	if got := testupstream.Summary(after); !slices.Equal(got, []string{"9 amd64 20240201.0", "10 amd64 20241118.0"}) {
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
			if err := s.PublishCentOSStream("9", "20240101.0", "amd64"); err != nil {
				return err
			}
			return s.PublishCentOSStream("10", "20241118.0", "amd64")
		},
		Version: "9",
		Others:  []string{"10 amd64 20241118.0"},
		Cases: []testupstream.VersionProblem{
			{
				Name: "architecture directory without CHECKSUM",
				Set: func(s *testupstream.Site) error {
					return s.WriteFile("centos-stream/9-stream/s390x/images/README", []byte("empty\n"))
				},
				Want:     []string{"9 amd64 20240101.0", "9 s390x  error: reading the checksums of CentOS Stream 9 for s390x, whose directory is listed: "},
				Mentions: "BASE/9-stream/s390x/images/CHECKSUM",
				NotFound: true,
			},
			{
				Name: "CHECKSUM without GenericCloud image",
				Set: func(s *testupstream.Site) error {
					return s.WriteFile("centos-stream/9-stream/aarch64/images/CHECKSUM", []byte("SHA256 (CentOS-Stream-Container-Base-9-20240101.0.aarch64.tar.xz) = "+strings.Repeat("ab", 32)+"\n"))
				},
				Want:     []string{"9 amd64 20240101.0", "9 arm64  error: BASE/9-stream/aarch64/images/CHECKSUM lists no CentOS-Stream-GenericCloud-9-<YYYYMMDD.n>.aarch64.qcow2 image"},
				Mentions: "BASE/9-stream/aarch64/images/CHECKSUM",
			},
			{
				Name: "CHECKSUM that fails",
				Set: func(s *testupstream.Site) error {
					s.Fail("centos-stream/9-stream/x86_64/images/CHECKSUM", http.StatusServiceUnavailable, 100)
					return nil
				},
				Want:     []string{"9 amd64  error: reading the checksums of CentOS Stream 9 for x86_64, whose directory is listed: "},
				Mentions: "BASE/9-stream/x86_64/images/CHECKSUM",
			},
			{
				Name: "version directory that fails",
				Set: func(s *testupstream.Site) error {
					s.Fail("centos-stream/9-stream", http.StatusBadGateway, 100)
					return nil
				},
				Want: []string{
					"9 amd64  error: listing the architectures of CentOS Stream 9: ",
					"9 arm64  error: listing the architectures of CentOS Stream 9: ",
					"9 s390x  error: listing the architectures of CentOS Stream 9: ",
				},
				Mentions: "BASE/9-stream/",
			},
		},
	})
}

func TestReleasesUnreadable(t *testing.T) {
	testupstream.CheckUnreadable(t, New(), time.Now(), []testupstream.Unreadable{
		{Name: "missing", Set: func(*testupstream.Site) error { return nil }, Is: catalog.ErrNotFound},
		{Name: "server error", Set: func(s *testupstream.Site) error {
			s.Fail("centos-stream", http.StatusInternalServerError, 100)
			return s.PublishCentOSStream("9", "20240101.0", "amd64")
		}},
		{Name: "no stream directory", Set: func(s *testupstream.Site) error {
			return s.WriteFile("centos-stream/7/x86_64/images/CHECKSUM", nil)
		}, Want: "lists no N-stream/ directory"},
	})
}

func TestReleasesFromLocalMirror(t *testing.T) {
	site := testupstream.Serve(t)
	publish(t, site, "9", "20240101.0")
	publish(t, site, "10", "20241118.0", "amd64")
	testupstream.CheckLocalMirror(t, site, New())
}

package centosstream

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/internal/testupstream"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

func startSite(t *testing.T) *testupstream.Site {
	t.Helper()
	site, err := testupstream.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := site.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { site.Close() })
	return site
}

// env reads the site as a mirror of CentOS, with a fresh client: the client
// reads each URL once.
func env(site *testupstream.Site) catalog.Env {
	return catalog.Env{Base: site.URL() + "/centos-stream", Fetch: upstream.NewClient(upstream.Options{Retries: -1}), Now: time.Now()}
}

func releases(t *testing.T, site *testupstream.Site) []catalog.Release {
	t.Helper()
	rels, err := New().Releases(t.Context(), env(site))
	if err != nil {
		t.Fatalf("Releases: %v", err)
	}
	return rels
}

func publish(t *testing.T, site *testupstream.Site, version, build string, arches ...string) {
	t.Helper()
	if err := site.PublishCentOSStream(version, build, arches...); err != nil {
		t.Fatal(err)
	}
}

// download returns the sha256 of what url serves.
func download(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fileSum returns the sha256 of a file of the site.
func fileSum(t *testing.T, site *testupstream.Site, path string) string {
	t.Helper()
	data, err := site.ReadFile(path)
	if err != nil || len(data) == 0 {
		t.Fatalf("site file %s: %v (%d bytes)", path, err, len(data))
	}
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// appendFile adds lines to a file of the site.
func appendFile(t *testing.T, site *testupstream.Site, path string, lines ...string) {
	t.Helper()
	data, err := site.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, strings.Join(lines, "\n")+"\n"...)
	if err := site.WriteFile(path, data); err != nil {
		t.Fatal(err)
	}
}

func summary(rels []catalog.Release) []string {
	var out []string
	for _, r := range rels {
		s := fmt.Sprintf("%s %s %s", r.Version, r.Arch, r.Build)
		if r.Err != nil {
			s += " error: " + r.Err.Error()
		}
		out = append(out, s)
	}
	return out
}

func TestReleases(t *testing.T) {
	site := startSite(t)
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
		t.Fatalf("got\n%s\nwant %d releases", strings.Join(summary(rels), "\n"), len(want))
	}
	base := site.URL() + "/centos-stream"
	for i, w := range want {
		r := rels[i]
		t.Run(w.version+"/"+w.arch, func(t *testing.T) {
			if r.Err != nil {
				t.Fatalf("Err = %v", r.Err)
			}
			if r.Name != "centos-stream" || r.Version != w.version || r.Arch != w.arch || r.Build != w.build || !r.Stable {
				t.Errorf("got %s:%s %s build %q stable %v, want centos-stream:%s %s build %q stable", r.Name, r.Version, r.Arch, r.Build, r.Stable, w.version, w.arch, w.build)
			}
			path := fmt.Sprintf("%s-stream/%s/images/CentOS-Stream-GenericCloud-%s-%s.%s.qcow2", w.version, w.up, w.version, w.build, w.up)
			if r.URL != base+"/"+path {
				t.Errorf("URL = %s, want %s", r.URL, base+"/"+path)
			}
			if sum := fileSum(t, site, "centos-stream/"+path); r.Checksum.String() != "sha256:"+sum {
				t.Errorf("Checksum = %s, want sha256:%s", r.Checksum, sum)
			}
			if got := download(t, r.URL); got != r.Checksum.Hex {
				t.Errorf("the URL serves sha256:%s, not the Checksum %s", got, r.Checksum)
			}
			if want := []string{w.version + "-" + w.build}; !slices.Equal(r.Tags, want) {
				t.Errorf("Tags = %q, want %q", r.Tags, want)
			}
			m := r.Metadata
			if r.Compression != "" || m.Preference != "centos.stream"+w.version || m.Instancetype != "u1.medium" || m.DefaultUser != "cloud-user" || !strings.Contains(m.UserData, "user: cloud-user") || m.Description == "" {
				t.Errorf("Compression %q, Metadata %+v", r.Compression, m)
			}
		})
	}
	if again := summary(releases(t, site)); !slices.Equal(again, summary(rels)) {
		t.Errorf("a second read gives\n%s\nnot\n%s", strings.Join(again, "\n"), strings.Join(summary(rels), "\n"))
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
			site := startSite(t)
			publish(t, site, "9", "20240101.0", "amd64")
			appendFile(t, site, "centos-stream/9-stream/x86_64/images/CHECKSUM",
				"# "+file+": 1 bytes",
				"SHA256 ("+file+") = "+sum,
				"junk that is no checksum line")
			rels := releases(t, site)
			if len(rels) != 1 || rels[0].Err != nil || rels[0].Build != "20240101.0" || !strings.HasSuffix(rels[0].URL, "/CentOS-Stream-GenericCloud-9-20240101.0.x86_64.qcow2") {
				t.Errorf("got %q, want build 20240101.0", summary(rels))
			}
		})
	}
}

func TestReleasesPicksUpNewVersionAndBuild(t *testing.T) {
	site := startSite(t)
	publish(t, site, "9", "20240101.0", "amd64")
	before := releases(t, site)
	if got := summary(before); !slices.Equal(got, []string{"9 amd64 20240101.0"}) {
		t.Fatalf("before: %q", got)
	}

	publish(t, site, "9", "20240201.0", "amd64")
	publish(t, site, "10", "20241118.0", "amd64")
	after := releases(t, site)
	if got := summary(after); !slices.Equal(got, []string{"9 amd64 20240201.0", "10 amd64 20241118.0"}) {
		t.Fatalf("after: %q", got)
	}
	if after[0].Checksum == before[0].Checksum {
		t.Errorf("two builds have the same checksum %s", after[0].Checksum)
	}
	for _, r := range after {
		if got := download(t, r.URL); got != r.Checksum.Hex {
			t.Errorf("%s %s: the URL serves sha256:%s, not the Checksum %s", r.Version, r.Arch, got, r.Checksum)
		}
	}
}

func TestReleasesArchProblems(t *testing.T) {
	tests := []struct {
		name     string
		set      func(*testupstream.Site) error
		want     []string // summaries of the releases of 9, up to the fetch error
		mentions string   // what every error names
		notFound bool     // whether the errors wrap catalog.ErrNotFound
	}{
		{
			name: "architecture directory without CHECKSUM",
			set: func(s *testupstream.Site) error {
				return s.WriteFile("centos-stream/9-stream/s390x/images/README", []byte("empty\n"))
			},
			want:     []string{"9 amd64 20240101.0", "9 s390x  error: reading the checksums of CentOS Stream 9 for s390x, whose directory is listed: "},
			mentions: "BASE/9-stream/s390x/images/CHECKSUM",
			notFound: true,
		},
		{
			name: "CHECKSUM without GenericCloud image",
			set: func(s *testupstream.Site) error {
				return s.WriteFile("centos-stream/9-stream/aarch64/images/CHECKSUM", []byte("SHA256 (CentOS-Stream-Container-Base-9-20240101.0.aarch64.tar.xz) = "+strings.Repeat("ab", 32)+"\n"))
			},
			want:     []string{"9 amd64 20240101.0", "9 arm64  error: BASE/9-stream/aarch64/images/CHECKSUM lists no CentOS-Stream-GenericCloud-9-<YYYYMMDD.n>.aarch64.qcow2 image"},
			mentions: "BASE/9-stream/aarch64/images/CHECKSUM",
		},
		{
			name: "CHECKSUM that fails",
			set: func(s *testupstream.Site) error {
				s.Fail("centos-stream/9-stream/x86_64/images/CHECKSUM", http.StatusServiceUnavailable, 100)
				return nil
			},
			want:     []string{"9 amd64  error: reading the checksums of CentOS Stream 9 for x86_64, whose directory is listed: "},
			mentions: "BASE/9-stream/x86_64/images/CHECKSUM",
		},
		{
			name: "version directory that fails",
			set: func(s *testupstream.Site) error {
				s.Fail("centos-stream/9-stream", http.StatusBadGateway, 100)
				return nil
			},
			want: []string{
				"9 amd64  error: listing the architectures of CentOS Stream 9: ",
				"9 arm64  error: listing the architectures of CentOS Stream 9: ",
				"9 s390x  error: listing the architectures of CentOS Stream 9: ",
			},
			mentions: "BASE/9-stream/",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			site := startSite(t)
			publish(t, site, "9", "20240101.0", "amd64")
			publish(t, site, "10", "20241118.0", "amd64")
			if err := tt.set(site); err != nil {
				t.Fatal(err)
			}
			rels := releases(t, site)
			var got []string
			for i, s := range summary(rels) {
				s = strings.ReplaceAll(s, site.URL()+"/centos-stream", "BASE")
				switch {
				case s == "10 amd64 20241118.0":
				case !strings.HasPrefix(s, "9 "):
					t.Errorf("10 is affected: %s", s)
				default:
					got = append(got, s)
					if r := rels[i]; r.Err != nil && !strings.Contains(s, tt.mentions) {
						t.Errorf("%s %s: error %q does not name %s", r.Version, r.Arch, s, tt.mentions)
					}
					if r := rels[i]; r.Err != nil && tt.notFound && !errors.Is(r.Err, catalog.ErrNotFound) {
						t.Errorf("%s %s: error %v does not wrap catalog.ErrNotFound", r.Version, r.Arch, r.Err)
					}
				}
			}
			ok := len(got) == len(tt.want)
			for i := 0; ok && i < len(got); i++ {
				ok = got[i] == tt.want[i] || strings.HasSuffix(tt.want[i], ": ") && strings.HasPrefix(got[i], tt.want[i])
			}
			if !ok {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for _, r := range rels {
				if r.Err != nil && (r.Name != "centos-stream" || r.Version == "" || r.Arch == "") {
					t.Errorf("a failed release still says what it is: %+v", r)
				}
			}
		})
	}
}

func TestReleasesUnreadable(t *testing.T) {
	tests := []struct {
		name string
		set  func(*testupstream.Site) error
		want string // in the message, when not ""
		is   error  // matched by errors.Is, when not nil
	}{
		{"missing", func(*testupstream.Site) error { return nil }, "", catalog.ErrNotFound},
		{"server error", func(s *testupstream.Site) error {
			s.Fail("centos-stream", http.StatusInternalServerError, 100)
			return s.PublishCentOSStream("9", "20240101.0", "amd64")
		}, "", nil},
		{"no stream directory", func(s *testupstream.Site) error {
			return s.WriteFile("centos-stream/7/x86_64/images/CHECKSUM", nil)
		}, "lists no N-stream/ directory", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			site := startSite(t)
			if err := tt.set(site); err != nil {
				t.Fatal(err)
			}
			rels, err := New().Releases(t.Context(), env(site))
			if err == nil || !strings.Contains(err.Error(), tt.want) || tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("got %q, error %v; want an error containing %q, matching %v", summary(rels), err, tt.want, tt.is)
			}
		})
	}
}

func TestReleasesFromLocalMirror(t *testing.T) {
	site := startSite(t)
	publish(t, site, "9", "20240101.0")
	publish(t, site, "10", "20241118.0", "amd64")
	overHTTP := releases(t, site)

	// The same tree as a local directory: the listings are the client's.
	local := catalog.Env{Base: "file://" + filepath.ToSlash(site.Dir) + "/centos-stream", Fetch: upstream.NewClient(upstream.Options{})}
	rels, err := New().Releases(t.Context(), local)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := summary(rels), summary(overHTTP); !slices.Equal(got, want) {
		t.Fatalf("file:// gives\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i, r := range rels {
		if want := strings.Replace(overHTTP[i].URL, site.URL(), "file://"+filepath.ToSlash(site.Dir), 1); r.URL != want || r.Checksum != overHTTP[i].Checksum {
			t.Errorf("%s %s: URL %s checksum %s, want %s %s", r.Version, r.Arch, r.URL, r.Checksum, want, overHTTP[i].Checksum)
		}
	}
}

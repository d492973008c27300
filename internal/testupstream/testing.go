package testupstream

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

// Serve starts a site in t.TempDir() and closes it when t's test ends. It
// fails t if the site does not start.
func Serve(t testing.TB) *Site {
	t.Helper()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Env reads d's tree of the started site, Dir/<d.Name()>, as a new run
// does: with a fresh client, which reads each URL once, and without
// retries, so that a fault the test injects stays a failure. End-of-life
// rules are evaluated at now.
func (s *Site) Env(d catalog.Distro, now time.Time) catalog.Env {
	return catalog.Env{Base: s.URL() + "/" + d.Name(), Fetch: upstream.NewClient(upstream.Options{Retries: -1}), Now: now}
}

// LocalEnv reads d's tree of the site as a local directory, the way a
// mirror given as a file:// URL is read: the directory listings are the
// client's, not the server's.
func (s *Site) LocalEnv(d catalog.Distro) catalog.Env {
	return catalog.Env{Base: s.FileURL() + "/" + d.Name(), Fetch: upstream.NewClient(upstream.Options{})}
}

// FileURL is the file:// URL of Dir: what the URLs of LocalEnv's releases
// start with where those of Env's start with URL().
func (s *Site) FileURL() string { return "file://" + filepath.ToSlash(s.Dir) }

// AppendFile adds lines to the site file at path (relative to Dir),
// failing t when it cannot.
func AppendFile(t testing.TB, s *Site, path string, lines ...string) {
	t.Helper()
	data, err := s.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, strings.Join(lines, "\n")+"\n"...)
	if err := s.WriteFile(path, data); err != nil {
		t.Fatal(err)
	}
}

// FileSHA256 returns the SHA-256, in hex, of the site file at path
// (relative to Dir), failing t when it is missing or empty.
func FileSHA256(t testing.TB, s *Site, path string) string {
	t.Helper()
	data, err := s.ReadFile(path)
	if err != nil || len(data) == 0 {
		t.Fatalf("site file %s: %v (%d bytes)", path, err, len(data))
	}
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// Releases returns d's releases read through env, failing t when d cannot
// read the upstream at all.
func Releases(t testing.TB, d catalog.Distro, env catalog.Env) []catalog.Release {
	t.Helper()
	rels, err := d.Releases(t.Context(), env)
	if err != nil {
		t.Fatalf("%s Releases: %v", d.Name(), err)
	}
	return rels
}

// Summary describes each release on a line, "VERSION ARCH BUILD", followed
// by " error: ERR" when it failed.
func Summary(rels []catalog.Release) []string {
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

// Lines describes each release on a line, "VERSION ARCH build=BUILD
// tags=[TAGS] URL".
func Lines(rels []catalog.Release) []string {
	var out []string
	for _, r := range rels {
		out = append(out, fmt.Sprintf("%s %s build=%s tags=%v %s", r.Version, r.Arch, r.Build, r.Tags, r.URL))
	}
	return out
}

// CheckReleases compares releases, in order, with the lines of Lines, and
// checks that none failed.
func CheckReleases(t testing.TB, rels []catalog.Release, want []string) {
	t.Helper()
	for _, r := range rels {
		if r.Err != nil {
			t.Errorf("%s %s: %v", r.Version, r.Arch, r.Err)
		}
	}
	if got := Lines(rels); !slices.Equal(got, want) {
		t.Errorf("releases:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Want is a release as CheckRelease expects it.
type Want struct {
	Name, Version, Arch, Build string
	Stable                     bool
	Tags                       []string
	// Path is where the image is, relative to the distribution's tree of
	// the site, Dir/<Name>.
	Path string
	// DefaultUser and Preference are the metadata's.
	DefaultUser, Preference string
}

// CheckRelease checks that r, read from the site through Env, is w: that it
// did not fail; that it has w's name, version, architecture, build,
// stability and tags; that its URL is w.Path on the site, whose sha256 is
// its Checksum, and serves that file; and that it is not compressed and
// carries w's metadata, with a description, the instancetype u1.medium and
// the default user data of w.DefaultUser.
func CheckRelease(t testing.TB, s *Site, r catalog.Release, w Want) {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("Err = %v", r.Err)
	}
	if r.Name != w.Name || r.Version != w.Version || r.Arch != w.Arch || r.Build != w.Build || r.Stable != w.Stable {
		t.Errorf("got %s:%s %s build %q stable %v, want %s:%s %s build %q stable %v", r.Name, r.Version, r.Arch, r.Build, r.Stable, w.Name, w.Version, w.Arch, w.Build, w.Stable)
	}
	if url := s.URL() + "/" + w.Name + "/" + w.Path; r.URL != url {
		t.Errorf("URL = %s, want %s", r.URL, url)
	}
	if sum := FileSHA256(t, s, w.Name+"/"+w.Path); r.Checksum.String() != "sha256:"+sum {
		t.Errorf("Checksum = %s, want sha256:%s", r.Checksum, sum)
	}
	CheckDownload(t, r, "sha256")
	if !slices.Equal(r.Tags, w.Tags) {
		t.Errorf("Tags = %q, want %q", r.Tags, w.Tags)
	}
	m := r.Metadata
	if r.Compression != "" || m.Preference != w.Preference || m.Instancetype != "u1.medium" || m.DefaultUser != w.DefaultUser || m.UserData != catalog.DefaultUserData(w.DefaultUser) || m.Description == "" {
		t.Errorf("Compression %q, Metadata %+v", r.Compression, m)
	}
}

// CheckDownload downloads r's URL and checks that its Checksum is the
// algorithm ("sha256", "sha512") digest of what it serves.
func CheckDownload(t testing.TB, r catalog.Release, algorithm string) {
	t.Helper()
	var h hash.Hash
	switch algorithm {
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	default:
		t.Fatalf("CheckDownload: algorithm %q, want sha256 or sha512", algorithm)
	}
	resp, err := http.Get(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", r.URL, resp.Status)
	}
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); r.Checksum.Algorithm != algorithm || r.Checksum.Hex != got {
		t.Errorf("%s %s: checksum %s:%s; the file at %s has %s:%s", r.Version, r.Arch, r.Checksum.Algorithm, r.Checksum.Hex, r.URL, algorithm, got)
	}
}

// CheckLocalMirror checks that d reads the site as a local directory
// (LocalEnv) as it reads it over HTTP (Env): the same releases, at the same
// paths under FileURL, with the same checksums.
func CheckLocalMirror(t testing.TB, s *Site, d catalog.Distro) {
	t.Helper()
	overHTTP := Releases(t, d, s.Env(d, time.Now()))
	rels := Releases(t, d, s.LocalEnv(d))
	if got, want := Summary(rels), Summary(overHTTP); !slices.Equal(got, want) {
		t.Fatalf("file:// gives\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i, r := range rels {
		if want := strings.Replace(overHTTP[i].URL, s.URL(), s.FileURL(), 1); r.URL != want || r.Checksum != overHTTP[i].Checksum {
			t.Errorf("%s %s: URL %s checksum %s, want %s %s", r.Version, r.Arch, r.URL, r.Checksum, want, overHTTP[i].Checksum)
		}
	}
}

// CheckFails checks that d cannot read env at all: that Releases returns an
// error saying want and, unless is is nil, matching is.
func CheckFails(t testing.TB, d catalog.Distro, env catalog.Env, want string, is error) {
	t.Helper()
	rels, err := d.Releases(t.Context(), env)
	if err == nil || !strings.Contains(err.Error(), want) || is != nil && !errors.Is(err, is) {
		t.Errorf("%s Releases = %q, error %v; want an error containing %q, matching %v", d.Name(), Summary(rels), err, want, is)
	}
}

// Unreadable is a state of the site in which a distribution cannot read
// its upstream at all, for CheckUnreadable.
type Unreadable struct {
	Name string
	// Set publishes to the site, or damages it.
	Set func(*Site) error
	// Want is in the error, when not "".
	Want string
	// Is is matched by errors.Is, when not nil.
	Is error
}

// CheckUnreadable checks each case on a new site: that d, reading it at
// now, fails as the case says (see CheckFails).
func CheckUnreadable(t *testing.T, d catalog.Distro, now time.Time, cases []Unreadable) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			s := Serve(t)
			if err := c.Set(s); err != nil {
				t.Fatal(err)
			}
			CheckFails(t, d, s.Env(d, now), c.Want, c.Is)
		})
	}
}

// VersionProblems is a table of ways to damage one version of an upstream,
// each of which a distribution reports in that version's releases alone,
// for CheckVersionProblems.
type VersionProblems struct {
	// Publish fills the new site of each case.
	Publish func(*Site) error
	// Version is the version every case damages.
	Version string
	// Others are the Summary lines of the other versions' releases, which
	// no case changes.
	Others []string
	Cases  []VersionProblem
}

// VersionProblem is one way to damage a version, and what the distribution
// makes of it.
type VersionProblem struct {
	Name string
	// Set damages the site.
	Set func(*Site) error
	// Want are the Summary lines of the version's releases, with the URL
	// of the distribution's tree written BASE; one that ends in ": " stands
	// for any line it begins.
	Want []string
	// Mentions is what every error of the version names.
	Mentions string
	// NotFound is whether those errors wrap catalog.ErrNotFound.
	NotFound bool
}

// CheckVersionProblems checks every case of p on a new site, read by d as a
// new run does. A failed release must still name its distribution, version
// and architecture.
func CheckVersionProblems(t *testing.T, d catalog.Distro, p VersionProblems) {
	t.Helper()
	for _, c := range p.Cases {
		t.Run(c.Name, func(t *testing.T) {
			s := Serve(t)
			if err := p.Publish(s); err != nil {
				t.Fatal(err)
			}
			if err := c.Set(s); err != nil {
				t.Fatal(err)
			}
			env := s.Env(d, time.Now())
			rels := Releases(t, d, env)
			var got, others []string
			for i, line := range Summary(rels) {
				line = strings.ReplaceAll(line, env.Base, "BASE")
				r := rels[i]
				if r.Err != nil && (r.Name != d.Name() || r.Version == "" || r.Arch == "") {
					t.Errorf("a failed release still says what it is: %+v", r)
				}
				if r.Version != p.Version {
					others = append(others, line)
					continue
				}
				got = append(got, line)
				if r.Err != nil && !strings.Contains(line, c.Mentions) {
					t.Errorf("%s %s: error %q does not name %s", r.Version, r.Arch, line, c.Mentions)
				}
				if r.Err != nil && c.NotFound && !errors.Is(r.Err, catalog.ErrNotFound) {
					t.Errorf("%s %s: error %v does not wrap catalog.ErrNotFound", r.Version, r.Arch, r.Err)
				}
			}
			if !slices.Equal(others, p.Others) {
				t.Errorf("other versions are affected:\n%s\nwant\n%s", strings.Join(others, "\n"), strings.Join(p.Others, "\n"))
			}
			ok := len(got) == len(c.Want)
			for i := 0; ok && i < len(got); i++ {
				ok = got[i] == c.Want[i] || strings.HasSuffix(c.Want[i], ": ") && strings.HasPrefix(got[i], c.Want[i])
			}
			if !ok {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.Want, "\n"))
			}
		})
	}
}

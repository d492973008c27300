package mirror

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseConfigSkopeo(t *testing.T) {
	data, err := os.ReadFile("testdata/skopeo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseConfig("skopeo.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Path:   "skopeo.yaml",
		Format: FormatSkopeo,
		Units: []Unit{{
			Source:       "registry.example.com",
			PlatformMode: PlatformRewrite,
			TLSVerify:    ptr(true),
			CertDir:      "/home/john/certs",
			Credentials:  &Credentials{Username: "john", Password: "this is a secret"},
			Line:         2,
			Images: []ImageSpec{
				{Repository: "busybox", Allow: []string{".*"}, Line: 4},
				{Repository: "redis", Tags: []string{"1.0", "2.0", "sha256:0000000000000000000000000000000011111111111111111111111111111111"}, Line: 5},
				{Repository: "nginx", Allow: []string{`.*(?:^1\.13\.[12]-alpine-perl$).*`}, Line: 10},
				{Repository: "alpine", Semver: ">= 3.12.0", Line: 12},
			},
		}, {
			Source:       "quay.io",
			PlatformMode: PlatformRewrite,
			TLSVerify:    ptr(false),
			Line:         18,
			Images:       []ImageSpec{{Repository: "coreos/etcd", Tags: []string{"latest"}, Line: 21}},
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseConfig (-want +got):\n%s", diff)
	}

	// skopeo takes the destination from its command line; so does SetTarget.
	err = got.Validate()
	if !errors.Is(err, ErrNoTarget) {
		t.Fatalf("Validate before SetTarget = %v, want ErrNoTarget", err)
	}
	wantErr := "skopeo.yaml:2: registry.example.com.target: no target: a skopeo sync file names none, the destination is given separately\n" +
		"skopeo.yaml:18: quay.io.target: no target: a skopeo sync file names none, the destination is given separately"
	if err.Error() != wantErr {
		t.Errorf("Validate before SetTarget:\n got %s\nwant %s", err, wantErr)
	}
	got.SetTarget("registry.local:5000/mirror", true)
	if err := got.Validate(); err != nil {
		t.Fatalf("Validate after SetTarget: %v", err)
	}
	u := got.Units[1]
	if u.Target != "registry.local:5000/mirror" || u.DestinationName("coreos/etcd") != "quay.io/coreos/etcd" {
		t.Errorf("after SetTarget(scoped): target %q, name %q", u.Target, u.DestinationName("coreos/etcd"))
	}
	got.SetTarget("oci:/media/usb", false)
	if u := got.Units[1]; u.Target != "oci:/media/usb" || u.DestinationName("coreos/etcd") != "etcd" {
		t.Errorf("after SetTarget: target %q, name %q", u.Target, u.DestinationName("coreos/etcd"))
	}
}

// TestSkopeoSelect checks that skopeo's selectors select what skopeo sync
// does: an empty list every tag, a regex anywhere in the tag.
func TestSkopeoSelect(t *testing.T) {
	c, err := ParseConfig("s.yaml", []byte(`
localhost:5000:
  images:
    all: []
    null-means-all:
    some: [a, b]
  images-by-tag-regex:
    unanchored: 1\.2[0-9]
    anchored: ^1\.13\.[12]-alpine-perl$
  images-by-semver:
    semver: ">= 1.20, < 1.25"
`))
	if err != nil {
		t.Fatal(err)
	}
	tags := []string{"1.3", "1.20.1", "1.21", "v1.25-alpine", "1.13.1-alpine-perl", "x1.13.1-alpine-perl", "latest"}
	want := map[string][]string{
		"all":            {"latest", "x1.13.1-alpine-perl", "1.3", "1.13.1-alpine-perl", "1.20.1", "1.21", "v1.25-alpine"},
		"null-means-all": {"latest", "x1.13.1-alpine-perl", "1.3", "1.13.1-alpine-perl", "1.20.1", "1.21", "v1.25-alpine"},
		"some":           {"a", "b"},
		"unanchored":     {"1.20.1", "1.21", "v1.25-alpine"},
		"anchored":       {"1.13.1-alpine-perl"},
		"semver":         {"1.20.1", "1.21"},
	}
	for _, s := range c.Units[0].Images {
		got, err := s.Select(tags)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want[s.Repository], got); diff != "" {
			t.Errorf("%s: Select (-want +got):\n%s", s.Repository, diff)
		}
	}
}

func TestParseConfigSkopeoErrors(t *testing.T) {
	tests := []struct {
		name, data string
		want       []string
	}{
		{"not a host", "registry:\n  images: {a: []}\nquay.io:\n  images: {a: []}\n", []string{
			"f.yaml:1: registry: unknown key: expected a registry host such as quay.io (skopeo sync format), or version, interval, schedule, defaults and units (native format)",
		}},
		{"no registries", "{}\n", []string{
			"f.yaml:1: no registries: expected registry hosts (skopeo sync format) or units (native format)",
		}},
		{"registry keys", "quay.io:\n  image: {a: []}\n  tls-verify: yes\n  cert-dir: {}\n  credentials: {username: a, pass: b}\n", []string{
			"f.yaml:2: quay.io.image: unknown key: expected images, images-by-tag-regex, images-by-semver, credentials, tls-verify or cert-dir",
			`f.yaml:3: quay.io.tls-verify: expected true or false, got "yes"`,
			"f.yaml:4: quay.io.cert-dir: expected a directory, got a mapping",
			"f.yaml:5: quay.io.credentials.pass: unknown key: expected username or password",
		}},
		{"no images", "quay.io:\n  tls-verify: false\nghcr.io:\n  images: {}\n", []string{
			"f.yaml:1: quay.io: no images: expected images, images-by-tag-regex or images-by-semver",
			"f.yaml:3: ghcr.io: no images: expected images, images-by-tag-regex or images-by-semver",
		}},
		{"registry not a mapping", "quay.io: [a]\n", []string{
			"f.yaml:1: quay.io: expected a mapping with the keys images, images-by-tag-regex, images-by-semver, credentials, tls-verify, cert-dir, got a list",
		}},
		{"images", "quay.io:\n  images:\n    Busybox: []\n    redis: latest\n    nginx: [-x, [1]]\n", []string{
			`f.yaml:3: quay.io.images.Busybox: "Busybox" is not lowercase letters and digits separated by . _ or -`,
			`f.yaml:4: quay.io.images.redis: expected a list of tags, got "latest"`,
			`f.yaml:5: quay.io.images.nginx: expected tags, got a list`,
			`f.yaml:5: quay.io.images.nginx: "-x" is not a tag (up to 128 letters, digits, _ . and -, not starting with . or -) or a digest (sha256:…)`,
		}},
		{"images not a mapping", "quay.io:\n  images: [busybox]\n", []string{
			"f.yaml:2: quay.io.images: expected a mapping of repository to tags, got a list",
		}},
		{"regex and semver", "quay.io:\n  images-by-tag-regex:\n    a: '['\n    b: [x]\n  images-by-semver:\n    c: '>= 1.x.2'\n    d:\n", []string{
			`f.yaml:3: quay.io.images-by-tag-regex.a: invalid regex "[": missing closing ]`,
			`f.yaml:4: quay.io.images-by-tag-regex.b: expected a regular expression, got a list`,
			`f.yaml:7: quay.io.images-by-semver.d: expected a semver constraint such as ">= 3.12.0", got nothing`,
		}},
		{"duplicate registry", "quay.io:\n  images: {a: []}\nquay.io:\n  images: {b: []}\n", []string{
			"f.yaml:3: quay.io: duplicate key: it is set on line 1 too",
		}},
		{"native key among registries", "quay.io:\n  images: {a: []}\nunits: []\n", []string{
			"f.yaml:1: quay.io: unknown key: expected version, interval, schedule, defaults or units",
			"f.yaml:3: units: the list is empty: expected at least one unit",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig("f.yaml", []byte(tt.data))
			if err == nil {
				t.Fatalf("no error; got %+v", c)
			}
			if diff := cmp.Diff(tt.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseConfigSkopeoInvalidSemver checks that an invalid images-by-semver
// constraint skips what skopeo sync skips, the registry's images-by-semver,
// with a warning naming the file, the line and the key, and that the rest
// of the file is read.
func TestParseConfigSkopeoInvalidSemver(t *testing.T) {
	c, err := ParseConfig("s.yaml", []byte(`
quay.io:
  images:
    base: ["1.0"]
  images-by-semver:
    app: ">= 3.12"
    tools: "V3.15.0"
ghcr.io:
  images-by-semver:
    app: "=>3.12"
registry.example.com:
  images-by-semver:
    only: "latest"
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range c.Warnings {
		got = append(got, w.Error())
	}
	want := []string{
		`s.yaml:7: quay.io.images-by-semver.tools: invalid semver constraint "V3.15.0": improper constraint: "V3.15.0"; ` + constraintHint + `; skipping this registry's images-by-semver (app, tools), as skopeo sync does`,
		`s.yaml:13: registry.example.com.images-by-semver.only: invalid semver constraint "latest": improper constraint: "latest"; ` + constraintHint + `; skipping this registry's images-by-semver (only), as skopeo sync does`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Warnings (-want +got):\n%s", diff)
	}
	wantUnits := []Unit{
		{Source: "quay.io", PlatformMode: PlatformRewrite, Line: 2, Images: []ImageSpec{{Repository: "base", Tags: []string{"1.0"}, Line: 4}}},
		{Source: "ghcr.io", PlatformMode: PlatformRewrite, Line: 8, Images: []ImageSpec{{Repository: "app", Semver: "=>3.12", Line: 10}}},
	}
	if diff := cmp.Diff(wantUnits, c.Units); diff != "" {
		t.Errorf("Units (-want +got):\n%s", diff)
	}
}

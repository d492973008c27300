package mirror

import (
	"errors"
	"fmt"
	"os"
	"regexp/syntax"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ptr[T any](v T) *T { return &v }

func TestParseConfigNative(t *testing.T) {
	data, err := os.ReadFile("testdata/native.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseConfig("native.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Path:     "native.yaml",
		Format:   FormatNative,
		Interval: time.Hour,
		Units: []Unit{{
			Source:       "quay.io/containerdisks",
			Target:       "registry.local:5000/containerdisks",
			Platforms:    []string{"linux/amd64", "linux/arm64"},
			PlatformMode: PlatformRewrite,
			Line:         8,
			Images: []ImageSpec{
				{Repository: "fedora", Tags: []string{"41", "42"}, Line: 10},
				{Repository: "ubuntu", Allow: []string{`2[0-9]\.04`}, Deny: []string{".*-rc.*"}, Newest: 2, Line: 12},
				{Repository: "centos-stream", Semver: ">=9", Line: 16},
			},
		}, {
			Source:       "localhost:5000",
			Target:       "oci-archive:/media/usb/cd.tar",
			Platforms:    []string{"linux/s390x"},
			PlatformMode: PlatformSparse,
			Scoped:       true,
			TLSVerify:    ptr(false),
			CertDir:      "/etc/containers/certs.d/localhost:5000",
			Credentials:  &Credentials{Username: "robot", Password: "secret"},
			Line:         18,
			Images: []ImageSpec{
				{Repository: "team/debian", Tags: []string{"sha256:0000000000000000000000000000000011111111111111111111111111111111"}, Semver: "^12", Line: 27},
			},
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseConfig (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate of a parsed configuration: %v", err)
	}
}

func TestParseConfigDefaultsAndAnchors(t *testing.T) {
	data := `
schedule: "30 3 * * mon-fri"
defaults:
  target: oci:/srv/mirror
  platformMode: sparse
  scoped: true
common: &common
  platforms: [x86_64]
  tlsVerify: false
units:
- <<: *common
  source: quay.io
  images: [{repository: a, newest: 1}]
- <<: *common
  source: ghcr.io/org
  target: registry.local
  platforms: []
  platformMode: rewrite
  scoped: false
  images:
  - &spec {repository: b, allow: ['.*']}
  - *spec
`
	// "common" is not a key of the format: anchors are defined on a unit
	// instead.
	_, err := ParseConfig("d.yaml", []byte(data))
	if err == nil || err.Error() != "d.yaml:7: common: unknown key: expected version, interval, schedule, defaults or units" {
		t.Fatalf("err = %v", err)
	}
	data = strings.Replace(data, "common: &common\n  platforms: [x86_64]\n  tlsVerify: false\n", "", 1)
	data = strings.Replace(data, "units:\n- <<: *common\n", "units:\n- &common\n  platforms: [x86_64]\n  tlsVerify: false\n", 1)
	c, err := ParseConfig("d.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := []Unit{{
		Source: "quay.io", Target: "oci:/srv/mirror", Platforms: []string{"linux/amd64"}, PlatformMode: PlatformSparse, Scoped: true, TLSVerify: ptr(false), Line: 8,
		Images: []ImageSpec{{Repository: "a", Newest: 1, Line: 12}},
	}, {
		Source: "ghcr.io/org", Target: "registry.local", PlatformMode: PlatformRewrite, TLSVerify: ptr(false), Line: 13,
		Images: []ImageSpec{{Repository: "b", Allow: []string{".*"}, Line: 20}, {Repository: "b", Allow: []string{".*"}, Line: 20}},
	}}
	if diff := cmp.Diff(want, c.Units); diff != "" {
		t.Errorf("units (-want +got):\n%s", diff)
	}
	if c.Schedule != "30 3 * * mon-fri" || c.Interval != 0 {
		t.Errorf("schedule %q, interval %s", c.Schedule, c.Interval)
	}
}

// TestParseConfigErrors checks that each error names the file, the line and
// the key, and that every error of a file is reported.
func TestParseConfigErrors(t *testing.T) {
	const unit = "units:\n- source: quay.io\n  target: registry.local\n  images:\n"
	// Intervals, schedules and platforms are checked as the scheduler and
	// the copy read them, with their messages.
	intervalErr := func(s string) string { _, err := ParseInterval(s); return err.Error() }
	cronErr := func(s string) string { _, err := ParseCron(s); return err.Error() }
	platformErr := func(s string) string { _, err := NormalizePlatform(s); return err.Error() }
	tests := []struct {
		name, data string
		want       []string
	}{
		{"yaml syntax", "units: [\n", []string{"f.yaml:1: invalid YAML: did not find expected node content"}},
		{"empty", "# nothing\n", []string{"f.yaml:1: the file is empty: expected version, interval, schedule, defaults and units (native format) or registry hosts (skopeo sync format)"}},
		{"list", "- a\n", []string{"f.yaml:1: expected a mapping with the keys version, interval, schedule, defaults and units, or registry hosts (skopeo sync), got a list"}},
		{"two documents", "version: 1\n---\nversion: 1\n", []string{"f.yaml:2: a second YAML document: expected one configuration per file"}},
		{"no units", "version: 1\n", []string{"f.yaml:1: units: missing: expected a list of units, each with a source, a target and images"}},
		{"empty units", "units: []\n", []string{"f.yaml:1: units: the list is empty: expected at least one unit"}},
		{"units not a list", "units: {source: quay.io}\n", []string{"f.yaml:1: units: expected a list of units, each with a source, a target and images, got a mapping"}},
		{"version", "version: 2\n" + unit + "  - {repository: a, tags: [b]}\n", []string{`f.yaml:1: version: unsupported version "2": expected 1`}},
		{"unknown top-level key", "version: 1\nunit: []\n" + unit + "  - {repository: a, tags: [b]}\n", []string{"f.yaml:2: unit: unknown key: expected version, interval, schedule, defaults or units"}},
		{"regsync", "version: 1\nsync:\n- source: a\n", []string{
			"f.yaml:1: units: missing: expected a list of units, each with a source, a target and images",
			"f.yaml:2: sync: unknown key: regsync's sync list is not read; write units, each with a source, a target and images",
		}},
		{"interval and schedule", "interval: 1h\nschedule: '@daily'\n" + unit + "  - {repository: a, tags: [b]}\n", []string{"f.yaml:1: interval: schedule is set too: expected one of them"}},
		{"bad interval", "interval: 1d\n" + unit + "  - {repository: a, tags: [b]}\n", []string{"f.yaml:1: interval: " + intervalErr("1d")}},
		{"negative interval", "interval: -1h\n" + unit + "  - {repository: a, tags: [b]}\n", []string{"f.yaml:1: interval: " + intervalErr("-1h")}},
		{"bad schedule", "schedule: '0 25 * * *'\n" + unit + "  - {repository: a, tags: [b]}\n", []string{"f.yaml:1: schedule: " + cronErr("0 25 * * *")}},
		{"schedule fields", "schedule: '0 3 * *'\n" + unit + "  - {repository: a, tags: [b]}\n", []string{"f.yaml:1: schedule: " + cronErr("0 3 * *")}},
		{"schedule names and steps", "schedule: '*/0 3 * jan-foo *'\n" + unit + "  - {repository: a, tags: [b]}\n", []string{"f.yaml:1: schedule: " + cronErr("*/0 3 * jan-foo *")}},
		{"schedule time zone", "schedule: 'CRON_TZ=UTC 0 3 * * *'\n" + unit + "  - {repository: a, tags: [b]}\n", []string{"f.yaml:1: schedule: " + cronErr("CRON_TZ=UTC 0 3 * * *")}},
		{"unit keys", "units:\n- platfroms: [amd64]\n  scoped: yes\n", []string{
			"f.yaml:2: units[0].platfroms: unknown key: expected source, target, images, platforms, platformMode, scoped, tlsVerify, certDir or credentials",
			"f.yaml:2: units[0].source: missing: expected a registry host[:port][/prefix], such as quay.io/containerdisks",
			"f.yaml:2: units[0].target: missing: expected a registry host[:port][/prefix], oci:DIR or oci-archive:FILE.tar (here or in defaults)",
			"f.yaml:2: units[0].images: missing: expected a list of repositories and the tags to copy",
			`f.yaml:3: units[0].scoped: expected true or false, got "yes"`,
		}},
		{"unit not a mapping", "units:\n- quay.io\n", []string{`f.yaml:2: units[0]: expected a mapping with the keys source, target, images, platforms, platformMode, scoped, tlsVerify, certDir, credentials, got "quay.io"`}},
		{"source and target", "units:\n- source: https://quay.io\n  target: registry\n  images: [{repository: a, tags: [b]}]\n- source: quay.io/Org\n  target: 'oci:'\n  images: [{repository: a, tags: [b]}]\n", []string{
			`f.yaml:2: units[0].source: "https://quay.io" is not a registry host[:port][/prefix]: a reference has no URL scheme`,
			`f.yaml:3: units[0].target: "registry": "registry" is not a registry host (a host has a dot or a port, or is localhost); expected a registry host[:port][/prefix], oci:DIR or oci-archive:FILE.tar`,
			`f.yaml:5: units[1].source: "quay.io/Org" is not a registry host[:port][/prefix]: the path "Org" is not lowercase letters and digits separated by . _ or -`,
			`f.yaml:6: units[1].target: "oci:": the layout directory is empty; expected a registry host[:port][/prefix], oci:DIR or oci-archive:FILE.tar`,
		}},
		{"platforms", unit + "  - {repository: a, tags: [b]}\n  platforms:\n  - linux/amd46\n  - ppc64le\n  - [arm64]\n  platformMode: full\n", []string{
			"f.yaml:7: units[0].platforms: " + platformErr("linux/amd46"),
			`f.yaml:9: units[0].platforms: expected platforms such as linux/amd64, got a list`,
			`f.yaml:10: units[0].platformMode: unknown platform mode "full": expected rewrite (a new index of the chosen platforms) or sparse (the source index, only the chosen platforms copied)`,
		}},
		{"source settings", unit + "  - {repository: a, tags: [b]}\n  tlsVerify: 'false'\n  certDir: [a]\n  credentials: {user: x, password: y}\n", []string{
			`f.yaml:6: units[0].tlsVerify: expected true or false, got "false"`,
			`f.yaml:7: units[0].certDir: expected a directory, got a list`,
			`f.yaml:8: units[0].credentials.user: unknown key: expected username or password`,
			`f.yaml:8: units[0].credentials.username: missing: expected the username for the source`,
		}},
		{"defaults", "defaults:\n  source: quay.io\n  platforms: linux/amd64\n" + unit + "  - {repository: a, tags: [b]}\n", []string{
			"f.yaml:2: defaults.source: unknown key: expected target, platforms, platformMode or scoped",
			"f.yaml:3: defaults.platforms: expected a list of platforms such as linux/amd64, got \"linux/amd64\"",
		}},
		{"images", unit + "  - repository: Fedora\n    tags: ['-x', 41]\n    allow: ['[', '4[0-9]']\n    deny: ['(?P<x', 'x{2,1}']\n    semver: '>=1 ||'\n    newest: -1\n  - repository: a\n  - tags: [a]\n    newest: two\n    since: 2024\n  - fedora\n", []string{
			`f.yaml:5: units[0].images[0].repository: "Fedora" is not lowercase letters and digits separated by . _ or -`,
			`f.yaml:6: units[0].images[0].tags: "-x" is not a tag (up to 128 letters, digits, _ . and -, not starting with . or -) or a digest (sha256:…)`,
			`f.yaml:7: units[0].images[0].allow: invalid regex "[": missing closing ]`,
			`f.yaml:8: units[0].images[0].deny: invalid regex "(?P<x": invalid named capture`,
			`f.yaml:8: units[0].images[0].deny: invalid regex "x{2,1}": invalid repeat count: "{2,1}"`,
			`f.yaml:9: units[0].images[0].semver: invalid semver constraint ">=1 ||": improper constraint: ""; expected a constraint such as ">= 3.12", "^41", "~1.2", "1.x", "40 - 42" or ">= 1.2, < 2 || 3.x" (github.com/Masterminds/semver, as skopeo sync reads images-by-semver)`,
			`f.yaml:10: units[0].images[0].newest: -1 is negative: expected how many of the newest tags to keep (0 keeps all)`,
			`f.yaml:11: units[0].images[1]: no tags selected: expected tags, allow, deny, semver or newest (allow: ['.*'] selects every tag)`,
			`f.yaml:12: units[0].images[2].repository: missing: expected a repository path below the source, such as fedora`,
			`f.yaml:13: units[0].images[2].newest: expected a whole number, got "two"`,
			`f.yaml:14: units[0].images[2].since: unknown key: expected repository, tags, allow, deny, semver or newest`,
			`f.yaml:15: units[0].images[3]: expected a mapping with the keys repository, tags, allow, deny, semver, newest, got "fedora"`,
		}},
		{"empty selectors", unit + "  - {repository: a, tags: [], allow: [], newest: 0}\n", []string{
			"f.yaml:5: units[0].images[0]: no tags selected: expected tags, allow, deny, semver or newest (allow: ['.*'] selects every tag)",
		}},
		{"duplicate key", unit + "  - {repository: a, tags: [b], tags: [c]}\n", []string{
			"f.yaml:5: units[0].images[0].tags: duplicate key: it is set on line 5 too",
		}},
		{"bad merge", unit + "  - {<<: [a], repository: a, tags: [b]}\n", []string{
			`f.yaml:5: units[0].images[0].<<: merges "a": expected a mapping or a list of mappings`,
		}},
		{"null source", "units:\n- source:\n  target: registry.local\n  images: [{repository: a, tags: [b]}]\n", []string{
			"f.yaml:2: units[0].source: expected a registry host[:port][/prefix], got nothing",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig("f.yaml", []byte(tt.data))
			if err == nil {
				t.Fatalf("no error; got %+v", c)
			}
			if c != nil {
				t.Errorf("a configuration with an error: %+v", c)
			}
			if diff := cmp.Diff(tt.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseConfigAliasBomb checks that aliases of aliases cannot make the
// parser read billions of entries from a small file.
func TestParseConfigAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("units:\n- &u {source: quay.io, target: oci:x, images: &i [&s {repository: a, tags: &t [")
	b.WriteString(strings.Repeat("x, ", 1000))
	b.WriteString("]}")
	b.WriteString(strings.Repeat(", *s", 1000))
	b.WriteString("]}\n")
	b.WriteString(strings.Repeat("- *u\n", 1000))
	start := time.Now()
	_, err := ParseConfig("bomb.yaml", []byte(b.String()))
	want := "bomb.yaml:2: the configuration has more than 1000000 entries (aliases counted at each use): expected fewer"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("ParseConfig took %s", d)
	}
}

func TestConfigErrorUnwrap(t *testing.T) {
	_, err := ParseConfig("f.yaml", []byte("units:\n- source: quay.io\n  images: [{repository: a, allow: ['[']}]\n"))
	var se *syntax.Error
	if !errors.As(err, &se) || se.Code != syntax.ErrMissingBracket {
		t.Errorf("errors.As(%v, *syntax.Error) = %v", err, se)
	}
	if !errors.Is(err, ErrNoTarget) {
		t.Errorf("errors.Is(%v, ErrNoTarget) = false", err)
	}
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.File != "f.yaml" || ce.Line != 2 || ce.Key != "units[0].target" {
		t.Errorf("first ConfigError = %+v", ce)
	}
}

func TestValidate(t *testing.T) {
	cronErr := func(s string) string { _, err := ParseCron(s); return err.Error() }
	platformErr := func(s string) string { _, err := NormalizePlatform(s); return err.Error() }
	valid := func() *Config {
		return &Config{Units: []Unit{{Source: "quay.io", Target: "oci:out", Images: []ImageSpec{{Repository: "a", Tags: []string{"1"}}}}}}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"no units", func(c *Config) { c.Units = nil }, "units: no units: expected at least one"},
		{"interval and schedule", func(c *Config) { c.Interval, c.Schedule = time.Hour, "@daily" }, "schedule: interval is set too: expected one of them"},
		{"negative interval", func(c *Config) { c.Interval = -time.Second }, "interval: -1s is negative: expected a positive duration"},
		{"schedule", func(c *Config) { c.Schedule = "61 * * * *" }, "schedule: " + cronErr("61 * * * *")},
		{"source", func(c *Config) { c.Units[0].Source = "" }, "units[0].source: missing: expected a registry host[:port][/prefix], such as quay.io/containerdisks"},
		{"target", func(c *Config) { c.Units[0].Target = "" }, "units[0].target: missing: expected a registry host[:port][/prefix], oci:DIR or oci-archive:FILE.tar"},
		{"bad target", func(c *Config) { c.Units[0].Target = "docker://quay.io" }, `units[0].target: "docker://quay.io": a reference has no URL scheme; expected a registry host[:port][/prefix], oci:DIR or oci-archive:FILE.tar`},
		{"platform", func(c *Config) { c.Units[0].Platforms = []string{"linux"} }, "units[0].platforms: " + platformErr("linux")},
		{"platform mode", func(c *Config) { c.Units[0].PlatformMode = "all" }, `units[0].platformMode: unknown platform mode "all": expected rewrite (a new index of the chosen platforms) or sparse (the source index, only the chosen platforms copied)`},
		{"credentials", func(c *Config) { c.Units[0].Credentials = &Credentials{Password: "x"} }, "units[0].credentials.username: missing: expected the username for the source"},
		{"no images", func(c *Config) { c.Units[0].Images = nil }, "units[0].images: no images: expected at least one repository"},
		{"repository", func(c *Config) { c.Units[0].Images[0].Repository = "a//b" }, `units[0].images[0].repository: "a//b" has an empty element (a leading, trailing or double /)`},
		{"tag", func(c *Config) { c.Units[0].Images[0].Tags = []string{"a:b"} }, `units[0].images[0].tags: "a:b" is not a tag (up to 128 letters, digits, _ . and -, not starting with . or -) or a digest (sha256:…)`},
		{"no selector", func(c *Config) { c.Units[0].Images[0].Tags = nil }, "units[0].images[0]: no tags selected: expected tags, allow, deny, semver or newest (allow: ['.*'] selects every tag)"},
		{"deny", func(c *Config) { c.Units[0].Images[0].Deny = []string{"*"} }, `units[0].images[0].deny: invalid regex "*": missing argument to repetition operator`},
		{"semver", func(c *Config) { c.Units[0].Images[0].Semver = "=>V1" }, `units[0].images[0].semver: invalid semver constraint "=>V1": improper constraint: "=>V1"; ` + constraintHint},
		{"newest", func(c *Config) { c.Units[0].Images[0].Newest = -2 }, "units[0].images[0].newest: -2 is negative: expected how many of the newest tags to keep (0 keeps all)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(c)
			err := c.Validate()
			if err == nil || err.Error() != tt.want {
				t.Errorf("Validate() = %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestUnitNames(t *testing.T) {
	u := Unit{Source: "quay.io/containerdisks"}
	if got := u.SourceRepository("team/fedora"); got != "quay.io/containerdisks/team/fedora" {
		t.Errorf("SourceRepository = %q", got)
	}
	if got := u.DestinationName("team/fedora"); got != "fedora" {
		t.Errorf("DestinationName = %q, want the last element", got)
	}
	u.Scoped = true
	if got := u.DestinationName("team/fedora"); got != "quay.io/containerdisks/team/fedora" {
		t.Errorf("scoped DestinationName = %q, want the full source path", got)
	}
	u.Source = "localhost:5000"
	if got := u.DestinationName("app"); got != "localhost_5000/app" {
		t.Errorf("scoped DestinationName with a port = %q, want localhost_5000/app", got)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, name := range []string{"testdata/native.yaml", "testdata/skopeo.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	for _, s := range []string{
		"",
		"units: [\n",
		"a: &a [*a]\n",
		"x: &x {<<: *x}\n",
		"units:\n- &u {source: quay.io, target: oci:x, images: [{repository: a, tags: [b]}]}\n- {<<: [*u, *u], scoped: true}\n",
		"quay.io: {images: {a: null}, images-by-semver: {b: '^1 || 2.x'}}\n",
		"defaults: {target: oci:x}\nunits: [{source: localhost, images: [{repository: a, allow: ['a|b'], newest: 3}]}]\n",
		// Over the limits: a long regex, too many tags, too many entries.
		"units: [{source: quay.io, target: oci:x, images: [{repository: a, allow: ['" + strings.Repeat("(a|b)", 1000) + "']}]}]\n",
		"quay.io: {images-by-tag-regex: {a: '" + strings.Repeat("a", maxRegex+1) + "'}}\n",
		"quay.io: {images: {a: [" + strings.Repeat("t, ", maxEntries+1) + "]}}\n",
		"units: [{source: quay.io, target: oci:x, images: [{repository: a, tags: [" + strings.Repeat("a,", 200_001) + "]}]}]\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		c, err := ParseConfig("fuzz.yaml", []byte(data))
		if err != nil {
			if c != nil {
				t.Fatalf("a configuration and an error: %v", err)
			}
			for line := range strings.SplitSeq(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml") {
					t.Fatalf("an error line without the file name: %q", line)
				}
			}
			return
		}
		// What ParseConfig accepts, Validate accepts (once the target of a
		// skopeo file is set), and every entry selects without error.
		if c.Format == FormatSkopeo {
			c.SetTarget("oci:out", false)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate of a parsed configuration: %v\n%s", err, data)
		}
		for _, u := range c.Units {
			for _, s := range u.Images {
				if _, err := s.Select([]string{"1", "1.2.3", "latest", "v2.0.0-rc1"}); err != nil {
					t.Fatalf("Select: %v", err)
				}
			}
		}
	})
}

func ExampleParseConfig() {
	c, err := ParseConfig("sync.yaml", []byte(`
units:
- source: quay.io/containerdisks
  target: registry.local:5000/containerdisks
  images:
  - repository: ubuntu
    allow: ['2[0-9]\.04']
    newest: 2
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	spec := c.Units[0].Images[0]
	tags, _ := spec.Select([]string{"20.04", "22.04", "22.10", "24.04", "latest"})
	fmt.Println(c.Units[0].SourceRepository(spec.Repository), tags)

	_, err = ParseConfig("sync.yaml", []byte(`
units:
- source: quay.io/containerdisks
  target: oci:/srv/mirror
  images:
  - repository: ubuntu
    allow: ['[']
`))
	fmt.Println(err)
	// Output:
	// quay.io/containerdisks/ubuntu [22.04 24.04]
	// sync.yaml:7: units[0].images[0].allow: invalid regex "[": missing closing ]
}

func TestParseConfigTarget(t *testing.T) {
	data := []byte("units:\n- source: quay.io/containerdisks\n  images:\n  - {repository: fedora, tags: [\"42\"]}\n")
	if _, err := ParseConfig("n.yaml", data); !errors.Is(err, ErrNoTarget) {
		t.Fatalf("ParseConfig without a target = %v, want ErrNoTarget", err)
	}
	c, _, err := ParseConfigTarget("n.yaml", data, "oci-archive:cd.tar", true)
	if err != nil {
		t.Fatal(err)
	}
	if u := c.Units[0]; u.Target != "oci-archive:cd.tar" || !u.Scoped {
		t.Errorf("unit = %+v, want the target and scoping given", u)
	}
	// A target the file gives is replaced, and reported.
	own := []byte("defaults:\n  target: oci:all\nunits:\n- source: quay.io/a\n  images: [{repository: x, tags: [\"1\"]}]\n" +
		"- source: quay.io/b\n  target: r.example/m\n  images: [{repository: y, tags: [\"1\"]}]\n" +
		"- source: quay.io/c\n  target: oci:own\n  images: [{repository: z, tags: [\"1\"]}]\n")
	c, over, err := ParseConfigTarget("n.yaml", own, "r.example/m", false)
	if err != nil {
		t.Fatal(err)
	}
	want := []TargetOverride{{Unit: 0, Line: 4, Key: "units[0]", Was: "oci:all"}, {Unit: 2, Line: 9, Key: "units[2]", Was: "oci:own"}}
	if diff := cmp.Diff(want, over); diff != "" {
		t.Errorf("overridden (-want +got):\n%s", diff)
	}
	// A unit's scoped: true turned off by --to without --scoped is
	// reported too, with or without a target of its own.
	scoped := []byte("units:\n- source: quay.io/a\n  scoped: true\n  images: [{repository: x, tags: [\"1\"]}]\n" +
		"- source: quay.io/b\n  target: oci:own\n  scoped: true\n  images: [{repository: y, tags: [\"1\"]}]\n")
	_, overScoped, err := ParseConfigTarget("n.yaml", scoped, "r.example/m", false)
	if err != nil {
		t.Fatal(err)
	}
	wantScoped := []TargetOverride{{Unit: 0, Line: 2, Key: "units[0]", Unscoped: true}, {Unit: 1, Line: 5, Key: "units[1]", Was: "oci:own", Unscoped: true}}
	if diff := cmp.Diff(wantScoped, overScoped); diff != "" {
		t.Errorf("overridden scoping (-want +got):\n%s", diff)
	}
	if _, overScoped, _ := ParseConfigTarget("n.yaml", scoped, "r.example/m", true); len(overScoped) != 1 || overScoped[0].Unscoped {
		t.Errorf("with --scoped: overridden = %+v, want only units[1]'s target", overScoped)
	}
	for _, u := range c.Units {
		if u.Target != "r.example/m" {
			t.Errorf("unit %s: target %q, want r.example/m", u.Source, u.Target)
		}
	}
	if _, _, err := ParseConfigTarget("n.yaml", []byte("units:\n- source: x\n"), "r.example/m", false); err == nil || !strings.Contains(err.Error(), "n.yaml:2") {
		t.Errorf("other errors still reported: %v", err)
	}
}

// TestCredentialsStaySecret checks that no fmt verb and no parse error
// shows a password.
func TestCredentialsStaySecret(t *testing.T) {
	const secret = "pa55-s3cret"
	c := &Credentials{Username: "robot", Password: secret}
	u := Unit{Source: "quay.io", Credentials: c}
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		for _, v := range []any{*c, c, u, &u} {
			if s := fmt.Sprintf(f, v); strings.Contains(s, secret) || strings.Contains(s, fmt.Sprintf("%x", secret)) {
				t.Errorf("Sprintf(%q, %T) = %s", f, v, s)
			}
		}
	}
	if s := fmt.Sprintf("%+v", *c); s != "{Username:robot Password:[redacted]}" {
		t.Errorf("%%+v = %s, want the username and [redacted]", s)
	}
	for _, data := range []string{
		"quay.io:\n  images: {fedora: []}\n  credentials: robot:" + secret + "\n",
		"units:\n- source: quay.io\n  target: oci:x\n  images: [{repository: fedora, tags: [\"1\"]}]\n  credentials: \"robot:" + secret + "\"\n",
	} {
		_, err := ParseConfig("sync.yaml", []byte(data))
		if err == nil || !strings.Contains(err.Error(), "credentials: expected a mapping with the keys username and password, got a single value (not shown: it may hold a secret)") {
			t.Errorf("ParseConfig: %v, want an error about credentials", err)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("ParseConfig: the error shows the password: %v", err)
		}
	}
}

// TestParseConfigLimits checks that a long regex and a long list of tags or
// repositories are refused before anything is compiled or expanded, naming
// the file, the line, the key, what was given and the limit.
func TestParseConfigLimits(t *testing.T) {
	const head = "units:\n- source: quay.io/containerdisks\n  target: oci:out\n  images:\n"
	long := strings.Repeat("(a|b)", 1000)
	var tags, repos, skopeoTags strings.Builder
	for i := range maxEntries + 1 {
		fmt.Fprintf(&tags, "    - t%d\n", i)
		fmt.Fprintf(&repos, "  - {repository: r%d, tags: ['1']}\n", i)
		fmt.Fprintf(&skopeoTags, "t%d, ", i)
	}
	tests := []struct{ name, yaml, want string }{
		{"allow", head + "  - repository: fedora\n    allow: ['" + long + "']\n",
			`big.yaml:6: units[0].images[0].allow: invalid regex "(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a|b)(a...": 5000 bytes: expected at most 4 KiB`},
		{"deny", head + "  - repository: fedora\n    allow: ['.*']\n    deny: ['" + long + "']\n",
			`big.yaml:7: units[0].images[0].deny: invalid regex "(a|b)`},
		{"skopeo regex", "quay.io:\n  images-by-tag-regex:\n    fedora: '" + long + "'\n",
			`big.yaml:3: quay.io.images-by-tag-regex.fedora: invalid regex "(a|b)`},
		{"tags", head + "  - repository: fedora\n    tags:\n" + tags.String(),
			"big.yaml:7: units[0].images[0].tags: 10001 tags, 10002 tags and repositories in the configuration so far: expected at most 10000"},
		{"repositories", head + repos.String(),
			"big.yaml:5: units[0].images: 10001 repositories, 10001 tags and repositories in the configuration so far: expected at most 10000"},
		{"skopeo tags", "quay.io:\n  images:\n    fedora: [" + skopeoTags.String() + "]\n",
			"big.yaml:3: quay.io.images.fedora: 10001 tags, 10002 tags and repositories in the configuration so far: expected at most 10000"},
		{"YAML entries", head + "  - repository: fedora\n    tags: [" + strings.Repeat("a,", 200_000) + "]\n",
			"big.yaml: more than 200000 YAML entries (lines, list items, keys), the limit for a mirror configuration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig("big.yaml", []byte(tt.yaml))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("err = %v\nwant it to start with %s", err, tt.want)
			}
			if err != nil && len(err.Error()) > 1000 {
				t.Errorf("an error of %d bytes: want the long value cut", len(err.Error()))
			}
		})
	}
}

// TestParseConfigHostileMemory parses configurations of 4 MiB, the most
// the mirror command reads, built to cost the most: a huge regex, millions
// of one-byte tags, and a list just under the YAML entry limit. Each is
// refused, allocating a small multiple of its size (without the limits: 1
// to 1.8 GB).
func TestParseConfigHostileMemory(t *testing.T) {
	const head = "units:\n- source: quay.io/x\n  target: oci:out\n  images:\n  - repository: fedora\n"
	const size = 4 << 20
	for name, data := range map[string]string{
		"regex":      head + "    allow: ['" + strings.Repeat("(a|b)", (size-200)/5) + "']\n",
		"flow tags":  head + "    tags: [" + strings.Repeat("a,", (size-200)/2) + "a]\n",
		"block tags": head + "    tags:\n" + strings.Repeat("    - a\n", (size-200)/8),
		"under":      head + "    tags: [" + strings.Repeat("a,", 199_900) + "a]\n",
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		_, err := ParseConfig("big.yaml", []byte(data))
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		n := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s (%d KiB): %.1f MiB allocated in %s", name, len(data)>>10, float64(n)/(1<<20), time.Since(start).Round(time.Millisecond))
		if n > 128<<20 {
			t.Errorf("%s: %d MiB allocated, want at most 128 MiB", name, n>>20)
		}
	}
}

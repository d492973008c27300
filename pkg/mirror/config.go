// Package mirror keeps selected containerdisks in sync between registries
// and OCI layouts: configuration files, tag selection and semantic versions.
//
// # Configuration
//
// A configuration is a list of units. A unit copies images from one source
// registry (or a path prefix in it) to one target: a registry (or a prefix
// in it), an OCI layout directory (oci:DIR) or an OCI layout archive
// (oci-archive:FILE.tar). ParseConfig reads the native format below, and
// skopeo sync YAML files as they are (see ParseConfig).
//
//	version: 1                 # optional; 1 is the only version
//	interval: 1h               # or schedule: "0 3 * * *" (cron, as a CronJob reads it); neither = run once
//	defaults:                  # optional: values for units that do not set them
//	  target: registry.local:5000/containerdisks
//	  platforms: [linux/amd64, linux/arm64]
//	units:
//	- source: quay.io/containerdisks
//	  # target: oci:/srv/mirror or oci-archive:/media/usb/cd.tar
//	  platformMode: rewrite    # or sparse
//	  scoped: false            # true: the target name is the full source path
//	  tlsVerify: true          # for the source; also certDir, credentials
//	  credentials: {username: robot, password: secret}
//	  images:
//	  - repository: fedora
//	    tags: ["41", "42"]
//	  - repository: ubuntu
//	    allow: ['2[0-9]\.04']
//	    deny: ['.*-rc.*']
//	    newest: 2
//	  - repository: centos-stream
//	    semver: ">=9"
//
// Unit keys: source and images are required, target is required unless
// defaults sets it; platforms, platformMode and scoped may come from
// defaults; tlsVerify, certDir and credentials belong to the unit's source
// (see Unit.SourceRemote): certDir is a directory as skopeo's cert-dir
// (*.crt certificate authorities, *.cert client certificates with their
// *.key), and credentials log in to the source host in place of the
// credential store. A CronJob refuses credentials in its configuration (see
// CronJobYAML). YAML anchors, aliases and merge keys (<<: *common) work too.
//
// # Tag selection
//
// An image entry selects the union of two sets (see ImageSpec.Select):
//
//   - tags: these tags (or digests), whether or not the source lists them, so
//     that an entry of explicit tags needs no tag listing and a missing tag
//     is reported by the copy;
//   - the filter, when any of allow, deny, semver or newest is set: the
//     source's tags that match an allow regex (every tag when allow is
//     empty), minus those that match a deny regex, then those that read as
//     versions in the semver range, then the newest N of what is left.
//
// Regexes are anchored: allow: ['4[0-9]'] selects "41", not "141" or "41-1".
// A deny regex applies to the filter only, never to explicit tags. Semver
// constraints are those of skopeo sync's images-by-semver, in either format:
// github.com/Masterminds/semver/v3 reads the constraint (NewConstraint) and
// each tag (NewVersion), and a tag it cannot read as a version never passes
// a semver filter. One library for both formats keeps a file's meaning the
// same whichever syntax it is written in; the ranges of npm that read
// differently (a constraint naming a prerelease admits every prerelease in
// its range) are noted at parseConstraint. An entry with none of these keys
// is an error: allow: ['.*'] selects every tag.
//
// # Errors
//
// Every error in a file names the file, the line and the key at fault, as
// "sync.yaml:12: units[0].images[1].allow: invalid regex "[": missing
// closing ]", and ParseConfig reports every error it finds, not only the
// first.
package mirror

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"go.yaml.in/yaml/v3"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/containerdisk/kubectl-containerdisk/pkg/target"

	"github.com/containerdisk/kubectl-containerdisk/pkg/internal/yamlpos"
	"github.com/containerdisk/kubectl-containerdisk/pkg/readlimit"
)

// Format is the syntax a configuration was written in.
type Format string

// Configuration formats.
const (
	// FormatNative is this package's format (see the package doc).
	FormatNative Format = "native"
	// FormatSkopeo is skopeo sync's YAML: registry hosts at the top, no
	// target (it comes from the command line).
	FormatSkopeo Format = "skopeo"
)

// Platform modes: what a unit with platforms writes for a multi-platform
// image.
const (
	// PlatformRewrite writes a new index that lists only the chosen
	// platforms, and records the source index's digest. It is the default.
	PlatformRewrite PlatformMode = "rewrite"
	// PlatformSparse keeps the source index, and its digest, and copies only
	// the chosen platforms' manifests: some registries reject such an index.
	PlatformSparse PlatformMode = "sparse"
)

// ErrNoTarget is wrapped by the error about a unit without a target, such as
// every unit of a skopeo sync file before Config.SetTarget.
var ErrNoTarget = errors.New("no target")

// Config is a mirror configuration: sync units.
type Config struct {
	// Units are the sync units in file order.
	Units []Unit
	// Interval is how often to sync again; zero means once (or Schedule).
	Interval time.Duration
	// Schedule is a cron schedule (five fields, or @daily and the like)
	// for syncing again; it excludes Interval.
	Schedule string
	// Path is the file the configuration was read from, for messages.
	Path string
	// Format is the syntax the file was written in.
	Format Format
	// Warnings are what the file asks for that a sync skips, as skopeo
	// sync skips it: the images-by-semver of a registry whose constraint
	// is invalid. Each names the file, the line and the key.
	Warnings []*ConfigError
}

// Unit copies images from one registry (or prefix) to one target. The yaml
// tags of Unit and ImageSpec are the native format's keys: ParseConfig
// decodes units into them (with pkg/internal/yamlpos), then checks them.
type Unit struct {
	// Source is a registry host[:port][/path prefix].
	Source string `yaml:"source" want:"a registry host[:port][/prefix]"`
	// Target is a registry host[:port][/prefix], oci:DIR or
	// oci-archive:FILE.tar. It is empty in a skopeo sync file until
	// Config.SetTarget.
	Target string `yaml:"target" want:"a registry host[:port][/prefix], oci:DIR or oci-archive:FILE.tar"`
	// Images are the repositories below Source and their tags.
	Images []ImageSpec `yaml:"images" count:"repositories" want:"a list of repositories and the tags to copy"`
	// Platforms are os/arch[/variant] names, such as linux/amd64 (an
	// architecture alone in the file means linux/ARCH); empty means every
	// platform.
	Platforms []string `yaml:"platforms" item:"platforms such as linux/amd64"`
	// PlatformMode is PlatformRewrite (the default; ParseConfig writes it
	// out) or PlatformSparse.
	PlatformMode PlatformMode `yaml:"platformMode" want:"rewrite or sparse"`
	// Scoped names each destination repository after its full source path
	// (host, prefix and repository, as skopeo sync --scoped) instead of the
	// repository's last element.
	Scoped bool `yaml:"scoped"`
	// TLSVerify, when set, says whether to verify the source's TLS
	// certificate.
	TLSVerify *bool `yaml:"tlsVerify"`
	// CertDir is a directory of certificates for the source (*.crt CAs,
	// *.cert and *.key client pairs), as in skopeo.
	CertDir string `yaml:"certDir" want:"a directory"`
	// Credentials log in to the source; nil means the usual credential
	// store.
	Credentials *Credentials `yaml:"credentials,secret" want:"a mapping with the keys username and password"`
	// Line is where the unit starts in the file.
	Line int `yaml:"-"`
}

// Credentials are a username and password for a registry. Printed with
// fmt (%v, %+v, %#v, %s), the password shows as "[redacted]".
type Credentials struct {
	Username string `yaml:"username" want:"a username"`
	Password string `yaml:"password,secret" want:"a password"`
}

// String returns the username and a redacted password.
func (c Credentials) String() string {
	return fmt.Sprintf("{Username:%s Password:%s}", c.Username, c.redacted())
}

// GoString is String, for %#v.
func (c Credentials) GoString() string { return "mirror.Credentials" + c.String() }

// Format prints c as String does, whatever the verb, so that no verb
// (%v, %+v, %#v, %q, %x) shows the password.
func (c Credentials) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, c.GoString())
		return
	}
	io.WriteString(f, c.String())
}

func (c Credentials) redacted() string {
	if c.Password == "" {
		return ""
	}
	return "[redacted]"
}

// SourceRemote returns base with the unit's source keys applied, for
// opening the unit's source registry: tlsVerify: false skips verification,
// certDir adds its certificates (see target.RemoteOptions.CertDir) and
// credentials log in to the source host.
func (u Unit) SourceRemote(base target.RemoteOptions) target.RemoteOptions {
	if u.TLSVerify != nil && !*u.TLSVerify {
		base.Insecure = true
	}
	if u.CertDir != "" {
		base.CertDir = u.CertDir
	}
	if u.Credentials != nil {
		base.Credential = auth.Credential{Username: u.Credentials.Username, Password: u.Credentials.Password}
	}
	return base
}

// ImageSpec selects tags of one repository (see Select and the package doc).
type ImageSpec struct {
	// Repository is the path below the unit's Source, e.g.
	// "containerdisks/fedora".
	Repository string `yaml:"repository" want:"a repository path such as containerdisks/fedora"`
	// Tags are explicit tags, or digests (sha256:…).
	Tags []string `yaml:"tags" item:"tags" count:"tags"`
	// Allow and Deny are regular expressions (RE2 syntax), anchored at both
	// ends.
	Allow []string `yaml:"allow" item:"regular expressions"`
	Deny  []string `yaml:"deny" item:"regular expressions"`
	// Semver is a semver constraint as skopeo sync's images-by-semver
	// takes it, e.g. ">= 1.2.0, < 2", "^41", "~1.2", "1.x", "40 - 42".
	Semver string `yaml:"semver" want:"a semver constraint such as \">= 1.2, < 2\""`
	// Newest keeps the newest N filtered tags; zero keeps all.
	Newest int `yaml:"newest"`
	// Line is where the entry starts in the file.
	Line int `yaml:"-"`
}

// ConfigError is one error in a configuration: its File, Line and Key
// (a path such as "units[0].images[1].allow") say where, Msg what is wrong
// and what was expected, and Err is the underlying error, if any (a regexp
// error, ErrNoTarget).
type ConfigError = yamlpos.Error

// ParseConfig parses a configuration file: the native format (see the
// package doc), or skopeo sync YAML when no top-level key is one of the
// native format's (version, interval, schedule, defaults, units). A skopeo
// sync file's top-level keys are registry hosts, each with images (a map of
// repository to tags; an empty list means every tag), images-by-tag-regex (a
// map of repository to a regex, unanchored as in skopeo),
// images-by-semver (a map of repository to a semver constraint; when one
// is invalid, skopeo logs it and skips the registry's images-by-semver, and
// so does ParseConfig, in Config.Warnings), credentials
// (username, password), tls-verify and cert-dir. Its units have no target:
// skopeo takes the destination and --scoped from the command line, and so
// does Config.SetTarget.
//
// name is the file name for messages. All the errors found are returned,
// joined; each is a *ConfigError.
func ParseConfig(name string, data []byte) (*Config, error) {
	return parseConfig(newParser(name, false), data)
}

// ParseConfigTarget is ParseConfig followed by SetTarget(target, scoped),
// for a target given on the command line: a unit may then leave its target
// out, and every unit gets target, whatever the file says. It returns the
// units whose own target (or defaults' target) was replaced, so that the
// caller can say so.
func ParseConfigTarget(name string, data []byte, target string, scoped bool) (*Config, []TargetOverride, error) {
	c, err := parseConfig(newParser(name, true), data)
	if err != nil {
		return nil, nil, err
	}
	overridden := c.SetTarget(target, scoped)
	return c, overridden, c.Validate()
}

func parseConfig(p *parser, data []byte) (*Config, error) {
	name := p.d.File
	if err := readlimit.CheckYAML(name, data, readlimit.YAMLEntries, "a mirror configuration"); err != nil {
		return nil, err
	}
	root, err := p.d.Parse(data)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, p.emptyError(1)
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, p.emptyError(root.Line)
	}
	if root.Kind != yaml.MappingNode {
		return nil, &ConfigError{File: name, Line: root.Line, Msg: fmt.Sprintf("expected a mapping with the keys version, interval, schedule, defaults and units, or registry hosts (skopeo sync), got %s", yamlpos.Describe(root))}
	}
	var c *Config
	if slices.ContainsFunc(yamlpos.Keys(root), func(k string) bool { return slices.Contains(nativeKeys, k) }) {
		c = p.native(root)
	} else {
		c = p.skopeo(root)
	}
	if err := p.d.Err(); err != nil {
		return nil, err
	}
	c.Warnings = p.warns
	return c, nil
}

var nativeKeys = []string{"version", "interval", "schedule", "defaults", "units", "sync"}

// TargetOverride is a unit whose target SetTarget replaced.
type TargetOverride struct {
	// Unit is the unit's index; Line where it starts in the file.
	Unit, Line int
	// Key names the unit in messages: "units[0]".
	Key string
	// Was is the target the file gave it; empty when only the naming
	// changed.
	Was string
	// Unscoped says the unit said scoped: true and SetTarget, not scoped,
	// names its images by their last element instead.
	Unscoped bool
}

// SetTarget sets every unit's target and naming, as the destination
// argument and --scoped of skopeo sync do: it overrides what a native file
// says, for every unit. It returns the units whose target it replaced by
// another, or whose scoped: true it turned off. Validate checks the target.
func (c *Config) SetTarget(target string, scoped bool) []TargetOverride {
	var out []TargetOverride
	for i := range c.Units {
		u := &c.Units[i]
		o := TargetOverride{Unit: i, Line: u.Line, Key: fmt.Sprintf("units[%d]", i), Unscoped: u.Scoped && !scoped}
		if u.Target != target {
			o.Was = u.Target
		}
		if o.Was != "" || o.Unscoped {
			out = append(out, o)
		}
		u.Target = target
		u.Scoped = scoped
	}
	return out
}

// Validate checks a configuration built or changed in code, such as after
// SetTarget: each error names the unit (and the file and line it came from,
// if any). It checks what ParseConfig checks, and that every unit has a
// target.
func (c *Config) Validate() error {
	var errs []error
	add := func(line int, key, msg string, err error) {
		errs = append(errs, &ConfigError{File: c.Path, Line: line, Key: key, Msg: msg, Err: err})
	}
	if len(c.Units) == 0 {
		add(0, "units", "no units: expected at least one", nil)
	}
	if c.Interval < 0 {
		add(0, "interval", fmt.Sprintf("%s is negative: expected a positive duration", c.Interval), nil)
	}
	if c.Interval != 0 && c.Schedule != "" {
		add(0, "schedule", "interval is set too: expected one of them", nil)
	}
	if c.Schedule != "" {
		if _, err := ParseCron(c.Schedule); err != nil {
			add(0, "schedule", err.Error(), err)
		}
	}
	for i, u := range c.Units {
		key := fmt.Sprintf("units[%d]", i)
		if c.Format == FormatSkopeo {
			key = u.Source
		}
		if err := checkRegistryPrefix(u.Source); err != nil {
			add(u.Line, key+".source", err.Error(), nil)
		}
		if u.Target == "" {
			msg := "missing: expected " + targetForms
			if c.Format == FormatSkopeo {
				msg = "no target: a skopeo sync file names none, the destination is given separately"
			}
			add(u.Line, key+".target", msg, ErrNoTarget)
		} else if err := checkTarget(u.Target); err != nil {
			add(u.Line, key+".target", err.Error(), nil)
		}
		for _, pl := range u.Platforms {
			if _, err := NormalizePlatform(pl); err != nil {
				add(u.Line, key+".platforms", err.Error(), nil)
			}
		}
		if err := checkPlatformMode(u.PlatformMode, true); err != nil {
			add(u.Line, key+".platformMode", err.Error(), nil)
		}
		if u.Credentials != nil && u.Credentials.Username == "" {
			add(u.Line, key+".credentials.username", "missing: expected the username for the source", nil)
		}
		if len(u.Images) == 0 {
			add(u.Line, key+".images", "no images: expected at least one repository", nil)
		}
		for j, s := range u.Images {
			skey := fmt.Sprintf("%s.images[%d]", key, j)
			if err := checkRepository(s.Repository); err != nil {
				add(s.Line, skey+".repository", err.Error(), nil)
			}
			for _, t := range s.Tags {
				if err := checkTag(t); err != nil {
					add(s.Line, skey+".tags", err.Error(), nil)
				}
			}
			if err := s.check(); err != nil {
				var se *specError
				if errors.As(err, &se) {
					if se.key != "" {
						skey += "." + se.key
					}
					add(s.Line, skey, se.msg, se.err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// SourceRepository returns the source repository of an image of the unit,
// "host[/prefix]/repository".
func (u Unit) SourceRepository(repository string) string {
	return u.Source + "/" + repository
}

// DestinationName returns the name an image of the unit gets below the
// target, as skopeo sync names it: the repository's last element
// ("containerdisks/fedora" gives "fedora"), or with Scoped the full source
// path ("quay.io/containerdisks/fedora"). A repository name cannot hold a
// colon, so the port of a scoped source host becomes "_PORT"
// ("localhost:5000/app" gives "localhost_5000/app").
func (u Unit) DestinationName(repository string) string {
	if u.Scoped {
		return strings.ReplaceAll(u.SourceRepository(repository), ":", "_")
	}
	return repository[strings.LastIndexByte(repository, '/')+1:]
}

// parser checks one file as it is decoded into typed structs.
type parser struct {
	d *yamlpos.Decoder
	// warns are what a sync skips (see Config.Warnings).
	warns []*ConfigError
	// targetGiven says the target comes from elsewhere (the command
	// line), so a unit may leave it out.
	targetGiven bool
	// entries counts the tags and repositories read, against
	// maxEntries.
	entries int
}

func newParser(file string, targetGiven bool) *parser {
	p := &parser{d: &yamlpos.Decoder{File: file}, targetGiven: targetGiven}
	p.d.Count = p.addEntries
	return p
}

// maxEntries is how many tags and repositories one configuration may list,
// counted before any is checked or expanded into copies; maxRegex bounds
// the length of one allow, deny or images-by-tag-regex regex, checked
// before it is compiled. Real configurations list tens of either, and a
// tag pattern is a line. The decoder bounds what is read at all,
// aliases included (yamlpos.DefaultMaxNodes).
const (
	maxEntries = 10_000
	maxRegex   = 4 << 10
)

// addEntries counts n tags or repositories listed at key, as the decoder
// meets them (see yamlpos.Decoder.Count), and reports
// whether the configuration is still within maxEntries; it reports the
// first time it is not.
func (p *parser) addEntries(key, what string, n int) bool {
	if p.entries > maxEntries {
		return false
	}
	p.entries += n
	if p.entries > maxEntries {
		p.failf(key, key, "%d %s, %d tags and repositories in the configuration so far: expected at most %d tags and repositories together in one configuration (split it into several files)", n, what, p.entries, maxEntries)
		return false
	}
	return true
}

// fail reports msg about key at the line of the value at path.
func (p *parser) fail(path, key, msg string, err error) {
	p.d.Report(p.d.Line(path), key, msg, err)
}

func (p *parser) failf(path, key, format string, args ...any) {
	p.fail(path, key, fmt.Sprintf(format, args...), nil)
}

func (p *parser) emptyError(line int) error {
	return &ConfigError{File: p.d.File, Line: line, Msg: "the file is empty: expected version, interval, schedule, defaults and units (native format) or registry hosts (skopeo sync format)"}
}

// nativeFile is the native format's top level; units are decoded into
// Unit and ImageSpec, whose yaml tags are the format's keys.
type nativeFile struct {
	Version  string          `yaml:"version" want:"1"`
	Interval string          `yaml:"interval" want:"a duration such as 30m, 1h or 24h"`
	Schedule string          `yaml:"schedule" want:"a cron schedule such as \"0 3 * * *\""`
	Defaults *nativeDefaults `yaml:"defaults"`
	Units    []Unit          `yaml:"units" want:"a list of units, each with a source, a target and images"`
	// Sync is regsync's list, said to be unknown with a hint.
	Sync *yaml.Node `yaml:"sync,hidden"`
}

// nativeDefaults are the unit keys defaults may set.
type nativeDefaults struct {
	Target       string       `yaml:"target" want:"a registry host[:port][/prefix], oci:DIR or oci-archive:FILE.tar"`
	Platforms    []string     `yaml:"platforms" item:"platforms such as linux/amd64"`
	PlatformMode PlatformMode `yaml:"platformMode" want:"rewrite or sparse"`
	Scoped       bool         `yaml:"scoped"`
}

func (p *parser) native(root *yaml.Node) *Config {
	c := &Config{Path: p.d.File, Format: FormatNative}
	var f nativeFile
	if p.d.Decode(root, "", &f); p.d.Over() {
		return c
	}
	d := p.d
	if d.OK("version") && f.Version != "1" {
		p.failf("version", "version", "unsupported version %q: expected 1", f.Version)
	}
	if d.OK("interval") {
		if sched, err := ParseInterval(f.Interval); err != nil {
			p.fail("interval", "interval", err.Error(), err)
		} else {
			c.Interval = time.Duration(sched.(interval))
		}
	}
	if d.OK("schedule") {
		if _, err := ParseCron(f.Schedule); err != nil {
			p.fail("schedule", "schedule", err.Error(), err)
		}
		c.Schedule = f.Schedule
	}
	if d.Has("interval") && c.Schedule != "" {
		p.failf("interval", "interval", "schedule is set too: expected one of them")
	}
	if f.Sync != nil {
		d.Report(d.KeyLine("sync"), "sync", "unknown key: regsync's sync list is not read; write units, each with a source, a target and images", nil)
	}
	defaults := Unit{}
	if f.Defaults != nil {
		defaults = Unit{Target: f.Defaults.Target, Platforms: f.Defaults.Platforms, PlatformMode: f.Defaults.PlatformMode, Scoped: f.Defaults.Scoped}
		p.unitFields(&defaults, "defaults")
	}
	if !d.Has("units") {
		p.failf("", "units", "missing: expected a list of units, each with a source, a target and images")
		return c
	}
	if !d.OK("units") {
		return c
	}
	if len(f.Units) == 0 {
		p.failf("units", "units", "the list is empty: expected at least one unit")
	}
	for i := range f.Units {
		key := yamlpos.Index("units", i)
		if d.OK(key) {
			p.unit(&f.Units[i], key, &defaults)
		}
	}
	c.Units = f.Units
	return c
}

// unitFields checks the keys a unit shares with defaults, and those of its
// source, as decoded at key.
func (p *parser) unitFields(u *Unit, key string) {
	d := p.d
	if k := yamlpos.Join(key, "source"); d.OK(k) {
		if err := checkRegistryPrefix(u.Source); err != nil {
			p.fail(k, k, err.Error(), nil)
		}
	}
	if k := yamlpos.Join(key, "target"); d.OK(k) {
		if err := checkTarget(u.Target); err != nil {
			p.fail(k, k, err.Error(), nil)
		}
	}
	if k := yamlpos.Join(key, "platformMode"); d.OK(k) {
		if err := checkPlatformMode(u.PlatformMode, false); err != nil {
			p.fail(k, k, err.Error(), nil)
		}
	}
	k := yamlpos.Join(key, "platforms")
	platforms := u.Platforms
	u.Platforms = nil
	for i, s := range platforms {
		if !d.OK(yamlpos.Index(k, i)) {
			continue
		}
		pl, err := NormalizePlatform(s)
		if err != nil {
			p.fail(yamlpos.Index(k, i), k, err.Error(), nil)
			continue
		}
		if !slices.Contains(u.Platforms, pl) {
			u.Platforms = append(u.Platforms, pl)
		}
	}
	p.credentials(u.Credentials, yamlpos.Join(key, "credentials"))
}

// unit checks a native unit decoded at key, fills the keys it left unset
// from the defaults d, and reports the keys a unit needs and has from
// nowhere. The target may also come from the command line
// (p.targetGiven), so its absence is only an error when neither gave one.
func (p *parser) unit(u *Unit, key string, d *Unit) {
	has := func(k string) bool { return p.d.Has(yamlpos.Join(key, k)) }
	u.Line = p.d.Line(key)
	p.unitFields(u, key)
	if !has("target") {
		u.Target = d.Target
	}
	if !has("platforms") {
		u.Platforms = slices.Clone(d.Platforms)
	}
	if !has("platformMode") {
		u.PlatformMode = d.PlatformMode
	}
	if !has("scoped") {
		u.Scoped = d.Scoped
	}
	if u.PlatformMode == "" {
		u.PlatformMode = PlatformRewrite
	}
	if !has("source") {
		p.failf(key, yamlpos.Join(key, "source"), "missing: expected a registry host[:port][/prefix], such as quay.io/containerdisks")
	}
	if u.Target == "" && !has("target") && !p.d.Has("defaults.target") && !p.targetGiven {
		p.fail(key, yamlpos.Join(key, "target"), "missing: expected "+targetForms+" (here or in defaults)", ErrNoTarget)
	}
	k := yamlpos.Join(key, "images")
	switch {
	case !has("images"):
		p.failf(key, k, "missing: expected a list of repositories and the tags to copy")
		return
	case !p.d.OK(k):
		return
	case len(u.Images) == 0:
		p.failf(k, k, "the list is empty: expected at least one repository")
	}
	for i := range u.Images {
		if sk := yamlpos.Index(k, i); p.d.OK(sk) {
			p.image(&u.Images[i], sk)
		}
	}
}

// credentials checks the credentials decoded at key, if any.
func (p *parser) credentials(c *Credentials, key string) {
	if c != nil && p.d.OK(key) && c.Username == "" {
		p.failf(key, yamlpos.Join(key, "username"), "missing: expected the username for the source")
	}
}

// image checks a native image entry decoded at key.
func (p *parser) image(s *ImageSpec, key string) {
	d := p.d
	s.Line = d.Line(key)
	k := func(name string) string { return yamlpos.Join(key, name) }
	if d.OK(k("repository")) {
		if err := checkRepository(s.Repository); err != nil {
			p.fail(k("repository"), k("repository"), err.Error(), nil)
		}
	}
	if d.OK(k("tags")) {
		p.tags(k("tags"), s.Tags)
	}
	for _, sel := range []struct {
		name  string
		exprs []string
	}{{"allow", s.Allow}, {"deny", s.Deny}} {
		for j, re := range sel.exprs {
			if at := yamlpos.Index(k(sel.name), j); d.OK(at) {
				if _, err := compileTagRegex(re); err != nil {
					p.fail(at, k(sel.name), err.Error(), errors.Unwrap(err))
				}
			}
		}
	}
	if d.OK(k("semver")) {
		if _, err := parseConstraint(s.Semver); err != nil {
			p.fail(k("semver"), k("semver"), err.Error(), errors.Unwrap(err))
		}
	}
	if d.OK(k("newest")) && s.Newest < 0 {
		p.failf(k("newest"), k("newest"), "%d is negative: expected how many of the newest tags to keep (0 keeps all)", s.Newest)
	}
	if !d.Has(k("repository")) {
		p.failf(key, k("repository"), "missing: expected a repository path below the source, such as fedora")
	}
	if len(s.Tags) == 0 && !s.NeedsTagList() && p.entries <= maxEntries {
		p.failf(key, key, "no tags selected: expected tags, allow, deny, semver or newest (allow: ['.*'] selects every tag)")
	}
}

// tags checks a list of tags decoded at key.
func (p *parser) tags(key string, tags []string) {
	for i, t := range tags {
		if at := yamlpos.Index(key, i); p.d.OK(at) {
			if err := checkTag(t); err != nil {
				p.fail(at, key, err.Error(), nil)
			}
		}
	}
}

const targetForms = "a registry host[:port][/prefix], oci:DIR or oci-archive:FILE.tar"

// The checks below read sources, targets, repositories and tags with
// pkg/target, the one grammar every command reads references with.

// checkRegistryPrefix checks a source or registry target:
// host[:port][/prefix].
func checkRegistryPrefix(s string) error {
	if s == "" {
		return errors.New("missing: expected a registry host[:port][/prefix], such as quay.io/containerdisks")
	}
	bad := func(why string) error {
		return fmt.Errorf("%q is not a registry host[:port][/prefix]: %s", s, why)
	}
	ref, err := target.ParsePrefix(s)
	if err == nil {
		if ref.Kind != target.KindRegistry {
			return bad("it is an OCI layout or archive; expected a registry here")
		}
		return nil
	}
	// The part at fault, said as precisely as can be.
	if host, prefix, hasPrefix := strings.Cut(s, "/"); !strings.Contains(s, "://") {
		if _, herr := target.ParsePrefix(host); herr != nil {
			return bad(reason(herr))
		}
		if hasPrefix {
			if perr := target.ValidateRepository(prefix); perr != nil {
				return bad("the path " + perr.Error())
			}
		}
	}
	return bad(reason(err))
}

// reason is what a reference error says is wrong, without the input it
// quotes and the examples it gives.
func reason(err error) string {
	var ie *target.InvalidReferenceError
	if errors.As(err, &ie) {
		return ie.Redacted().Reason
	}
	return err.Error()
}

// checkRepository checks a repository path: lowercase elements separated
// by "/".
func checkRepository(r string) error {
	return target.ValidateRepository(r)
}

// checkTarget checks a unit's target: a registry prefix, oci:DIR or
// oci-archive:FILE.
func checkTarget(s string) error {
	ref, err := target.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("%q: %s; expected %s", s, reason(err), targetForms)
	}
	if ref.Kind == target.KindRegistry {
		return checkRegistryPrefix(s)
	}
	return nil
}

func checkTag(t string) error {
	if target.ValidateTag(t) == nil {
		return nil
	}
	if _, err := digest.Parse(t); err == nil {
		return nil
	}
	return fmt.Errorf("%q is not a tag (up to 128 letters, digits, _ . and -, not starting with . or -) or a digest (sha256:…)", t)
}

func checkPlatformMode(m PlatformMode, emptyOK bool) error {
	if m == PlatformRewrite || m == PlatformSparse || (m == "" && emptyOK) {
		return nil
	}
	return fmt.Errorf("unknown platform mode %q: expected rewrite (a new index of the chosen platforms) or sparse (the source index, only the chosen platforms copied)", m)
}

// compileTagRegex compiles an allow or deny regex, anchored. Its error
// quotes the regex as written.
func compileTagRegex(expr string) (*regexp.Regexp, error) {
	if len(expr) > maxRegex {
		return nil, &regexError{expr: expr, msg: fmt.Sprintf("%d bytes: expected at most %s (a tag pattern such as '4[0-9]')", len(expr), readlimit.Size(maxRegex))}
	}
	if _, err := regexp.Compile(expr); err != nil {
		msg := err.Error()
		var se *syntax.Error
		if errors.As(err, &se) {
			msg = se.Code.String()
			if se.Expr != expr {
				msg += ": " + strconv.Quote(se.Expr)
			}
		}
		return nil, &regexError{expr: expr, msg: msg, err: err}
	}
	return regexp.Compile("^(?:" + expr + ")$")
}

// regexError is an invalid allow or deny regex.
type regexError struct {
	expr, msg string
	err       error
}

func (e *regexError) Error() string {
	expr := e.expr
	if len(expr) > 80 {
		expr = expr[:77] + "..."
	}
	return fmt.Sprintf("invalid regex %q: %s", expr, e.msg)
}
func (e *regexError) Unwrap() error { return e.err }

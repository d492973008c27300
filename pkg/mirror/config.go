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
	"bytes"
	"cmp"
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

// Unit copies images from one registry (or prefix) to one target.
type Unit struct {
	// Source is a registry host[:port][/path prefix].
	Source string
	// Target is a registry host[:port][/prefix], oci:DIR or
	// oci-archive:FILE.tar. It is empty in a skopeo sync file until
	// Config.SetTarget.
	Target string
	// Images are the repositories below Source and their tags.
	Images []ImageSpec
	// Platforms are os/arch[/variant] names, such as linux/amd64 (an
	// architecture alone in the file means linux/ARCH); empty means every
	// platform.
	Platforms []string
	// PlatformMode is PlatformRewrite (the default; ParseConfig writes it
	// out) or PlatformSparse.
	PlatformMode PlatformMode
	// Scoped names each destination repository after its full source path
	// (host, prefix and repository, as skopeo sync --scoped) instead of the
	// repository's last element.
	Scoped bool
	// TLSVerify, when set, says whether to verify the source's TLS
	// certificate.
	TLSVerify *bool
	// CertDir is a directory of certificates for the source (*.crt CAs,
	// *.cert and *.key client pairs), as in skopeo.
	CertDir string
	// Credentials log in to the source; nil means the usual credential
	// store.
	Credentials *Credentials
	// Line is where the unit starts in the file.
	Line int
}

// Credentials are a username and password for a registry. Printed with
// fmt (%v, %+v, %#v, %s), the password shows as "[redacted]".
type Credentials struct {
	Username, Password string
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
	Repository string
	// Tags are explicit tags, or digests (sha256:…).
	Tags []string
	// Allow and Deny are regular expressions (RE2 syntax), anchored at both
	// ends.
	Allow, Deny []string
	// Semver is a semver constraint as skopeo sync's images-by-semver
	// takes it, e.g. ">= 1.2.0, < 2", "^41", "~1.2", "1.x", "40 - 42".
	Semver string
	// Newest keeps the newest N filtered tags; zero keeps all.
	Newest int
	// Line is where the entry starts in the file.
	Line int
}

// ConfigError is one error in a configuration: where it is and what is
// wrong.
type ConfigError struct {
	// File, Line and Key say where: Key is a path such as
	// "units[0].images[1].allow".
	File string
	Line int
	Key  string
	// Msg says what is wrong and what was expected.
	Msg string
	// Err is the underlying error, if any (a regexp error, ErrNoTarget).
	Err error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

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
	return parseConfig(&parser{file: name}, data)
}

// ParseConfigTarget is ParseConfig followed by SetTarget(target, scoped),
// for a target given on the command line: a unit may then leave its target
// out, and every unit gets target, whatever the file says. It returns the
// units whose own target (or defaults' target) was replaced, so that the
// caller can say so.
func ParseConfigTarget(name string, data []byte, target string, scoped bool) (*Config, []TargetOverride, error) {
	c, err := parseConfig(&parser{file: name, targetGiven: true}, data)
	if err != nil {
		return nil, nil, err
	}
	overridden := c.SetTarget(target, scoped)
	return c, overridden, c.Validate()
}

func parseConfig(p *parser, data []byte) (*Config, error) {
	name := p.file
	if err := readlimit.CheckYAML(name, data, readlimit.YAMLEntries, "a mirror configuration"); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, p.emptyError(1)
		}
		return nil, p.yamlError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &ConfigError{File: name, Line: extra.Line, Msg: "a second YAML document: expected one configuration per file"}
	case !errors.Is(err, io.EOF):
		return nil, p.yamlError(err)
	}
	if len(doc.Content) == 0 {
		return nil, p.emptyError(1)
	}
	root := resolve(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, p.emptyError(root.Line)
	}
	if root.Kind != yaml.MappingNode {
		return nil, &ConfigError{File: name, Line: root.Line, Msg: fmt.Sprintf("expected a mapping with the keys version, interval, schedule, defaults and units, or registry hosts (skopeo sync), got %s", describe(root))}
	}
	pairs := p.pairs(root, "")
	native := slices.ContainsFunc(pairs, func(kv pair) bool { return slices.Contains(nativeKeys, kv.key.Value) })
	var c *Config
	if native {
		c = p.native(root, pairs)
	} else {
		c = p.skopeo(pairs)
	}
	if p.nodes > maxNodes {
		return nil, p.errs[0]
	}
	if len(p.errs) > 0 {
		return nil, p.err()
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
	// Was is the target the file gave it.
	Was string
}

// SetTarget sets every unit's target and naming, as the destination
// argument and --scoped of skopeo sync do: it overrides what a native file
// says, for every unit. It returns the units whose target it replaced by
// another. Validate checks the target.
func (c *Config) SetTarget(target string, scoped bool) []TargetOverride {
	var out []TargetOverride
	for i := range c.Units {
		u := &c.Units[i]
		if u.Target != "" && u.Target != target {
			out = append(out, TargetOverride{Unit: i, Line: u.Line, Key: fmt.Sprintf("units[%d]", i), Was: u.Target})
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

// pair is a key and its value in a YAML mapping.
type pair struct{ key, val *yaml.Node }

// parser collects the errors of one file.
type parser struct {
	file string
	errs []*ConfigError
	// warns are what a sync skips (see Config.Warnings).
	warns []*ConfigError
	// targetGiven says the target comes from elsewhere (the command
	// line), so a unit may leave it out.
	targetGiven bool
	// nodes counts the mapping entries and list items read, aliases
	// included, so that a file of aliases of aliases cannot make the
	// parser read billions.
	nodes int
	// entries counts the tags and repositories read, against
	// maxEntries.
	entries int
}

// maxEntries is how many tags and repositories one configuration may list,
// counted before any is expanded into copies; maxRegex bounds the length of
// one allow, deny or images-by-tag-regex regex, checked before it is
// compiled. Real configurations list tens of either, and a tag pattern is a
// line.
const (
	maxEntries = 10_000
	maxRegex   = 4 << 10
)

// addEntries counts n tags or repositories listed at key and reports
// whether the configuration is still within maxEntries; it reports the
// first time it is not.
func (p *parser) addEntries(at *yaml.Node, key, what string, n int) bool {
	if p.entries > maxEntries {
		return false
	}
	p.entries += n
	if p.entries > maxEntries {
		p.failf(at, key, "%d %s, %d tags and repositories in the configuration so far: expected at most %d tags and repositories together in one configuration (split it into several files)", n, what, p.entries, maxEntries)
		return false
	}
	return true
}

// maxNodes is how many mapping entries and list items a configuration may
// have, counting each use of an alias again.
const maxNodes = 1_000_000

// count adds n nodes read and reports whether the parser may go on; it
// reports the first time it may not.
func (p *parser) count(at *yaml.Node, n int) bool {
	if p.nodes > maxNodes {
		return false
	}
	p.nodes += n
	if p.nodes > maxNodes {
		// What is read after this is incomplete: this error replaces
		// the others.
		p.errs = []*ConfigError{{File: p.file, Line: at.Line, Msg: fmt.Sprintf("the configuration has more than %d entries (aliases counted at each use): expected fewer", maxNodes)}}
		return false
	}
	return true
}

// err joins the errors found, in line order.
func (p *parser) err() error {
	slices.SortStableFunc(p.errs, func(a, b *ConfigError) int { return cmp.Compare(a.Line, b.Line) })
	errs := make([]error, len(p.errs))
	for i, e := range p.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

func (p *parser) fail(n *yaml.Node, key, msg string, err error) {
	p.errs = append(p.errs, &ConfigError{File: p.file, Line: n.Line, Key: key, Msg: msg, Err: err})
}

func (p *parser) failf(n *yaml.Node, key, format string, args ...any) {
	p.fail(n, key, fmt.Sprintf(format, args...), nil)
}

func (p *parser) emptyError(line int) error {
	return &ConfigError{File: p.file, Line: line, Msg: "the file is empty: expected version, interval, schedule, defaults and units (native format) or registry hosts (skopeo sync format)"}
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlError turns a YAML syntax error into a ConfigError with its line.
func (p *parser) yamlError(err error) error {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return &ConfigError{File: p.file, Line: line, Msg: "invalid YAML: " + msg, Err: err}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// pairs returns the keys and values of mapping n, with merge keys (<<)
// expanded: keys written in n win over merged ones, and earlier merged
// mappings over later ones. It reports duplicate and non-string keys.
func (p *parser) pairs(n *yaml.Node, path string) []pair {
	var out []pair
	seen := map[string]int{}
	visited := map[*yaml.Node]bool{}
	var walk func(m *yaml.Node, explicit bool)
	walk = func(m *yaml.Node, explicit bool) {
		if visited[m] || !p.count(m, len(m.Content)/2) {
			return
		}
		visited[m] = true
		var merges []*yaml.Node
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := resolve(m.Content[i]), m.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				merges = append(merges, v)
				continue
			}
			if k.Kind != yaml.ScalarNode {
				p.failf(k, path, "a key is %s: expected a string", describe(k))
				continue
			}
			if line, dup := seen[k.Value]; dup {
				if explicit {
					p.failf(k, join(path, k.Value), "duplicate key: it is set on line %d too", line)
				}
				continue
			}
			seen[k.Value] = k.Line
			out = append(out, pair{k, v})
		}
		for _, v := range merges {
			v = resolve(v)
			var maps []*yaml.Node
			switch v.Kind {
			case yaml.MappingNode:
				maps = []*yaml.Node{v}
			case yaml.SequenceNode:
				for _, e := range v.Content {
					maps = append(maps, resolve(e))
				}
			default:
				maps = []*yaml.Node{v}
			}
			for _, mm := range maps {
				if mm.Kind != yaml.MappingNode {
					p.failf(mm, join(path, "<<"), "merges %s: expected a mapping or a list of mappings", describe(mm))
					continue
				}
				walk(mm, false)
			}
		}
	}
	walk(n, true)
	return out
}

// describe names the kind of a YAML node for messages.
func describe(n *yaml.Node) string {
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!bool":
			return "the boolean " + n.Value
		case "!!int", "!!float":
			return "the number " + n.Value
		}
		return strconv.Quote(n.Value)
	}
	return "a YAML document"
}

// mapping returns the pairs of mapping n, or reports that n is not one.
func (p *parser) mapping(n *yaml.Node, key, want string) ([]pair, bool) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.failf(n, key, "expected %s, got %s", want, describe(n))
		return nil, false
	}
	return p.pairs(n, key), true
}

// sequence returns the items of list n, or reports that n is not one.
func (p *parser) sequence(n *yaml.Node, key, want string) ([]*yaml.Node, bool) {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		p.failf(n, key, "expected %s, got %s", want, describe(n))
		return nil, false
	}
	if !p.count(n, len(n.Content)) {
		return nil, false
	}
	items := make([]*yaml.Node, len(n.Content))
	for i, e := range n.Content {
		items[i] = resolve(e)
	}
	return items, true
}

// str returns the text of scalar n; numbers keep their spelling ("41.10").
func (p *parser) str(n *yaml.Node, key, want string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		p.failf(n, key, "expected %s, got %s", want, describe(n))
		return "", false
	}
	return n.Value, true
}

// strs returns the items of a list of scalars, each with its node.
func (p *parser) strs(n *yaml.Node, key, want string) ([]string, []*yaml.Node, bool) {
	items, ok := p.sequence(n, key, "a list of "+want)
	if !ok {
		return nil, nil, false
	}
	var vals []string
	var nodes []*yaml.Node
	good := true
	for _, e := range items {
		s, ok := p.str(e, key, want)
		if !ok {
			good = false
			continue
		}
		vals = append(vals, s)
		nodes = append(nodes, e)
	}
	return vals, nodes, good
}

func (p *parser) boolean(n *yaml.Node, key string) (bool, bool) {
	n = resolve(n)
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		p.failf(n, key, "expected true or false, got %s", describe(n))
		return false, false
	}
	return b, true
}

func (p *parser) integer(n *yaml.Node, key string) (int, bool) {
	n = resolve(n)
	var i int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
		p.failf(n, key, "expected a whole number, got %s", describe(n))
		return 0, false
	}
	return i, true
}

// unitKeys are the keys of a native unit, in the order messages list them.
var unitKeys = []string{"source", "target", "images", "platforms", "platformMode", "scoped", "tlsVerify", "certDir", "credentials"}

// defaultKeys are the unit keys defaults may set.
var defaultKeys = []string{"target", "platforms", "platformMode", "scoped"}

func (p *parser) native(root *yaml.Node, pairs []pair) *Config {
	c := &Config{Path: p.file, Format: FormatNative}
	var defaults, units *yaml.Node
	var intervalNode *yaml.Node
	for _, kv := range pairs {
		k, v := kv.key, kv.val
		switch k.Value {
		case "version":
			if s, ok := p.str(v, "version", "1"); ok && s != "1" {
				p.failf(v, "version", "unsupported version %q: expected 1", s)
			}
		case "interval":
			intervalNode = v
			s, ok := p.str(v, "interval", "a duration such as 30m, 1h or 24h")
			if !ok {
				break
			}
			if sched, err := ParseInterval(s); err != nil {
				p.fail(v, "interval", err.Error(), err)
			} else {
				c.Interval = time.Duration(sched.(interval))
			}
		case "schedule":
			s, ok := p.str(v, "schedule", `a cron schedule such as "0 3 * * *"`)
			if !ok {
				break
			}
			if _, err := ParseCron(s); err != nil {
				p.fail(v, "schedule", err.Error(), err)
			}
			c.Schedule = s
		case "defaults":
			defaults = v
		case "units":
			units = v
		case "sync":
			p.failf(k, "sync", "unknown key: regsync's sync list is not read; write units, each with a source, a target and images")
		default:
			p.failf(k, k.Value, "unknown key: expected version, interval, schedule, defaults or units")
		}
	}
	if intervalNode != nil && c.Schedule != "" {
		p.failf(intervalNode, "interval", "schedule is set too: expected one of them")
	}
	var d unitDraft
	if defaults != nil {
		d = p.unit(defaults, "defaults", defaultKeys, nil)
	}
	if units == nil {
		p.failf(root, "units", "missing: expected a list of units, each with a source, a target and images")
		return c
	}
	items, ok := p.sequence(units, "units", "a list of units, each with a source, a target and images")
	if !ok {
		return c
	}
	if len(items) == 0 {
		p.failf(units, "units", "the list is empty: expected at least one unit")
	}
	for i, n := range items {
		u := p.unit(n, fmt.Sprintf("units[%d]", i), unitKeys, &d)
		c.Units = append(c.Units, u.Unit)
	}
	return c
}

// unitDraft is a unit being read, with the keys it set.
type unitDraft struct {
	Unit
	set map[string]bool
}

// unit reads a native unit (or defaults, with keys limited to
// defaultKeys), filling unset keys from defaults d.
func (p *parser) unit(n *yaml.Node, key string, keys []string, d *unitDraft) unitDraft {
	u := unitDraft{Unit: Unit{Line: n.Line}, set: map[string]bool{}}
	fields, ok := p.mapping(n, key, "a mapping with the keys "+strings.Join(keys, ", "))
	if !ok {
		return u
	}
	var images *yaml.Node
	for _, kv := range fields {
		k, v := kv.key, kv.val
		fk := join(key, k.Value)
		if !slices.Contains(keys, k.Value) {
			p.failf(k, fk, "unknown key: expected %s", orList(keys))
			continue
		}
		u.set[k.Value] = true
		if k.Value == "images" {
			// Read last, after the missing keys are reported, so the
			// messages keep the order a reader meets them in.
			images = v
			continue
		}
		p.unitField(&u.Unit, k.Value, v, fk)
	}
	if d != nil {
		p.inherit(&u, d, n, key, images != nil)
	}
	if images != nil {
		u.Images = p.images(images, join(key, "images"))
	}
	return u
}

// unitField reads the value v of one known unit key other than images
// into u, reporting a value of the wrong form under fk.
func (p *parser) unitField(u *Unit, name string, v *yaml.Node, fk string) {
	switch name {
	case "source":
		if s, ok := p.str(v, fk, "a registry host[:port][/prefix]"); ok {
			u.Source = s
			if err := checkRegistryPrefix(s); err != nil {
				p.fail(v, fk, err.Error(), nil)
			}
		}
	case "target":
		if s, ok := p.str(v, fk, targetForms); ok {
			u.Target = s
			if err := checkTarget(s); err != nil {
				p.fail(v, fk, err.Error(), nil)
			}
		}
	case "platforms":
		u.Platforms = p.platforms(v, fk)
	case "platformMode":
		if s, ok := p.str(v, fk, "rewrite or sparse"); ok {
			if err := checkPlatformMode(PlatformMode(s), false); err != nil {
				p.fail(v, fk, err.Error(), nil)
			}
			u.PlatformMode = PlatformMode(s)
		}
	case "scoped":
		u.Scoped, _ = p.boolean(v, fk)
	case "tlsVerify":
		if b, ok := p.boolean(v, fk); ok {
			u.TLSVerify = &b
		}
	case "certDir":
		u.CertDir, _ = p.str(v, fk, "a directory")
	case "credentials":
		u.Credentials = p.credentials(v, fk)
	}
}

// inherit fills the keys unit u (node n, at key) left unset from the
// defaults d, then reports the keys a unit needs and has from nowhere.
// The target may also come from the command line (p.targetGiven), so its
// absence is only an error when neither gave one.
func (p *parser) inherit(u *unitDraft, d *unitDraft, n *yaml.Node, key string, hasImages bool) {
	if !u.set["target"] {
		u.Target = d.Target
	}
	if !u.set["platforms"] {
		u.Platforms = slices.Clone(d.Platforms)
	}
	if !u.set["platformMode"] {
		u.PlatformMode = d.PlatformMode
	}
	if !u.set["scoped"] {
		u.Scoped = d.Scoped
	}
	if u.PlatformMode == "" {
		u.PlatformMode = PlatformRewrite
	}
	if !u.set["source"] {
		p.failf(n, join(key, "source"), "missing: expected a registry host[:port][/prefix], such as quay.io/containerdisks")
	}
	if u.Target == "" && !u.set["target"] && !d.set["target"] && !p.targetGiven {
		p.fail(n, join(key, "target"), "missing: expected "+targetForms+" (here or in defaults)", ErrNoTarget)
	}
	if !hasImages {
		p.failf(n, join(key, "images"), "missing: expected a list of repositories and the tags to copy")
	}
}

func orList(keys []string) string {
	if len(keys) == 1 {
		return keys[0]
	}
	return strings.Join(keys[:len(keys)-1], ", ") + " or " + keys[len(keys)-1]
}

func (p *parser) platforms(n *yaml.Node, key string) []string {
	vals, nodes, _ := p.strs(n, key, "platforms such as linux/amd64")
	var out []string
	for i, s := range vals {
		pl, err := NormalizePlatform(s)
		if err != nil {
			p.fail(nodes[i], key, err.Error(), nil)
			continue
		}
		if !slices.Contains(out, pl) {
			out = append(out, pl)
		}
	}
	return out
}

func (p *parser) credentials(n *yaml.Node, key string) *Credentials {
	if r := resolve(n); r.Kind == yaml.ScalarNode && r.ShortTag() != "!!null" {
		// describe would quote it, and it may well be "user:password".
		p.failf(r, key, "expected a mapping with the keys username and password, got a single value (not shown: it may hold a secret)")
		return nil
	}
	fields, ok := p.mapping(n, key, "a mapping with the keys username and password")
	if !ok {
		return nil
	}
	c := &Credentials{}
	for _, kv := range fields {
		fk := join(key, kv.key.Value)
		switch kv.key.Value {
		case "username":
			c.Username, _ = p.str(kv.val, fk, "a username")
		case "password":
			c.Password, _ = p.str(kv.val, fk, "a password")
		default:
			p.failf(kv.key, fk, "unknown key: expected username or password")
		}
	}
	if c.Username == "" {
		p.failf(n, join(key, "username"), "missing: expected the username for the source")
	}
	return c
}

// specKeys are the keys of a native image entry.
var specKeys = []string{"repository", "tags", "allow", "deny", "semver", "newest"}

func (p *parser) images(n *yaml.Node, key string) []ImageSpec {
	items, ok := p.sequence(n, key, "a list of repositories and the tags to copy")
	if !ok {
		return nil
	}
	if len(items) == 0 {
		p.failf(n, key, "the list is empty: expected at least one repository")
	}
	if !p.addEntries(n, key, "repositories", len(items)) {
		return nil
	}
	var specs []ImageSpec
	for i, e := range items {
		ekey := fmt.Sprintf("%s[%d]", key, i)
		fields, ok := p.mapping(e, ekey, "a mapping with the keys "+strings.Join(specKeys, ", "))
		if !ok {
			continue
		}
		s := ImageSpec{Line: e.Line}
		hasRepo := false
		for _, kv := range fields {
			k, v := kv.key, kv.val
			fk := join(ekey, k.Value)
			switch k.Value {
			case "repository":
				hasRepo = true
				if r, ok := p.str(v, fk, "a repository path such as containerdisks/fedora"); ok {
					s.Repository = r
					if err := checkRepository(r); err != nil {
						p.fail(v, fk, err.Error(), nil)
					}
				}
			case "tags":
				s.Tags = p.tags(v, fk)
			case "allow", "deny":
				vals, nodes, _ := p.strs(v, fk, "regular expressions")
				for j, re := range vals {
					if _, err := compileTagRegex(re); err != nil {
						p.fail(nodes[j], fk, err.Error(), errors.Unwrap(err))
					}
				}
				if k.Value == "allow" {
					s.Allow = vals
				} else {
					s.Deny = vals
				}
			case "semver":
				if r, ok := p.str(v, fk, `a semver constraint such as ">= 1.2, < 2"`); ok {
					s.Semver = r
					if _, err := parseConstraint(r); err != nil {
						p.fail(v, fk, err.Error(), errors.Unwrap(err))
					}
				}
			case "newest":
				if i, ok := p.integer(v, fk); ok {
					s.Newest = i
					if i < 0 {
						p.failf(v, fk, "%d is negative: expected how many of the newest tags to keep (0 keeps all)", i)
					}
				}
			default:
				p.failf(k, fk, "unknown key: expected %s", orList(specKeys))
			}
		}
		if !hasRepo {
			p.failf(e, join(ekey, "repository"), "missing: expected a repository path below the source, such as fedora")
		}
		if len(s.Tags) == 0 && !s.NeedsTagList() && p.entries <= maxEntries {
			p.failf(e, ekey, "no tags selected: expected tags, allow, deny, semver or newest (allow: ['.*'] selects every tag)")
		}
		specs = append(specs, s)
	}
	return specs
}

func (p *parser) tags(n *yaml.Node, key string) []string {
	if r := resolve(n); r.Kind == yaml.SequenceNode && !p.addEntries(n, key, "tags", len(r.Content)) {
		return nil
	}
	vals, nodes, _ := p.strs(n, key, "tags")
	for i, t := range vals {
		if err := checkTag(t); err != nil {
			p.fail(nodes[i], key, err.Error(), nil)
		}
	}
	return vals
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

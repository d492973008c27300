// Package catalogfile reads declarative catalog files: YAML that adds
// distributions to the built-in catalog, or replaces them, without Go code.
package catalogfile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/customize"
	"github.com/containerdisk/kubectl-containerdisk/pkg/internal/yamlpos"
	"github.com/containerdisk/kubectl-containerdisk/pkg/readlimit"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

// File is a declarative catalog: entries that add distributions or replace
// built-in ones by name, and end-of-life policies, without Go code.
//
//	policies:
//	  debian: {minVersion: "11"}
//	entries:
//	- name: cirros
//	  base: https://download.cirros-cloud.net
//	  versions: ["0.6.2", "0.6.3"]
//	  arches: [amd64, arm64]
//	  url: "{{.Base}}/{{.Version}}/cirros-{{.Version}}-{{.UpstreamArch}}-disk.img"
//	  checksum: {file: "{{.Base}}/{{.Version}}/SHA256SUMS"}
//	  tags: ["{{.Version}}-cirros"]
//	  metadata: {description: CirrOS, defaultUser: cirros}
//	  docs: true    # false leaves it out of the generated documentation
//	  customize:    # applied to the download before the build (customize.Spec)
//	    commands: ["write /etc/motd:hello", "run-command apt-get clean"]
//	    sysprep: {enabled: true}
type File struct {
	Policies map[string]catalog.Policy `yaml:"policies" want:"a mapping of distribution names to policies"`
	Entries  []FileEntry               `yaml:"entries" want:"a list of entries"`

	// Path is the file the catalog was read from, for messages.
	Path string `yaml:"-"`
}

// FileEntry is one declarative distribution. String fields other than name
// are Go templates over TemplateData, limited to what puts fields together
// (fields, if, and built-in functions other than call; no range, with,
// define, block, template, variables or printf widths), at most 4 KiB each
// and writing at most 64 KiB each: a catalog file may come from anyone.
type FileEntry struct {
	Name     string   `yaml:"name"`
	Base     string   `yaml:"base"`
	Versions []string `yaml:"versions" item:"versions"`
	Arches   []string `yaml:"arches" item:"architectures"`
	// URL is the download URL template; URLs overrides it per
	// architecture.
	URL  string            `yaml:"url"`
	URLs map[string]string `yaml:"urls"`
	// Checksum says where the checksum comes from.
	Checksum FileChecksum `yaml:"checksum"`
	// Compression is gzip, xz, zstd or none; guessed from the URL's
	// extension (.gz, .xz, .zst) when empty.
	Compression string   `yaml:"compression"`
	Build       string   `yaml:"build"`
	Tags        []string `yaml:"tags" item:"tag templates"`
	// Stable defaults to true.
	Stable   *bool            `yaml:"stable"`
	Metadata catalog.Metadata `yaml:"metadata"`
	// Docs defaults to true; false leaves the entry out of docs generate
	// and docs publish.
	Docs *bool `yaml:"docs"`
	// Customize is applied to the downloaded disk before it is built;
	// relative host paths in its commands are read from the catalog
	// file's directory.
	Customize *customize.Spec `yaml:"customize"`

	line int
}

// FileChecksum is where a declarative entry's checksum comes from: exactly one
// of a literal value (per architecture or for all), a checksum file listing
// the download's base name (GNU or BSD format), or a file holding just the
// checksum of that one download (such as URL.sha256).
type FileChecksum struct {
	Value  string            `yaml:"value"`
	Values map[string]string `yaml:"values"`
	File   string            `yaml:"file"`
	// Algorithm is sha256 or sha512, for values and files that do not say.
	Algorithm string `yaml:"algorithm"`
}

// TemplateData is what an entry's templates can use.
type TemplateData struct {
	Name, Version string
	// Arch is amd64, arm64 or s390x; UpstreamArch is x86_64, aarch64 or
	// s390x.
	Arch, UpstreamArch string
	// Base is the entry's base URL, or the mirror given for its name.
	Base string
	// URL is the download URL (for checksum templates).
	URL string
}

var nameRE = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*$`)

// ParseFile parses a catalog file. Every error names the file, the line and
// the key at fault.
func ParseFile(name string, data []byte) (*File, error) {
	if err := readlimit.CheckYAML(name, data, readlimit.YAMLEntries, "a catalog file"); err != nil {
		return nil, fmt.Errorf("catalog %w", err)
	}
	d := &yamlpos.Decoder{File: name, What: "the catalog"}
	root, err := d.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("catalog %w", err)
	}
	f := &File{Path: name}
	if root == nil {
		return f, nil
	}
	if !d.Decode(root, "", f) {
		return nil, fmt.Errorf("catalog %w", d.Errors()[0])
	}
	fail := func(at, key, msg string) error {
		return fmt.Errorf("catalog %w", &yamlpos.Error{File: name, Line: d.Line(at), Key: key, Msg: msg})
	}
	for _, n := range slices.Sorted(maps.Keys(f.Policies)) {
		eol := f.Policies[n].EOL
		for _, v := range slices.Sorted(maps.Keys(eol)) {
			if key := "policies." + n + ".eol." + v; !dateRE.MatchString(eol[v]) {
				return nil, fail(key, key, fmt.Sprintf("date %q: expected YYYY-MM-DD", eol[v]))
			}
		}
	}
	for i := range f.Entries {
		e := &f.Entries[i]
		at := yamlpos.Index("entries", i)
		if err := e.validate(); err != nil {
			return nil, fail(yamlpos.Join(at, cmp.Or(err.at, err.key)), "entries["+e.Name+"]."+err.key, err.msg)
		}
		if err := validateCustomize(d, at, e); err != nil {
			return nil, fmt.Errorf("catalog %w", err)
		}
		if slices.ContainsFunc(f.Entries[:i], func(o FileEntry) bool { return o.Name == e.Name }) {
			return nil, fail(at, "entries["+e.Name+"].name", "the name is used by an earlier entry")
		}
	}
	return f, nil
}

var dateRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// entryError is an invalid value of an entry: key names it, at (when it
// differs) is the path of the item at fault, such as "versions[2]".
type entryError struct{ key, at, msg string }

func (e *entryError) Error() string { return e.key + ": " + e.msg }

func (e *FileEntry) validate() *entryError {
	switch {
	case e.Name == "":
		return &entryError{"name", "", "missing: expected the image repository name, e.g. cirros"}
	case !nameRE.MatchString(e.Name):
		return &entryError{"name", "", fmt.Sprintf("%q: expected lowercase letters, digits and . _ - separators", e.Name)}
	case len(e.Versions) == 0:
		return &entryError{"versions", "", "missing: expected at least one version"}
	case len(e.Arches) == 0:
		return &entryError{"arches", "", "missing: expected at least one of amd64, arm64, s390x"}
	case e.URL == "" && len(e.URLs) == 0:
		return &entryError{"url", "", "missing: expected a URL template such as {{.Base}}/{{.Version}}/disk-{{.UpstreamArch}}.qcow2"}
	}
	for i, v := range e.Versions {
		if !tagRE.MatchString(v) {
			return &entryError{"versions", yamlpos.Index("versions", i), fmt.Sprintf("%q: expected a valid image tag ([A-Za-z0-9_][A-Za-z0-9._-]*)", v)}
		}
	}
	for i, a := range e.Arches {
		n, err := containerdisk.NormalizeArch(a)
		if err != nil {
			return &entryError{"arches", yamlpos.Index("arches", i), err.Error()}
		}
		e.Arches[i] = n
	}
	for a := range e.URLs {
		if _, err := containerdisk.NormalizeArch(a); err != nil {
			return &entryError{"urls", "urls." + a, err.Error()}
		}
	}
	c := e.Checksum
	n := 0
	for _, set := range []bool{c.Value != "", len(c.Values) > 0, c.File != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return &entryError{"checksum", "", "expected exactly one of value, values or file"}
	}
	if c.Algorithm != "" && c.Algorithm != "sha256" && c.Algorithm != "sha512" {
		return &entryError{"checksum.algorithm", "", fmt.Sprintf("%q: expected sha256 or sha512", c.Algorithm)}
	}
	switch e.Compression {
	case "", "none", "gzip", "xz", "zstd":
	default:
		return &entryError{"compression", "", fmt.Sprintf("%q: expected gzip, xz, zstd or none", e.Compression)}
	}
	for _, key := range []string{"url", "base", "checksum.file", "build"} {
		s := map[string]string{"url": e.URL, "base": e.Base, "checksum.file": c.File, "build": e.Build}[key]
		if err := checkTemplate(s); err != nil {
			return &entryError{key, "", err.Error()}
		}
	}
	for _, a := range slices.Sorted(maps.Keys(e.URLs)) {
		if err := checkTemplate(e.URLs[a]); err != nil {
			return &entryError{"urls." + a, "", err.Error()}
		}
	}
	for i, s := range e.Tags {
		if err := checkTemplate(s); err != nil {
			return &entryError{"tags", yamlpos.Index("tags", i), err.Error()}
		}
	}
	return nil
}

// validateCustomize checks the entry's customize block, which is at path
// at, and returns its first problem at the line of the field at fault.
func validateCustomize(d *yamlpos.Decoder, at string, e *FileEntry) error {
	if e.Customize == nil {
		return nil
	}
	err := e.Customize.Validate()
	if err == nil {
		return nil
	}
	// Validate joins one *FieldError per problem.
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var fe *customize.FieldError
	if !errors.As(errs[0], &fe) {
		return &yamlpos.Error{File: d.File, Line: d.Line(yamlpos.Join(at, "customize")), Key: "entries[" + e.Name + "].customize", Msg: err.Error(), Err: err}
	}
	path := yamlpos.Join(yamlpos.Join(at, "customize"), fe.Field)
	return &yamlpos.Error{File: d.File, Line: d.Line(path), Key: "entries[" + e.Name + "].customize." + fe.Field, Msg: fe.Msg, Err: fe}
}

var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// Distros returns the file's entries as distributions.
func (f *File) Distros() []catalog.Distro {
	var out []catalog.Distro
	for _, e := range f.Entries {
		out = append(out, &fileDistro{entry: e, file: f.Path})
	}
	return out
}

// Merge returns the catalog with the file's entries added, an entry with
// the name of an existing distribution replacing it in place, and the file's
// policies replacing those of the same name.
func Merge(c *catalog.Catalog, f *File) {
	for _, d := range f.Distros() {
		if i := slices.IndexFunc(c.Distros, func(o catalog.Distro) bool { return o.Name() == d.Name() }); i >= 0 {
			c.Distros[i] = d
		} else {
			c.Distros = append(c.Distros, d)
		}
	}
	if len(f.Policies) > 0 && c.Policies == nil {
		c.Policies = map[string]catalog.Policy{}
	}
	for n, p := range f.Policies {
		c.Policies[n] = p
	}
}

type fileDistro struct {
	entry FileEntry
	file  string
}

func (d *fileDistro) Name() string        { return d.entry.Name }
func (d *fileDistro) DefaultBase() string { return d.entry.Base }

func (d *fileDistro) Releases(ctx context.Context, env catalog.Env) ([]catalog.Release, error) {
	e := d.entry
	// The host files the spec reads are hashed once, for every release.
	var sum string
	var sumErr error
	if e.Customize != nil {
		sum, sumErr = e.Customize.InputsDigest(filepath.Dir(d.file))
	}
	var out []catalog.Release
	for _, v := range e.Versions {
		for _, a := range e.Arches {
			r := d.release(ctx, env, v, a)
			if r.Customize != nil {
				r.CustomizeSum = sum
				if sumErr != nil && r.Err == nil {
					r.Err = fmt.Errorf("%s:%s %s (catalog %s): customize: %w", e.Name, v, a, d.file, sumErr)
				}
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func (d *fileDistro) release(ctx context.Context, env catalog.Env, version, arch string) catalog.Release {
	e := d.entry
	stable := e.Stable == nil || *e.Stable
	r := catalog.Release{Name: e.Name, Version: version, Arch: arch, Stable: stable, Metadata: e.Metadata}
	r.Metadata.NoDocs = e.Docs != nil && !*e.Docs
	if e.Customize != nil {
		r.Customize = e.Customize
		r.CustomizeDir = filepath.Dir(d.file)
	}
	if r.Metadata.Instancetype == "" {
		r.Metadata.Instancetype = "u1.medium"
	}
	data := TemplateData{Name: e.Name, Version: version, Arch: arch, UpstreamArch: upstreamArch(arch), Base: strings.TrimSuffix(env.Base, "/")}
	fail := func(format string, args ...any) catalog.Release {
		r.Err = fmt.Errorf("%s:%s %s (catalog %s): %w", e.Name, version, arch, d.file, fmt.Errorf(format, args...))
		return r
	}
	urlT := e.URL
	if u, ok := e.URLs[arch]; ok {
		urlT = u
	}
	var err error
	if r.URL, err = expand(ctx, urlT, data); err != nil {
		return fail("url: %w", err)
	}
	data.URL = r.URL
	if r.Build, err = expand(ctx, e.Build, data); err != nil {
		return fail("build: %w", err)
	}
	for _, t := range e.Tags {
		tag, err := expand(ctx, t, data)
		if err != nil {
			return fail("tags: %w", err)
		}
		if !tagRE.MatchString(tag) {
			return fail("tag %q: expected a valid image tag", tag)
		}
		r.Tags = append(r.Tags, tag)
	}
	r.Compression = e.Compression
	if r.Compression == "" {
		r.Compression = compressionOf(r.URL)
	}
	if r.Compression == "none" {
		r.Compression = ""
	}
	algo := e.Checksum.Algorithm
	if algo == "" {
		algo = "sha256"
	}
	switch {
	case e.Checksum.Value != "" || len(e.Checksum.Values) > 0:
		v := e.Checksum.Value
		if len(e.Checksum.Values) > 0 {
			v = e.Checksum.Values[arch]
			if v == "" {
				v = e.Checksum.Values[upstreamArch(arch)]
			}
		}
		if v == "" {
			return fail("checksum.values has no entry for %s", arch)
		}
		if r.Checksum, err = upstream.ParseDigest(v, algo); err != nil {
			return fail("checksum: %v", err)
		}
	default:
		u, err := expand(ctx, e.Checksum.File, data)
		if err != nil {
			return fail("checksum.file: %w", err)
		}
		body, err := env.Fetch.Fetch(ctx, u)
		if err != nil {
			return fail("reading checksum file: %v", err)
		}
		sums := upstream.ParseSums(body)
		c, ok := upstream.Lookup(sums, path.Base(r.URL))
		if !ok {
			// A file holding just the checksum of this download, as
			// URL.sha256 often does.
			if c, err := upstream.ParseDigest(strings.TrimSpace(string(body)), algo); err == nil && !strings.ContainsAny(strings.TrimSpace(string(body)), " \n") {
				r.Checksum = c
				return r
			}
			return fail("checksum file %s lists no checksum for %s", u, path.Base(r.URL))
		}
		r.Checksum = c
	}
	return r
}

// expand executes a template that checkTemplate passed, into at most
// maxExpansion bytes.
func expand(ctx context.Context, t string, data TemplateData) (string, error) {
	if t == "" {
		return "", nil
	}
	tmpl, err := parseTemplate(t)
	if err != nil {
		return "", err
	}
	w := &limitWriter{ctx: ctx, limit: maxExpansion}
	if err := tmpl.Execute(w, data); err != nil {
		var le *expansionError
		if errors.As(err, &le) {
			return "", le
		}
		return "", err
	}
	return w.b.String(), nil
}

func upstreamArch(a string) string {
	switch a {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return a
}

func compressionOf(u string) string {
	switch {
	case strings.HasSuffix(u, ".gz"):
		return "gzip"
	case strings.HasSuffix(u, ".xz"):
		return "xz"
	case strings.HasSuffix(u, ".zst"):
		return "zstd"
	}
	return ""
}

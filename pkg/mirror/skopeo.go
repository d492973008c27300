package mirror

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/containerdisk/kubectl-containerdisk/pkg/internal/yamlpos"
)

// skopeoRegistry is a registry of a skopeo sync file. The maps keep the
// file's order, so that the units list the images as the file does.
type skopeoRegistry struct {
	Images      yamlpos.Map[*[]string] `yaml:"images" want:"a mapping of repository to tags" item:"tags" count:"repositories,tags"`
	TagRegex    yamlpos.Map[string]    `yaml:"images-by-tag-regex" want:"a mapping of repository to tags" item:"a regular expression" count:"repositories"`
	Semver      yamlpos.Map[string]    `yaml:"images-by-semver" want:"a mapping of repository to tags" item:"a semver constraint such as \">= 3.12.0\"" count:"repositories"`
	Credentials *Credentials           `yaml:"credentials,secret" want:"a mapping with the keys username and password"`
	TLSVerify   *bool                  `yaml:"tls-verify"`
	CertDir     string                 `yaml:"cert-dir" want:"a directory"`
}

// skopeo reads a skopeo sync file (skopeo-sync(1), "YAML file content"): a
// unit per registry host, with one ImageSpec per repository and selector,
// in file order.
//
//	registry.example.com:
//	  images:
//	    busybox: []             # every tag
//	    redis: ["1.0", "2.0"]   # these tags (or sha256:… digests)
//	  images-by-tag-regex:
//	    nginx: ^1\.13\.[12]-alpine-perl$
//	  images-by-semver:
//	    alpine: ">= 3.12.0"
//	  credentials: {username: john, password: secret}
//	  tls-verify: true
//	  cert-dir: /home/john/certs
func (p *parser) skopeo(root *yaml.Node) *Config {
	c := &Config{Path: p.d.File, Format: FormatSkopeo}
	var hosts yamlpos.Map[*yaml.Node]
	p.d.Decode(root, "", &hosts)
	for _, h := range hosts {
		host := h.Key
		if err := checkRegistryPrefix(host); err != nil {
			p.d.Report(h.Line, host, "unknown key: expected a registry host such as quay.io (skopeo sync format), or version, interval, schedule, defaults and units (native format)", nil)
			continue
		}
		errs := len(p.d.Errors())
		var r skopeoRegistry
		if p.d.Decode(h.Value, host, &r); !p.d.OK(host) {
			continue
		}
		u := Unit{Source: host, PlatformMode: PlatformRewrite, Line: h.Line, TLSVerify: r.TLSVerify, CertDir: r.CertDir, Credentials: r.Credentials}
		p.credentials(r.Credentials, yamlpos.Join(host, "credentials"))
		skopeoImages(p, &u, yamlpos.Join(host, "images"), r.Images, func(key string, tags *[]string) (ImageSpec, bool) {
			if tags == nil || len(*tags) == 0 {
				// No list, or an empty one, means every tag.
				return ImageSpec{Allow: []string{".*"}}, true
			}
			errs := len(p.d.Errors())
			p.tags(key, *tags)
			for i := range *tags {
				if !p.d.OK(yamlpos.Index(key, i)) {
					return ImageSpec{}, false
				}
			}
			return ImageSpec{Tags: *tags}, len(p.d.Errors()) == errs
		})
		skopeoImages(p, &u, yamlpos.Join(host, "images-by-tag-regex"), r.TagRegex, func(key, re string) (ImageSpec, bool) {
			if _, err := compileTagRegex(re); err != nil {
				p.fail(key, key, err.Error(), errors.Unwrap(err))
				return ImageSpec{}, false
			}
			// skopeo looks for the regex anywhere in a tag; Allow is
			// anchored.
			return ImageSpec{Allow: []string{".*(?:" + re + ").*"}}, true
		})
		before := len(u.Images)
		var invalid []*ConfigError
		skopeoImages(p, &u, yamlpos.Join(host, "images-by-semver"), r.Semver, func(key, r string) (ImageSpec, bool) {
			if _, err := parseConstraint(r); err != nil {
				invalid = append(invalid, &ConfigError{File: p.d.File, Line: p.d.Line(key), Key: key, Msg: err.Error(), Err: errors.Unwrap(err)})
			}
			return ImageSpec{Semver: r}, true
		})
		if len(invalid) > 0 {
			p.skipSemver(invalid, u.Images[before:])
			u.Images = u.Images[:before]
			if len(u.Images) == 0 {
				// Nothing is left to sync from this registry, as in skopeo.
				continue
			}
		}
		// The file's order, whichever of the three maps comes first.
		slices.SortStableFunc(u.Images, func(a, b ImageSpec) int { return cmp.Compare(a.Line, b.Line) })
		if len(u.Images) == 0 && len(p.d.Errors()) == errs {
			p.d.Report(h.Line, host, "no images: expected images, images-by-tag-regex or images-by-semver", nil)
		}
		c.Units = append(c.Units, u)
	}
	if len(hosts) == 0 {
		p.d.Report(1, "", "no registries: expected registry hosts (skopeo sync format) or units (native format)", nil)
	}
	return c
}

// skopeoImages checks a map of repository to selector decoded at key,
// adding to u the ImageSpec that spec makes of each selector.
func skopeoImages[T any](p *parser, u *Unit, key string, repos yamlpos.Map[T], spec func(key string, v T) (ImageSpec, bool)) {
	if !p.d.OK(key) {
		return
	}
	for _, r := range repos {
		rk := yamlpos.Join(key, r.Key)
		if err := checkRepository(r.Key); err != nil {
			p.d.Report(r.Line, rk, err.Error(), nil)
			continue
		}
		if !p.d.OK(rk) {
			continue
		}
		s, ok := spec(rk, r.Value)
		if !ok {
			continue
		}
		s.Repository = r.Key
		s.Line = r.Line
		u.Images = append(u.Images, s)
	}
}

// skipSemver records, as warnings, the invalid constraints of a registry's
// images-by-semver and the repositories skipped for them: skopeo sync
// (semverFilterCollection) gives up the whole map at its first invalid
// constraint, logs the error and goes on with the rest of the file.
func (p *parser) skipSemver(invalid []*ConfigError, specs []ImageSpec) {
	repos := make([]string, len(specs))
	for i, s := range specs {
		repos[i] = s.Repository
	}
	for _, w := range invalid {
		w.Msg += fmt.Sprintf("; skipping this registry's images-by-semver (%s), as skopeo sync does", strings.Join(repos, ", "))
		p.warns = append(p.warns, w)
	}
}

package mirror

import (
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// skopeoKeys are the keys of a registry in a skopeo sync file.
var skopeoKeys = []string{"images", "images-by-tag-regex", "images-by-semver", "credentials", "tls-verify", "cert-dir"}

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
func (p *parser) skopeo(pairs []pair) *Config {
	c := &Config{Path: p.file, Format: FormatSkopeo}
	for _, kv := range pairs {
		host := kv.key.Value
		if err := checkRegistryPrefix(host); err != nil {
			p.failf(kv.key, host, "unknown key: expected a registry host such as quay.io (skopeo sync format), or version, interval, schedule, defaults and units (native format)")
			continue
		}
		u := Unit{Source: host, PlatformMode: PlatformRewrite, Line: kv.key.Line}
		errs := len(p.errs)
		skipped := false
		fields, ok := p.mapping(kv.val, host, "a mapping with the keys "+strings.Join(skopeoKeys, ", "))
		if !ok {
			continue
		}
		for _, f := range fields {
			k, v := f.key, f.val
			fk := join(host, k.Value)
			switch k.Value {
			case "images":
				p.skopeoImages(v, fk, &u, func(val *yaml.Node, key string) (ImageSpec, bool) {
					if resolve(val).ShortTag() == "!!null" {
						return ImageSpec{Allow: []string{".*"}}, true
					}
					before := len(p.errs)
					tags := p.tags(val, key)
					if len(p.errs) > before {
						return ImageSpec{}, false
					}
					if len(tags) == 0 {
						// An empty list means every tag.
						return ImageSpec{Allow: []string{".*"}}, true
					}
					return ImageSpec{Tags: tags}, true
				})
			case "images-by-tag-regex":
				p.skopeoImages(v, fk, &u, func(val *yaml.Node, key string) (ImageSpec, bool) {
					re, ok := p.str(val, key, "a regular expression")
					if !ok {
						return ImageSpec{}, false
					}
					if _, err := compileTagRegex(re); err != nil {
						p.fail(resolve(val), key, err.Error(), errors.Unwrap(err))
						return ImageSpec{}, false
					}
					// skopeo looks for the regex anywhere in a tag;
					// Allow is anchored.
					return ImageSpec{Allow: []string{".*(?:" + re + ").*"}}, true
				})
			case "images-by-semver":
				before := len(u.Images)
				var invalid []*ConfigError
				p.skopeoImages(v, fk, &u, func(val *yaml.Node, key string) (ImageSpec, bool) {
					r, ok := p.str(val, key, `a semver constraint such as ">= 3.12.0"`)
					if !ok {
						return ImageSpec{}, false
					}
					if _, err := parseConstraint(r); err != nil {
						invalid = append(invalid, &ConfigError{File: p.file, Line: resolve(val).Line, Key: key, Msg: err.Error(), Err: errors.Unwrap(err)})
					}
					return ImageSpec{Semver: r}, true
				})
				if len(invalid) > 0 {
					p.skipSemver(invalid, u.Images[before:])
					u.Images = u.Images[:before]
					skipped = true
				}
			case "credentials":
				u.Credentials = p.credentials(v, fk)
			case "tls-verify":
				if b, ok := p.boolean(v, fk); ok {
					u.TLSVerify = &b
				}
			case "cert-dir":
				u.CertDir, _ = p.str(v, fk, "a directory")
			default:
				p.failf(k, fk, "unknown key: expected %s", orList(skopeoKeys))
			}
		}
		if len(u.Images) == 0 {
			if skipped {
				// Nothing is left to sync from this registry, as in skopeo.
				continue
			}
			if len(p.errs) == errs {
				p.failf(kv.key, host, "no images: expected images, images-by-tag-regex or images-by-semver")
			}
		}
		c.Units = append(c.Units, u)
	}
	if len(pairs) == 0 {
		p.fail(&yaml.Node{Line: 1}, "", "no registries: expected registry hosts (skopeo sync format) or units (native format)", nil)
	}
	return c
}

// skopeoImages reads a map of repository to selector, adding to u the
// ImageSpec that spec makes of each selector.
func (p *parser) skopeoImages(n *yaml.Node, key string, u *Unit, spec func(val *yaml.Node, key string) (ImageSpec, bool)) {
	repos, ok := p.mapping(n, key, "a mapping of repository to tags")
	if !ok || !p.addEntries(n, key, "repositories", len(repos)) {
		return
	}
	for _, r := range repos {
		repo := r.key.Value
		rk := join(key, repo)
		if err := checkRepository(repo); err != nil {
			p.fail(r.key, rk, err.Error(), nil)
			continue
		}
		s, ok := spec(r.val, rk)
		if !ok {
			continue
		}
		s.Repository = repo
		s.Line = r.key.Line
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

package mirror

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
)

// NeedsTagList reports whether Select needs the source's tags: false for an
// entry of explicit tags only, which a sync can check with HEAD requests
// alone.
func (s ImageSpec) NeedsTagList() bool {
	return len(s.Allow) > 0 || len(s.Deny) > 0 || s.Semver != "" || s.Newest != 0
}

// Select returns the tags of the entry, given the tags the source lists, in
// SortTags order without duplicates:
//
//	Tags ∪ newest(Newest, semver(Semver, allow(Allow, tags) − deny(Deny, tags)))
//
// Explicit Tags are selected whether or not tags lists them (the copy then
// reports a missing one), and Deny does not apply to them. The filter on the
// right applies only when Allow, Deny, Semver or Newest is set: Allow empty
// means every tag; regexes are anchored at both ends; Semver keeps the tags
// that satisfy the constraint as skopeo sync's images-by-semver does (see
// semver.go); Newest > 0 keeps the newest N in SortTags order. The error is
// about an invalid regex, constraint or Newest.
func (s ImageSpec) Select(tags []string) ([]string, error) {
	f, err := s.compile()
	if err != nil {
		return nil, err
	}
	out := slices.Clone(s.Tags)
	if s.NeedsTagList() {
		var picked []string
		for _, t := range tags {
			if f.keep(t) {
				picked = append(picked, t)
			}
		}
		if s.Newest > 0 {
			SortTags(picked)
			picked = slices.Compact(picked)
			picked = picked[max(0, len(picked)-s.Newest):]
		}
		out = append(out, picked...)
	}
	SortTags(out)
	return slices.Compact(out), nil
}

// filter is an entry's compiled allow, deny and semver selectors.
type filter struct {
	allow, deny []*regexp.Regexp
	semver      *semver.Constraints
}

func (f *filter) keep(tag string) bool {
	if len(f.allow) > 0 && !slices.ContainsFunc(f.allow, func(re *regexp.Regexp) bool { return re.MatchString(tag) }) {
		return false
	}
	if slices.ContainsFunc(f.deny, func(re *regexp.Regexp) bool { return re.MatchString(tag) }) {
		return false
	}
	return f.semver == nil || matchTag(f.semver, tag)
}

// specError is an invalid selector of an ImageSpec.
type specError struct {
	key, msg string
	err      error
}

func (e *specError) Error() string { return e.key + ": " + e.msg }
func (e *specError) Unwrap() error { return e.err }

func (s ImageSpec) compile() (*filter, error) {
	f := &filter{}
	for _, sel := range []struct {
		key   string
		exprs []string
		dst   *[]*regexp.Regexp
	}{{"allow", s.Allow, &f.allow}, {"deny", s.Deny, &f.deny}} {
		for _, expr := range sel.exprs {
			re, err := compileTagRegex(expr)
			if err != nil {
				return nil, &specError{sel.key, err.Error(), errors.Unwrap(err)}
			}
			*sel.dst = append(*sel.dst, re)
		}
	}
	if s.Semver != "" {
		c, err := parseConstraint(s.Semver)
		if err != nil {
			return nil, &specError{"semver", err.Error(), nil}
		}
		f.semver = c
	}
	if s.Newest < 0 {
		return nil, &specError{"newest", fmt.Sprintf("%d is negative: expected how many of the newest tags to keep (0 keeps all)", s.Newest), nil}
	}
	return f, nil
}

// check checks the selectors of s, and that it has one.
func (s ImageSpec) check() error {
	if len(s.Tags) == 0 && !s.NeedsTagList() {
		return &specError{"", "no tags selected: expected tags, allow, deny, semver or newest (allow: ['.*'] selects every tag)", nil}
	}
	_, err := s.compile()
	return err
}

// SortTags sorts tags oldest first: by semver precedence when every tag
// reads as a version (semver.NewVersion, as for Semver), else by the catalog's version order, in
// which numbers compare numerically ("9.10" after "9.9") and a leading "v"
// before a digit is ignored; ties (such as "1.2" and "1.2.0") by bytes. The
// order depends on the set of tags only, not on their order.
func SortTags(tags []string) {
	vs := make(map[string]*semver.Version, len(tags))
	for _, t := range tags {
		v, err := semver.NewVersion(t)
		if err != nil {
			vs = nil
			break
		}
		vs[t] = v
	}
	slices.SortFunc(tags, func(a, b string) int {
		var c int
		if vs != nil {
			c = vs[a].Compare(vs[b])
		} else {
			c = catalog.CompareVersions(stripV(a), stripV(b))
		}
		if c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
}

func stripV(t string) string {
	if len(t) > 1 && (t[0] == 'v' || t[0] == 'V') && '0' <= t[1] && t[1] <= '9' {
		return t[1:]
	}
	return t
}

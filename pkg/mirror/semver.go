package mirror

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Version is a semantic version read leniently from an image tag: a leading
// "v" is dropped and missing minor and patch numbers are zero, so "41",
// "v1.2" and "24.04" read as 41.0.0, 1.2.0 and 24.4.0. "1.2.3-rc1" has the
// prerelease "rc1"; "41-2410011200" (the kubevirt/containerdisks tag scheme)
// is a prerelease of 41.0.0, so it sorts below the moving tag "41".
type Version struct {
	Major, Minor, Patch uint64
	// Pre holds the dot-separated prerelease identifiers; empty for a
	// release.
	Pre []string
	// Build is the build metadata after "+", which precedence ignores.
	Build string
}

// ParseVersion parses a tag as a version: an optional "v", one to three
// dot-separated numbers, an optional "-prerelease" and an optional "+build".
// Tags such as "latest", "1.2.3.4" or "9_beta" are not versions.
func ParseVersion(s string) (Version, error) {
	var v Version
	rest := s
	if len(rest) > 1 && (rest[0] == 'v' || rest[0] == 'V') && isDigit(rest[1]) {
		rest = rest[1:]
	}
	if i := strings.IndexByte(rest, '+'); i >= 0 {
		rest, v.Build = rest[:i], rest[i+1:]
		if !identsOK(v.Build) {
			return Version{}, fmt.Errorf("%q is not a version: the build metadata after \"+\" is not dot-separated letters, digits and hyphens", s)
		}
	}
	if i := strings.IndexByte(rest, '-'); i >= 0 {
		var pre string
		rest, pre = rest[:i], rest[i+1:]
		if !identsOK(pre) {
			return Version{}, fmt.Errorf("%q is not a version: the prerelease after \"-\" is not dot-separated letters, digits and hyphens", s)
		}
		v.Pre = strings.Split(pre, ".")
	}
	parts := strings.Split(rest, ".")
	if len(parts) > 3 {
		return Version{}, fmt.Errorf("%q is not a version: it has more than three numbers (major.minor.patch)", s)
	}
	nums := []*uint64{&v.Major, &v.Minor, &v.Patch}
	for i, p := range parts {
		n, err := parseNumber(p)
		if err != nil {
			return Version{}, fmt.Errorf("%q is not a version: %w", s, err)
		}
		*nums[i] = n
	}
	return v, nil
}

func parseNumber(p string) (uint64, error) {
	if p == "" {
		return 0, errors.New("a number is missing")
	}
	for i := 0; i < len(p); i++ {
		if !isDigit(p[i]) {
			return 0, fmt.Errorf("%q is not a number", p)
		}
	}
	n, err := strconv.ParseUint(p, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large", p)
	}
	return n, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

var identRE = regexp.MustCompile(`^[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*$`)

func identsOK(s string) bool { return identRE.MatchString(s) }

// String formats the version canonically, as "1.2.0-rc1": the tag it came
// from may differ ("v1.2-rc1").
func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if len(v.Pre) > 0 {
		s += "-" + strings.Join(v.Pre, ".")
	}
	if v.Build != "" {
		s += "+" + v.Build
	}
	return s
}

// Compare orders versions by semver precedence and returns -1, 0 or +1: a
// prerelease sorts below its release, numeric prerelease identifiers compare
// numerically and below alphanumeric ones, and build metadata is ignored.
func (v Version) Compare(w Version) int {
	for _, c := range [][2]uint64{{v.Major, w.Major}, {v.Minor, w.Minor}, {v.Patch, w.Patch}} {
		if c[0] != c[1] {
			if c[0] < c[1] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(v.Pre) == 0 && len(w.Pre) == 0:
		return 0
	case len(v.Pre) == 0:
		return 1
	case len(w.Pre) == 0:
		return -1
	}
	for i := 0; i < len(v.Pre) && i < len(w.Pre); i++ {
		if c := compareIdent(v.Pre[i], w.Pre[i]); c != 0 {
			return c
		}
	}
	return cmpInt(len(v.Pre), len(w.Pre))
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareIdent compares prerelease identifiers. Numbers compare by value
// without parsing, so that any length works ("2410011200" and longer).
func compareIdent(a, b string) int {
	an, bn := allDigits(a), allDigits(b)
	switch {
	case an && bn:
		a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if c := cmpInt(len(a), len(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	case an:
		return -1
	case bn:
		return 1
	}
	return strings.Compare(a, b)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

func (v Version) tuple() [3]uint64 { return [3]uint64{v.Major, v.Minor, v.Patch} }

// Range is a set of versions written as in npm's node-semver, which also
// reads the constraints skopeo sync's images-by-semver takes:
//
//	>=1.2.0 <2       comparators (<, <=, >, >=, =, !=); space or comma = and
//	1.x || >=3       || = or
//	1, 1.2, 1.x, *   x-ranges: 1 = 1.x = >=1.0.0 <2.0.0
//	~1.2.3, ~1.2     >=1.2.3 <1.3.0, >=1.2.0 <1.3.0 (~> is the same)
//	^1.2.3, ^0.2.3   >=1.2.3 <2.0.0, >=0.2.3 <0.3.0 (first non-zero number)
//	40 - 42          hyphen range: >=40.0.0 <43.0.0
//
// Versions in a range may start with "v". A prerelease version is in the
// range only if it satisfies one alternative that names a prerelease of the
// same major.minor.patch (as npm does): ">=1.2.3-rc1 <2" contains 1.2.3-rc2
// and 1.2.3, but not 1.2.4-rc1; ">=41" contains no prerelease at all, so the
// dated tags "41-2410011200" stay out of it.
type Range struct {
	text string
	// alts are the alternatives (||), each a conjunction of comparators.
	alts [][]comparator
}

type op int

const (
	opLT op = iota
	opLE
	opGT
	opGE
	opEQ
	opNE    // not equal to v
	opNotIn // outside [v, hi): != of an x-range
)

type comparator struct {
	op op
	v  Version
	hi Version // opNotIn only
	// unbounded marks an opNotIn whose upper end overflows: outside [v, ∞).
	unbounded bool
}

func (c comparator) match(v Version) bool {
	d := v.Compare(c.v)
	switch c.op {
	case opLT:
		return d < 0
	case opLE:
		return d <= 0
	case opGT:
		return d > 0
	case opGE:
		return d >= 0
	case opEQ:
		return d == 0
	case opNE:
		return d != 0
	}
	return d < 0 || (!c.unbounded && v.Compare(c.hi) >= 0)
}

// nothing matches no version: no version is below 0.0.0-0.
var nothing = comparator{op: opLT, v: Version{Pre: []string{"0"}}}

// ParseRange parses a version range (see Range). The error says which part
// of the range is at fault.
func ParseRange(s string) (*Range, error) {
	r := &Range{text: s}
	if strings.TrimSpace(s) == "" {
		return nil, rangeError(s, `it is empty: expected comparators such as ">=1.2.0 <2", or "*" for any version`)
	}
	for _, alt := range strings.Split(s, "||") {
		alt = strings.TrimSpace(alt)
		if alt == "" {
			return nil, rangeError(s, `an alternative is empty: expected a range on both sides of "||"`)
		}
		cs, err := parseAlt(alt)
		if err != nil {
			return nil, rangeError(s, err.Error())
		}
		r.alts = append(r.alts, cs)
	}
	return r, nil
}

func rangeError(s, reason string) error {
	return fmt.Errorf("invalid semver range %q: %s", s, reason)
}

// String returns the range as it was written.
func (r *Range) String() string { return r.text }

// Match reports whether v is in the range.
func (r *Range) Match(v Version) bool {
	for _, alt := range r.alts {
		if matchAll(alt, v) {
			return true
		}
	}
	return false
}

// MatchTag reports whether tag reads as a version (see ParseVersion) that is
// in the range.
func (r *Range) MatchTag(tag string) bool {
	v, err := ParseVersion(tag)
	return err == nil && r.Match(v)
}

func matchAll(cs []comparator, v Version) bool {
	for _, c := range cs {
		if !c.match(v) {
			return false
		}
	}
	if len(v.Pre) == 0 {
		return true
	}
	for _, c := range cs {
		if c.op != opNE && c.op != opNotIn && len(c.v.Pre) > 0 && c.v.tuple() == v.tuple() {
			return true
		}
	}
	return false
}

var hyphenRE = regexp.MustCompile(`^(\S+)\s+-\s+(\S+)$`)

var operators = []string{">=", "<=", "!=", "~>", ">", "<", "=", "~", "^"}

func parseAlt(alt string) ([]comparator, error) {
	if m := hyphenRE.FindStringSubmatch(alt); m != nil {
		lo, err := parsePartial(m[1])
		if err != nil {
			return nil, err
		}
		hi, err := parsePartial(m[2])
		if err != nil {
			return nil, err
		}
		var cs []comparator
		if lo.n > 0 {
			cs = append(cs, comparator{op: opGE, v: lo.floor()})
		}
		switch {
		case hi.n == 3:
			cs = append(cs, comparator{op: opLE, v: hi.v})
		case hi.n > 0:
			if up, ok := hi.ceil(); ok {
				cs = append(cs, comparator{op: opLT, v: up})
			}
		}
		return cs, nil
	}
	fields := strings.Fields(strings.ReplaceAll(alt, ",", " "))
	var cs []comparator
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if f == "-" {
			return nil, errors.New(`a hyphen range is written "A - B" with nothing else in its alternative`)
		}
		if isOperator(f) {
			if i+1 == len(fields) {
				return nil, fmt.Errorf("%q is not followed by a version", f)
			}
			i++
			f += fields[i]
		}
		c, err := parseComparator(f)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c...)
	}
	return cs, nil
}

func isOperator(s string) bool {
	for _, o := range operators {
		if s == o {
			return true
		}
	}
	return false
}

// parseComparator turns one term (an operator and a partial version) into
// the comparators npm desugars it to.
func parseComparator(term string) ([]comparator, error) {
	o := ""
	for _, cand := range operators {
		if strings.HasPrefix(term, cand) {
			o = cand
			break
		}
	}
	p, err := parsePartial(term[len(o):])
	if err != nil {
		return nil, err
	}
	floor := comparator{op: opGE, v: p.floor()}
	ceil := func(cs ...comparator) []comparator {
		if up, ok := p.ceil(); ok {
			cs = append(cs, comparator{op: opLT, v: up})
		}
		return cs
	}
	switch o {
	case "", "=":
		if p.n == 3 {
			return []comparator{{op: opEQ, v: p.v}}, nil
		}
		return ceil(floor), nil
	case "!=":
		switch p.n {
		case 0:
			return []comparator{nothing}, nil
		case 3:
			return []comparator{{op: opNE, v: p.v}}, nil
		}
		up, ok := p.ceil()
		return []comparator{{op: opNotIn, v: p.floor(), hi: up, unbounded: !ok}}, nil
	case ">":
		switch p.n {
		case 0:
			return []comparator{nothing}, nil
		case 3:
			return []comparator{{op: opGT, v: p.v}}, nil
		}
		up, ok := p.ceil()
		if !ok {
			return []comparator{nothing}, nil
		}
		up.Pre = nil
		return []comparator{{op: opGE, v: up}}, nil
	case ">=":
		return []comparator{floor}, nil
	case "<":
		switch p.n {
		case 0:
			return []comparator{nothing}, nil
		case 3:
			return []comparator{{op: opLT, v: p.v}}, nil
		}
		low := p.floor()
		low.Pre = []string{"0"}
		return []comparator{{op: opLT, v: low}}, nil
	case "<=":
		if p.n == 3 {
			return []comparator{{op: opLE, v: p.v}}, nil
		}
		return ceil(), nil
	case "~", "~>":
		return ceil(floor), nil
	}
	// "^": the upper bound bumps the first non-zero number given, or the
	// last number given.
	level := 0
	switch {
	case p.n == 0:
	case p.v.Major > 0 || p.n == 1:
		level = 1
	case p.v.Minor > 0 || p.n == 2:
		level = 2
	default:
		level = 3
	}
	if up, ok := bump(p.v, level); ok {
		return []comparator{floor, {op: opLT, v: up}}, nil
	}
	return []comparator{floor}, nil
}

// partial is a version in a range: its first n numbers are given, the rest
// are wildcards (x, X, * or missing). Only a full version (n == 3) has a
// prerelease.
type partial struct {
	v Version
	n int
}

// floor is the lowest version the partial stands for.
func (p partial) floor() Version { return p.v }

// ceil is the lowest version above every version the partial stands for,
// as a "-0" prerelease so that prereleases of it are above too; ok is false
// when no version is above or the partial is "*".
func (p partial) ceil() (Version, bool) {
	if p.n == 3 {
		// A full version stands for itself in a range only as the base of
		// ~ (which bumps the minor) and ^ (which sets n).
		return bump(p.v, 2)
	}
	return bump(p.v, p.n)
}

// bump returns the "-0" prerelease of the version after v's first n
// numbers: bump(1.2.3, 2) is 1.3.0-0. A number at its maximum carries into
// the one before; ok is false when there is no such version (or n is 0).
func bump(v Version, n int) (Version, bool) {
	nums := [3]uint64{v.Major, v.Minor, v.Patch}
	for i := n - 1; i >= 0; i-- {
		if nums[i] < math.MaxUint64 {
			nums[i]++
			for j := i + 1; j < 3; j++ {
				nums[j] = 0
			}
			return Version{Major: nums[0], Minor: nums[1], Patch: nums[2], Pre: []string{"0"}}, true
		}
	}
	return Version{}, false
}

func parsePartial(s string) (partial, error) {
	orig := s
	if s == "" {
		return partial{}, errors.New("a version is missing")
	}
	if len(s) > 1 && (s[0] == 'v' || s[0] == 'V') {
		s = s[1:]
	}
	var p partial
	if i := strings.IndexByte(s, '+'); i >= 0 {
		if !identsOK(s[i+1:]) {
			return partial{}, fmt.Errorf("%q: the build metadata after \"+\" is not dot-separated letters, digits and hyphens", orig)
		}
		s = s[:i]
	}
	if i := strings.IndexByte(s, '-'); i >= 0 {
		pre := s[i+1:]
		s = s[:i]
		if !identsOK(pre) {
			return partial{}, fmt.Errorf("%q: the prerelease after \"-\" is not dot-separated letters, digits and hyphens", orig)
		}
		p.v.Pre = strings.Split(pre, ".")
	}
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		return partial{}, fmt.Errorf("%q has more than three numbers (major.minor.patch)", orig)
	}
	nums := []*uint64{&p.v.Major, &p.v.Minor, &p.v.Patch}
	wild := false
	for i, part := range parts {
		if part == "x" || part == "X" || part == "*" {
			wild = true
			continue
		}
		if wild {
			return partial{}, fmt.Errorf("%q: a number follows a wildcard; write %s", orig, strings.Join(parts[:i], "."))
		}
		n, err := parseNumber(part)
		if err != nil {
			msg := fmt.Sprintf("%q is not a version", orig)
			if part != orig || allDigits(part) {
				msg += ": " + err.Error()
			}
			return partial{}, errors.New(msg + "; expected numbers or x, such as 1.2.3, 1.2 or 1.x")
		}
		*nums[i] = n
		p.n++
	}
	if len(p.v.Pre) > 0 && p.n < 3 {
		return partial{}, fmt.Errorf("%q: a prerelease needs all of major.minor.patch", orig)
	}
	return p, nil
}

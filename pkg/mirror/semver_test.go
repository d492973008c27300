package mirror

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want Version
	}{
		{"1.2.3", Version{Major: 1, Minor: 2, Patch: 3}},
		{"v1.2", Version{Major: 1, Minor: 2}},
		{"V2", Version{Major: 2}},
		{"41", Version{Major: 41}},
		{"24.04", Version{Major: 24, Minor: 4}},
		{"1.2.3-rc.1", Version{Major: 1, Minor: 2, Patch: 3, Pre: []string{"rc", "1"}}},
		{"1.2-rc1", Version{Major: 1, Minor: 2, Pre: []string{"rc1"}}},
		{"41-2410011200", Version{Major: 41, Pre: []string{"2410011200"}}},
		{"1.0.0+20130313144700", Version{Major: 1, Build: "20130313144700"}},
		{"1.2.3-beta+exp.sha.5114f85", Version{Major: 1, Minor: 2, Patch: 3, Pre: []string{"beta"}, Build: "exp.sha.5114f85"}},
		{"1.0.0-x-y--z", Version{Major: 1, Pre: []string{"x-y--z"}}},
		{"18446744073709551615", Version{Major: 18446744073709551615}},
	}
	for _, tt := range tests {
		got, err := ParseVersion(tt.in)
		if err != nil {
			t.Errorf("ParseVersion(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseVersion(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
	for _, in := range []string{"", "latest", "v", "vv1", "v-1", "-1", " 1", "1.2.3.4", "1..2", "1.", "1.2.3-", "1.2.3-a..b", "1.2.3+", "1.2.x", "1.2.3_4", "18446744073709551616", "41 Beta"} {
		if v, err := ParseVersion(in); err == nil {
			t.Errorf("ParseVersion(%q) = %v, want an error", in, v)
		}
	}
}

func TestVersionCompare(t *testing.T) {
	// In increasing order, from semver.org and the tag schemes of
	// containerdisk publishers.
	ordered := []string{
		"0.9.0", "1.0.0-0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.1", "1.10.0", "2.0.0", "9.9", "9.10",
		"41-2410011200", "41-2411011200", "41-99999999999999999999999", "41", "42.0.0-0", "42",
	}
	for i, a := range ordered {
		va, err := ParseVersion(a)
		if err != nil {
			t.Fatal(err)
		}
		for j, b := range ordered {
			vb, _ := ParseVersion(b)
			if got, want := va.Compare(vb), cmpInt(i, j); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", a, b, got, want)
			}
		}
	}
	for _, eq := range [][2]string{{"1.2", "1.2.0"}, {"v1", "1.0.0"}, {"1.2.3+a", "1.2.3+b"}, {"1.0.0-01", "1.0.0-1"}} {
		a, _ := ParseVersion(eq[0])
		b, _ := ParseVersion(eq[1])
		if c := a.Compare(b); c != 0 {
			t.Errorf("Compare(%s, %s) = %d, want 0", eq[0], eq[1], c)
		}
	}
	v, _ := ParseVersion("v1.2-rc1+b")
	if s := v.String(); s != "1.2.0-rc1+b" {
		t.Errorf("String() = %q", s)
	}
}

func TestRange(t *testing.T) {
	tests := []struct {
		rng     string
		in, out []string
	}{
		{">=1.2.0 <2", []string{"1.2.0", "1.9.9", "v1.5"}, []string{"1.1.9", "2.0.0", "2.0.0-rc1", "1.5.0-rc1", "latest"}},
		{"^41", []string{"41", "41.1", "41.0.1"}, []string{"40", "42", "41-2410011200", "42.0.0-0"}},
		{"~1.2", []string{"1.2.0", "1.2.9"}, []string{"1.3.0", "1.1.9"}},
		{"~1.2.3", []string{"1.2.3", "1.2.10"}, []string{"1.3.0", "1.2.2"}},
		{"~1", []string{"1.0.0", "1.9"}, []string{"2.0.0", "0.9"}},
		{"~>1.2", []string{"1.2.0", "1.2.9"}, []string{"1.3.0"}},
		{"1.x", []string{"1.0.0", "1.99.1"}, []string{"2.0.0", "0.9"}},
		{"1", []string{"1.0.0", "1.99.1"}, []string{"2.0.0", "0.9"}},
		{"1.2.x", []string{"1.2.0", "1.2.5"}, []string{"1.3.0"}},
		{"1.2.*", []string{"1.2.0", "1.2.5"}, []string{"1.3.0"}},
		{"*", []string{"0.0.0", "5.6.7"}, []string{"1.0.0-rc1", "latest"}},
		{"X", []string{"0.0.0", "5.6.7"}, []string{"1.0.0-rc1"}},
		{"40 - 42", []string{"40", "41.5", "42.9.9"}, []string{"39.9", "43", "42.1.0-rc1"}},
		{"1.2.3 - 2.3.4", []string{"1.2.3", "2.3.4"}, []string{"1.2.2", "2.3.5"}},
		{"1.2 - 2.3.4", []string{"1.2.0"}, []string{"1.1.9"}},
		{"1.2.3 - 2.3", []string{"2.3.9"}, []string{"2.4.0"}},
		{"* - 2", []string{"0.0.1", "2.9"}, []string{"3.0"}},
		{"^0.2.3", []string{"0.2.3", "0.2.9"}, []string{"0.3.0", "0.2.2"}},
		{"^0.0.3", []string{"0.0.3"}, []string{"0.0.4", "0.0.2"}},
		{"^0.0", []string{"0.0.9"}, []string{"0.1.0"}},
		{"^0.x", []string{"0.9.9"}, []string{"1.0.0"}},
		{"^0", []string{"0.9.9"}, []string{"1.0.0"}},
		{"^1.2.x", []string{"1.2.0", "1.9.0"}, []string{"2.0.0", "1.1.0"}},
		{"^*", []string{"0.0.0", "9.0.0"}, []string{"9.0.0-rc1"}},
		{">1", []string{"2.0.0"}, []string{"1.9.9", "2.0.0-rc1"}},
		{">1.2", []string{"1.3.0"}, []string{"1.2.9"}},
		{">1.2.3", []string{"1.2.4"}, []string{"1.2.3"}},
		{"<1.2", []string{"1.1.9"}, []string{"1.2.0", "1.2.0-rc1"}},
		{"<=1.2", []string{"1.2.9"}, []string{"1.3.0"}},
		{"<1", []string{"0.9"}, []string{"1.0.0"}},
		{"<=1.2.3", []string{"1.2.3"}, []string{"1.2.4"}},
		{"=1.2.3", []string{"1.2.3", "v1.2.3"}, []string{"1.2.4"}},
		{"1.2.3", []string{"1.2.3"}, []string{"1.2.4", "1.2.3-rc1"}},
		{"=1.2", []string{"1.2.7"}, []string{"1.3"}},
		{"v1.2", []string{"1.2.7"}, []string{"1.3"}},
		{"!=1.2.3", []string{"1.2.4"}, []string{"1.2.3"}},
		{"!=1.2", []string{"1.3.0", "1.1.0"}, []string{"1.2.0", "1.2.5"}},
		{">= 3.12.0", []string{"3.12.0", "3.13"}, []string{"3.11"}},
		{">=1.0.0, <2.0.0", []string{"1.5"}, []string{"2.0"}},
		{"1.x || >=3", []string{"1.5", "3.0", "4.0"}, []string{"2.5"}},
		{"<1 || >2", []string{"0.5", "3.0"}, []string{"1.5", "2.0", "2.5"}},
		// Prereleases: only with a prerelease of the same major.minor.patch
		// in the same alternative.
		{">=1.2.3-rc1 <2", []string{"1.2.3-rc2", "1.2.3", "1.5.0"}, []string{"1.2.4-rc1", "1.2.3-beta"}},
		{"1.2.3-rc1", []string{"1.2.3-rc1"}, []string{"1.2.3-rc2", "1.2.3"}},
		{"^1.2.3-beta.2", []string{"1.2.3-beta.3", "1.2.3-beta.11", "1.9.0"}, []string{"1.2.3-beta.1", "1.2.4-beta.3", "2.0.0-0"}},
		{"~41.0.0-0", []string{"41-2410011200", "41", "41.0.1"}, []string{"40", "41.0.1-1"}},
		{">=41.0.0-0 <41.0.1 || >=42", []string{"41-2410011200", "42"}, []string{"42-2504011200"}},
		{"!=1.2.3-rc1", []string{"1.2.4"}, []string{"1.2.3-rc2"}},
		// Empty sets and overflow.
		{">1 <0", nil, []string{"0.5", "1.5"}},
		{"<*", nil, []string{"0.0.0", "1.0.0"}},
		{">x", nil, []string{"0.0.0", "1.0.0"}},
		{"!=*", nil, []string{"0.0.0"}},
		{">=*", []string{"0.0.0", "1.0.0"}, nil},
		{"<=*", []string{"0.0.0", "1.0.0"}, nil},
		{">18446744073709551615", nil, []string{"18446744073709551615.1"}},
		{">18446744073709551615.18446744073709551615", nil, []string{"18446744073709551615.18446744073709551615.1"}},
		{"18446744073709551615.x", []string{"18446744073709551615.0.0"}, []string{"0.0.0"}},
		{"^18446744073709551615", []string{"18446744073709551615.5"}, []string{"1.0"}},
		{"^0.0.18446744073709551615", []string{"0.0.18446744073709551615"}, []string{"0.1.0"}},
		{"~1.18446744073709551615", []string{"1.18446744073709551615.3"}, []string{"2.0"}},
		{"!=1.18446744073709551615", []string{"1.0"}, []string{"1.18446744073709551615.7"}},
	}
	for _, tt := range tests {
		r, err := ParseRange(tt.rng)
		if err != nil {
			t.Errorf("ParseRange(%q): %v", tt.rng, err)
			continue
		}
		if r.String() != tt.rng {
			t.Errorf("String() = %q, want %q", r.String(), tt.rng)
		}
		for _, v := range tt.in {
			if !r.MatchTag(v) {
				t.Errorf("%q does not contain %s", tt.rng, v)
			}
		}
		for _, v := range tt.out {
			if r.MatchTag(v) {
				t.Errorf("%q contains %s", tt.rng, v)
			}
		}
	}
}

func TestParseRangeErrors(t *testing.T) {
	tests := []struct{ rng, want string }{
		{"", `invalid semver range "": it is empty: expected comparators such as ">=1.2.0 <2", or "*" for any version`},
		{"  ", `invalid semver range "  ": it is empty: expected comparators such as ">=1.2.0 <2", or "*" for any version`},
		{">=1 ||", `invalid semver range ">=1 ||": an alternative is empty: expected a range on both sides of "||"`},
		{"||1", `invalid semver range "||1": an alternative is empty: expected a range on both sides of "||"`},
		{">=", `invalid semver range ">=": ">=" is not followed by a version`},
		{"1 <", `invalid semver range "1 <": "<" is not followed by a version`},
		{"1 - 2 - 3", `invalid semver range "1 - 2 - 3": a hyphen range is written "A - B" with nothing else in its alternative`},
		{">=1 -", `invalid semver range ">=1 -": a hyphen range is written "A - B" with nothing else in its alternative`},
		{"1.2.3.4", `invalid semver range "1.2.3.4": "1.2.3.4" has more than three numbers (major.minor.patch)`},
		{"x.1", `invalid semver range "x.1": "x.1": a number follows a wildcard; write x`},
		{"1.x.3", `invalid semver range "1.x.3": "1.x.3": a number follows a wildcard; write 1.x`},
		{"1.2-rc1", `invalid semver range "1.2-rc1": "1.2-rc1": a prerelease needs all of major.minor.patch`},
		{"abc", `invalid semver range "abc": "abc" is not a version; expected numbers or x, such as 1.2.3, 1.2 or 1.x`},
		{"1.a", `invalid semver range "1.a": "1.a" is not a version: "a" is not a number; expected numbers or x, such as 1.2.3, 1.2 or 1.x`},
		{"1..2", `invalid semver range "1..2": "1..2" is not a version: a number is missing; expected numbers or x, such as 1.2.3, 1.2 or 1.x`},
		{"99999999999999999999", `invalid semver range "99999999999999999999": "99999999999999999999" is not a version: "99999999999999999999" is too large; expected numbers or x, such as 1.2.3, 1.2 or 1.x`},
		{">=1.2.3-", `invalid semver range ">=1.2.3-": "1.2.3-": the prerelease after "-" is not dot-separated letters, digits and hyphens`},
		{"1.2.3+", `invalid semver range "1.2.3+": "1.2.3+": the build metadata after "+" is not dot-separated letters, digits and hyphens`},
		{"=>1", `invalid semver range "=>1": ">1" is not a version; expected numbers or x, such as 1.2.3, 1.2 or 1.x`},
		{"^", `invalid semver range "^": "^" is not followed by a version`},
		{"^^1", `invalid semver range "^^1": "^1" is not a version; expected numbers or x, such as 1.2.3, 1.2 or 1.x`},
	}
	for _, tt := range tests {
		r, err := ParseRange(tt.rng)
		if err == nil {
			t.Errorf("ParseRange(%q) = %v, want an error", tt.rng, r)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("ParseRange(%q) error:\n got %s\nwant %s", tt.rng, err, tt.want)
		}
	}
}

func FuzzSemverRange(f *testing.F) {
	for _, s := range []string{">=1.2.0 <2", "^41", "~1.2", "1.x", "40 - 42", "1.x || >=3", ">=1.2.3-rc1 <2", "!=1.2", ">= 3.12.0, < 4", "*", "^0.0.x", "v1.2.3+b"} {
		f.Add(s, "1.2.3")
		f.Add(s, "41-2410011200")
	}
	f.Add("18446744073709551615.x", "18446744073709551615.18446744073709551615.18446744073709551615-0")
	f.Fuzz(func(t *testing.T, rng, tag string) {
		r, err := ParseRange(rng)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid semver range ") {
				t.Fatalf("error %q does not say what it is about", err)
			}
			return
		}
		if r.String() != rng {
			t.Fatalf("String() = %q, want %q", r.String(), rng)
		}
		v, err := ParseVersion(tag)
		if err != nil {
			if r.MatchTag(tag) {
				t.Fatalf("%q matches %q, which is not a version", rng, tag)
			}
			return
		}
		if v.Compare(v) != 0 {
			t.Fatalf("%s != itself", v)
		}
		if w, err := ParseVersion(v.String()); err != nil || w.Compare(v) != 0 {
			t.Fatalf("String() %q does not read back: %v", v, err)
		}
		// A range is the union of its alternatives.
		any := false
		for _, alt := range strings.Split(rng, "||") {
			ar, err := ParseRange(alt)
			if err != nil {
				t.Fatalf("alternative %q of %q: %v", alt, rng, err)
			}
			any = any || ar.Match(v)
		}
		if got := r.Match(v); got != any {
			t.Fatalf("%q.Match(%s) = %v, but its alternatives say %v", rng, tag, got, any)
		}
	})
}

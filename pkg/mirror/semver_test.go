package mirror

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-cmp/cmp"
)

// skopeoSemver is what skopeo sync selects for images-by-semver, written as
// cmd/skopeo/sync.go (semverFilterCollection) writes it: the constraint by
// semver.NewConstraint, each tag by semver.NewVersion, skipped when it does
// not parse, kept when Check says so. ok is false for a constraint skopeo
// refuses.
func skopeoSemver(constraint string, tags []string) (selected []string, ok bool) {
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return nil, false
	}
	for _, tag := range tags {
		v, err := semver.NewVersion(tag)
		if err != nil {
			continue
		}
		if c.Check(v) {
			selected = append(selected, tag)
		}
	}
	return selected, true
}

// semverTags are tags as registries hold them: releases, prereleases,
// dated builds, words, and tags that only look like versions.
var semverTags = []string{
	"3.11.9", "3.12", "3.12.0", "3.12.0-0", "3.12.0-01", "3.12.1-0", "3.12.1-alpine", "3.12.1-alpine3.19",
	"4.0.0-beta", "4.0.0-beta.2", "4", "v3.15.0", "V3.15.0", "3.15", "41", "41-2410011200", "41.1", "42",
	"24.04", "24.10", "1.2", "1.02", "01.2.3", "1.2.3-rc1", "1.2.3-rc.2", "1.2.3", "1.2.4-rc1", "1.2.3+build.5",
	"1.2.3.4", "latest", "stable", "9", "9.10", "9.9", "0.2.3", "0.0.4", "2.0.0-rc.1",
	"18446744073709551615", "18446744073709551616",
}

// semverConstraints are constraints as skopeo sync files write them, and
// some that skopeo refuses.
var semverConstraints = []string{
	">=3.12.0-0", ">= 3.12.0", ">=3.12", "=>3.12", "=> 3.12, < 4", ">= 3.12.0-0 < 4", ">3.12", "<3.12", "<=3.12",
	"3.12", "3.12.x", "3.x", "*", "x", "~3.12", "~> 3.12", "^3.12", "^41", "^0.2.3", "^0.0.4", "~1.2.3-rc1",
	">=1.2.3-rc1 <2", "40 - 42", "1.2 - 3", "!=3.12", ">=1.2, <2 || >=40", ">= 24.04", "=41", "41",
	">= 1.x.2", ">=9", "v3.15.0", "=v3.15.0",
	// Refused by skopeo.
	"V3.15.0", "", "latest", "> = 1", "!!", ">=1.2 ||", ">=1.2.3-01", "1.2.3 - ",
}

// TestSemverAsSkopeo checks that every constraint selects what skopeo sync
// selects from the same tags, through both formats: a skopeo sync file's
// images-by-semver and the native semver: key.
func TestSemverAsSkopeo(t *testing.T) {
	for _, constraint := range semverConstraints {
		t.Run(constraint, func(t *testing.T) {
			want, ok := skopeoSemver(constraint, semverTags)
			slices.Sort(want)

			file := fmt.Sprintf("localhost:5000:\n  images-by-semver:\n    app: %q\n", constraint)
			c, err := ParseConfig("s.yaml", []byte(file))
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if !ok {
				if len(c.Units) != 0 || len(c.Warnings) != 1 {
					t.Fatalf("skopeo refuses %q; ParseConfig gives units %+v, warnings %v", constraint, c.Units, c.Warnings)
				}
			} else {
				if len(c.Warnings) != 0 || len(c.Units) != 1 || len(c.Units[0].Images) != 1 {
					t.Fatalf("ParseConfig gives units %+v, warnings %v", c.Units, c.Warnings)
				}
				got, err := c.Units[0].Images[0].Select(semverTags)
				if err != nil {
					t.Fatal(err)
				}
				slices.Sort(got)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("skopeo file: Select (-skopeo +ours):\n%s", diff)
				}
			}

			if constraint == "" {
				return // no semver filter in the native format
			}
			got, err := ImageSpec{Repository: "app", Semver: constraint}.Select(semverTags)
			if (err == nil) != ok {
				t.Fatalf("native semver: Select error %v, skopeo accepts the constraint: %v", err, ok)
			}
			slices.Sort(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("native semver: Select (-skopeo +ours):\n%s", diff)
			}
		})
	}
}

// TestSemverIssueCases pins the cases where this package once disagreed
// with skopeo.
func TestSemverIssueCases(t *testing.T) {
	tests := []struct {
		constraint string
		tags, want []string
	}{
		// A numeric prerelease with a leading zero is no version; a
		// constraint naming a prerelease admits prereleases of every
		// version in its range.
		{">=3.12.0-0", []string{"3.11.9", "3.12.0-01", "3.12.1-0", "3.12.1-alpine", "4.0.0-beta", "3.12.0"}, []string{"3.12.0", "3.12.1-0", "3.12.1-alpine", "4.0.0-beta"}},
		// "V" is no version prefix, "v" is.
		{">= 3.12", []string{"V3.15.0", "v3.15.0", "3.11"}, []string{"v3.15.0"}},
		// "=>" is ">=".
		{"=>3.12", []string{"3.11", "3.12", "3.13.1"}, []string{"3.12", "3.13.1"}},
		// Dated builds are prereleases, outside a range that names none.
		{">=41", []string{"40", "41", "41-2410011200", "42"}, []string{"41", "42"}},
	}
	for _, tt := range tests {
		got, err := ImageSpec{Semver: tt.constraint}.Select(tt.tags)
		if err != nil {
			t.Errorf("%q: %v", tt.constraint, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%q: Select (-want +got):\n%s", tt.constraint, diff)
		}
	}
	// A constraint skopeo refuses is an error in the native format, which
	// names the constraint and what was expected.
	_, err := ImageSpec{Semver: "V3.15.0"}.Select(nil)
	if want := `semver: invalid semver constraint "V3.15.0": improper constraint: "V3.15.0"; expected a constraint such as ">= 3.12"`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Select = %v, want an error starting %q", err, want)
	}
}

// FuzzSemverSelect checks, for any constraint and tag, that a semver entry
// selects the tag exactly when skopeo sync would, and refuses exactly the
// constraints skopeo refuses, with an error that says what it is about.
func FuzzSemverSelect(f *testing.F) {
	for _, c := range semverConstraints {
		f.Add(c, "3.12.1-alpine")
		f.Add(c, "41-2410011200")
	}
	f.Add("18446744073709551615.x", "18446744073709551615.18446744073709551615.18446744073709551615-0")
	f.Fuzz(func(t *testing.T, constraint, tag string) {
		if constraint == "" {
			return // no semver filter in the native format
		}
		want, ok := skopeoSemver(constraint, []string{tag})
		got, err := ImageSpec{Semver: constraint}.Select([]string{tag})
		if (err == nil) != ok {
			t.Fatalf("Select error %v, skopeo accepts %q: %v", err, constraint, ok)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "semver: invalid semver constraint ") {
				t.Fatalf("error %q does not say what it is about", err)
			}
			return
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%q selects %q from %q; skopeo selects %q", constraint, got, tag, want)
		}
	})
}

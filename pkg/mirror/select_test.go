package mirror

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Tags as kubevirt/containerdisks and Ubuntu publish them.
var (
	fedoraTags = []string{"39", "40", "41", "42", "41-2410011200", "42-2504011200", "latest", "rawhide"}
	ubuntuTags = []string{"20.04", "22.04", "22.10", "24.04", "24.04-rc1", "24.10", "latest"}
)

func TestSelect(t *testing.T) {
	tests := []struct {
		name string
		spec ImageSpec
		tags []string
		want []string
	}{
		{"explicit tags", ImageSpec{Tags: []string{"42", "41"}}, fedoraTags, []string{"41", "42"}},
		{"explicit tags need no listing", ImageSpec{Tags: []string{"43", "sha256:0000000000000000000000000000000011111111111111111111111111111111"}}, nil, []string{"sha256:0000000000000000000000000000000011111111111111111111111111111111", "43"}},
		{"allow is anchored", ImageSpec{Allow: []string{`4[0-9]`}}, fedoraTags, []string{"40", "41", "42"}},
		{"allow regexes are alternatives", ImageSpec{Allow: []string{`39`, `raw.*`}}, fedoraTags, []string{"rawhide", "39"}},
		{"deny alone starts from every tag", ImageSpec{Deny: []string{`.*-.*`, `latest`}}, fedoraTags, []string{"rawhide", "39", "40", "41", "42"}},
		{"allow minus deny", ImageSpec{Allow: []string{`2[0-9]\..*`}, Deny: []string{`.*-rc.*`}}, ubuntuTags, []string{"20.04", "22.04", "22.10", "24.04", "24.10"}},
		{"semver alone", ImageSpec{Semver: ">=40"}, fedoraTags, []string{"40", "41", "42"}},
		{"semver keeps versions only, no prereleases", ImageSpec{Semver: "*"}, fedoraTags, []string{"39", "40", "41", "42"}},
		{"semver with a prerelease", ImageSpec{Semver: ">=41.0.0-0 <41.0.1"}, fedoraTags, []string{"41-2410011200", "41"}},
		{"semver and v prefixes", ImageSpec{Semver: "~1.9 || ~1.10"}, []string{"v1.9.0", "v1.10.0", "v2.0.0", "v1.10.1-rc.1", "1.10.0"}, []string{"v1.9.0", "1.10.0", "v1.10.0"}},
		{"newest alone, by version order", ImageSpec{Newest: 2}, fedoraTags, []string{"42-2504011200", "42"}},
		{"newest by semver", ImageSpec{Semver: ">=40", Newest: 2}, fedoraTags, []string{"41", "42"}},
		{"newest numerically, not by bytes", ImageSpec{Allow: []string{".*"}, Newest: 2}, []string{"9.9", "9.10", "10.0", "latest"}, []string{"9.10", "10.0"}},
		{"newest of four-number versions", ImageSpec{Newest: 1}, []string{"1.2.3.4", "1.2.3.10", "1.2.3.9"}, []string{"1.2.3.10"}},
		{"newest above the count", ImageSpec{Semver: "^41", Newest: 5}, fedoraTags, []string{"41"}},
		{"the example of the package doc", ImageSpec{Allow: []string{`2[0-9]\.04`}, Deny: []string{`.*-rc.*`}, Newest: 2}, ubuntuTags, []string{"22.04", "24.04"}},
		{"union of tags and the filter", ImageSpec{Tags: []string{"latest"}, Allow: []string{`4[0-9]`}, Newest: 1}, fedoraTags, []string{"latest", "42"}},
		{"deny does not apply to explicit tags", ImageSpec{Tags: []string{"41-2410011200"}, Allow: []string{`4[0-9].*`}, Deny: []string{`.*-.*`}}, fedoraTags, []string{"40", "41-2410011200", "41", "42"}},
		{"newest does not apply to explicit tags", ImageSpec{Tags: []string{"39"}, Semver: ">=40", Newest: 1}, fedoraTags, []string{"39", "42"}},
		{"duplicates", ImageSpec{Tags: []string{"41", "41"}, Allow: []string{"4[12]"}}, []string{"41", "42", "41", "42"}, []string{"41", "42"}},
		{"duplicates before newest", ImageSpec{Allow: []string{".*"}, Newest: 2}, []string{"1", "2", "2", "2"}, []string{"1", "2"}},
		{"nothing matches", ImageSpec{Allow: []string{"x"}}, fedoraTags, nil},
		{"no tags listed", ImageSpec{Allow: []string{".*"}}, nil, nil},
		{"regex syntax", ImageSpec{Allow: []string{`(?i)RC\d+|beta`}}, []string{"rc1", "RC22", "beta", "xrc1", "rc"}, []string{"beta", "rc1", "RC22"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.spec.Select(tt.tags)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Select (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSelectDeterministic checks that the selection depends on the set of
// tags only, not on the order the registry lists them in.
func TestSelectDeterministic(t *testing.T) {
	all := slices.Concat(fedoraTags, ubuntuTags, []string{"v1.9.0", "1.10.0", "v1.10.0", "9.10", "9.9", "1.2.3.4", "x"})
	specs := []ImageSpec{
		{Allow: []string{".*"}},
		{Allow: []string{".*"}, Newest: 5},
		{Semver: "*", Newest: 3},
		{Tags: []string{"b", "a"}, Deny: []string{"2.*"}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, spec := range specs {
		want, err := spec.Select(all)
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			tags := slices.Clone(all)
			rng.Shuffle(len(tags), func(i, j int) { tags[i], tags[j] = tags[j], tags[i] })
			got, _ := spec.Select(tags)
			if !slices.Equal(got, want) {
				t.Fatalf("%+v: Select(%q) = %q, want %q", spec, tags, got, want)
			}
		}
	}
}

func TestSelectErrors(t *testing.T) {
	tests := []struct {
		spec ImageSpec
		want string
	}{
		{ImageSpec{Allow: []string{"["}}, `allow: invalid regex "[": missing closing ]`},
		{ImageSpec{Deny: []string{"a**"}}, `deny: invalid regex "a**": invalid nested repetition operator: "**"`},
		{ImageSpec{Semver: ">=1 <"}, `semver: invalid semver constraint ">=1 <": improper constraint: ">=1 <"; ` + constraintHint},
		{ImageSpec{Newest: -1}, "newest: -1 is negative: expected how many of the newest tags to keep (0 keeps all)"},
	}
	for _, tt := range tests {
		got, err := tt.spec.Select([]string{"1"})
		if err == nil || err.Error() != tt.want {
			t.Errorf("%+v: Select = %q, %v; want the error %s", tt.spec, got, err, tt.want)
		}
	}
}

func TestNeedsTagList(t *testing.T) {
	for _, tt := range []struct {
		spec ImageSpec
		want bool
	}{
		{ImageSpec{Tags: []string{"1"}}, false},
		{ImageSpec{}, false},
		{ImageSpec{Tags: []string{"1"}, Allow: []string{"2"}}, true},
		{ImageSpec{Deny: []string{"2"}}, true},
		{ImageSpec{Semver: "1"}, true},
		{ImageSpec{Newest: 1}, true},
	} {
		if got := tt.spec.NeedsTagList(); got != tt.want {
			t.Errorf("%+v.NeedsTagList() = %v", tt.spec, got)
		}
	}
}

func TestSortTags(t *testing.T) {
	tests := []struct{ in, want []string }{
		// Every tag a version: semver precedence, ties by bytes.
		{[]string{"1.10", "1.9", "v1.9.0", "1.9.0", "1.9.0-rc.2", "1.9.0-rc.10", "2"}, []string{"1.9.0-rc.2", "1.9.0-rc.10", "1.9", "1.9.0", "v1.9.0", "1.10", "2"}},
		// Not every tag a version: the catalog's version order, in which
		// words come first and "10.0-rc1" comes after "10".
		{[]string{"9.10", "9.9", "latest", "v10", "10.0-rc1", "9.9.1.1", "alpha"}, []string{"alpha", "latest", "9.9", "9.9.1.1", "9.10", "v10", "10.0-rc1"}},
		// Semver precedence, from semver.org and the tag schemes of
		// containerdisk publishers: dated builds are prereleases.
		{
			[]string{"42", "42.0.0-0", "41", "41-99999999999999999999999", "41-2411011200", "41-2410011200", "9.10", "9.9", "2.0.0", "1.10.0", "1.1", "1.0.0", "1.0.0-rc.1", "1.0.0-beta.11", "1.0.0-beta.2", "1.0.0-beta", "1.0.0-alpha.beta", "1.0.0-alpha.1", "1.0.0-alpha", "1.0.0-0", "0.9.0"},
			[]string{"0.9.0", "1.0.0-0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.1", "1.10.0", "2.0.0", "9.9", "9.10", "41-2410011200", "41-2411011200", "41-99999999999999999999999", "41", "42.0.0-0", "42"},
		},
		{nil, nil},
	}
	for _, tt := range tests {
		got := slices.Clone(tt.in)
		SortTags(got)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("SortTags(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func ExampleImageSpec_Select() {
	spec := ImageSpec{
		Repository: "containerdisks/fedora",
		Tags:       []string{"latest"},
		Semver:     ">=40",
		Newest:     2,
	}
	tags, err := spec.Select([]string{"39", "40", "41", "42", "41-2410011200", "latest", "rawhide"})
	fmt.Println(tags, err)
	// Output: [latest 41 42] <nil>
}

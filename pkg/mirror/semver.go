package mirror

import (
	"fmt"

	"github.com/Masterminds/semver/v3"
)

// Semantic versions are those of github.com/Masterminds/semver/v3, read the
// way skopeo sync reads images-by-semver (cmd/skopeo/sync.go,
// semverFilterCollection): a constraint is semver.NewConstraint, a tag is
// semver.NewVersion (lenient: "v1.2", "41" and "24.04" read as 1.2.0, 41.0.0
// and 24.4.0; "V1.2", "latest" and "1.2.3.4" are no versions) and a tag is
// selected when Check says so. The native semver: key reads the same way, so
// that one file means the same thing in either syntax; see parseConstraint
// for what that means for npm-style ranges.

// constraintHint is what a semver constraint looks like, for errors.
const constraintHint = `expected a constraint such as ">= 3.12", "^41", "~1.2", "1.x", "40 - 42" or ">= 1.2, < 2 || 3.x" (github.com/Masterminds/semver, as skopeo sync reads images-by-semver)`

// parseConstraint parses a semver constraint as skopeo sync does. Unlike
// npm's node-semver, which this package followed before, a constraint that
// names a prerelease (">= 1.2.3-rc1 < 2") admits every prerelease in its
// range, not only those of 1.2.3; "=>" is ">="; and a prerelease identifier
// with a leading zero ("1.2.3-01") is no version.
func parseConstraint(s string) (*semver.Constraints, error) {
	c, err := semver.NewConstraint(s)
	if err != nil {
		return nil, fmt.Errorf("invalid semver constraint %q: %w; %s", s, err, constraintHint)
	}
	return c, nil
}

// matchTag reports whether tag reads as a version that c admits: skopeo's
// filter, which skips a tag semver.NewVersion cannot read.
func matchTag(c *semver.Constraints, tag string) bool {
	v, err := semver.NewVersion(tag)
	return err == nil && c.Check(v)
}

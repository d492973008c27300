package catalog

import (
	"strings"
	"unicode"
)

// CompareVersions orders release versions numerically: "9.10" > "9.9",
// "24.04" > "22.04", "10" > "9". A version with a prerelease suffix sorts
// before the same version without one ("41 Beta" < "41", "16.0-rc1" <
// "16.0"). It returns -1, 0 or +1.
func CompareVersions(a, b string) int {
	an, as := splitPrerelease(a)
	bn, bs := splitPrerelease(b)
	if c := compareParts(versionParts(an), versionParts(bn)); c != 0 {
		return c
	}
	switch {
	case as == bs:
		return 0
	case as == "":
		return 1
	case bs == "":
		return -1
	}
	return compareParts(versionParts(as), versionParts(bs))
}

// IsPrerelease reports whether a version carries a prerelease suffix such as
// "Beta" or "rc1".
func IsPrerelease(v string) bool {
	_, s := splitPrerelease(v)
	return s != ""
}

// splitPrerelease splits "41 Beta" into "41" and "beta": the release is the
// leading run of digits and dots, the suffix whatever follows it.
func splitPrerelease(v string) (release, suffix string) {
	v = strings.TrimSpace(v)
	i := 0
	for i < len(v) && (v[i] == '.' || (v[i] >= '0' && v[i] <= '9')) {
		i++
	}
	release = strings.TrimRight(v[:i], ".")
	suffix = strings.ToLower(strings.TrimLeft(v[i:], " -_~.+"))
	if i == 0 {
		// No leading number (e.g. "tumbleweed"): the whole is the release.
		return strings.ToLower(v), ""
	}
	return release, suffix
}

// versionParts splits a version into runs of digits and runs of other
// characters, dropping separators.
func versionParts(v string) []string {
	var parts []string
	cur := []rune{}
	kind := 0 // 1 digit, 2 other
	flush := func() {
		if len(cur) > 0 {
			parts = append(parts, string(cur))
			cur = cur[:0]
		}
	}
	for _, r := range v {
		k := 2
		switch {
		case unicode.IsDigit(r):
			k = 1
		case r == '.' || r == '-' || r == '_' || r == ' ' || r == '~' || r == '+':
			flush()
			kind = 0
			continue
		}
		if k != kind {
			flush()
		}
		kind = k
		cur = append(cur, r)
	}
	flush()
	return parts
}

func compareParts(a, b []string) int {
	for i := 0; i < len(a) || i < len(b); i++ {
		if i >= len(a) {
			return -1
		}
		if i >= len(b) {
			return 1
		}
		if c := comparePart(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

func comparePart(a, b string) int {
	ad, bd := isDigits(a), isDigits(b)
	switch {
	case ad && bd:
		a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if len(a) != len(b) {
			if len(a) < len(b) {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	case ad:
		return 1 // numbers sort after words: "1.0" > "1.beta"
	case bd:
		return -1
	}
	return strings.Compare(a, b)
}

func isDigits(s string) bool {
	for _, r := range s {
		if !unicode.IsDigit(r) {
			return false
		}
	}
	return s != ""
}

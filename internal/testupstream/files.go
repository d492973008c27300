package testupstream

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// redhatArches returns arches in the upstream spelling of Fedora, CentOS,
// AlmaLinux and openSUSE (x86_64, aarch64, s390x), accepting OCI names too,
// and all three when none are given. Other architectures (ppc64le) are
// passed through, so that tests can publish what KubeVirt does not run.
func redhatArches(arches []string) ([]string, error) {
	return spellArches(arches, []string{"x86_64", "aarch64", "s390x"},
		map[string]string{"amd64": "x86_64", "arm64": "aarch64"}, "x86_64, aarch64, s390x or their OCI names")
}

// debianArches returns arches in the spelling of Ubuntu and Debian (amd64,
// arm64, s390x), accepting x86_64 and aarch64 too, and def when none are
// given. Other architectures (ppc64el, riscv64) are passed through, so that
// tests can publish what KubeVirt does not run.
func debianArches(arches []string, def ...string) ([]string, error) {
	return spellArches(arches, def,
		map[string]string{"x86_64": "amd64", "aarch64": "arm64"}, "amd64, arm64, s390x or another Debian architecture name")
}

// spellArches returns arches, each once, lowercase and with the names
// aliases maps replaced, or def when none are given; expected says what
// an empty name should have been.
func spellArches(arches, def []string, aliases map[string]string, expected string) ([]string, error) {
	if len(arches) == 0 {
		return def, nil
	}
	var out []string
	for _, a := range arches {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" {
			return nil, fmt.Errorf("empty architecture: expected %s", expected)
		}
		if alias, ok := aliases[a]; ok {
			a = alias
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// fakeSum is a checksum for a listed file that has no content on the site.
func fakeSum(name string) string {
	h := sha256.Sum256([]byte("no such file: " + name))
	return hex.EncodeToString(h[:])
}

// fileSize returns the size of path relative to Dir, in decimal.
func (s *Site) fileSize(path string) string {
	fi, err := os.Stat(filepath.Join(s.Dir, filepath.FromSlash(path)))
	if err != nil {
		return "0"
	}
	return strconv.FormatInt(fi.Size(), 10)
}

// mkdirs creates directories relative to Dir, so that the site's listings
// show them.
func (s *Site) mkdirs(paths ...string) error {
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Join(s.Dir, filepath.FromSlash(p)), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// sortedKeys returns the keys of m in order, for checksum files that list
// their entries by name as upstream's do.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var gnuSumLine = regexp.MustCompile(`^([0-9a-f]+)  (.+)$`)

// readSums reads the GNU checksum file at path ("HEX  NAME" lines, sha256
// or sha512) into a map from name to checksum; a missing file reads as
// empty.
func (s *Site) readSums(path string) (map[string]string, error) {
	data, err := s.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sums := map[string]string{}
	for line := range strings.SplitSeq(string(data), "\n") {
		if m := gnuSumLine.FindStringSubmatch(line); m != nil {
			sums[m[2]] = m[1]
		}
	}
	return sums, nil
}

// gnuSums writes a GNU checksum file listing sums (name to checksum) by
// name, as upstream's do, with mark between checksum and name: "  " (text
// mode) or " *" (binary).
func gnuSums(sums map[string]string, mark string) []byte {
	var b strings.Builder
	for _, n := range sortedKeys(sums) {
		fmt.Fprintf(&b, "%s%s%s\n", sums[n], mark, n)
	}
	return []byte(b.String())
}

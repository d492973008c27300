package upstream

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
)

// Sum is one line of a checksum file: a file name and its checksum.
type Sum struct {
	File     string
	Checksum containerdisk.Checksum
}

var (
	// GNU coreutils: "hex  name" or "hex *name" (binary mode); openSUSE
	// writes "hex name" with one space.
	gnuLine = regexp.MustCompile(`^([0-9a-fA-F]{64}|[0-9a-fA-F]{128}) [ *]?(.+)$`)
	// BSD / --tag: "SHA256 (name) = hex".
	bsdLine = regexp.MustCompile(`^(SHA256|SHA512|sha256|sha512) ?\((.+)\) ?= ?([0-9a-fA-F]+)$`)
)

// ParseSums reads a checksum file in GNU ("HEX  NAME", "HEX *NAME") or BSD
// ("SHA256 (NAME) = HEX") form, sha256 or sha512, and returns its entries in
// file order. Lines that are neither (comments, PGP armour, wget logs, blank
// lines) are skipped, as are checksums of the wrong length for their
// algorithm. A name listed twice keeps its first checksum.
func ParseSums(data []byte) []Sum {
	var sums []Sum
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(strings.TrimSuffix(sc.Text(), "\r"))
		var s Sum
		if m := gnuLine.FindStringSubmatch(line); m != nil {
			algo := "sha256"
			if len(m[1]) == 128 {
				algo = "sha512"
			}
			s = Sum{File: strings.TrimSpace(m[2]), Checksum: containerdisk.Checksum{Algorithm: algo, Hex: strings.ToLower(m[1])}}
		} else if m := bsdLine.FindStringSubmatch(line); m != nil {
			algo := strings.ToLower(m[1])
			if len(m[3]) != hexLen(algo) {
				continue
			}
			s = Sum{File: m[2], Checksum: containerdisk.Checksum{Algorithm: algo, Hex: strings.ToLower(m[3])}}
		} else {
			continue
		}
		s.File = strings.TrimPrefix(s.File, "./")
		if s.File == "" || seen[s.File] {
			continue
		}
		seen[s.File] = true
		sums = append(sums, s)
	}
	return sums
}

// Lookup returns the checksum of file in sums.
func Lookup(sums []Sum, file string) (containerdisk.Checksum, bool) {
	for _, s := range sums {
		if s.File == file {
			return s.Checksum, true
		}
	}
	return containerdisk.Checksum{}, false
}

func hexLen(algo string) int {
	if algo == "sha512" {
		return 128
	}
	return 64
}

// ErrPlaceholderChecksum reports a checksum that upstream has not filled in
// yet, such as Fedora's prerelease entries whose sha256 is one repeated
// character or empty.
var ErrPlaceholderChecksum = errors.New("placeholder checksum")

// ParseDigest parses an upstream checksum: "HEX" (algorithm from its length,
// or defaultAlgo), "sha256:HEX", "sha512:HEX", or a base64 digest as Debian
// writes it ("sha512:BASE64"). An empty value, one of the wrong length, or a
// placeholder (all one character) is an error.
func ParseDigest(s, defaultAlgo string) (containerdisk.Checksum, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return containerdisk.Checksum{}, fmt.Errorf("%w: empty", ErrPlaceholderChecksum)
	}
	algo, value := defaultAlgo, s
	if a, v, ok := strings.Cut(s, ":"); ok {
		algo, value = strings.ToLower(a), v
	}
	if algo != "sha256" && algo != "sha512" {
		return containerdisk.Checksum{}, fmt.Errorf("checksum %q: algorithm %q: expected sha256 or sha512", s, algo)
	}
	want := hexLen(algo)
	if len(value) != want {
		// Debian writes the digest in base64, without padding.
		raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(value, "="))
		if err != nil || len(raw)*2 != want {
			return containerdisk.Checksum{}, fmt.Errorf("checksum %q: expected %d hex digits or the base64 of a %s digest", s, want, algo)
		}
		value = hex.EncodeToString(raw)
	}
	if _, err := hex.DecodeString(value); err != nil {
		return containerdisk.Checksum{}, fmt.Errorf("checksum %q: expected %d hex digits", s, want)
	}
	value = strings.ToLower(value)
	if strings.Count(value, value[:1]) == len(value) {
		return containerdisk.Checksum{}, fmt.Errorf("%w: %s", ErrPlaceholderChecksum, s)
	}
	return containerdisk.Checksum{Algorithm: algo, Hex: value}, nil
}

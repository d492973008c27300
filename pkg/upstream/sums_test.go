package upstream

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
)

const (
	hex256a = "1111111111111111111111111111111111111111111111111111111111111112"
	hex256b = "abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdef0123"
	hex512  = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
)

func TestParseSums(t *testing.T) {
	input := strings.Join([]string{
		"-----BEGIN PGP SIGNED MESSAGE-----",
		"Hash: SHA256",
		"",
		"# Example-Cloud-1.0.x86_64.qcow2: 1234 bytes",
		"SHA256 (Example-Cloud-1.0.x86_64.qcow2) = " + hex256a,
		hex256b + " *ubuntu-24.04-server-cloudimg-amd64.img",
		hex256b + "  ./gnu-two-spaces.qcow2",
		hex512 + "  debian.qcow2",
		"SHA512 (bsd512.raw) = " + strings.ToUpper(hex512),
		"SHA256 (short.qcow2) = abcd",
		"deadbeef  too-short.qcow2",
		"--2021-11-19 18:16:53--  https://cloud.centos.org/centos/9-stream/x86_64/images/CHECKSUM",
		"Length: 1553 (1.5K)",
		hex256b + "  Example-Cloud-1.0.x86_64.qcow2",
		"SHA256 (with space name.qcow2) = " + hex256b + "\r",
		hex256a + " one-space.qcow2",
	}, "\n")
	got := ParseSums([]byte(input))
	want := []Sum{
		{"Example-Cloud-1.0.x86_64.qcow2", containerdisk.Checksum{Algorithm: "sha256", Hex: hex256a}},
		{"ubuntu-24.04-server-cloudimg-amd64.img", containerdisk.Checksum{Algorithm: "sha256", Hex: hex256b}},
		{"gnu-two-spaces.qcow2", containerdisk.Checksum{Algorithm: "sha256", Hex: hex256b}},
		{"debian.qcow2", containerdisk.Checksum{Algorithm: "sha512", Hex: hex512}},
		{"bsd512.raw", containerdisk.Checksum{Algorithm: "sha512", Hex: hex512}},
		{"with space name.qcow2", containerdisk.Checksum{Algorithm: "sha256", Hex: hex256b}},
		{"one-space.qcow2", containerdisk.Checksum{Algorithm: "sha256", Hex: hex256a}},
	}
	if len(got) != len(want) {
		t.Fatalf("ParseSums returned %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if c, ok := Lookup(got, "Example-Cloud-1.0.x86_64.qcow2"); !ok || c.Hex != hex256a {
		t.Errorf("Lookup kept %v %v; want the first checksum listed", c, ok)
	}
	if _, ok := Lookup(got, "missing.qcow2"); ok {
		t.Error("Lookup found a file that is not listed")
	}
}

func TestParseDigest(t *testing.T) {
	tests := []struct {
		in, algo string
		want     string
		err      bool
		holder   bool
	}{
		{in: hex256a, algo: "sha256", want: "sha256:" + hex256a},
		{in: "SHA256:" + hex256b, algo: "sha512", want: "sha256:" + hex256b},
		{in: "sha512:" + hex512, algo: "sha256", want: "sha512:" + hex512},
		// Debian's digest: base64 without padding.
		{in: "sha512:ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8AESIzRFVmd4iZqrvM3e7/ABEiM0RVZneImaq7zN3u/w", algo: "sha256", want: "sha512:" + hex512},
		{in: "", algo: "sha256", err: true, holder: true},
		{in: strings.Repeat("a", 64), algo: "sha256", err: true, holder: true},
		{in: "abcd", algo: "sha256", err: true},
		{in: "md5:" + hex256a, algo: "sha256", err: true},
		{in: strings.Repeat("g", 64), algo: "sha256", err: true},
	}
	for _, tt := range tests {
		got, err := ParseDigest(tt.in, tt.algo)
		if tt.err {
			if err == nil {
				t.Errorf("ParseDigest(%q) = %v, want an error", tt.in, got)
			}
			if tt.holder && !errors.Is(err, ErrPlaceholderChecksum) {
				t.Errorf("ParseDigest(%q) = %v, want ErrPlaceholderChecksum", tt.in, err)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("ParseDigest(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParseSums(f *testing.F) {
	f.Add([]byte("SHA256 (a.qcow2) = " + hex256a + "\n" + hex256b + " *b.img\n# junk\n"))
	f.Add([]byte(hex512 + "  c.qcow2\r\n"))
	f.Add([]byte("SHA512 (x) = " + hex512))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, s := range ParseSums(data) {
			if s.File == "" {
				t.Fatal("entry without a file name")
			}
			if len(s.Checksum.Hex) != hexLen(s.Checksum.Algorithm) {
				t.Fatalf("checksum %v has the wrong length", s.Checksum)
			}
			if _, err := containerdisk.ParseChecksum(s.Checksum.String()); err != nil {
				t.Fatalf("checksum %v does not parse back: %v", s.Checksum, err)
			}
		}
	})
}

func FuzzParseDigest(f *testing.F) {
	f.Add("sha512:ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8AESIzRFVmd4iZqrvM3e7/ABEiM0RVZneImaq7zN3u/w")
	f.Add(hex256a)
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseDigest(s, "sha256")
		if err != nil {
			return
		}
		if _, err := containerdisk.ParseChecksum(c.String()); err != nil {
			t.Fatalf("ParseDigest(%q) = %v, which does not parse back: %v", s, c, err)
		}
	})
}

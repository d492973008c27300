package pipeline

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
)

func TestReleaseRoundTrip(t *testing.T) {
	in := []catalog.Release{
		{Name: "fedora", Version: "42", Arch: "arm64", URL: "https://x/f.qcow2", Build: "1.1", Tags: []string{"42-1.1"}, Stable: true, Latest: true,
			Checksum: containerdisk.Checksum{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)},
			Metadata: catalog.Metadata{DefaultUser: "fedora", Preference: "fedora.arm64"}},
		{Name: "debian", Version: "13", Arch: "amd64", URL: "https://x/d.qcow2.xz", Compression: "xz",
			Checksum: containerdisk.Checksum{Algorithm: "sha512", Hex: strings.Repeat("cd", 64)}},
		{Name: "fedora", Version: "43-beta", Arch: "s390x", Err: errors.New("no usable sha256")},
	}
	var buf bytes.Buffer
	enc := NewEncoder(&buf)
	for _, r := range in {
		if err := enc.EncodeRelease(FromRelease(r)); err != nil {
			t.Fatal(err)
		}
	}
	var out []catalog.Release
	if err := DecodeReleases(&buf, func(r catalog.Release) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("decoded %d releases, want %d", len(out), len(in))
	}
	for i := range in {
		a, b := in[i], out[i]
		if a.Key() != b.Key() || a.Arch != b.Arch || a.URL != b.URL || a.Checksum != b.Checksum || a.Compression != b.Compression ||
			a.Latest != b.Latest || a.Stable != b.Stable || a.Metadata != b.Metadata || strings.Join(a.Tags, ",") != strings.Join(b.Tags, ",") {
			t.Errorf("release %d: got %+v, want %+v", i, b, a)
		}
		if (a.Err == nil) != (b.Err == nil) || (a.Err != nil && a.Err.Error() != b.Err.Error()) {
			t.Errorf("release %d: error %v, want %v", i, b.Err, a.Err)
		}
	}
}

func TestDecodeReleasesErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"\n{\"name\":\"fedora\"}\n", `stdin line 2: not a release (expected "name", "version", "arch" and "url")`},
		{`{"name":"a","version":"1","arch":"sparc","url":"u","checksum":"sha256:` + strings.Repeat("a1", 32) + `"}`, "unknown architecture"},
		{`{"name":"a","version":"1","arch":"amd64","url":"u"}`, `no "checksum"`},
		{`{"name":"a","version":"1","arch":"amd64","url":"u","checksum":"md5:00"}`, "md5"},
		{`{"name":"a","version":"1","arch":"amd64","url":"u","checksum":"sha256:` + strings.Repeat("a1", 32) + `","compression":"lz4"}`, `compression "lz4"`},
		{`{"reference":"oci:x:1","digest":"sha256:00"}`, `unknown field "reference"`},
		{"not json", "stdin line 1: not a release"},
	}
	for _, tt := range tests {
		err := DecodeReleases(strings.NewReader(tt.in), func(catalog.Release) error { return nil })
		var de *ReleaseDecodeError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("DecodeReleases(%q) = %v, want a ReleaseDecodeError containing %q", tt.in, err, tt.want)
		}
	}
}

func TestDecodeRecords(t *testing.T) {
	in := "{\"reference\":\"oci:a:1\",\"digest\":\"sha256:" + strings.Repeat("0", 64) + "\",\"name\":\"fedora\",\"version\":\"42\",\"latest\":true}\n\n{\"error\":\"boom\"}\n{\"digest\":\"x\"}\n"
	var got []Record
	err := Decode(strings.NewReader(in), func(r Record, invalid error) error {
		if invalid != nil {
			t.Errorf("record %+v refused: %v", r, invalid)
		}
		got = append(got, r)
		return nil
	})
	var de *DecodeError
	if !errors.As(err, &de) || de.Line != 4 {
		t.Fatalf("Decode = %v, want a DecodeError on line 4", err)
	}
	if len(got) != 2 || got[0].Name != "fedora" || !got[0].Latest || got[1].Error != "boom" {
		t.Errorf("records = %+v", got)
	}
}

// TestDecodeLongLine checks that one line is read up to 4 MiB, not until
// the memory gives out, and that a longer one is an input error naming its
// line.
func TestDecodeLongLine(t *testing.T) {
	in := io.MultiReader(strings.NewReader("{\"reference\":\"oci:a:1\"}\n\n"), strings.NewReader(`{"reference":"`), zeros{})
	n := 0
	err := Decode(in, func(Record, error) error { n++; return nil })
	var de *DecodeError
	if !errors.As(err, &de) || de.Line != 3 || !strings.Contains(err.Error(), "stdin line 3: not a JSON record (longer than 4 MiB, the limit for one line)") {
		t.Errorf("Decode = %v, want a DecodeError on line 3 naming the limit", err)
	}
	if n != 1 {
		t.Errorf("%d records before the long line, want 1", n)
	}
	err = DecodeReleases(io.MultiReader(strings.NewReader("\n"), zeros{}), func(catalog.Release) error { return nil })
	if !errors.As(err, &de) || de.Line != 2 {
		t.Errorf("DecodeReleases = %v, want a DecodeError on line 2", err)
	}
}

// zeros is an endless stream without a newline, as /dev/zero is.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

package pipeline

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"fedora", true},
		{"centos-stream", true},
		{"my/ns/name", true},
		{"opensuse-leap", true},
		{"a__b.c", true},
		{"ubuntu2404", true},
		{"../../x", false},
		{"a/../b", false},
		{"..", false},
		{".", false},
		{"a/./b", false},
		{"/abs", false},
		{"abs/", false},
		{"a//b", false},
		{`x\y`, false},
		{"\x1b[31m", false},
		{"fedora\n", false},
		{"Fedora", false},
		{"a b", false},
		{"-x", false},
		{"x:1", false},
		{"x@sha256", false},
		{"", false},
		{strings.Repeat("a", 256), false},
	}
	for _, tt := range tests {
		err := ValidateName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateName(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func TestValidateTagAndVersion(t *testing.T) {
	tests := []struct {
		tag          string
		tagOK, verOK bool
	}{
		{"42", true, true},
		{"9-stream", true, true},
		{"42-1.1", true, true},
		{"24.04", true, true},
		{"_x", true, true},
		{strings.Repeat("a", 117), true, true},
		{strings.Repeat("a", 118), true, false},
		{strings.Repeat("a", 128), true, false},
		{strings.Repeat("a", 129), false, false},
		{strings.Repeat("a", 200), false, false},
		{"", false, false},
		{".x", false, false},
		{"-x", false, false},
		{"..", false, false},
		{"../../x", false, false},
		{"a/b", false, false},
		{`x\y`, false, false},
		{"\x1b[31m", false, false},
		{"a:b", false, false},
	}
	for _, tt := range tests {
		if err := ValidateTag(tt.tag); (err == nil) != tt.tagOK {
			t.Errorf("ValidateTag(%q) = %v, want ok %v", tt.tag, err, tt.tagOK)
		}
		if err := ValidateVersion(tt.tag); (err == nil) != tt.verOK {
			t.Errorf("ValidateVersion(%q) = %v, want ok %v", tt.tag, err, tt.verOK)
		}
	}
}

func TestRecordValidate(t *testing.T) {
	dgst := "sha256:" + strings.Repeat("ab", 32)
	good := Record{Reference: "oci:/tmp/l/fedora:42", Digest: dgst, Name: "fedora", Version: "42", Tags: []string{"42-1.1"},
		Push: &Push{Tagged: []string{"42-2612031327", "42"}}, Images: []Image{{Platform: "linux/amd64", Digest: dgst}}}
	if err := good.Validate(3); err != nil {
		t.Fatalf("Validate(%+v) = %v, want nil", good, err)
	}
	tests := []struct {
		edit  func(*Record)
		field string
		shown string
	}{
		{func(r *Record) { r.Name = "../../x" }, "name", `"../../x"`},
		{func(r *Record) { r.Name = "\x1b[31mred" }, "name", `"\x1b[31mred"`},
		{func(r *Record) { r.Version = "../1" }, "version", `"../1"`},
		{func(r *Record) { r.Tags = []string{"ok", strings.Repeat("t", 200)} }, "tags[1]", `"ttt`},
		{func(r *Record) { r.Tags = []string{""} }, "tags[0]", `""`},
		{func(r *Record) { r.Push.Tagged = []string{"a/../../b"} }, "push.tagged[0]", `"a/../../b"`},
		{func(r *Record) { r.Digest = "sha256:00" }, "digest", `"sha256:00"`},
		{func(r *Record) { r.Images[0].Digest = "../x" }, "images[0].digest", `"../x"`},
		{func(r *Record) { r.Reference = "user:secret@registry.example.com/x:1" }, "reference", `"***@registry.example.com/x:1"`},
	}
	for _, tt := range tests {
		r := good
		r.Push = &Push{Tagged: append([]string(nil), good.Push.Tagged...)}
		r.Images = append([]Image(nil), good.Images...)
		tt.edit(&r)
		err := r.Validate(3)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field || fe.Line != 3 {
			t.Errorf("Validate after editing %s = %v, want a FieldError on line 3 for %q", tt.field, err, tt.field)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "stdin line 3: \""+tt.field+"\" is "+tt.shown) || !strings.Contains(msg, "expected ") {
			t.Errorf("message %q: want it to name line 3, the field %q, show %s and say what is expected", msg, tt.field, tt.shown)
		}
		if strings.ContainsAny(msg, "\x1b\n") || strings.Contains(msg, "secret") {
			t.Errorf("message %q prints a control character or a password", msg)
		}
	}
}

func TestDecodeRefusesFieldsAlone(t *testing.T) {
	dgst := "sha256:" + strings.Repeat("ab", 32)
	in := `{"reference":"oci:/t/a:1","digest":"` + dgst + `","name":"../../x","version":"1"}
{"reference":"oci:/t/b:1","digest":"` + dgst + `","name":"b","version":"1"}
{"reference":"oci:/t/c:1","digest":"` + dgst + `","name":"c","version":"1","tags":["` + strings.Repeat("x", 200) + `"]}
`
	var lines []int
	var names []string
	err := Decode(strings.NewReader(in), func(r Record, invalid error) error {
		var fe *FieldError
		if errors.As(invalid, &fe) {
			lines = append(lines, fe.Line)
		} else if invalid == nil {
			names = append(names, r.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || lines[0] != 1 || lines[1] != 3 || len(names) != 1 || names[0] != "b" {
		t.Errorf("refused lines %v, accepted %v; want lines [1 3] refused and b accepted", lines, names)
	}
}

func TestDecodeReleasesRefusesFieldsAlone(t *testing.T) {
	sum := `"checksum":"sha256:` + strings.Repeat("a1", 32) + `"`
	in := `{"name":"../../x","version":"1","arch":"amd64","url":"u",` + sum + `}
{"name":"ok","version":"1","arch":"amd64","url":"u",` + sum + `}
{"name":"ok","version":"a/b","arch":"amd64","url":"u",` + sum + `}
`
	var got []catalog.Release
	if err := DecodeReleases(strings.NewReader(in), func(r catalog.Release) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Err == nil || got[1].Err != nil || got[2].Err == nil {
		t.Fatalf("releases %+v: want the first and third refused in Err, the second accepted", got)
	}
	if msg := got[0].Err.Error(); !strings.Contains(msg, `stdin line 1: "name" is "../../x"`) {
		t.Errorf("error %q: want it to name line 1 and the field", msg)
	}
	if msg := got[2].Err.Error(); !strings.Contains(msg, `stdin line 3: "version" is "a/b"`) {
		t.Errorf("error %q: want it to name line 3 and the field", msg)
	}
	if err := ValidateGroup(catalog.Group{Name: "../x", Version: "1"}); err == nil {
		t.Errorf("ValidateGroup accepted the name ../x")
	}
}

// FuzzDecodeFields decodes arbitrary lines: a record that passes its
// checks never names a place outside the directory it goes below, and a
// tag or version it carries is always a tag.
func FuzzDecodeFields(f *testing.F) {
	for _, seed := range []string{
		`{"reference":"oci:t:1","name":"fedora","version":"42","tags":["42-1.1"]}`,
		`{"reference":"oci:t:1","name":"../../x","version":"1"}`,
		`{"reference":"oci:t:1","name":"a/../b"}`,
		`{"reference":"oci:t:1","name":"/abs"}`,
		`{"reference":"oci:t:1","name":"x\\y"}`,
		`{"reference":"oci:t:1","name":"\u001b[31mred"}`,
		`{"reference":"user:pw@host.example/r:1"}`,
		`{"reference":"oci:t:1","version":"..","tags":[".", "-x", ""]}`,
		`{"reference":"oci:t:1","digest":"sha256:../../etc/passwd"}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		_ = Decode(strings.NewReader(line), func(r Record, invalid error) error {
			if invalid != nil {
				return nil
			}
			if r.Name != "" && (!filepath.IsLocal(r.Name) || strings.ContainsAny(r.Name, "\\\x00") || strings.Contains(r.Name, "..")) {
				t.Errorf("name %q passed the checks but escapes its directory", r.Name)
			}
			for _, tag := range append([]string{r.Version}, r.Tags...) {
				if tag != "" && (strings.ContainsAny(tag, "/\\:") || strings.HasPrefix(tag, ".") || len(tag) > 128) {
					t.Errorf("tag %q passed the checks but is no tag", tag)
				}
			}
			return nil
		})
	})
}

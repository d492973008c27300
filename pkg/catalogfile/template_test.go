package catalogfile

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
)

// entryWith is a catalog file of one entry whose tags are tags.
func entryWith(key, tmpl string) string {
	e := map[string]string{"url": `"http://x/{{.Version}}/disk.img"`, "tags": `["1"]`, "base": "http://x"}
	e[key] = tmpl
	return "entries:\n- name: x\n  versions: [\"1\"]\n  arches: [amd64]\n" +
		"  base: " + e["base"] + "\n" +
		"  url: " + e["url"] + "\n" +
		"  checksum: {value: \"sha256:" + sumA + "\"}\n" +
		"  tags: " + e["tags"] + "\n"
}

// TestTemplateChecks checks that a catalog template may only put fields
// together: loops, variables and nested templates, with which a few bytes
// of a file run for hours or fill the memory, are refused when the file is
// read, naming the file, the line and the key.
func TestTemplateChecks(t *testing.T) {
	refused := []struct{ key, tmpl, want string }{
		{"tags", `['{{range 1000000000}}{{range 1000000000}}x{{end}}{{end}}']`, "t.yaml:8: entries[x].tags: range is not allowed"},
		{"url", `'{{range $i := 1000000000}}{{$i}}{{end}}'`, "t.yaml:6: entries[x].url: range is not allowed"},
		{"url", `'{{with .Base}}{{.}}{{end}}'`, "t.yaml:6: entries[x].url: with is not allowed"},
		{"tags", `['{{define "a"}}{{template "a"}}{{end}}{{template "a"}}']`, "t.yaml:8: entries[x].tags: "},
		{"tags", `['{{block "a" .}}x{{end}}']`, "t.yaml:8: entries[x].tags: "},
		{"url", `'{{$a := print .Base .Base}}{{$a}}'`, "t.yaml:6: entries[x].url: a variable is not allowed"},
		{"url", `'{{call .Base}}'`, "t.yaml:6: entries[x].url: the function call is not allowed"},
		{"url", `'{{printf "%0999999d" 1}}'`, "t.yaml:6: entries[x].url: printf with a width or precision is not allowed"},
		{"url", `'{{printf "%.999999f" 1.0}}'`, "t.yaml:6: entries[x].url: printf with a width or precision is not allowed"},
		{"url", `'{{printf "%*d" 999999 1}}'`, "t.yaml:6: entries[x].url: printf with a width or precision is not allowed"},
		{"url", `'{{printf .Base}}'`, "t.yaml:6: entries[x].url: printf with a format that is not a quoted string"},
		{"url", `'{{print (printf "%09999d" 1)}}'`, "t.yaml:6: entries[x].url: printf with a width"},
		{"url", `'` + strings.Repeat("{{.Base}}", 1000) + `'`, "t.yaml:6: entries[x].url: a template of 9000 bytes: expected at most 4 KiB"},
		{"base", `'{{range 5}}x{{end}}'`, "t.yaml:5: entries[x].base: range is not allowed"},
	}
	for _, tt := range refused {
		data := entryWith(tt.key, tt.tmpl)
		start := time.Now()
		_, err := ParseFile("t.yaml", []byte(data))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %s: ParseFile = %v, want an error containing %q", tt.key, tt.tmpl, err, tt.want)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: %s: ParseFile took %s", tt.key, tt.tmpl, d)
		}
	}
	allowed := []struct{ key, tmpl, want string }{
		{"url", `"{{.Base}}/{{.Version}}/disk-{{.UpstreamArch}}.img"`, "http://x/1/disk-x86_64.img"},
		{"url", `'{{if eq .Arch "amd64"}}http://a{{else if eq .Arch "arm64"}}http://b{{else}}http://c{{end}}/{{len .Name}}'`, "http://a/1"},
		{"url", `'{{printf "%s/%v-%%" .Base .Version | urlquery}}'`, "http%3A%2F%2Fx%2F1-%25"},
		{"url", `'{{$.Base}}/{{index .Version 0 | printf "%c"}}/{{slice .Arch 0 3}} {{/* a comment */}}'`, "http://x/1/amd "},
	}
	for _, tt := range allowed {
		f, err := ParseFile("t.yaml", []byte(entryWith(tt.key, tt.tmpl)))
		if err != nil {
			t.Errorf("%s: ParseFile = %v, want it accepted", tt.tmpl, err)
			continue
		}
		rels, err := f.Distros()[0].Releases(context.Background(), catalog.Env{Base: "http://x"})
		if err != nil || rels[0].Err != nil || rels[0].URL != tt.want {
			t.Errorf("%s: URL = %q, %v, %v; want %q", tt.tmpl, rels[0].URL, err, rels[0].Err, tt.want)
		}
	}
}

// TestTemplateOutputBounded checks that a template that is allowed but
// writes a long value (a long base, many times) fails at 64 KiB.
func TestTemplateOutputBounded(t *testing.T) {
	f, err := ParseFile("t.yaml", []byte(entryWith("url", `'`+strings.Repeat("{{.Base}}", 400)+`'`)))
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + strings.Repeat("b", 4000)
	rels, err := f.Distros()[0].Releases(context.Background(), catalog.Env{Base: base})
	if err != nil {
		t.Fatal(err)
	}
	var ee *expansionError
	if !errors.As(rels[0].Err, &ee) || !strings.Contains(rels[0].Err.Error(), "url: the template writes more than 64 KiB") {
		t.Errorf("Err = %v, want the 64 KiB limit of a template", rels[0].Err)
	}
	// A done context stops the execution too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rels, _ = f.Distros()[0].Releases(ctx, catalog.Env{Base: "http://x"})
	if !errors.Is(rels[0].Err, context.Canceled) {
		t.Errorf("Err with a cancelled context = %v, want context.Canceled", rels[0].Err)
	}
}

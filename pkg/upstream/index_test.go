package upstream

import (
	"slices"
	"testing"
)

func TestParseIndex(t *testing.T) {
	apache := `<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
<html><head><title>Index of /centos</title></head><body>
<table><tr><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th></tr>
<tr><td><a href="/">Parent Directory</a></td></tr>
<tr><td><a href="../">Parent</a></td></tr>
<tr><td><a href="10-stream/">10-stream/</a></td><td>2024-12-01</td></tr>
<tr><td><a href="8-stream/">8-stream/</a></td></tr>
<tr><td><a href='9-stream/'>9-stream/</a></td></tr>
<tr><td><a href=HEADER.html>HEADER.html</a></td></tr>
<tr><td><A HREF="release-20240423.1/">release-20240423.1/</A></td></tr>
<tr><td><a href="https://elsewhere.example/x/">elsewhere</a></td></tr>
<tr><td><a href="sub/dir/">deep</a></td></tr>
<tr><td><a href="Fedora%20Cloud.qcow2">spaced</a></td></tr>
<tr><td><a href="a&amp;b/">amp</a></td></tr>
<tr><td><a href="9-stream/">again</a></td></tr>
</table></body></html>`
	got := ParseIndex([]byte(apache))
	want := []string{"10-stream/", "8-stream/", "9-stream/", "HEADER.html", "release-20240423.1/", "Fedora Cloud.qcow2", "a&b/"}
	if !slices.Equal(got, want) {
		t.Errorf("ParseIndex = %q\nwant %q", got, want)
	}
	dirs := Dirs([]byte(apache))
	wantDirs := []string{"10-stream", "8-stream", "9-stream", "release-20240423.1", "a&b"}
	if !slices.Equal(dirs, wantDirs) {
		t.Errorf("Dirs = %q, want %q", dirs, wantDirs)
	}
}

func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(`<a href="9-stream/">9</a><a href="?C=N">x</a><a href="../">up</a>`))
	f.Add([]byte(`<pre><a href=x.qcow2>x</a></pre>`))
	f.Fuzz(func(t *testing.T, page []byte) {
		for _, e := range ParseIndex(page) {
			name := e
			if len(name) > 0 && name[len(name)-1] == '/' {
				name = name[:len(name)-1]
			}
			if name == "" || name == "." || name == ".." || slices.Contains([]byte(name), '/') {
				t.Fatalf("entry %q escapes the directory", e)
			}
		}
	})
}

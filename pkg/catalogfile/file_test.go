package catalogfile

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upstream"
)

const sumA = "3333333333333333333333333333333333333333333333333333333333333334"

func TestFileReleases(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/0.6.2/SHA256SUMS":
			w.Write([]byte("junk line\n" + sumA + "  cirros-0.6.2-x86_64-disk.img\n"))
		case "/0.6.2/cirros-0.6.2-aarch64-disk.img.sha256":
			w.Write([]byte(strings.Replace(sumA, "3", "5", 1) + "\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	data := `
policies:
  cirros:
    keep: 1
entries:
- name: cirros
  base: https://download.cirros-cloud.net
  versions: ["0.6.2"]
  arches: [x86_64, arm64]
  url: "{{.Base}}/{{.Version}}/cirros-{{.Version}}-{{.UpstreamArch}}-disk.img"
  urls:
    arm64: "{{.Base}}/{{.Version}}/cirros-{{.Version}}-{{.UpstreamArch}}-disk.img.xz"
  checksum: {file: "{{.Base}}/{{.Version}}/SHA256SUMS"}
  tags: ["{{.Version}}-cirros"]
  metadata: {description: CirrOS test image, defaultUser: cirros}
- name: single
  versions: ["1"]
  arches: [arm64]
  url: "{{.Base}}/0.6.2/cirros-0.6.2-aarch64-disk.img"
  checksum: {file: "{{.URL}}.sha256"}
  compression: none
  stable: false
  docs: false
`
	f, err := ParseFile("my.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	cat := &catalog.Catalog{Fetch: upstream.NewClient(upstream.Options{}), Mirrors: map[string]string{"*": srv.URL}, Now: time.Now()}
	Merge(cat, f)
	cat.Mirrors["cirros"] = srv.URL
	cat.Mirrors["single"] = srv.URL
	rels, err := cat.Gather(context.Background(), catalog.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 3 {
		t.Fatalf("got %d releases, want 3: %+v", len(rels), rels)
	}
	amd, arm, single := rels[0], rels[1], rels[2]
	if amd.Err != nil || amd.URL != srv.URL+"/0.6.2/cirros-0.6.2-x86_64-disk.img" || amd.Checksum.Hex != sumA || amd.Compression != "" {
		t.Errorf("amd64 = %+v", amd)
	}
	if !amd.Latest || amd.Tags[0] != "0.6.2-cirros" || amd.Metadata.DefaultUser != "cirros" || amd.Metadata.Instancetype != "u1.medium" {
		t.Errorf("amd64 tags/metadata = %+v", amd)
	}
	if arm.Err == nil || !strings.Contains(arm.Err.Error(), "lists no checksum for cirros-0.6.2-aarch64-disk.img.xz") || !strings.Contains(arm.Err.Error(), "my.yaml") {
		t.Errorf("arm64 error = %v, want one naming the file and the catalog", arm.Err)
	}
	if arm.Compression != "xz" {
		t.Errorf("arm64 compression = %q, want xz from the extension", arm.Compression)
	}
	if amd.Metadata.NoDocs || !single.Metadata.NoDocs {
		t.Errorf("NoDocs = %v for cirros (no docs key), %v for single (docs: false); want false, true", amd.Metadata.NoDocs, single.Metadata.NoDocs)
	}
	if single.Err != nil || single.Checksum.Hex[0] != '5' || single.Stable || single.Latest {
		t.Errorf("single = %+v, err %v", single, single.Err)
	}
}

func TestParseFileErrors(t *testing.T) {
	tests := []struct {
		yaml string
		want string
	}{
		{"entries: {}", "my.yaml:1: entries: expected a list of entries, got a mapping"},
		{"entrys: []", "my.yaml:1: entrys: unknown key"},
		{"entries:\n- name: x\n  versions: [1]\n  arches: [amd64]\n  url: u\n  checksum: {value: sha256:ab}\n  colour: red\n", "my.yaml:7: entries[0].colour: unknown key: expected name, base, versions, arches, url, urls, checksum, compression, build, tags, stable, metadata, docs or customize"},
		{"entries:\n- name: Bad Name\n", "my.yaml:2: entries[Bad Name].name"},
		{"entries:\n- name: x\n  versions: [1]\n  arches: [sparc]\n  url: u\n", "my.yaml:4: entries[x].arches"},
		{"entries:\n- name: x\n  versions: [1]\n  arches: [amd64]\n  url: u\n", "my.yaml:2: entries[x].checksum: expected exactly one of value, values or file"},
		{"entries:\n- name: x\n  versions: [1]\n  arches: [amd64]\n  url: \"{{.Nope\"\n  checksum: {file: f}\n", "my.yaml:5: entries[x].url"},
		{"entries:\n- name: x\n  versions: [\"a b\"]\n  arches: [amd64]\n  url: u\n  checksum: {file: f}\n", "my.yaml:3: entries[x].versions"},
		{"entries:\n- name: x\n  versions: [1]\n  arches: [amd64]\n  url: u\n  checksum: {file: f}\n  compression: lz4\n", "my.yaml:7: entries[x].compression"},
		{"policies:\n  x: {eol: {\"1\": tomorrow}}\n", "my.yaml:2: policies.x.eol.1"},
		// An item of a block list is reported on its own line.
		{"entries:\n- name: x\n  versions:\n  - \"1\"\n  - \"a b\"\n  arches: [amd64]\n  url: u\n  checksum: {file: f}\n", `my.yaml:5: entries[x].versions: "a b"`},
		{"entries:\n- name: x\n  metadata: {efi: yes}\n", `my.yaml:3: entries[0].metadata.efi: expected true or false, got "yes"`},
		{"entries: [\n", "catalog my.yaml:1: invalid YAML: did not find expected node content"},
		{"entries:\n- name: x\n  versions: [1]\n  arches: [amd64]\n  url: u\n  checksum: {file: f}\n- name: x\n  versions: [1]\n  arches: [amd64]\n  url: u\n  checksum: {file: f}\n", "my.yaml:7: entries[x].name: the name is used"},
	}
	for _, tt := range tests {
		_, err := ParseFile("my.yaml", []byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseFile(%q) = %v, want an error containing %q", tt.yaml, err, tt.want)
		}
	}
}

func TestTemplateErrorIsPerRelease(t *testing.T) {
	f, err := ParseFile("t.yaml", []byte("entries:\n- name: x\n  versions: [1]\n  arches: [amd64]\n  url: \"{{.Missing}}\"\n  checksum: {value: \"sha256:"+sumA+"\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	rels, err := f.Distros()[0].Releases(context.Background(), catalog.Env{Base: "http://x"})
	if err != nil {
		t.Fatal(err)
	}
	if rels[0].Err == nil || !strings.Contains(rels[0].Err.Error(), "url") {
		t.Errorf("Err = %v, want a url template error", rels[0].Err)
	}
}

func FuzzParseFile(f *testing.F) {
	f.Add([]byte("entries:\n- name: x\n  versions: [1]\n  arches: [amd64]\n  url: u\n  checksum: {file: f}\n"))
	f.Add([]byte("policies:\n  debian: {minVersion: \"11\", keep: 2, eol: {\"11\": 2026-08-31}}\n"))
	f.Add([]byte("entries: [{name: a, versions: [1], arches: [arm64], urls: {arm64: u}, checksum: {values: {arm64: x}}}]"))
	// Templates that would run for hours or fill the memory are refused.
	f.Add([]byte("entries: [{name: a, versions: [1], arches: [amd64], url: u, checksum: {value: x}, tags: ['{{range 1000000000}}{{range 1000000000}}x{{end}}{{end}}']}]"))
	f.Add([]byte("entries: [{name: a, versions: [1], arches: [amd64], url: '{{$a := print .Base .Base}}{{$b := print $a $a}}{{$b}}', checksum: {value: x}}]"))
	f.Add([]byte("entries: [{name: a, versions: [1], arches: [amd64], url: '{{printf \"%0999999d\" 1}}', checksum: {value: x}}]"))
	f.Add([]byte("entries: [{name: a, versions: [1], arches: [amd64], url: '{{define \"t\"}}{{template \"t\"}}{{end}}{{template \"t\"}}', checksum: {value: x}}]"))
	f.Add([]byte("entries: [{name: a, versions: [" + strings.Repeat("1,", 200_001) + "], arches: [amd64], url: u, checksum: {value: x}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseFile("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "catalog fuzz.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for _, d := range file.Distros() {
			rels, err := d.Releases(context.Background(), catalog.Env{Base: "http://127.0.0.1:1", Fetch: upstream.NewClient(upstream.Options{Retries: -1, Timeout: 10 * time.Millisecond})})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rels {
				if r.Name == "" || r.Version == "" || r.Arch == "" {
					t.Fatalf("release without identity: %+v", r)
				}
			}
		}
	})
}

// TestParseFileAliasBomb checks that aliases of aliases cannot make a small
// catalog cost a billion entries.
func TestParseFileAliasBomb(t *testing.T) {
	data := "entries:\n- &e {name: a, versions: &v [" + strings.Repeat("1, ", 1000) + "], arches: *v, tags: *v, url: u, checksum: {file: f}}\n" +
		strings.Repeat("- *e\n", 2000)
	start := time.Now()
	_, err := ParseFile("bomb.yaml", []byte(data))
	want := "catalog bomb.yaml:2: the catalog has more than 1000000 entries (aliases counted at each use): expected fewer"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("ParseFile took %s", d)
	}
}

package catalogfile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/customize"
	"github.com/containerdisk/kubectl-containerdisk/pkg/inputerr"
)

const customizedEntry = `entries:
- name: web
  versions: ["1"]
  arches: [amd64]
  url: "http://upstream/disk.qcow2"
  checksum: {value: "sha256:` + sumA + `"}
  customize:
    commands:
    - write /etc/motd:hello
    - copy-in files/app.conf:/etc
    sysprep:
      enabled: true
      operations: [defaults, -ssh-hostkeys]
    resize: +1G
`

// The customize block decodes into the spec each release carries, with the
// catalog file's directory for relative host paths, and a digest that
// covers the host files it reads.
func TestFileCustomize(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "conf")
	conf := filepath.Join(dir, "files", "app.conf")
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("a=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "cat.yaml")
	f, err := ParseFile(name, []byte(customizedEntry))
	if err != nil {
		t.Fatal(err)
	}
	want := &customize.Spec{
		Commands: []string{"write /etc/motd:hello", "copy-in files/app.conf:/etc"},
		Sysprep:  &customize.Sysprep{Enabled: true, Operations: []string{"defaults", "-ssh-hostkeys"}},
		Resize:   "+1G",
	}
	if diff := cmp.Diff(want, f.Entries[0].Customize); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	release := func() catalog.Release {
		t.Helper()
		rels, err := f.Distros()[0].Releases(context.Background(), catalog.Env{})
		if err != nil {
			t.Fatal(err)
		}
		return rels[0]
	}
	r := release()
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	inputs, err := want.InputsDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.CustomizeDir != dir || r.CustomizeDigest() != inputs || inputs == want.Digest() {
		t.Errorf("release: dir %q digest %q, want %s and %s (not the spec's own %s)", r.CustomizeDir, r.CustomizeDigest(), dir, inputs, want.Digest())
	}
	// A changed host file is a changed customization.
	if err := os.WriteFile(conf, []byte("a=2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if changed := release(); changed.Err != nil || changed.CustomizeDigest() == inputs {
		t.Errorf("after the copied file changed: digest %s (error %v), want other than %s", changed.CustomizeDigest(), changed.Err, inputs)
	}
	// A missing host file fails the entry's releases, naming it.
	if err := os.Remove(conf); err != nil {
		t.Fatal(err)
	}
	if r := release(); r.Err == nil || !strings.Contains(r.Err.Error(), `web:1 amd64 (catalog `+name+`): customize: commands[1]: copy-in reads the host file "files/app.conf": `) {
		t.Errorf("missing host file: release error %v", r.Err)
	}
}

// Errors in the block name the file, the line of the field at fault and its
// path, whether the decoder or the spec's own checks find them.
func TestFileCustomizeErrors(t *testing.T) {
	for _, tc := range []struct{ name, old, new, want string }{
		{"unknown key", "    resize: +1G\n", "    resize: +1G\n    packges: [vim]\n", `cat.yaml:15: entries[0].customize.packges: unknown key: expected packages, update, commands, sysprep, selinuxRelabel, resize, sparsify, network or postCommands`},
		{"not a bool", "      enabled: true\n", "      enabled: yes please\n", `cat.yaml:12: entries[0].customize.sysprep.enabled: expected true or false, got "yes please"`},
		{"unknown operation", "[defaults, -ssh-hostkeys]", "\n      - defaults\n      - x\n", `cat.yaml:15: entries[web].customize.sysprep.operations[1]: unknown operation "x"`},
		{"unknown command", "    - copy-in files/app.conf:/etc\n", "    - copy-in files/app.conf:/etc\n    - frobnicate now\n", `cat.yaml:11: entries[web].customize.commands[2]: unknown virt-customize command "frobnicate"`},
		{"bad size", "+1G", "+1Q", `cat.yaml:14: entries[web].customize.resize: "+1Q" is not a size`},
		{"absolute host path", "copy-in files/app.conf:/etc", "copy-in /root/.ssh:/root", `cat.yaml:10: entries[web].customize.commands[1]: copy-in reads the host file "/root/.ssh" by an absolute path`},
		{"host path outside", "copy-in files/app.conf:/etc", "ssh-inject root:file:../../id.pub", `cat.yaml:10: entries[web].customize.commands[1]: ssh-inject reads the host file "../../id.pub", outside the spec's directory`},
		{"no network", "    resize: +1G\n", "    resize: +1G\n    packages: [curl]\n", `cat.yaml:15: entries[web].customize.packages: the package manager downloads packages, which needs network: true`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := strings.Replace(customizedEntry, tc.old, tc.new, 1)
			_, err := ParseFile("cat.yaml", []byte(data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to contain %s", err, tc.want)
			}
			if !inputerr.Is(err) && !strings.Contains(tc.name, "key") && !strings.Contains(tc.name, "bool") {
				t.Errorf("error %v is not an input error", err)
			}
		})
	}
}

package catalogfile

import (
	"context"
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
// catalog file's directory for relative host paths.
func TestFileCustomize(t *testing.T) {
	f, err := ParseFile("conf/cat.yaml", []byte(customizedEntry))
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
	rels, err := f.Distros()[0].Releases(context.Background(), catalog.Env{})
	if err != nil {
		t.Fatal(err)
	}
	r := rels[0]
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if r.CustomizeDir != "conf" || r.CustomizeDigest() != want.Digest() {
		t.Errorf("release: dir %q digest %q, want conf and %s", r.CustomizeDir, r.CustomizeDigest(), want.Digest())
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

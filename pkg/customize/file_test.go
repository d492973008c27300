package customize

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A spec file has the keys of a catalog entry's customize: block at the
// top; every error names the file, the line and the key.
func TestSpecFile(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       Spec
		err        string
	}{
		{
			name: "spec",
			data: "commands:\n- write /etc/motd:hi\nsysprep: {enabled: true, operations: [defaults]}\nresize: +1G\n",
			want: Spec{Commands: []string{"write /etc/motd:hi"}, Sysprep: &Sysprep{Enabled: true, Operations: []string{"defaults"}}, Resize: "+1G"},
		},
		{name: "empty", data: "# nothing to change\n"},
		{name: "unknown key", data: "update: false\ncomands: [x]\n", err: "s.yaml:2: comands: unknown key: expected packages, update, commands"},
		{name: "wrong type", data: "network: yes please\n", err: `s.yaml:1: network: expected true or false, got "yes please"`},
		{name: "invalid item", data: "commands:\n- write /etc/motd:x\n- frobnicate\n", err: `s.yaml:3: commands[1]: unknown virt-customize command "frobnicate"`},
		{name: "invalid value", data: "network: true\nresize: big\n", err: `s.yaml:2: resize: "big" is not a size`},
		{name: "two documents", data: "update: false\n---\nupdate: true\n", err: "s.yaml:2: a second YAML document: expected one customize spec per file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFile("s.yaml", []byte(tc.data))
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
					t.Fatalf("error %v, want it to start with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
		})
	}
}

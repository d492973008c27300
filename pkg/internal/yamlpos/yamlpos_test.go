package yamlpos

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

type step struct {
	Command string `yaml:"command" want:"a shell command"`
}

type customize struct {
	Packages []string `yaml:"packages" item:"package names"`
	Run      []step   `yaml:"run" want:"a list of steps"`
}

type entry struct {
	Name      string            `yaml:"name"`
	Customize *customize        `yaml:"customize"`
	Sizes     Map[int]          `yaml:"sizes" count:"sizes"`
	Labels    map[string]string `yaml:"labels"`
	Token     string            `yaml:"token,secret"`
	Old       *yaml.Node        `yaml:"old,hidden"`
	line      int
}

func decode(t *testing.T, data string, v any) *Decoder {
	t.Helper()
	d := &Decoder{File: "f.yaml"}
	n, err := d.Parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	d.Decode(n, "", v)
	return d
}

func errs(d *Decoder) []string {
	var out []string
	for _, e := range d.Errors() {
		out = append(out, e.Error())
	}
	return out
}

func TestDecode(t *testing.T) {
	var e entry
	d := decode(t, `
name: a
customize:
  packages: [vim, git]
  run:
  - command: make
sizes:
  b: 2
  a: 1
labels: {x: y}
old: [anything]
`, &e)
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	want := entry{Name: "a", Customize: &customize{Packages: []string{"vim", "git"}, Run: []step{{Command: "make"}}},
		Sizes: Map[int]{{Key: "b", Line: 8, Value: 2}, {Key: "a", Line: 9, Value: 1}}, Labels: map[string]string{"x": "y"}}
	if diff := cmp.Diff(want, e, cmp.AllowUnexported(entry{}), cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Old" }, cmp.Ignore())); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	if e.Old == nil || e.Old.Kind != yaml.SequenceNode {
		t.Errorf("old = %v, want the node as it is", e.Old)
	}
	for path, line := range map[string]int{
		"name": 2, "customize.run[0].command": 6, "customize.run[0]": 6, "customize.packages[1]": 4,
		// Not set: where its mapping is.
		"customize.run[0].shell": 6, "token": 2,
	} {
		if got := d.Line(path); got != line {
			t.Errorf("Line(%q) = %d, want %d", path, got, line)
		}
	}
	if got := d.KeyLine("customize.run"); got != 5 {
		t.Errorf("KeyLine(customize.run) = %d, want 5", got)
	}
	if !d.Has("labels.x") || d.Has("token") || !d.OK("sizes.a") {
		t.Errorf("Has/OK disagree with the file")
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, data string
		want       []string
	}{
		{"unknown keys, nested", "customize:\n  packges: [vim]\n  run: [{command: make, user: root}]\n", []string{
			"f.yaml:2: customize.packges: unknown key: expected packages or run",
			"f.yaml:3: customize.run[0].user: unknown key: expected command",
		}},
		{"kinds", "name: [a]\ncustomize: x\nsizes: {a: many}\nlabels: []\n", []string{
			"f.yaml:1: name: expected a string, got a list",
			`f.yaml:2: customize: expected a mapping with the keys packages, run, got "x"`,
			`f.yaml:3: sizes.a: expected a whole number, got "many"`,
			"f.yaml:4: labels: expected a mapping, got a list",
		}},
		{"list items", "customize:\n  packages:\n  - vim\n  - [git]\n  run: [make]\n", []string{
			"f.yaml:4: customize.packages: expected package names, got a list",
			`f.yaml:5: customize.run[0]: expected a mapping with the keys command, got "make"`,
		}},
		{"secret scalar", "customize: {run: {command: x}}\ntoken: {a: b}\n", []string{
			"f.yaml:1: customize.run: expected a list of steps, got a mapping",
			"f.yaml:2: token: expected a string, got a mapping",
		}},
		{"duplicates and merges", "labels: &l {a: b}\ncustomize: {<<: [x], packages: [], packages: []}\n", []string{
			"f.yaml:2: customize.packages: duplicate key: it is set on line 2 too",
			`f.yaml:2: customize.<<: merges "x": expected a mapping or a list of mappings`,
		}},
		{"hidden key", "olde: 1\n", []string{
			"f.yaml:1: olde: unknown key: expected name, customize, sizes, labels or token",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &Decoder{File: "f.yaml"}
			n, err := d.Parse([]byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			var e entry
			d.Decode(n, "", &e)
			if diff := cmp.Diff(tt.want, errs(d)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSecretNotShown(t *testing.T) {
	var e entry
	d := decode(t, "token:\n  - hunter2\n", &e)
	for _, s := range errs(d) {
		if strings.Contains(s, "hunter2") {
			t.Errorf("error shows the secret: %s", s)
		}
	}
	var c struct {
		Creds *struct{ User string } `yaml:"creds,secret" want:"a mapping with the key user"`
	}
	d = decode(t, "creds: robot:hunter2\n", &c)
	want := []string{"f.yaml:1: creds: expected a mapping with the key user, got a single value (not shown: it may hold a secret)"}
	if diff := cmp.Diff(want, errs(d)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestLimits(t *testing.T) {
	// A billion entries from a few lines of aliases.
	data := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for i := 'b'; i <= 'j'; i++ {
		data += fmt.Sprintf("%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	d := &Decoder{File: "bomb.yaml", MaxNodes: 1000}
	n, err := d.Parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	var j [][][][][][][][][][]string
	d.Decode(n.Content[len(n.Content)-1], "j", &j)
	if got := errs(d); len(got) != 1 || !strings.Contains(got[0], "the configuration has more than 1000 entries (aliases counted at each use)") {
		t.Errorf("errors = %q, want one about the entry limit", got)
	}

	// Count refuses a list before it is decoded.
	var counted []string
	d = &Decoder{File: "f.yaml", Count: func(path, what string, n int) bool {
		counted = append(counted, fmt.Sprintf("%s %s %d", path, what, n))
		return n < 3
	}}
	n, err = d.Parse([]byte("sizes: {a: 1, b: 2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var e entry
	d.Decode(n, "", &e)
	if len(e.Sizes) != 2 || d.Err() != nil {
		t.Errorf("sizes = %v, err %v", e.Sizes, d.Err())
	}
	n, _ = d.Parse([]byte("sizes: {a: 1, b: 2, c: 3}\n"))
	e = entry{}
	d.Decode(n, "", &e)
	if e.Sizes != nil || d.OK("sizes") {
		t.Errorf("sizes = %v, want none once Count refuses", e.Sizes)
	}
	if diff := cmp.Diff([]string{"sizes sizes 2", "sizes sizes 3"}, counted); diff != "" {
		t.Errorf("Count calls (-want +got):\n%s", diff)
	}
}

func TestParse(t *testing.T) {
	for data, want := range map[string]string{
		"a: [\n":        "f.yaml:1: invalid YAML: did not find expected node content",
		"a: 1\n---\n{}": "f.yaml:2: a second YAML document: expected one configuration per file",
	} {
		d := &Decoder{File: "f.yaml"}
		if _, err := d.Parse([]byte(data)); err == nil || err.Error() != want {
			t.Errorf("Parse(%q) = %v, want %s", data, err, want)
		}
	}
	d := &Decoder{File: "f.yaml"}
	if n, err := d.Parse([]byte("# nothing\n")); n != nil || err != nil {
		t.Errorf("Parse of comments = %v, %v; want nothing", n, err)
	}
}

// Example shows a nested block decoded strictly, and a check after decoding
// that reports a value which decoded fine at its line.
func Example() {
	type step struct {
		Command string `yaml:"command" want:"a shell command"`
	}
	type entry struct {
		Name      string `yaml:"name"`
		Customize *struct {
			Packages []string `yaml:"packages" item:"package names"`
			Run      []step   `yaml:"run" want:"a list of steps"`
		} `yaml:"customize"`
	}
	d := &Decoder{File: "catalog.yaml", What: "the catalog file"}
	root, err := d.Parse([]byte(`
entries:
- name: cirros
  customize:
    packges: [vim]
    run:
    - command: ""
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	var file struct {
		Entries []entry `yaml:"entries"`
	}
	d.Decode(root, "", &file)
	for i, e := range file.Entries {
		if e.Customize == nil {
			continue
		}
		for j, s := range e.Customize.Run {
			if path := fmt.Sprintf("entries[%d].customize.run[%d].command", i, j); d.OK(path) && s.Command == "" {
				d.Report(d.Line(path), path, "empty: expected a shell command", nil)
			}
		}
	}
	fmt.Println(d.Err())
	// Output:
	// catalog.yaml:5: entries[0].customize.packges: unknown key: expected packages or run
	// catalog.yaml:7: entries[0].customize.run[0].command: empty: expected a shell command
}

package customize

import (
	"bufio"
	"bytes"
	"errors"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/containerdisk/kubectl-containerdisk/pkg/inputerr"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
		want []string // one substring per expected error, in order
	}{
		{name: "zero", spec: Spec{}},
		{name: "everything", spec: Spec{
			Packages: []string{"qemu-guest-agent", "cloud-init=23.1-1", "libstdc++6"},
			Update:   true,
			Network:  true,
			Commands: []string{
				"# set the message of the day",
				"",
				"write /etc/motd:hello",
				"  run-command apt-get clean",
				"--mkdir /opt/x",
				`run-command echo one \`,
				`  two`,
				"selinux-relabel",
				"firstboot-command systemctl enable foo",
			},
			Sysprep:        &Sysprep{Enabled: true, Operations: []string{"defaults", "-ssh-hostkeys", "machine-id", "user-account"}},
			SELinuxRelabel: true,
			Resize:         "+2G",
			Sparsify:       true,
			PostCommands:   []string{"truncate /etc/machine-id"},
		}},
		{name: "absolute resize", spec: Spec{Resize: "20G"}},
		{name: "unknown command", spec: Spec{Commands: []string{"write /a:b", "mkdir /x", "frobnicate now"}},
			want: []string{`commands[2]: unknown virt-customize command "frobnicate"`}},
		{name: "unknown operation", spec: Spec{Sysprep: &Sysprep{Enabled: true, Operations: []string{"logfiles", "x", "-y"}}},
			want: []string{`sysprep.operations[1]: unknown operation "x"`, `sysprep.operations[2]: unknown operation "-y"`}},
		{name: "post commands", spec: Spec{PostCommands: []string{"run-command"}},
			want: []string{`postCommands[0]: run-command needs an argument`}},
		{name: "flag with argument", spec: Spec{Commands: []string{"selinux-relabel now"}},
			want: []string{`commands[0]: selinux-relabel takes no argument, got "now"`}},
		{name: "nested commands file", spec: Spec{Commands: []string{"commands-from-file /etc/x"}},
			want: []string{`commands[0]: commands-from-file is not allowed here`}},
		{name: "continuation hides nothing", spec: Spec{Commands: []string{`write /a:\`, `b`, "bogus"}},
			want: []string{`commands[2]: unknown virt-customize command "bogus"`}},
		{name: "host files below the spec", spec: Spec{Commands: []string{
			"copy-in files/etc:/etc", "upload keys/a.pub:/root/a.pub", "run scripts/setup.sh", "firstboot ./first.sh",
			"ssh-inject root:file:keys/id.pub", "ssh-inject root", "ssh-inject root:string:ssh-ed25519 AAAA x",
			"root-password file:secret/root", "root-password password:x", "password alice:locked:file:secret/alice",
			"sm-credentials user:bob:file:secret/sm", "write /etc/a:../b", "copy /etc/a:/tmp",
		}}},
		{name: "host files outside the spec", spec: Spec{
			Commands: []string{
				"copy-in /root/.ssh:/root", "upload ../../etc/shadow:/tmp/shadow", "run /tmp/x.sh", "firstboot files/../../x",
				"ssh-inject root:file:/root/.ssh/id_rsa.pub", "root-password file:../pw", "password alice:locked:file:/etc/pw",
				`sm-credentials user:bob:file:..\pw`,
			},
			PostCommands: []string{`upload files/a\`, `b:/tmp`, "copy-in :/tmp"},
		}, want: []string{
			`commands[0]: copy-in reads the host file "/root/.ssh" by an absolute path: expected a path relative to the spec's directory, e.g. files/.ssh`,
			`commands[1]: upload reads the host file "../../etc/shadow", outside the spec's directory: expected a path below it, without ".."`,
			`commands[2]: run reads the host file "/tmp/x.sh" by an absolute path`,
			`commands[3]: firstboot reads the host file "files/../../x", outside`,
			`commands[4]: ssh-inject reads the host file "/root/.ssh/id_rsa.pub" by an absolute path`,
			`commands[5]: root-password reads the host file "../pw", outside`,
			`commands[6]: password reads the host file "/etc/pw" by an absolute path`,
			`commands[7]: sm-credentials reads the host file "..\\pw", outside`,
			`postCommands[0]: upload reads a host file, so it must fit on one line`,
			`postCommands[2]: copy-in names no host file`,
		}},
		{name: "packages", spec: Spec{Network: true, Packages: []string{"ok", "two words", "a,b", ""}},
			want: []string{`packages[1]: "two words" is not a package name`, `packages[2]: "a,b" is not a package name`, `packages[3]: "" is not a package name`}},
		{name: "install without network", spec: Spec{Packages: []string{"curl"}},
			want: []string{`packages: the package manager downloads packages, which needs network: true`}},
		{name: "update without network", spec: Spec{Update: true},
			want: []string{`update: the package manager downloads packages, which needs network: true`}},
		{name: "resize", spec: Spec{Resize: "-1G"}, want: []string{`resize: "-1G" is not a size`}},
		{name: "resize zero", spec: Spec{Resize: "+0"}, want: []string{`resize: "+0" does not grow the disk`}},
		{name: "resize unit", spec: Spec{Resize: "+2GB"}, want: []string{`resize: "+2GB" is not a size`}},
		{name: "resize huge", spec: Spec{Resize: "+99999999999T"}, want: []string{`resize: "+99999999999T" is too large`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: no error, want %q", tc.want)
			}
			if !inputerr.Is(err) {
				t.Errorf("Validate: %v is not an input error", err)
			}
			got := strings.Split(err.Error(), "\n")
			if len(got) != len(tc.want) {
				t.Fatalf("Validate: %d errors, want %d:\n%v", len(got), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("error %d: %q does not contain %q", i, got[i], w)
				}
			}
			// Each error names its field apart from its message, for a
			// reader of the spec's file to find its line.
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var fe *FieldError
				if !errors.As(e, &fe) || fe.Field == "" || e.Error() != fe.Field+": "+fe.Msg {
					t.Errorf("error %q is not a *FieldError with its field", e)
				}
			}
		})
	}
}

func TestGuestExec(t *testing.T) {
	s := Spec{
		Packages: []string{"curl"},
		Update:   true,
		Commands: []string{
			"write /etc/motd:hi",
			"run-command dpkg -i /tmp/x.deb",
			`write /a:\`,
			`run-command not a command: a continued line`,
			"firstboot-command reboot",
			"--install vim",
			"selinux-relabel",
		},
		PostCommands: []string{"copy-in a:/b", "run /tmp/script.sh", "sm-register", "uninstall nano"},
	}
	want := []string{"update: update", "packages: install", "commands[1]: run-command", "commands[5]: install",
		"postCommands[1]: run", "postCommands[2]: sm-register", "postCommands[3]: uninstall"}
	if diff := cmp.Diff(want, s.GuestExec()); diff != "" {
		t.Errorf("GuestExec (-want +got):\n%s", diff)
	}
	fileOnly := Spec{
		Commands:       []string{"write /a:b", "mkdir /c", "copy-in x:/d", "delete /e", "edit /f:s/a/b/", "ssh-inject root:string:ssh-ed25519 AAAA", "root-password password:x", "firstboot-command echo"},
		Sysprep:        &Sysprep{Enabled: true},
		SELinuxRelabel: true,
		Resize:         "+1G",
		Sparsify:       true,
	}
	if got := fileOnly.GuestExec(); len(got) != 0 {
		t.Errorf("GuestExec of file operations = %q, want none", got)
	}
}

func TestDigest(t *testing.T) {
	parse := func(doc string) Spec {
		t.Helper()
		var s Spec
		dec := yaml.NewDecoder(strings.NewReader(doc))
		dec.KnownFields(true)
		if err := dec.Decode(&s); err != nil {
			t.Fatalf("decoding %q: %v", doc, err)
		}
		return s
	}
	base := parse(`
packages: [curl, vim]
network: true
commands:
  - write /etc/motd:hello
  - run-command apt-get clean
sysprep: {enabled: true, operations: [logfiles]}
resize: +2G
`)
	same := []string{
		// Another key order and layout.
		`{resize: "+2G", sysprep: {operations: ["logfiles"], enabled: true}, commands: ["write /etc/motd:hello", "run-command apt-get clean"], network: true, packages: ["curl", "vim"]}`,
		// Zero values spelled out.
		`
packages: [curl, vim]
network: true
update: false
commands: [write /etc/motd:hello, run-command apt-get clean]
postCommands: []
sysprep:
  enabled: true
  operations: [logfiles]
resize: +2G
sparsify: false
`,
	}
	for _, doc := range same {
		if got, want := parse(doc).Digest(), base.Digest(); got != want {
			t.Errorf("Digest of %q = %s, want %s (the same spec)", doc, got, want)
		}
	}
	if d := base.Digest(); !strings.HasPrefix(d, "sha256:") || len(d) != len("sha256:")+64 {
		t.Errorf("Digest = %q, want sha256:<64 hex>", d)
	}
	// A disabled sysprep is no sysprep, whatever its operations; an
	// enabled one with no operations is the defaults.
	if a, b := (Spec{}).Digest(), (Spec{Sysprep: &Sysprep{Operations: []string{"logfiles"}}}).Digest(); a != b {
		t.Errorf("a disabled sysprep changes the digest: %s != %s", a, b)
	}
	if a, b := (Spec{Sysprep: &Sysprep{Enabled: true}}).Digest(), (Spec{Sysprep: &Sysprep{Enabled: true, Operations: []string{}}}).Digest(); a != b {
		t.Errorf("empty operations change the digest: %s != %s", a, b)
	}
	different := []Spec{
		{},
		{Packages: []string{"vim", "curl"}, Network: true},
		{Commands: []string{"write /etc/motd:hello "}},
		{Sysprep: &Sysprep{Enabled: true}},
		{Sysprep: &Sysprep{Enabled: true, Operations: []string{"logfiles"}}},
		{Resize: "+2G"},
		{Sparsify: true},
		{SELinuxRelabel: true},
		{Network: true},
		{Update: true},
		{PostCommands: []string{"write /etc/motd:hello"}},
		{Commands: []string{"write /etc/motd:hello"}},
		base,
	}
	seen := map[string]int{}
	for i, s := range different {
		d := s.Digest()
		if j, ok := seen[d]; ok {
			t.Errorf("specs %d and %d have the same digest %s", j, i, d)
		}
		seen[d] = i
	}
}

// TestKnownNamesMatchTools compares the names Validate knows with those of
// the installed tools (no appliance: both list them at once), so that a new
// guestfs-tools version shows up here.
func TestKnownNamesMatchTools(t *testing.T) {
	out, err := exec.Command("virt-customize", "--long-options").Output()
	if err != nil {
		t.Fatalf("virt-customize --long-options: %v (install guestfs-tools)", err)
	}
	// Options of virt-customize that are about the run, not customizations
	// of the guest: they cannot appear in a commands file.
	general := []string{"add", "attach", "attach-format", "color", "colors", "colour", "colours", "connect",
		"debug-gc", "domain", "dry-run", "dryrun", "echo-keys", "format", "help", "key", "keys-from-stdin",
		"memsize", "network", "no-network", "quiet", "smp", "verbose", "version", "wrap"}
	var got []string
	for _, f := range strings.Fields(string(out)) {
		name := strings.TrimPrefix(f, "--")
		if !slices.Contains(general, name) {
			got = append(got, name)
		}
	}
	var known []string
	for name := range commandArgs {
		known = append(known, name)
	}
	sort.Strings(got)
	sort.Strings(known)
	if diff := cmp.Diff(known, got); diff != "" {
		t.Errorf("virt-customize commands: embedded list (-) differs from virt-customize --long-options (+):\n%s", diff)
	}
	for name := range guestExecCommands {
		if _, ok := commandArgs[name]; !ok {
			t.Errorf("guest-exec command %q is not a command", name)
		}
	}
	// Whether a command takes an argument, from its --help line.
	help, err := exec.Command("virt-customize", "--help").Output()
	if err != nil {
		t.Fatalf("virt-customize --help: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(help))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "--") {
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(fields[0], "--"), ",")
		takes, ok := commandArgs[name]
		if !ok {
			continue
		}
		helpTakes := len(fields) > 1 && strings.HasPrefix(fields[1], "<")
		if takes != helpTakes {
			t.Errorf("command %q: embedded takes-argument %v, virt-customize --help says %v (%q)", name, takes, helpTakes, sc.Text())
		}
	}

	out, err = exec.Command("virt-sysprep", "--list-operations").Output()
	if err != nil {
		t.Fatalf("virt-sysprep --list-operations: %v (install guestfs-tools)", err)
	}
	tools := map[string]bool{}
	sc = bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// "name * description" for a default operation, "name   description"
		// for another.
		line := sc.Text()
		name, rest, _ := strings.Cut(line, " ")
		if name == "" {
			continue
		}
		tools[name] = strings.HasPrefix(rest, "*")
	}
	if diff := cmp.Diff(sysprepOperations, tools); diff != "" {
		t.Errorf("sysprep operations: embedded (-) differ from virt-sysprep --list-operations (+) (true = a default):\n%s", diff)
	}
}

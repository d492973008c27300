package customize

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/containerdisk/kubectl-containerdisk/pkg/inputerr"
)

func TestHostFiles(t *testing.T) {
	s := Spec{
		Commands: []string{
			"copy-in files/etc:/etc", "write /etc/a:b", `run-command echo \`, `upload x:/y`,
			"ssh-inject root:file:keys/id.pub", "ssh-inject root:string:ssh-ed25519 AAAA", "root-password random",
		},
		PostCommands: []string{"--firstboot first.sh", "password alice:locked:file:pw/alice"},
	}
	want := []HostFile{
		{Field: "commands[0]", Command: "copy-in", Path: "files/etc"},
		{Field: "commands[4]", Command: "ssh-inject", Path: "keys/id.pub"},
		{Field: "postCommands[0]", Command: "firstboot", Path: "first.sh"},
		{Field: "postCommands[1]", Command: "password", Path: "pw/alice"},
	}
	if diff := cmp.Diff(want, s.HostFiles()); diff != "" {
		t.Errorf("HostFiles (-want +got):\n%s", diff)
	}
}

// TestInputsDigest checks that the digest of a customization covers the
// host files it reads, and that only files below the spec's directory are
// read.
func TestInputsDigest(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("files/etc/app.conf", "a=1\n", 0o644)
	write("scripts/setup.sh", "#!/bin/sh\n", 0o755)
	digest := func(s Spec) string {
		t.Helper()
		d, err := s.InputsDigest(dir)
		if err != nil {
			t.Fatalf("InputsDigest: %v", err)
		}
		return d
	}

	plain := Spec{Commands: []string{"write /etc/motd:hi"}}
	if got := digest(plain); got != plain.Digest() {
		t.Errorf("a spec without host files: %s, want its Digest %s", got, plain.Digest())
	}

	spec := Spec{Commands: []string{"copy-in files/etc:/", "run scripts/setup.sh"}}
	first := digest(spec)
	if first == spec.Digest() || !strings.HasPrefix(first, "sha256:") || len(first) != 71 {
		t.Fatalf("digest %s: want a sha256 digest other than the spec's own %s", first, spec.Digest())
	}
	if again := digest(spec); again != first {
		t.Errorf("digest is not stable: %s then %s", first, again)
	}
	changes := []struct {
		name   string
		change func()
	}{
		{"file content", func() { write("files/etc/app.conf", "a=2\n", 0o644) }},
		{"file mode", func() { write("files/etc/app.conf", "a=2\n", 0o600) }},
		{"new file in a copied directory", func() { write("files/etc/new.conf", "", 0o644) }},
		{"link in a copied directory", func() {
			if err := os.Symlink("/etc/hostname", filepath.Join(dir, "files/etc/link")); err != nil {
				t.Fatal(err)
			}
		}},
		{"script", func() { write("scripts/setup.sh", "#!/bin/sh\necho\n", 0o755) }},
	}
	seen := map[string]string{first: "the start"}
	for _, c := range changes {
		c.change()
		d := digest(spec)
		if prev, ok := seen[d]; ok {
			t.Errorf("after a change of %s the digest is %s, as after %s", c.name, d, prev)
		}
		seen[d] = c.name
	}

	// A link out of the directory, a missing file and a device are
	// refused, each naming the command and its path.
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "key")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(outside), filepath.Join(dir, "keys")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", filepath.Join(dir, "files/null")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		command, want string
	}{
		{"ssh-inject root:file:key", `commands[0]: ssh-inject reads the host file "key": `},
		{"copy-in keys:/root", `commands[0]: copy-in reads the host file "keys": `},
		{"upload keys/secret:/root/secret", `commands[0]: upload reads the host file "keys/secret": `},
		{"upload missing.txt:/root", `commands[0]: upload reads the host file "missing.txt": `},
		{"copy-in files/null:/root", `commands[0]: copy-in reads the host file "files/null": `},
		{"copy-in ../x:/root", `commands[0]: copy-in reads the host file "../x", outside the spec's directory`},
	} {
		_, err := Spec{Commands: []string{tc.command}}.InputsDigest(dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !inputerr.Is(err) {
			t.Errorf("%s: error %v, want an input error with %q", tc.command, err, tc.want)
		}
	}
}

// TestRunRefusesHostFilesOutside checks that Run reads no host file outside
// Dir, by a path or by a link, and starts no tool then.
func TestRunRefusesHostFilesOutside(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "id_rsa")
	if err := os.WriteFile(outside, []byte("PRIVATE KEY"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "key")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		command, want string
	}{
		{"copy-in " + outside + ":/root", "customize spec: commands[0]: copy-in reads the host file \"" + outside + "\" by an absolute path"},
		{"copy-in key:/root", "customize spec: commands[0]: copy-in reads the host file \"key\": "},
	} {
		work := t.TempDir()
		var logged []string
		_, err := Run(context.Background(), Request{
			Base: filepath.Join(dir, "no-disk.qcow2"), Arch: "amd64", WorkDir: work, Dir: dir,
			Spec: Spec{Commands: []string{tc.command}},
			Log:  func(line string) { logged = append(logged, line) },
		})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !inputerr.Is(err) {
			t.Errorf("%s: Run error %v, want an input error with %q", tc.command, err, tc.want)
		}
		if len(logged) > 0 {
			t.Errorf("%s: Run started tools: %q", tc.command, logged)
		}
		if entries, _ := os.ReadDir(work); len(entries) > 0 {
			t.Errorf("%s: Run left %d files in WorkDir", tc.command, len(entries))
		}
	}
}

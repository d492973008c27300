package docs_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/containerdisk/kubectl-containerdisk/plugins/build"
	"github.com/containerdisk/kubectl-containerdisk/plugins/docs"
	"github.com/containerdisk/kubectl-containerdisk/plugins/gather"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/mirror"
	"github.com/containerdisk/kubectl-containerdisk/plugins/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/plugins/push"
	"github.com/containerdisk/kubectl-containerdisk/plugins/verify"
)

// subcommandEnv makes the test binary act as the binary of a subcommand.
const subcommandEnv = "DOCS_TEST_SUBCOMMAND"

var commands = map[string]func(cli.Streams) *cobra.Command{
	"gather": gather.NewCommand, "build": build.NewCommand, "push": push.NewCommand,
	"pipeline": pipeline.NewCommand, "verify": verify.NewCommand, "mirror": mirror.NewCommand, "docs": docs.NewCommand,
}

func TestMain(m *testing.M) {
	if name := os.Getenv(subcommandEnv); name != "" {
		os.Exit(cli.Run(context.Background(), cli.StdStreams(), "kubectl containerdisk "+name, os.Args[1:], commands[name]))
	}
	os.Exit(m.Run())
}

// askBinary runs the test binary as the subcommand's binary, as docs cli
// runs the siblings.
func askBinary(t *testing.T) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		cmd := exec.Command(os.Args[0], cli.ReferenceArg)
		cmd.Env = append(os.Environ(), subcommandEnv+"="+name)
		return cmd.Output()
	}
}

// TestSuiteReference: the pages docs cli assembles from the binaries are
// those of the whole command tree rendered in one process, and the same
// every time.
func TestSuiteReference(t *testing.T) {
	discard := cli.Streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}
	root := cli.SuiteRoot()
	for _, name := range []string{"gather", "build", "push", "pipeline", "verify", "mirror", "docs"} {
		root.AddCommand(commands[name](discard))
	}
	want := cli.Reference(root)

	got, err := docs.SuiteReference(askBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	again, err := docs.SuiteReference(askBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, page := range want {
		if !bytes.Equal(got[name], page) {
			t.Errorf("%s differs from the page of the whole tree:\n--- got\n%s\n--- want\n%s", name, got[name], page)
		}
		if !bytes.Equal(again[name], got[name]) {
			t.Errorf("%s differs between runs", name)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d pages, want %d", len(got), len(want))
	}
	for _, sub := range []string{"", "_gather", "_build", "_push", "_verify", "_verify_promote", "_mirror", "_mirror_import", "_docs", "_docs_generate", "_docs_publish", "_docs_cli"} {
		if _, ok := got["kubectl_containerdisk"+sub+".md"]; !ok {
			t.Errorf("no page kubectl_containerdisk%s.md", sub)
		}
	}
}

func TestSuiteReferenceErrors(t *testing.T) {
	_, err := docs.SuiteReference(func(name string) ([]byte, error) {
		if name == "push" {
			return []byte("Error: unknown command"), nil
		}
		return askBinary(t)(name)
	})
	if err == nil || !strings.Contains(err.Error(), "reading the reference of push") || !strings.Contains(err.Error(), "same release") {
		t.Errorf("error %v: want one naming push and what was expected", err)
	}
}

// TestCLIWritesTheReference runs docs cli with the subcommands' binaries
// beside it, as make docs-cli does.
func TestCLIWritesTheReference(t *testing.T) {
	bin := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Each sibling is a script that runs the test binary as that
	// subcommand.
	for name := range commands {
		script := "#!/bin/sh\n" + subcommandEnv + "=" + name + " exec '" + self + "' \"$@\"\n"
		if err := os.WriteFile(filepath.Join(bin, "kubectl-containerdisk-"+name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join(bin, "kubectl-containerdisk-docs"), "cli", "--dir", dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docs cli: %v\n%s", err, out)
	}
	want, err := docs.SuiteReference(askBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, page := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, page) {
			t.Errorf("%s on disk differs (%v)", name, err)
		}
		if !strings.Contains(string(out), filepath.Join(dir, name)+"\n") {
			t.Errorf("stdout does not list %s:\n%s", name, out)
		}
	}
}

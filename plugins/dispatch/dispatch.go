// Package dispatch is the umbrella command kubectl-containerdisk: it hands
// "kubectl containerdisk SUB …" to the binary kubectl-containerdisk-SUB.
package dispatch

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
)

// Subcommand is a subcommand of the suite.
type Subcommand struct {
	Name  string
	Short string
	// In, when set, names the subcommand whose binary runs this one, as
	// its own subcommand: promote is "kubectl-containerdisk-verify promote".
	In string
}

// Subcommands lists the suite in the order of a release's life.
var Subcommands = []Subcommand{
	{"gather", "Find the latest upstream release of each curated distribution", ""},
	{"build", "Package disk files into a containerdisk image", ""},
	{"push", "Publish built containerdisks to a registry", ""},
	{"pipeline", "Build the catalog as Kubernetes Jobs, one per architecture, and publish the indexes", ""},
	{"verify", "Boot containerdisks as KubeVirt VMs and prove they work", ""},
	{"promote", "Copy the containerdisks that passed verification to their destination", "verify"},
	{"mirror", "Keep selected containerdisks in sync between registries", ""},
	{"docs", "Generate and publish each containerdisk's documentation", ""},
}

// Prefix is the name every binary of the suite starts with.
const Prefix = "kubectl-containerdisk"

// Main runs the umbrella with the process's arguments and returns the exit
// code; on success it does not return, since the subcommand replaces it.
func Main() int {
	return Run(cli.StdStreams(), os.Args[1:], exec.LookPath, execve)
}

// Run dispatches args. lookPath finds binaries on PATH and start runs one in
// place of the umbrella, returning its exit code.
func Run(streams cli.Streams, args []string, lookPath func(string) (string, error), start func(path string, args []string, streams cli.Streams) int) int {
	if len(args) == 0 || (len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help")) {
		usage(streams.Out)
		return cli.ExitOK
	}
	self, _ := os.Executable()
	switch args[0] {
	case "version", "--version":
		fmt.Fprint(streams.Out, cli.VersionText("kubectl containerdisk"))
		return cli.ExitOK
	case "completion", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
		find := func(name string) (string, error) { return Find(name, self, lookPath) }
		root := newRoot(streams, find)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			fmt.Fprintf(streams.ErrOut, "Error: %s\n", cli.Explain(err))
			return cli.ExitCode(err)
		}
		return cli.ExitOK
	case "help":
		args = append([]string{args[1], "--help"}, args[2:]...)
	}
	name := args[0]
	if strings.HasPrefix(name, "-") || !known(name) {
		fmt.Fprintf(streams.ErrOut, "Error: unknown command %q for \"kubectl containerdisk\": expected one of %s\nRun 'kubectl containerdisk --help' for usage.\n", name, names())
		return cli.ExitUsage
	}
	rest := args[1:]
	if in := lookup(name).In; in != "" {
		name, rest = in, append([]string{name}, rest...)
	}
	path, err := Find(name, self, lookPath)
	if err != nil {
		fmt.Fprintf(streams.ErrOut, "Error: %v\n", err)
		return cli.ExitUsage
	}
	return start(path, rest, streams)
}

// Find returns the binary for a subcommand: the one beside self, the
// umbrella's own executable, with symbolic links resolved (krew links only
// the umbrella onto PATH), else the one on PATH.
func Find(name, self string, lookPath func(string) (string, error)) (string, error) {
	bin := Prefix + "-" + name
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if self != "" {
		if resolved, err := filepath.EvalSymlinks(self); err == nil {
			candidate := filepath.Join(filepath.Dir(resolved), bin)
			if fi, err := os.Stat(candidate); err == nil && !fi.IsDir() {
				return candidate, nil
			}
		}
	}
	path, err := lookPath(bin)
	if err != nil {
		return "", fmt.Errorf("subcommand %q is not installed: expected the binary %s beside %s or on PATH; reinstall the plugin (kubectl krew install containerdisk) or run 'make build'", name, bin, Prefix)
	}
	return path, nil
}

func execve(path string, args []string, streams cli.Streams) int {
	argv := append([]string{path}, args...)
	if runtime.GOOS != "windows" {
		err := syscall.Exec(path, argv, os.Environ())
		fmt.Fprintf(streams.ErrOut, "Error: running %s: %v\n", path, err)
		return cli.ExitFailed
	}
	cmd := exec.Command(path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = streams.In, streams.Out, streams.ErrOut
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(streams.ErrOut, "Error: running %s: %v\n", path, err)
		return cli.ExitFailed
	}
	return cli.ExitOK
}

func lookup(name string) Subcommand {
	for _, s := range Subcommands {
		if s.Name == name {
			return s
		}
	}
	return Subcommand{}
}

func known(name string) bool {
	for _, s := range Subcommands {
		if s.Name == name {
			return true
		}
	}
	return false
}

func names() string {
	var n []string
	for _, s := range Subcommands {
		n = append(n, s.Name)
	}
	return strings.Join(n, ", ")
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "kubectl containerdisk keeps KubeVirt containerdisks in step with their upstream distributions.\n\nUsage:\n  kubectl containerdisk COMMAND [flags]\n\nCommands:\n")
	for _, s := range Subcommands {
		fmt.Fprintf(w, "  %-8s %s\n", s.Name, s.Short)
	}
	fmt.Fprintf(w, "  %-10s %s\n", "version", "Print the version, commit, Go version and platform")
	fmt.Fprintf(w, "  %-10s %s\n", "completion", "Print a shell completion script (bash, zsh, fish) or kubectl's completion helper")
	fmt.Fprintf(w, "\nRun 'kubectl containerdisk COMMAND --help' for a command's flags.\n")
}

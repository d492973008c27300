package dispatch

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
)

// CompletionHelper is the executable kubectl 1.26+ runs to complete
// "kubectl containerdisk …": it must be on PATH beside the plugin.
const CompletionHelper = "kubectl_complete-containerdisk"

// helpers returns kubectl's completion helpers by file name. kubectl runs
// the one named after the longest plugin binary of the command line,
// kubectl_complete-containerdisk-push for "kubectl containerdisk push …",
// so each subcommand with a binary of its own gets one; all of them
// forward to the umbrella, the one binary krew puts on PATH.
func helpers() map[string]string {
	h := map[string]string{CompletionHelper: helperScript("")}
	for _, s := range Subcommands {
		if s.In == "" {
			h[CompletionHelper+"-"+s.Name] = helperScript(s.Name)
		}
	}
	return h
}

func helperScript(sub string) string {
	name := "kubectl containerdisk"
	if sub != "" {
		name += " " + sub
		sub += " "
	}
	return "#!/bin/sh\n# kubectl (1.26 and later) runs this to complete \"" + name + " ...\".\n# Written by \"kubectl containerdisk completion kubectl\".\nexec " + Prefix + " __complete " + sub + "\"$@\"\n"
}

// newRoot returns the umbrella as a cobra command tree, for shell
// completion: each subcommand is a stub whose arguments and flags are
// completed by its own binary's __complete, found by find.
func newRoot(streams cli.Streams, find func(name string) (string, error)) *cobra.Command {
	root := &cobra.Command{
		Use:   Prefix,
		Short: "Keep KubeVirt containerdisks in step with their upstream distributions",
		// Only completion reaches this tree; the rest is Run's.
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	for _, s := range Subcommands {
		root.AddCommand(&cobra.Command{
			Use:                s.Name,
			Short:              s.Short,
			DisableFlagParsing: true,
			ValidArgsFunction:  forward(s, find),
			Run:                func(*cobra.Command, []string) {},
		})
	}
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprint(cmd.OutOrStdout(), cli.VersionText("kubectl containerdisk"))
		},
	})
	root.AddCommand(newCompletionCommand(root))
	cli.Prepare(root, "kubectl containerdisk", streams)
	return root
}

// forward completes a stub subcommand by running its binary's __complete
// with the same words and passing its answer on.
func forward(s Subcommand, find func(string) (string, error)) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		name, words := s.Name, append(args, toComplete)
		if s.In != "" {
			name, words = s.In, append([]string{s.Name}, words...)
		}
		path, err := find(name)
		if err != nil {
			cobra.CompDebugln(err.Error(), true)
			return nil, cobra.ShellCompDirectiveError
		}
		cmd := exec.Command(path, append([]string{cobra.ShellCompRequestCmd}, words...)...)
		cmd.Stderr = io.Discard
		out, err := cmd.Output()
		if err != nil {
			cobra.CompDebugln(fmt.Sprintf("running %s: %v", path, err), true)
			return nil, cobra.ShellCompDirectiveError
		}
		return parseCompletions(out)
	}
}

// parseCompletions reads what cobra's __complete prints: one completion a
// line, then ":DIRECTIVE".
func parseCompletions(out []byte) ([]cobra.Completion, cobra.ShellCompDirective) {
	var comps []cobra.Completion
	directive := cobra.ShellCompDirectiveDefault
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if d, ok := strings.CutPrefix(line, ":"); ok {
			if n, err := strconv.Atoi(d); err == nil {
				directive = cobra.ShellCompDirective(n)
				continue
			}
		}
		comps = append(comps, line)
	}
	return comps, directive
}

// writeHelpers writes kubectl's completion helpers in dir and prints their
// paths.
func writeHelpers(out io.Writer, dir string) error {
	h := helpers()
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(h[name]), 0o755); err != nil {
			return fmt.Errorf("writing kubectl's completion helper: %w", err)
		}
		// WriteFile keeps the mode of a file that was already there.
		if err := os.Chmod(path, 0o755); err != nil {
			return fmt.Errorf("writing kubectl's completion helper: %w", err)
		}
		fmt.Fprintln(out, path)
	}
	return nil
}

func newCompletionCommand(root *cobra.Command) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "completion bash|zsh|fish|kubectl",
		Short: "Print a shell completion script, or kubectl's completion helper",
		Long: `Print the completion script of a shell for kubectl-containerdisk, or, for
"kubectl", the helper kubectl (1.26 and later) runs to complete
"kubectl containerdisk ...". With --dir, the executable
` + CompletionHelper + ` and one for each subcommand binary
(` + CompletionHelper + `-push, ...) are written in DIR, which must be
on PATH.`,
		Example: `  source <(kubectl containerdisk completion bash)
  kubectl containerdisk completion kubectl --dir ~/.local/bin`,
		ValidArgs: []cobra.Completion{"bash", "zsh", "fish", "kubectl"},
		Args:      cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if dir != "" && args[0] != "kubectl" {
				return cli.Usagef("--dir is for \"completion kubectl\" only, got \"completion %s\"", args[0])
			}
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			case "kubectl":
				if dir == "" {
					_, err := io.WriteString(out, helperScript(""))
					return err
				}
				return writeHelpers(out, dir)
			}
			return cli.Usagef("unknown shell %q: expected bash, zsh, fish or kubectl\nRun 'kubectl containerdisk completion --help' for usage", args[0])
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "with kubectl: write the executable helpers "+CompletionHelper+"[-SUB] in DIR (on PATH) instead of printing the first")
	cmd.MarkFlagDirname("dir")
	return cmd
}

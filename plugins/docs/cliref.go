package docs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/containerdisk/kubectl-containerdisk/plugins/build"
	"github.com/containerdisk/kubectl-containerdisk/plugins/gather"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/mirror"
	"github.com/containerdisk/kubectl-containerdisk/plugins/push"
	"github.com/containerdisk/kubectl-containerdisk/plugins/verify"
)

type cliOptions struct {
	dir string
}

func newCLICommand(streams cli.Streams) *cobra.Command {
	var opts cliOptions
	cmd := &cobra.Command{
		Use:   "cli --dir DIR",
		Short: "Write the command reference as Markdown",
		Long: `Write a Markdown page for every command of the suite, from the commands
themselves: name, synopsis, usage, flags, examples and subcommands. The
pages do not depend on the machine they are written on (defaults below the
home directory are shown as ~), so that a check can regenerate them and
compare. Each file written is printed on stdout.`,
		Example: `  kubectl containerdisk docs cli --dir docs/cli`,
		Args:    cli.ExactArgs(0),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if opts.dir == "" {
				return cli.Usagef("--dir is required: the directory the reference is written to, e.g. --dir docs/cli")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			files := Reference(SuiteCommand())
			if err := writeFiles(opts.dir, files); err != nil {
				return fmt.Errorf("writing the reference: %w", err)
			}
			for _, name := range sortedKeys(files) {
				fmt.Fprintf(streams.Out, "%s/%s\n", opts.dir, name)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.dir, "dir", "", "directory the reference is written to (required)")
	return cmd
}

// SuiteCommand returns the command tree of the whole suite, as kubectl
// shows it: "kubectl containerdisk" with every subcommand below it.
func SuiteCommand() *cobra.Command {
	discard := cli.Streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}
	root := &cobra.Command{
		Use:   "containerdisk",
		Short: "Gather, build, push, verify, mirror and document KubeVirt containerdisks",
		Long: `kubectl containerdisk is a suite of kubectl plugins, one binary each,
kubectl-containerdisk-SUBCOMMAND, that turn the cloud images of the curated
distributions into KubeVirt containerdisks and keep them published.`,
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl containerdisk"},
	}
	for _, newCmd := range []func(cli.Streams) *cobra.Command{
		gather.NewCommand, build.NewCommand, push.NewCommand, verify.NewCommand, mirror.NewCommand, NewCommand,
	} {
		root.AddCommand(newCmd(discard))
	}
	return root
}

// Reference renders a Markdown page for root and every command below it,
// keyed by file name.
func Reference(root *cobra.Command) map[string][]byte {
	files := map[string][]byte{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		files[fileName(c)] = commandPage(c)
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				walk(sub)
			}
		}
	}
	walk(root)
	return files
}

func fileName(c *cobra.Command) string {
	return strings.ReplaceAll(c.CommandPath(), " ", "_") + ".md"
}

func commandPage(c *cobra.Command) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s\n\n%s\n\n", c.CommandPath(), c.Short)
	if c.Long != "" {
		fmt.Fprintf(&b, "## Synopsis\n\n%s\n\n", strings.TrimSpace(c.Long))
	}
	if c.Runnable() {
		fmt.Fprintf(&b, "```\n%s\n```\n\n", c.UseLine())
	}
	if c.Example != "" {
		fmt.Fprintf(&b, "## Examples\n\n```\n%s\n```\n\n", strings.TrimRight(c.Example, "\n"))
	}
	if fs := c.NonInheritedFlags(); fs.HasAvailableFlags() {
		fmt.Fprintf(&b, "## Options\n\n```\n%s```\n\n", flagUsages(fs))
	}
	if fs := c.InheritedFlags(); fs.HasAvailableFlags() {
		fmt.Fprintf(&b, "## Options inherited from parent commands\n\n```\n%s```\n\n", flagUsages(fs))
	}
	var subs []*cobra.Command
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			subs = append(subs, sub)
		}
	}
	if len(subs) > 0 {
		b.WriteString("## Subcommands\n\n")
		for _, sub := range subs {
			fmt.Fprintf(&b, "* [%s](%s) — %s\n", sub.CommandPath(), fileName(sub), sub.Short)
		}
		b.WriteString("\n")
	}
	if c.HasParent() {
		p := c.Parent()
		fmt.Fprintf(&b, "## See also\n\n* [%s](%s) — %s\n", p.CommandPath(), fileName(p), p.Short)
	}
	return append(bytes.TrimRight(b.Bytes(), "\n"), '\n')
}

// flagUsages is FlagUsages with defaults that name this machine's home,
// cache or temporary directory written as on any machine.
func flagUsages(fs *pflag.FlagSet) string {
	var repl []string
	if d, err := os.UserCacheDir(); err == nil {
		repl = append(repl, d, "~/.cache")
	}
	if d, err := os.UserHomeDir(); err == nil && d != "/" {
		repl = append(repl, d, "~")
	}
	if d := filepath.Clean(os.TempDir()); d != "/tmp" {
		repl = append(repl, d, "/tmp")
	}
	r := strings.NewReplacer(repl...)
	fs.VisitAll(func(f *pflag.Flag) { f.DefValue = r.Replace(f.DefValue) })
	return fs.FlagUsagesWrapped(0)
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

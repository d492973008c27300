package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ReferenceArg, as a binary's only argument, makes it write the command
// reference of its own command instead of running it (see WriteReference).
// It lets the docs command render the reference of the whole suite without
// linking every subcommand's code.
const ReferenceArg = "__cli-reference"

// SubcommandReference is what a binary writes for ReferenceArg: its
// command's short description and the Markdown pages of the command and
// every command below it, by file name, as they are below SuiteRoot.
type SubcommandReference struct {
	Short string            `json:"short"`
	Pages map[string]string `json:"pages"`
}

// SuiteRoot returns the root of the suite's command tree, as kubectl shows
// it: "kubectl containerdisk", with no subcommand yet.
func SuiteRoot() *cobra.Command {
	return &cobra.Command{
		Use:   "containerdisk",
		Short: "Gather, build, push, verify, mirror and document KubeVirt containerdisks",
		Long: `kubectl containerdisk is a suite of kubectl plugins, one binary each,
kubectl-containerdisk-SUBCOMMAND, that turn the cloud images of the curated
distributions into KubeVirt containerdisks and keep them published.`,
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl containerdisk"},
	}
}

// ReferenceOf renders the pages of the command newCmd makes, below
// SuiteRoot.
func ReferenceOf(newCmd func(Streams) *cobra.Command) SubcommandReference {
	discard := Streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}
	root := SuiteRoot()
	cmd := newCmd(discard)
	root.AddCommand(cmd)
	ref := SubcommandReference{Short: cmd.Short, Pages: map[string]string{}}
	for name, page := range Reference(cmd) {
		ref.Pages[name] = string(page)
	}
	return ref
}

// WriteReference writes ReferenceOf(newCmd) as JSON.
func WriteReference(streams Streams, newCmd func(Streams) *cobra.Command) int {
	if err := json.NewEncoder(streams.Out).Encode(ReferenceOf(newCmd)); err != nil {
		fmt.Fprintf(streams.ErrOut, "Error: %v\n", err)
		return ExitFailed
	}
	return ExitOK
}

// Reference renders a Markdown page for c and every command below it,
// keyed by file name.
func Reference(c *cobra.Command) map[string][]byte {
	files := map[string][]byte{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		files[ReferenceFile(c)] = commandPage(c)
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				walk(sub)
			}
		}
	}
	walk(c)
	return files
}

// ReferenceFile is the file name of c's page.
func ReferenceFile(c *cobra.Command) string {
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
			fmt.Fprintf(&b, "* [%s](%s) — %s\n", sub.CommandPath(), ReferenceFile(sub), sub.Short)
		}
		b.WriteString("\n")
	}
	if c.HasParent() {
		p := c.Parent()
		fmt.Fprintf(&b, "## See also\n\n* [%s](%s) — %s\n", p.CommandPath(), ReferenceFile(p), p.Short)
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

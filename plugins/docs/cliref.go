package docs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/containerdisk/kubectl-containerdisk/plugins/dispatch"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
)

// siblings are the subcommands whose binaries write their own pages: the
// docs binary does not link their code.
var siblings = []string{"gather", "build", "push", "pipeline", "verify", "mirror"}

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
compare. Each file written is printed on stdout.

Each subcommand's binary (kubectl-containerdisk-SUBCOMMAND, beside this one
or on PATH) is asked for its own pages.`,
		Example: `  kubectl containerdisk docs cli --dir docs/cli`,
		Args:    cli.ExactArgs(0),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if opts.dir == "" {
				return cli.Usagef("--dir is required: the directory the reference is written to, e.g. --dir docs/cli")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			self, _ := os.Executable()
			files, err := SuiteReference(func(name string) ([]byte, error) {
				path, err := dispatch.Find(name, self, exec.LookPath)
				if err != nil {
					return nil, err
				}
				var stderr bytes.Buffer
				c := exec.CommandContext(cmd.Context(), path, cli.ReferenceArg)
				c.Stderr = &stderr
				out, err := c.Output()
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w: %s", path, cli.ReferenceArg, err, strings.TrimSpace(stderr.String()))
				}
				return out, nil
			})
			if err != nil {
				return err
			}
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

// SuiteReference renders the pages of the whole suite, keyed by file name:
// each sibling's own, which ask gives (the JSON its binary writes for
// cli.ReferenceArg), the docs command's, and the root page listing them.
func SuiteReference(ask func(name string) ([]byte, error)) (map[string][]byte, error) {
	files := map[string][]byte{}
	root := cli.SuiteRoot()
	add := func(name string, ref cli.SubcommandReference) {
		root.AddCommand(&cobra.Command{Use: name, Short: ref.Short, Run: func(*cobra.Command, []string) {}})
		for file, page := range ref.Pages {
			files[file] = []byte(page)
		}
	}
	for _, name := range siblings {
		out, err := ask(name)
		if err != nil {
			return nil, fmt.Errorf("reading the reference of %s: %w", name, err)
		}
		var ref cli.SubcommandReference
		if err := json.Unmarshal(out, &ref); err != nil || len(ref.Pages) == 0 {
			return nil, fmt.Errorf("reading the reference of %s: expected the JSON of its pages, got %q (%v); is its binary from the same release?", name, truncate(out, 80), err)
		}
		add(name, ref)
	}
	add("docs", cli.ReferenceOf(NewCommand))
	rootFile := cli.ReferenceFile(root)
	files[rootFile] = cli.Reference(root)[rootFile]
	return files, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

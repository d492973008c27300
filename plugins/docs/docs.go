// Package docs is the "kubectl containerdisk docs" command: it writes each
// containerdisk's documentation from the catalog, publishes it as the
// repositories' descriptions on Quay, and writes the command reference.
package docs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	pkgdocs "github.com/containerdisk/kubectl-containerdisk/pkg/docs"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/option"
)

// NewCommand returns the docs command.
func NewCommand(streams cli.Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "docs",
		Short: "Generate and publish each containerdisk's documentation",
		Long: `Write a Markdown page for every curated containerdisk, with what the image
is, its architectures, its default user and how to run it with virtctl and
a VirtualMachine manifest; publish those pages as the descriptions of the
Quay repositories; and write the reference of the commands.

Exit status: 0 done, 1 some pages failed, 2 usage error.`,
		Example: `  # The pages, as the site shows them
  kubectl containerdisk docs generate --dir site

  # What would change on quay.io/containerdisks, then change it
  kubectl containerdisk docs publish --registry quay.io/containerdisks --token-file quay.token
  kubectl containerdisk docs publish --registry quay.io/containerdisks --token-file quay.token --dry-run=false

  # The command reference
  kubectl containerdisk docs cli --dir docs/cli`,
		Args: cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newGenerateCommand(streams), newPublishCommand(streams), newCLICommand(streams))
	return cmd
}

// Main runs the command as the process and returns its exit code.
func Main() int { return cli.Main(NewCommand) }

// pageOptions are the flags that choose what pages say.
type pageOptions struct {
	option.Catalog
	registry   string
	importSize string
	quiet      bool
}

func (o *pageOptions) applyFlags(fs *pflag.FlagSet) {
	o.Catalog.ApplyFlags(fs)
	fs.StringVar(&o.registry, "registry", pkgdocs.DefaultRegistry, "image prefix the pages use, as REGISTRY/NAMESPACE")
	fs.StringVar(&o.importSize, "import-size", pkgdocs.DefaultImportSize, "disk size of the --volume-import example")
	option.AddQuiet(fs, &o.quiet)
}

func (o *pageOptions) parse(cmd *cobra.Command) error {
	if o.registry == "" || strings.Contains(o.registry, "://") || strings.ContainsAny(o.registry, " \t\n") {
		return cli.Usagef("--registry %q: expected REGISTRY/NAMESPACE, e.g. --registry quay.io/containerdisks", o.registry)
	}
	return o.Catalog.Parse(cmd)
}

// pages gathers the catalog and renders its pages. Releases that failed are
// reported on stderr; they are left out of the pages.
func (o *pageOptions) pages(ctx context.Context, streams cli.Streams) ([]pkgdocs.Page, error) {
	status := option.NewStatus(streams.ErrOut, o.quiet)
	c, err := o.Catalog.Catalog(o.Client(status.Printf))
	if err != nil {
		return nil, err
	}
	rels, err := c.Gather(ctx, o.Selection())
	if err != nil {
		return nil, fmt.Errorf("gathering the catalog: %w", err)
	}
	for _, r := range rels {
		if r.Err != nil {
			status.Printf("skipping %s %s: %v", r.Key(), r.Arch, r.Err)
		}
	}
	return pkgdocs.Generate(rels, pkgdocs.Options{Registry: o.registry, ImportSize: o.importSize})
}

// writeFiles writes files below dir, creating it.
func writeFiles(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

package docs

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
)

type generateOptions struct {
	pageOptions
	dir string
}

func newGenerateCommand(streams cli.Streams) *cobra.Command {
	var opts generateOptions
	cmd := &cobra.Command{
		Use:   "generate --dir DIR [flags]",
		Short: "Write a Markdown page per containerdisk and an index",
		Long: `Gather the catalog and write DIR/NAME.md for the newest stable version of
every name, and DIR/README.md, a table of the images and their
architectures. Entries of a --catalog file with docs: false are left out.
The output depends only on the catalog: generating again writes the same
files. Each file written is printed on stdout.`,
		Example: `  kubectl containerdisk docs generate --dir site
  kubectl containerdisk docs generate --dir site --focus 'fedora:*' --registry registry.example.com/containerdisks`,
		Args: cli.ExactArgs(0),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if opts.dir == "" {
				return cli.Usagef("--dir is required: the directory the pages are written to, e.g. --dir site")
			}
			return opts.parse(cmd)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGenerate(cmd.Context(), streams, &opts)
		},
	}
	fs := cmd.Flags()
	opts.applyFlags(fs)
	fs.StringVar(&opts.dir, "dir", "", "directory the pages are written to (required)")
	return cmd
}

func runGenerate(ctx context.Context, streams cli.Streams, opts *generateOptions) error {
	pages, err := opts.pages(ctx, streams)
	if err != nil {
		return err
	}
	files := map[string][]byte{}
	for _, p := range pages {
		files[p.File] = p.Content
	}
	if err := writeFiles(opts.dir, files); err != nil {
		return fmt.Errorf("writing the pages: %w", err)
	}
	for _, p := range pages {
		fmt.Fprintf(streams.Out, "%s/%s\n", opts.dir, p.File)
	}
	return nil
}

// Package gather is the "kubectl containerdisk gather" command: it finds the
// latest upstream release of each curated distribution, version and
// architecture.
package gather

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/option"
)

type gatherOptions struct {
	option.Catalog
	option.Output
}

// NewCommand returns the gather command.
func NewCommand(streams cli.Streams) *cobra.Command {
	opts := gatherOptions{Output: option.NewOutput("gather")}
	cmd := &cobra.Command{
		Use:   "gather [flags]",
		Short: "Find the latest upstream release of each curated distribution",
		Long: `Read each curated distribution's upstream (release lists, checksum files,
directory indexes) and print its latest release for every version and
architecture: one JSON line each, with everything build needs (url, checksum
and algorithm, compression, tags, metadata).

New versions are discovered where the upstream lists them; end-of-life
versions drop out by the rules in the catalog. A release that cannot be built
(a missing or placeholder checksum, a file the checksum list lacks) is printed
with its "error" and reported on stderr; the exit status is then 1.

Metadata files are fetched concurrently, each at most once, with timeouts and
retries on 5xx, 429 and dropped connections.

Exit status: 0 all found, 1 some releases or upstreams failed, 2 usage error.`,
		Example: `  # Every Fedora release, for people
  kubectl containerdisk gather --focus 'fedora:*' -o table

  # Build and push what gather finds
  kubectl containerdisk gather --focus 'ubuntu:24.04' | kubectl containerdisk build -o json | \
    kubectl containerdisk push --dry-run=false --to registry.example.com/containerdisks

  # Read Fedora from a local mirror, and add entries from a file
  kubectl containerdisk gather --mirror fedora=file:///srv/mirror/fedora --catalog my-catalog.yaml`,
		Args: cli.ExactArgs(0),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			return opts.Catalog.Parse(cmd)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGather(cmd.Context(), streams, &opts)
		},
	}
	fs := cmd.Flags()
	opts.Catalog.ApplyFlags(fs)
	opts.Output.ApplyFlags(fs)
	cmd.RegisterFlagCompletionFunc("focus", option.CompleteFocus)   //nolint:errcheck // the flag exists
	cmd.RegisterFlagCompletionFunc("output", option.CompleteOutput) //nolint:errcheck // the flag exists
	return cmd
}

func runGather(ctx context.Context, streams cli.Streams, opts *gatherOptions) error {
	status := option.NewStatus(streams.ErrOut, opts.Quiet)
	client := opts.Client(status.Printf)
	c, err := opts.Catalog.Catalog(client)
	if err != nil {
		return err
	}
	rels, err := c.Gather(ctx, opts.Selection())
	if err != nil {
		return err
	}
	if err := Print(streams, opts.Format, rels); err != nil {
		return err
	}
	// A spec can read host files (copy-in), so records, which anyone can
	// pipe in, never carry one: say so rather than let a pipeline build
	// the upstream disk as it is.
	warned := map[string]bool{}
	for _, r := range rels {
		if r.Customize != nil && !warned[r.Key()] {
			warned[r.Key()] = true
			status.Warnf("%s is customized in its catalog file, which its records leave out: a build from them is not customized; use build --focus or push --focus", r.Key())
		}
	}
	var failed []string
	for _, r := range rels {
		if r.Err != nil {
			failed = append(failed, describe(r)+": "+r.Err.Error())
		}
	}
	if len(failed) > 0 {
		return &cli.PartialError{Failed: failed, Total: len(rels)}
	}
	if len(rels) == 0 {
		status.Printf("no release matches %s", strings.Join(opts.Selection().Focus, ", "))
	}
	return nil
}

func describe(r catalog.Release) string {
	if r.Arch == "" {
		return r.Key()
	}
	return r.Key() + " " + r.Arch
}

// Print writes releases as JSON lines or a table.
func Print(streams cli.Streams, format string, rels []catalog.Release) error {
	if format == option.OutputTable {
		tw := tabwriter.NewWriter(streams.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSION\tARCH\tBUILD\tTAGS\tCHECKSUM\tURL")
		for _, r := range rels {
			sum := r.Checksum.String()
			if len(sum) > 19 {
				sum = sum[:19] + "…"
			}
			tags := strings.Join(r.Tags, ",")
			if r.Latest {
				tags = strings.TrimPrefix(tags+",latest", ",")
			}
			u := r.URL
			if r.Err != nil {
				u = "error: " + r.Err.Error()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Version, r.Arch, r.Build, tags, sum, u)
		}
		return tw.Flush()
	}
	enc := pipeline.NewEncoder(streams.Out)
	for _, r := range rels {
		if err := enc.EncodeRelease(pipeline.FromRelease(r)); err != nil {
			return err
		}
	}
	return nil
}

// Main runs the command as the process and returns its exit code.
func Main() int { return cli.Main(NewCommand) }

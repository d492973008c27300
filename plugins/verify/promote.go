package verify

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/pkg/transfer"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/option"
)

type promoteOptions struct {
	option.Remote
	option.Output

	to     string
	dryRun bool
}

// NewPromoteCommand returns the promote command: it copies the images that
// passed verification from where they were verified to their destination.
func NewPromoteCommand(streams cli.Streams) *cobra.Command {
	opts := promoteOptions{Output: option.NewOutput("promote")}
	cmd := &cobra.Command{
		Use:   "promote --to PREFIX [flags] < VERIFIED",
		Short: "Copy the containerdisks that passed verification to their destination",
		Long: `Copy the images that passed verification from the registry they were
verified in (a staging registry) to --to, by digest, with all their tags,
never rebuilding them. Reads the JSON lines of 'kubectl containerdisk verify
-o json' on stdin. Each image goes to PREFIX/NAME, NAME being its catalog
name or else its repository's last path element. As with push, every blob
and manifest is in place before a tag is written, moving tags last.

Images that failed verification, or were not verified, are not copied; they
are listed, and the exit status is then 1.

Promote is a dry run unless --dry-run=false is given.

Exit status: 0 all promoted, 1 some not promoted, 2 usage or input error.`,
		Example: `  # Publish to staging, verify there, promote what boots
  kubectl containerdisk push --focus '*:*' --to staging.example.com/containerdisks --dry-run=false -o json |
    kubectl containerdisk verify -o json |
    kubectl containerdisk promote --to quay.io/containerdisks --dry-run=false`,
		Args: cli.ExactArgs(0),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.Remote.Parse(cmd); err != nil {
				return err
			}
			if opts.to == "" {
				return cli.Usagef("no destination: expected --to PREFIX, e.g. --to quay.io/containerdisks")
			}
			if streams.InIsTerminal() {
				return cli.Usagef("stdin is a terminal: expected the JSON lines of 'kubectl containerdisk verify -o json' on stdin")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			err := runPromote(cmd.Context(), streams, &opts)
			if opts.dryRun && !opts.Quiet {
				fmt.Fprintln(streams.ErrOut, "Dry run: nothing was written; pass --dry-run=false to promote.")
			}
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.to, "to", "", "registry prefix (or oci:DIR) to copy the verified images below, each to PREFIX/NAME")
	option.AddDryRun(fs, &opts.dryRun, option.Publishes, "what would be copied and tagged")
	opts.Remote.ApplyFlags(fs)
	opts.Output.ApplyFlags(fs)
	cmd.RegisterFlagCompletionFunc("output", option.CompleteOutput) //nolint:errcheck // the flag exists
	return cmd
}

func runPromote(ctx context.Context, streams cli.Streams, opts *promoteOptions) error {
	prefix, err := target.Parse(opts.to)
	if err != nil {
		return err
	}
	if prefix.Reference != "" {
		return cli.Usagef("--to %q has a tag: expected a prefix such as quay.io/containerdisks, below which each image goes to NAME", opts.to)
	}
	var recs []pipeline.Record
	// invalid[i] is why recs[i] was refused as read: it fails alone.
	var invalid []error
	err = pipeline.Decode(streams.In, func(r pipeline.Record, err error) error {
		recs, invalid = append(recs, r), append(invalid, err)
		return nil
	})
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return cli.Usagef("no images on stdin: expected the JSON lines of 'kubectl containerdisk verify -o json'")
	}
	status := option.NewStatus(streams.ErrOut, opts.Quiet)
	opts.Remote.Log = status.Printf
	enc := pipeline.NewEncoder(streams.Out)
	var failed []string
	for i, rec := range recs {
		out, err := rec, invalid[i]
		if err == nil {
			out, err = promoteOne(ctx, rec, prefix, opts, status)
		}
		if invalid[i] != nil {
			failed = append(failed, err.Error())
			out.Error = err.Error()
			fmt.Fprintf(streams.ErrOut, "Error: %s\n", err)
		} else if err != nil {
			shown := pipeline.Show(rec.Reference)
			failed = append(failed, fmt.Sprintf("%s: %v", shown, err))
			out.Error = err.Error()
			status.Printf("Not promoted %s: %s", shown, cli.Explain(err))
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if opts.JSON() {
			if err := enc.Encode(out); err != nil {
				return err
			}
		} else if err == nil {
			fmt.Fprintf(streams.Out, "%s %s\n", out.Reference, out.Digest)
		}
	}
	if len(failed) > 0 {
		return &cli.PartialError{Failed: failed, Total: len(recs)}
	}
	return nil
}

func promoteOne(ctx context.Context, rec pipeline.Record, prefix target.Reference, opts *promoteOptions, status *option.Status) (pipeline.Record, error) {
	switch {
	case rec.Error != "":
		return rec, fmt.Errorf("it failed before verification: %s", rec.Error)
	case rec.Verify == nil:
		return rec, fmt.Errorf("it was not verified: expected the output of 'kubectl containerdisk verify -o json'")
	case !rec.Verify.Passed:
		return rec, fmt.Errorf("it failed verification%s", firstFailure(rec.Verify))
	case rec.Digest == "":
		return rec, fmt.Errorf("the record has no digest: expected the digest verify checked")
	}
	src, err := target.Parse(rec.Reference)
	if err != nil {
		return rec, err
	}
	name := rec.Name
	if name == "" {
		// The repository's last element: of a registry repository, of
		// the NAME of a layout's NAME:TAG, or the directory's.
		name = src.Name()
		// A directory named "..", or "x y", is no name to write below
		// --to.
		if err := pipeline.ValidateName(name); err != nil {
			return rec, fmt.Errorf("the record has no \"name\" and the last element of its reference is no repository name: %w", err)
		}
	}
	tags := rec.AllTags()
	if len(tags) == 0 && src.IsTag() {
		tags = []string{src.Tag()}
	}
	if len(tags) == 0 {
		return rec, fmt.Errorf("the record names no tag to promote under")
	}
	dst := prefix.Join(name).WithReference(tags[len(tags)-1])
	source, err := target.OpenSource(ctx, src.WithReference(rec.Digest), opts.Remote.Options())
	if err != nil {
		return rec, err
	}
	if c, ok := source.(io.Closer); ok {
		// An archive holds its file open.
		defer c.Close()
	}
	// By digest: exactly what was verified, whatever the tag says now.
	root, err := source.Resolve(ctx, rec.Digest)
	if err != nil {
		return rec, fmt.Errorf("resolving %s@%s: %w", src.Repo(), rec.Digest, err)
	}
	dstTarget, err := target.Open(ctx, dst, opts.Remote.Options())
	if err != nil {
		return rec, err
	}
	var mount []string
	if src.Kind == target.KindRegistry && dst.Kind == target.KindRegistry && src.Registry == dst.Registry && src.Repository != dst.Repository {
		mount = append(mount, src.Repository)
	}
	// Every tag but the version, "latest" and the moving tag written
	// last pins the image: one that names another image is kept.
	moving := tags[len(tags)-1]
	var unique []string
	for _, t := range tags {
		if t != moving && t != rec.Version && t != "latest" {
			unique = append(unique, t)
		}
	}
	rep, err := transfer.Push(ctx, source, root, dstTarget, transfer.Options{
		Tags: tags, Unique: unique, DryRun: opts.dryRun, MountFrom: mount,
		OnEvent: func(e transfer.Event) { option.WarnKept(status, dst, e) },
	})
	out := rec
	out.Reference = dst.String()
	out.Push = &pipeline.Push{
		DryRun: rep.DryRun, Uploaded: rep.Uploaded, UploadedBytes: rep.UploadedBytes,
		Mounted: rep.Mounted, Existing: rep.Existing, Tagged: rep.Tagged, Unchanged: rep.Unchanged, Kept: rep.Kept,
	}
	if err != nil {
		return out, err
	}
	if opts.dryRun {
		status.Printf("Would promote %s to %s as %v", rec.Reference, dst.Repo(), tags)
	} else {
		status.Printf("Promoted %s to %s as %v", rec.Reference, dst.Repo(), tags)
	}
	return out, nil
}

func firstFailure(v *pipeline.Verify) string {
	for _, r := range v.Results {
		if !r.Passed {
			if r.Error != "" {
				return fmt.Sprintf(" on %s: %s", r.Arch, r.Error)
			}
			return " on " + r.Arch
		}
	}
	return ""
}

// Package push is the "kubectl containerdisk push" command: it copies built
// images to a registry or an OCI layout, sending only what is missing and
// moving tags last.
package push

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"oras.land/oras-go/v2/content"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/pkg/publish"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/pkg/transfer"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/option"
)

type pushOptions struct {
	option.Remote
	option.Output
	option.Catalog

	to          string
	tags        []string
	dryRun      bool
	mountFrom   []string
	concurrency int
	force       bool
	workers     int
	results     string
	cacheDir    string
	tempDir     string
	format      string
	compression string
	now         time.Time
}

// NewCommand returns the push command.
func NewCommand(streams cli.Streams) *cobra.Command {
	return newCommand(streams, time.Now)
}

// newCommand is NewCommand with the clock that names the timestamped
// tags, so that a test can run twice within one minute.
func newCommand(streams cli.Streams, clock func() time.Time) *cobra.Command {
	opts := pushOptions{Output: option.NewOutput("push")}
	cmd := &cobra.Command{
		Use:   "push [flags] [SOURCE [DESTINATION]]",
		Short: "Publish built containerdisks to a registry",
		Long: `Publish containerdisks: the curated catalog's releases that changed upstream
(--focus), or images already built.

With --focus, push does the whole job for the selected catalog entries: it
reads each upstream, compares the latest release of every architecture with
the checksums recorded in the images under --to (reading manifests and
configs, never layers), and for each name:version that differs downloads,
checks and builds all its architectures in parallel and pushes the index to
--to/NAME with the tags <version>-<YYMMDDhhmm>, the upstream build's unique
tags, <version> and, for the newest stable version, latest. What is up to
date is left alone. A failing entry is reported and the others go on.

Without --focus, SOURCE (a registry reference host[:port]/repo[:tag], an
OCI layout oci:DIR[:tag] or an OCI archive oci-archive:FILE[:tag], whose tag
may be NAME:TAG as mirror names images there) is copied to DESTINATION; without SOURCE, the JSON
lines of 'kubectl containerdisk build -o json' are read from stdin, one image
each, and catalog releases among them go below --to as NAME:VERSION with
their tags. Only what the destination lacks is sent: blobs that exist are
found with HEAD requests and skipped, blobs in another repository of the same
registry are mounted (--mount-from). Every blob, manifest and the index are in
place before any tag is written; the --tag tags are written first and the
moving tag last.

Push is a dry run unless --dry-run=false is given: it says what it would send
and tag, and writes nothing.

Exit status: 0 all pushed, 1 some failed, 2 usage or input error, 130 interrupted.`,
		Example: `  # What would the curated catalog publish? Then publish it.
  kubectl containerdisk push --focus '*:*' --to quay.io/containerdisks
  kubectl containerdisk push --focus '*:*' --to quay.io/containerdisks --dry-run=false --workers 4

  # One shard of four, as an Indexed Job, recording the results
  kubectl containerdisk push --focus '*:*' --shard $JOB_COMPLETION_INDEX/4 --results results.json \
      --to quay.io/containerdisks --dry-run=false

  # Push an image from an OCI layout, tagging it 41-1.14 and then 41
  kubectl containerdisk push --dry-run=false oci:./layout:41 registry.example.com/containerdisks/fedora:41 -t 41-1.14

  # A shell pipeline
  kubectl containerdisk gather --focus 'fedora:*' | kubectl containerdisk build -o json | \
    kubectl containerdisk push --dry-run=false --to registry.example.com/containerdisks`,
		Args: cli.RangeArgs(0, 2),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.Remote.Parse(cmd); err != nil {
				return err
			}
			if len(args) == 2 && opts.to != "" {
				return cli.Usagef("DESTINATION given twice, as an argument and as --to: expected one of them")
			}
			if len(args) == 2 {
				opts.to = args[1]
			}
			if err := opts.Catalog.Parse(cmd); err != nil {
				return err
			}
			if opts.Catalog.Focused() && len(args) > 0 {
				return cli.Usagef("SOURCE given with --focus: expected either images to push or catalog entries to publish")
			}
			if opts.workers < 1 {
				return cli.Usagef("--workers %d: expected at least 1", opts.workers)
			}
			if opts.to == "" {
				return cli.Usagef("no destination: expected DESTINATION or --to, e.g. --to registry.example.com/containerdisks/fedora")
			}
			if len(args) == 0 && streams.InIsTerminal() && !opts.Catalog.Focused() {
				return cli.Usagef("no SOURCE and stdin is a terminal: expected SOURCE, or the JSON lines of 'kubectl containerdisk build -o json' on stdin")
			}
			if opts.concurrency < 1 {
				return cli.Usagef("--concurrency %d: expected at least 1", opts.concurrency)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.now = clock()
			var err error
			if opts.Catalog.Focused() {
				err = runCatalog(cmd.Context(), streams, &opts)
			} else {
				err = runPush(cmd.Context(), streams, &opts, args)
			}
			if opts.dryRun && !opts.Quiet {
				fmt.Fprintln(streams.ErrOut, "Dry run: nothing was written; pass --dry-run=false to publish.")
			}
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.to, "to", "", "destination repository, with an optional tag (the moving tag, written last)")
	fs.StringArrayVarP(&opts.tags, "tag", "t", nil, "further tag, written before the destination's own tag; repeatable")
	option.AddDryRun(fs, &opts.dryRun, option.Publishes, "what would be sent and tagged")
	fs.StringArrayVar(&opts.mountFrom, "mount-from", nil, "repository of the destination registry to mount existing blobs from; repeatable")
	fs.IntVar(&opts.concurrency, "concurrency", 3, "blobs copied at once per image")
	fs.BoolVar(&opts.force, "force", false, "with --focus: build and push even what is up to date")
	fs.IntVar(&opts.workers, "workers", 2, "with --focus: catalog entries (name:version) handled at once")
	fs.StringVar(&opts.results, "results", "", "with --focus: JSON file of the results by name:version, merged with what it holds")
	fs.StringVar(&opts.cacheDir, "cache-dir", option.DefaultCacheDir(), "with --focus: directory keeping downloads by checksum")
	fs.StringVar(&opts.tempDir, "temp-dir", "", "with --focus: directory for the compressed layers while they are built (default: the system's)")
	fs.StringVar(&opts.format, "format", string(containerdisk.FormatOCI), "with --focus: manifest format, oci or docker")
	fs.StringVar(&opts.compression, "compression", string(containerdisk.CompressionGzip), "with --focus: layer compression, gzip, zstd or none")
	opts.Remote.ApplyFlags(fs)
	opts.Output.ApplyFlags(fs)
	opts.Catalog.ApplyFlags(fs)
	cmd.RegisterFlagCompletionFunc("focus", option.CompleteFocus)   //nolint:errcheck // the flag exists
	cmd.RegisterFlagCompletionFunc("output", option.CompleteOutput) //nolint:errcheck // the flag exists
	return cmd
}

// item is one image to push.
type item struct {
	rec pipeline.Record
	src target.Reference
	// err is why the record was refused as read (a *pipeline.FieldError):
	// it fails alone, and nothing is written for it.
	err error
}

func runPush(ctx context.Context, streams cli.Streams, opts *pushOptions, args []string) error {
	dst, err := target.Parse(opts.to)
	if err != nil {
		return err
	}
	if dst.Reference != "" && !dst.IsTag() {
		return cli.Usagef("destination %q names a digest: expected a repository with an optional tag", opts.to)
	}
	var items []item
	if len(args) > 0 {
		src, err := target.Parse(args[0])
		if err != nil {
			return err
		}
		items = append(items, item{src: src, rec: pipeline.Record{Reference: src.String()}})
	} else {
		err := pipeline.Decode(streams.In, func(rec pipeline.Record, invalid error) error {
			if rec.Error != "" {
				return nil
			}
			if invalid != nil {
				items = append(items, item{rec: rec, err: invalid})
				return nil
			}
			src, err := target.Parse(rec.Reference)
			if err != nil {
				return err
			}
			if rec.Digest != "" && !src.IsTag() {
				src.Reference = rec.Digest
			}
			items = append(items, item{src: src, rec: rec})
			return nil
		})
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return cli.Usagef("no images on stdin: expected the JSON lines of 'kubectl containerdisk build -o json'")
		}
	}

	status := option.NewStatus(streams.ErrOut, opts.Quiet)
	opts.Remote.Log = status.Printf
	enc := pipeline.NewEncoder(streams.Out)
	var failed []string
	for _, it := range items {
		if it.err != nil {
			// Refused as read: its error names the line and the field.
			failed = append(failed, it.err.Error())
			it.rec.Error = it.err.Error()
			fmt.Fprintf(streams.ErrOut, "Error: %s\n", it.err)
			if opts.JSON() {
				if err := enc.Encode(it.rec); err != nil {
					return err
				}
			}
			continue
		}
		rec, err := pushOne(ctx, streams, opts, status, it, dst)
		if err != nil && len(args) > 0 {
			// One image named on the command line: its error is the
			// command's, with the exit code of its kind.
			return err
		}
		if err != nil {
			src := pipeline.Show(it.src.String())
			failed = append(failed, fmt.Sprintf("%s: %v", src, err))
			rec.Error = err.Error()
			fmt.Fprintf(streams.ErrOut, "Error: pushing %s: %s\n", src, cli.Explain(err))
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if opts.JSON() {
			if err := enc.Encode(rec); err != nil {
				return err
			}
		} else if err == nil && !opts.dryRun {
			fmt.Fprintf(streams.Out, "%s %s\n", rec.Reference, rec.Digest)
		}
	}
	if len(failed) > 0 {
		return &cli.PartialError{Failed: failed, Total: len(items)}
	}
	return nil
}

func pushOne(ctx context.Context, streams cli.Streams, opts *pushOptions, status *option.Status, it item, dstRepo target.Reference) (pipeline.Record, error) {
	rec := it.rec
	src, err := target.OpenSource(ctx, it.src, opts.Remote.Options())
	if err != nil {
		return rec, err
	}
	if c, ok := src.(io.Closer); ok {
		// An archive holds its file open.
		defer c.Close()
	}
	if it.src.Reference == "" {
		return rec, cli.Usagef("source %q has no tag or digest: expected SOURCE:TAG", it.src)
	}
	root, err := src.Resolve(ctx, it.src.Reference)
	if err != nil {
		return rec, fmt.Errorf("resolving %s: %w", it.src, err)
	}
	if rec.Digest != "" && rec.Digest != root.Digest.String() {
		return rec, fmt.Errorf("%s is %s, but the record says %s: it was rebuilt or retagged since", it.src, root.Digest, rec.Digest)
	}

	dst := dstRepo
	moving := dst.Reference
	if moving == "" {
		// The tag the source's tag stands for: "41" of a layout's
		// "fedora:41", as mirror names images there.
		moving = it.src.Tag()
	}
	// The record's own tags pin this image: one that already names
	// another image is kept, never moved.
	policy := publish.Policy{Version: moving, Unique: rec.Tags, Moving: opts.tags, Latest: rec.Latest}
	if rec.Name != "" && rec.Version != "" {
		// A catalog release: it goes below --to, under its name, with
		// the timestamped tag first and its version as the moving tag,
		// as push --focus publishes it.
		dst = dstRepo.Join(rec.Name)
		moving = rec.Version
		policy.Version, policy.Stamp = moving, opts.now
	}
	tags := policy.Tags()
	unique := slices.DeleteFunc(policy.UniqueTags(), func(t string) bool { return t == rec.Version })
	dst.Reference = moving
	dstTarget, err := target.Open(ctx, dst, opts.Remote.Options())
	if err != nil {
		return rec, err
	}

	var mount []string
	for _, m := range opts.mountFrom {
		mount = append(mount, strings.TrimPrefix(m, dst.Registry+"/"))
	}
	if it.src.Kind == target.KindRegistry && it.src.Registry == dst.Registry && it.src.Repository != dst.Repository {
		mount = append(mount, it.src.Repository)
	}

	var source content.ReadOnlyStorage = src
	if bar := option.ProgressBar(streams.ErrOut, streams.ErrOutIsTerminal(), opts.Quiet, -1, "pushing"); bar != nil {
		source = &countingStorage{ReadOnlyStorage: src, w: bar}
	}
	rep, err := transfer.Push(ctx, source, root, dstTarget, transfer.Options{
		Tags:        tags,
		Unique:      unique,
		DryRun:      opts.dryRun,
		MountFrom:   mount,
		Concurrency: opts.concurrency,
		OnEvent: func(e transfer.Event) {
			option.WarnKept(status, dst, e)
			if opts.dryRun && !opts.JSON() {
				printPlan(streams.Out, dst, e)
				return
			}
			printEvent(status, e)
		},
	})
	rec.Reference = dst.String()
	rec.Digest = root.Digest.String()
	rec.MediaType = root.MediaType
	rec.Size = root.Size
	rec.Tags = nil
	rec.Push = publish.PushRecord(rep)
	if err != nil {
		return rec, err
	}
	switch {
	case rep.DryRun:
	case rep.UpToDate():
		status.Printf("%s is up to date", dst)
	default:
		status.Printf("Pushed %s: %d uploaded (%s), %d mounted, %d existing", dst, rep.Uploaded, humanBytes(rep.UploadedBytes), rep.Mounted, rep.Existing)
	}
	return rec, nil
}

func printEvent(status *option.Status, e transfer.Event) {
	d := e.Descriptor
	switch e.Action {
	case transfer.ActionUploaded:
		status.Printf("Uploaded %s %s (%s)", short(d), d.MediaType, humanBytes(d.Size))
	case transfer.ActionMounted:
		status.Printf("Mounted  %s %s", short(d), d.MediaType)
	case transfer.ActionExists:
		status.Printf("Exists   %s %s", short(d), d.MediaType)
	case transfer.ActionTagged:
		status.Printf("Tagged   %s", e.Tag)
	case transfer.ActionUnchanged:
		status.Printf("Unchanged tag %s", e.Tag)
	}
}

// printPlan prints a dry run's plan on stdout: it is the data asked for.
func printPlan(w io.Writer, dst target.Reference, e transfer.Event) {
	d := e.Descriptor
	switch e.Action {
	case transfer.ActionWouldUpload:
		fmt.Fprintf(w, "would upload %s %s %d\n", d.Digest, d.MediaType, d.Size)
	case transfer.ActionExists:
		fmt.Fprintf(w, "exists %s %s\n", d.Digest, d.MediaType)
	case transfer.ActionWouldTag:
		fmt.Fprintf(w, "would tag %s %s\n", dst.WithReference(e.Tag), d.Digest)
	case transfer.ActionUnchanged:
		fmt.Fprintf(w, "unchanged %s %s\n", dst.WithReference(e.Tag), d.Digest)
	}
}

func short(d ocispec.Descriptor) string {
	s := d.Digest.String()
	if len(s) > 19 {
		return s[:19]
	}
	return s
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// countingStorage reports the bytes read from the source to a progress bar.
type countingStorage struct {
	content.ReadOnlyStorage
	w io.Writer
}

func (s *countingStorage) Fetch(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := s.ReadOnlyStorage.Fetch(ctx, d)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.TeeReader(rc, s.w), rc}, nil
}

// Main runs the command as the process and returns its exit code.
func Main() int { return cli.Main(NewCommand) }

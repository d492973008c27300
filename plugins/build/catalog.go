package build

import (
	"context"
	"fmt"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/pkg/publish"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/option"
)

// runCatalog builds catalog releases, from gather's JSON lines on stdin or
// from --focus, each name:version into TARGET/NAME:VERSION.
func runCatalog(ctx context.Context, streams cli.Streams, opts *buildOptions) error {
	prefix, err := target.Parse(opts.target)
	if err != nil {
		return err
	}
	if prefix.Reference != "" {
		return cli.Usagef("target %q has a tag: expected a registry prefix (host/containerdisks) or a layout directory (oci:DIR), below which each image goes to NAME:VERSION", opts.target)
	}
	status := option.NewStatus(streams.ErrOut, opts.Quiet)
	opts.Remote.Log = status.Printf
	client := opts.Catalog.Client(status.Printf)
	var rels []catalog.Release
	if opts.Catalog.Focused() {
		c, err := opts.Catalog.Catalog(client)
		if err != nil {
			return err
		}
		if rels, err = c.Gather(ctx, opts.Catalog.Selection()); err != nil {
			return err
		}
	} else {
		sel := opts.Catalog.Selection()
		err := pipeline.DecodeReleases(streams.In, func(r catalog.Release) error {
			if sel.Matches(r.Name, r.Version) {
				rels = append(rels, r)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(rels) == 0 {
			return cli.Usagef("no disk given and no releases on stdin: expected --disk ARCH=FILE (e.g. --disk amd64=fedora.qcow2), --focus NAME:VERSION, or the JSON lines of 'kubectl containerdisk gather' on stdin")
		}
	}
	imageOpts, err := opts.imageOptions()
	if err != nil {
		return err
	}
	b := &publish.Builder{
		Client:   client,
		CacheDir: opts.cacheDir,
		Options:  imageOpts,
		Progress: option.DownloadProgress(status, streams.ErrOut, streams.ErrOutIsTerminal(), opts.Quiet),
	}
	targets := option.NewTargets(opts.Remote.Options())
	groups := catalog.GroupReleases(rels)
	records := make([]pipeline.Record, len(groups))
	shown := make([]string, len(groups))
	option.Parallel(ctx, len(groups), opts.workers, func(i int) {
		g := groups[i]
		records[i] = buildGroup(ctx, b, g, prefix, targets, status)
		shown[i] = prefix.Join(g.Name).WithReference(g.Version).String()
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	var failed []string
	enc := pipeline.NewEncoder(streams.Out)
	for i, rec := range records {
		if rec.Error != "" {
			failed = append(failed, pipeline.Show(rec.Name+":"+rec.Version)+": "+rec.Error)
		}
		if opts.JSON() {
			if err := enc.Encode(rec); err != nil {
				return err
			}
		} else if rec.Error == "" {
			fmt.Fprintf(streams.Out, "%s %s\n", shown[i], rec.Digest)
		}
	}
	if len(failed) > 0 {
		return &cli.PartialError{Failed: failed, Total: len(records)}
	}
	if len(records) == 0 {
		status.Printf("nothing to build: no release was selected")
	}
	return nil
}

func buildGroup(ctx context.Context, b *publish.Builder, g catalog.Group, prefix target.Reference, targets *option.Targets, status *option.Status) pipeline.Record {
	ref := prefix.Join(g.Name).WithReference(g.Version)
	rec := pipeline.Record{Name: g.Name, Version: g.Version, Tags: publish.UniqueTags(g), Latest: g.Latest()}
	fail := func(err error) pipeline.Record {
		rec.Error = err.Error()
		status.Printf("Failed %s: %v", pipeline.Show(g.Key()), err)
		return rec
	}
	// Nothing is opened, so nothing created, for a release that cannot
	// be built or whose name would not stay below the target.
	if err := g.Err(); err != nil {
		return fail(err)
	}
	if err := pipeline.ValidateGroup(g); err != nil {
		return fail(err)
	}
	dst, err := targets.Open(ctx, ref)
	if err != nil {
		return fail(err)
	}
	res, err := b.Build(ctx, g, dst)
	if err != nil {
		return fail(err)
	}
	if err := dst.Tag(ctx, res.Root, ref.Reference); err != nil {
		return fail(fmt.Errorf("tagging %s as %q: %w", res.Root.Digest, ref.Reference, err))
	}
	status.Printf("Built %s", ref)
	warnDockerInLayout(status, ref, res.Root)
	full := resultRecord(target.AbsLayoutPath(ref), res, g.Version, rec.Tags)
	full.Name, full.Latest = g.Name, g.Latest()
	full.Metadata = &g.Releases[0].Metadata
	return full
}

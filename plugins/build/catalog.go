package build

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
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
	if opts.keepArch != nil {
		rels = slices.DeleteFunc(rels, func(r catalog.Release) bool { return !opts.keepArch[r.Arch] })
	}
	if err := opts.customizeReleases(rels); err != nil {
		return err
	}
	imageOpts, err := opts.imageOptions()
	if err != nil {
		return err
	}
	job := &publish.Job{
		Builder: &publish.Builder{
			Client:   client,
			CacheDir: opts.cacheDir,
			Options:  imageOpts,
			Progress: option.DownloadProgress(status, streams.ErrOut, streams.ErrOutIsTerminal(), opts.Quiet),
			Log:      option.CustomizeLog(status),
		},
		Prefix:  prefix,
		Remote:  opts.Remote.Options(),
		Workers: opts.workers,
		OnEvent: func(e publish.Event) {
			switch e.Kind {
			case publish.EventDone:
				status.Printf("Built %s", e.Ref)
				warnDockerInLayout(status, e.Ref, e.Root)
			case publish.EventFailed:
				status.Printf("Failed %s: %v", pipeline.Show(e.Group.Key()), e.Err)
			}
		},
	}
	groups := catalog.GroupReleases(rels)
	outcomes := job.Run(ctx, groups)
	if err := ctx.Err(); err != nil {
		return err
	}
	recs := make([]pipeline.Record, len(outcomes))
	for i, o := range outcomes {
		recs[i] = o.Record
	}
	if err := writeTerminationLog(opts.terminationLog, recs); err != nil {
		return err
	}
	var failed []string
	enc := pipeline.NewEncoder(streams.Out)
	for _, o := range outcomes {
		rec := o.Record
		if rec.Error != "" {
			failed = append(failed, pipeline.Show(rec.Name+":"+rec.Version)+": "+rec.Error)
		}
		if opts.JSON() {
			if err := enc.Encode(rec); err != nil {
				return err
			}
		} else if rec.Error == "" {
			fmt.Fprintf(streams.Out, "%s %s\n", prefix.Join(rec.Name).WithReference(rec.Version), rec.Digest)
		}
	}
	if len(failed) > 0 {
		return &cli.PartialError{Failed: failed, Total: len(outcomes)}
	}
	if len(outcomes) == 0 {
		status.Printf("nothing to build: no release was selected")
	}
	return nil
}

// parseArches reads --arch, before anything is read from upstream: the
// architectures of catalog releases to keep.
func (o *buildOptions) parseArches() error {
	if len(o.arches) == 0 {
		return nil
	}
	if len(o.disks) > 0 {
		return cli.Usagef("--arch with --disk: --arch selects catalog releases; a --disk names its architecture itself, as ARCH=FILE")
	}
	o.keepArch = map[string]bool{}
	for _, a := range o.arches {
		for _, a := range strings.Split(a, ",") {
			norm, err := containerdisk.NormalizeArch(strings.TrimSpace(a))
			if err != nil {
				return cli.Usagef("--arch: %w", err)
			}
			o.keepArch[norm] = true
		}
	}
	return nil
}

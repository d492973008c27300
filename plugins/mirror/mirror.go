// Package mirror is the "kubectl containerdisk mirror" command: it keeps
// selected images in sync between registries, OCI layouts and archives,
// once or on a schedule.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/containerdisk/kubectl-containerdisk/pkg/mirror"
	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/pkg/readlimit"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/option"
)

type mirrorOptions struct {
	option.Remote
	option.Output

	file           string
	to             string
	scoped         bool
	dryRun         bool
	workers        int
	maxConcurrency int
	retries        int
	chunkSize      string
	chunk          int64 // chunkSize parsed; 0 for one PUT per blob
	platforms      []string
	platformMode   string
	interval       time.Duration
	schedule       string
	printCronJob   bool
	cronJob        cronJobFlags
}

// NewCommand returns the mirror command and its subcommands.
func NewCommand(streams cli.Streams) *cobra.Command {
	opts := mirrorOptions{Output: option.NewOutput("mirror")}
	cmd := &cobra.Command{
		Use:   "mirror -f CONFIG [flags]",
		Short: "Keep selected containerdisks in sync between registries",
		Long: `Copy the images a configuration selects from one registry to another, to an
OCI layout directory or a single OCI archive for an air-gapped site, or from
those into a registry; once, or every --interval / on a --schedule.

CONFIG is this tool's YAML (units of source, target, images by tag list,
anchored allow/deny regexes, semver range or newest N, and the platforms to
keep) or a skopeo sync YAML as it is (registry hosts with images,
images-by-tag-regex, images-by-semver, credentials, tls-verify, cert-dir),
whose destination is --to, named by basename or, with --scoped, by the full
source path. Given with this tool's YAML, --to is every unit's target, in
place of the file's (a warning names each unit whose target it replaces).

Images in an OCI layout or archive are named NAME:TAG in its index.json, as
skopeo names them: oci:DIR:fedora:41 or oci-archive:FILE:fedora:41 is how
every command of this tool (inspect, verify, push, promote), skopeo and
podman read one back.

What the target already has is found with HEAD requests only; blobs in
another repository of the target registry are mounted; blobs stream without
temporary files; requests are retried with backoff on 429, 5xx and resets,
honouring Retry-After; each blob goes up in one PUT (or in chunks of
--chunk-size) and an upload cut midway goes on from what the registry holds.
Tags are written after everything they point to is in place.

Platform filtering keeps the chosen architectures: --platform-mode rewrite
(the default, accepted by every registry) writes a new index of only those
platforms, recording the source index's digest in an annotation; sparse
keeps the source digest and copies only the chosen children.

A unit's credentials and certDir (cert-dir) log in to its source and trust
its certificate authorities (*.crt; *.cert with *.key for a client
certificate). Passwords are printed nowhere: --print-cronjob refuses a
configuration holding credentials, which belong in the Secret that
--registry-secret names.

A failing image is listed with its reason and the others are still copied;
the exit status is then 1.

Unlike push and promote, mirror is no dry run by default. It copies images
that are published elsewhere, digests unchanged, as skopeo sync does, and
mostly runs unattended (every --interval, on a --schedule, or in the
CronJob of --print-cronjob), where a default dry run would copy nothing and
say so only in a log. --dry-run prints the plan and creates nothing, not
even a new oci:DIR or oci-archive:FILE.`,
		Example: `  # Sync once, then every hour
  kubectl containerdisk mirror -f sync.yaml
  kubectl containerdisk mirror -f sync.yaml --interval 1h

  # A skopeo sync file, to a local registry
  kubectl containerdisk mirror -f skopeo-sync.yaml --to registry.local:5000/mirror --scoped

  # Air gap: export to one archive, carry it over, import it
  kubectl containerdisk mirror -f sync.yaml --to oci-archive:containerdisks.tar
  kubectl containerdisk mirror import containerdisks.tar --to registry.airgap:5000/containerdisks

  # The same mirror as a Kubernetes CronJob
  kubectl containerdisk mirror -f sync.yaml --schedule '0 3 * * *' --print-cronjob --image IMAGE | kubectl apply -f -`,
		Args: cli.ExactArgs(0),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.Remote.Parse(cmd); err != nil {
				return err
			}
			if opts.file == "" {
				return cli.Usagef("no configuration: expected -f CONFIG (this tool's YAML or a skopeo sync file)")
			}
			if opts.interval > 0 && opts.schedule != "" {
				return cli.Usagef("--interval and --schedule both given: expected one of them")
			}
			if opts.workers < 1 {
				return cli.Usagef("--workers %d: expected at least 1", opts.workers)
			}
			chunk, err := parseChunkSize(opts.chunkSize)
			if err != nil {
				return err
			}
			opts.chunk = chunk
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMirror(cmd.Context(), streams, &opts)
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&opts.file, "file", "f", "", "configuration file: this tool's YAML or a skopeo sync YAML")
	fs.StringVar(&opts.to, "to", "", "target of every unit, in place of the one the configuration gives (warned about on stderr); a skopeo sync file's destination: registry prefix, oci:DIR or oci-archive:FILE")
	fs.BoolVar(&opts.scoped, "scoped", false, "name images at the target by their full source path (host and repository), as skopeo sync --scoped")
	option.AddDryRun(fs, &opts.dryRun, option.Syncs, "the plan (what would be copied, how many bytes, what is up to date)")
	fs.IntVar(&opts.workers, "workers", 4, "images copied at once")
	fs.IntVar(&opts.maxConcurrency, "max-concurrency", 8, "requests at once per registry host")
	fs.IntVar(&opts.retries, "retries", 5, "retries of a request that failed with 429, 5xx or a reset")
	fs.StringVar(&opts.chunkSize, "chunk-size", "0", "upload blobs larger than this in chunks of this size (e.g. 64Mi, for a proxy that caps request bodies); 0 sends each blob in one PUT")
	fs.StringArrayVar(&opts.platforms, "platform", nil, "keep only these platforms (amd64, linux/arm64), for units that name none; repeatable")
	fs.StringVar(&opts.platformMode, "platform-mode", "", "how platforms are filtered: rewrite (default) or sparse")
	fs.DurationVar(&opts.interval, "interval", 0, "run again every interval (e.g. 1h), as a long-lived process")
	fs.StringVar(&opts.schedule, "schedule", "", "run on a cron schedule as a Kubernetes CronJob reads it (e.g. '0 3 * * *', '0 0 ? * mon', '@every 6h'), as a long-lived process")
	fs.BoolVar(&opts.printCronJob, "print-cronjob", false, "print a Kubernetes CronJob (and the ConfigMap of CONFIG) running this mirror, instead of running it")
	opts.cronJob.apply(fs)
	opts.Remote.ApplyFlags(fs)
	opts.Output.ApplyFlags(fs)
	cmd.RegisterFlagCompletionFunc("output", option.CompleteOutput) //nolint:errcheck // the flag exists
	cmd.AddCommand(newLsCommand(streams), newInspectCommand(streams), newImportCommand(streams), newPreloadCommand(streams))
	return cmd
}

func runMirror(ctx context.Context, streams cli.Streams, opts *mirrorOptions) error {
	data, err := readlimit.ReadFile(ctx, opts.file, readlimit.Config, "a mirror configuration")
	if err != nil {
		return cli.Usagef("-f: %w", err)
	}
	var cfg *mirror.Config
	var overridden []mirror.TargetOverride
	if opts.to != "" {
		cfg, overridden, err = mirror.ParseConfigTarget(opts.file, data, opts.to, opts.scoped)
	} else {
		cfg, err = mirror.ParseConfig(opts.file, data)
	}
	if errors.Is(err, mirror.ErrNoTarget) {
		return cli.Usagef("%v\n(a skopeo sync file names no destination: give it with --to TARGET)", err)
	}
	if err != nil {
		return cli.Usagef("%v", err)
	}
	// --to wins over the file; a target the file gave is not replaced
	// silently. -q does not hide it: it may send images elsewhere.
	for _, o := range overridden {
		if o.Was != "" {
			fmt.Fprintf(streams.ErrOut, "Warning: %s:%d: %s: --to %s replaces the unit's target %s\n", opts.file, o.Line, o.Key, opts.to, o.Was)
		}
		if o.Unscoped {
			fmt.Fprintf(streams.ErrOut, "Warning: %s:%d: %s: the unit says scoped: true, but --to without --scoped names its images by their last element; add --scoped to keep the full source path\n", opts.file, o.Line, o.Key)
		}
	}
	status := option.NewStatus(streams.ErrOut, opts.Quiet)
	for _, w := range cfg.Warnings {
		status.Warnf("%v", w)
	}
	for i, u := range cfg.Units {
		if u.Target == "" {
			return cli.Usagef("%s: unit %d (source %s) has no target: expected --to TARGET (a skopeo sync file names none)", opts.file, i, u.Source)
		}
		if len(u.Platforms) == 0 {
			cfg.Units[i].Platforms = opts.platforms
		}
		if opts.platformMode != "" {
			cfg.Units[i].PlatformMode = mirror.PlatformMode(opts.platformMode)
		}
	}
	if opts.printCronJob {
		return printCronJob(streams, opts, cfg, data)
	}
	interval, schedule := opts.interval, opts.schedule
	if interval == 0 && schedule == "" {
		interval, schedule = cfg.Interval, cfg.Schedule
	}
	once := func(ctx context.Context) error {
		return syncOnce(ctx, mirror.Stopping(ctx), streams, opts, cfg, status)
	}
	if interval == 0 && schedule == "" {
		return once(ctx)
	}
	var sched mirror.Schedule
	if schedule != "" {
		if sched, err = mirror.ParseCron(schedule); err != nil {
			return cli.Usagef("--schedule: %v", err)
		}
	} else {
		sched = mirror.Every(interval)
	}
	return runScheduled(ctx, sched, once, status)
}

// syncOnce runs every unit once. stopping, when closed, asks it to finish
// the copies under way and start no new one.
func syncOnce(ctx context.Context, stopping <-chan struct{}, streams cli.Streams, opts *mirrorOptions, cfg *mirror.Config, status *option.Status) error {
	start := time.Now()
	remote := opts.Remote.Options()
	remote.Retries = opts.retries
	remote.MaxConcurrency = opts.maxConcurrency
	remote.Log = status.Printf

	t := newTargets(remote)
	var items []item
	var failed []string
	for _, u := range cfg.Units {
		planned, errs := plan(ctx, u, t, status)
		items = append(items, planned...)
		failed = append(failed, errs...)
	}
	total := len(items) + len(failed)
	// Blobs this run put in, or found in, a repository of a target
	// registry are mounted from there rather than uploaded again.
	blobs := newBlobIndex()
	results := make([]pipeline.Record, len(items))
	option.Parallel(ctx, len(items), opts.workers, func(i int) {
		select {
		case <-stopping:
			results[i] = pipeline.Record{Reference: items[i].dst.String(), Error: "not started: stopping"}
			return
		default:
		}
		results[i] = copyItem(ctx, items[i], t, opts, blobs, status)
	})
	if err := t.close(ctx, status); err != nil {
		failed = append(failed, err.Error())
		total++
	}
	enc := pipeline.NewEncoder(streams.Out)
	var copied, upToDate int
	for i, r := range results {
		switch {
		case r.Reference == "":
			r = pipeline.Record{Reference: items[i].dst.String(), Error: "not started: interrupted"}
			failed = append(failed, fmt.Sprintf("%s: %s", items[i].src, r.Error))
		case r.Error != "":
			failed = append(failed, fmt.Sprintf("%s: %s", items[i].src, r.Error))
		case r.Push != nil && r.Push.Status == "up-to-date":
			upToDate++
		default:
			copied++
		}
		if opts.JSON() {
			if err := enc.Encode(r); err != nil {
				return err
			}
		} else if r.Error == "" {
			printItem(streams, opts, r)
		}
	}
	verb := "copied"
	if opts.dryRun {
		verb = "to copy"
	}
	status.Printf("Summary: %d %s, %d up to date, %d failed in %.1fs", copied, verb, upToDate, len(failed), time.Since(start).Seconds())
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(failed) > 0 {
		return &cli.PartialError{Failed: failed, Total: total}
	}
	return nil
}

func printItem(streams cli.Streams, opts *mirrorOptions, r pipeline.Record) {
	switch {
	case r.Push != nil && r.Push.Status == "up-to-date":
		fmt.Fprintf(streams.Out, "%s up to date\n", r.Reference)
	case opts.dryRun:
		fmt.Fprintf(streams.Out, "would copy %s %s (%d bytes)\n", r.Reference, r.Digest, r.Push.UploadedBytes)
	default:
		fmt.Fprintf(streams.Out, "%s %s\n", r.Reference, r.Digest)
	}
}

// item is one image to copy: a source tag and where it goes.
type item struct {
	unit mirror.Unit
	src  endpoint
	dst  endpoint
}

// plan lists the tags each image spec of a unit selects. A repository that
// cannot be listed fails alone.
func plan(ctx context.Context, u mirror.Unit, t *targets, status *option.Status) ([]item, []string) {
	var items []item
	var failed []string
	for _, spec := range u.Images {
		src, err := sourceEndpoint(u, spec)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s/%s: %v", u.Source, spec.Repository, err))
			continue
		}
		tags := spec.Tags
		if spec.NeedsTagList() {
			all, err := src.listTags(ctx, t)
			if err != nil {
				failed = append(failed, fmt.Sprintf("%s: listing tags: %s", src, cli.Explain(err)))
				continue
			}
			if tags, err = spec.Select(all); err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", src, err))
				continue
			}
		}
		if len(tags) == 0 {
			status.Printf("No tag of %s matches", src)
		}
		dst, err := targetEndpoint(u, spec)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", src, err))
			continue
		}
		for _, tag := range tags {
			items = append(items, item{unit: u, src: src.withTag(tag), dst: dst.withTag(tag)})
		}
	}
	return items, failed
}

// parseChunkSize reads --chunk-size: a size with an optional binary suffix
// (Ki, Mi, Gi), at least 1Mi, or 0.
func parseChunkSize(v string) (int64, error) {
	bad := cli.Usagef("--chunk-size %q: expected a size such as 16Mi or 64Mi (at least 1Mi), or 0 to send each blob in one PUT", v)
	num, mult := v, int64(1)
	for suffix, m := range map[string]int64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30} {
		if n, ok := strings.CutSuffix(v, suffix); ok {
			num, mult = n, m
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, bad
	}
	n *= mult
	if n != 0 && n < 1<<20 {
		return 0, bad
	}
	return n, nil
}

package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"oras.land/oras-go/v2"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/pkg/publish"
	"github.com/containerdisk/kubectl-containerdisk/pkg/readlimit"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/pkg/transfer"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/option"
)

// Result is what one catalog entry's run did, as --results records it.
type Result struct {
	// Status is pushed, up-to-date, would-push or failed.
	Status  string   `json:"status"`
	Digest  string   `json:"digest,omitempty"`
	Tags    []string `json:"tags,omitempty"`
	Kept    []string `json:"kept,omitempty"`
	Error   string   `json:"error,omitempty"`
	Time    string   `json:"time"`
	Changes string   `json:"changes,omitempty"`
}

// Statuses of a Result.
const (
	StatusPushed    = "pushed"
	StatusUpToDate  = "up-to-date"
	StatusWouldPush = "would-push"
	StatusFailed    = "failed"
)

// runCatalog publishes the selected catalog entries: for each name:version
// it compares upstream with what the destination has and, when anything
// differs, builds every architecture and pushes the index with its tags.
func runCatalog(ctx context.Context, streams cli.Streams, opts *pushOptions) error {
	prefix, err := target.Parse(opts.to)
	if err != nil {
		return err
	}
	if prefix.Reference != "" {
		return cli.Usagef("--to %q has a tag: expected a registry prefix such as registry.example.com/containerdisks, below which each image goes to NAME:VERSION", opts.to)
	}
	format, err := containerdisk.ParseFormat(opts.format)
	if err != nil {
		return err
	}
	compression, err := containerdisk.ParseCompression(opts.compression)
	if err != nil {
		return err
	}
	status := option.NewStatus(streams.ErrOut, opts.Quiet)
	opts.Remote.Log = status.Printf
	client := opts.Catalog.Client(status.Printf)
	c, err := opts.Catalog.Catalog(client)
	if err != nil {
		return err
	}
	rels, err := c.Gather(ctx, opts.Catalog.Selection())
	if err != nil {
		return err
	}
	groups := catalog.GroupReleases(rels)
	b := &publish.Builder{
		Client:   client,
		CacheDir: opts.cacheDir,
		Options:  containerdisk.Options{Format: format, Compression: compression, TempDir: opts.tempDir},
		Progress: option.DownloadProgress(status, streams.ErrOut, streams.ErrOutIsTerminal(), opts.Quiet),
	}
	targets := option.NewTargets(opts.Remote.Options())
	records := make([]pipeline.Record, len(groups))
	results := make([]Result, len(groups))
	option.Parallel(ctx, len(groups), opts.workers, func(i int) {
		records[i], results[i] = publishGroup(ctx, b, groups[i], prefix, targets, opts, status)
	})
	for i, r := range results {
		if r.Status == "" {
			// Not started: interrupted.
			records[i], results[i] = failure(groups[i], ctx.Err(), opts)
		}
	}

	if opts.results != "" {
		byKey := map[string]Result{}
		for i, g := range groups {
			byKey[g.Key()] = results[i]
		}
		// The results of an interrupted run are kept too: the read of
		// the file is bounded, not cancelled.
		if err := mergeResults(context.WithoutCancel(ctx), opts.results, byKey); err != nil {
			return err
		}
	}
	enc := pipeline.NewEncoder(streams.Out)
	var failed []string
	counts := map[string]int{}
	for i, rec := range records {
		counts[results[i].Status]++
		if rec.Error != "" {
			failed = append(failed, pipeline.Show(rec.Name+":"+rec.Version)+": "+rec.Error)
		}
		if opts.JSON() {
			if err := enc.Encode(rec); err != nil {
				return err
			}
			continue
		}
		switch results[i].Status {
		case StatusPushed:
			fmt.Fprintf(streams.Out, "%s %s\n", rec.Reference, rec.Digest)
		case StatusUpToDate:
			fmt.Fprintf(streams.Out, "%s up to date\n", rec.Reference)
		case StatusWouldPush:
			fmt.Fprintf(streams.Out, "would push %s (%s) tags %s\n", rec.Reference, results[i].Changes, strings.Join(results[i].Tags, ","))
		}
	}
	status.Printf("Summary: %d pushed, %d up to date, %d would be pushed, %d failed", counts[StatusPushed], counts[StatusUpToDate], counts[StatusWouldPush], counts[StatusFailed])
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(failed) > 0 {
		return &cli.PartialError{Failed: failed, Total: len(records)}
	}
	if len(groups) == 0 {
		status.Printf("nothing to publish: no catalog entry matches %s", strings.Join(opts.Catalog.Selection().Focus, ", "))
	}
	return nil
}

func failure(g catalog.Group, err error, opts *pushOptions) (pipeline.Record, Result) {
	rec := pipeline.Record{Name: g.Name, Version: g.Version, Error: err.Error()}
	return rec, Result{Status: StatusFailed, Error: err.Error(), Time: opts.now.UTC().Format("2006-01-02T15:04:05Z")}
}

func publishGroup(ctx context.Context, b *publish.Builder, g catalog.Group, prefix target.Reference, targets *option.Targets, opts *pushOptions, status *option.Status) (pipeline.Record, Result) {
	repo := prefix.Join(g.Name)
	ref := repo.WithReference(g.Version)
	stamp := opts.now.UTC().Format("2006-01-02T15:04:05Z")
	rec := pipeline.Record{Reference: ref.String(), Name: g.Name, Version: g.Version, Latest: g.Latest()}
	if len(g.Releases) > 0 {
		rec.Metadata = &g.Releases[0].Metadata
	}
	fail := func(err error) (pipeline.Record, Result) {
		status.Printf("Failed %s: %s", pipeline.Show(g.Key()), cli.Explain(err))
		rec.Error = err.Error()
		return rec, Result{Status: StatusFailed, Error: err.Error(), Time: stamp}
	}
	if err := g.Err(); err != nil {
		return fail(err)
	}
	if err := pipeline.ValidateGroup(g); err != nil {
		return fail(err)
	}
	tags := publish.Tags(g, opts.now)

	published, err := readPublished(ctx, ref, targets, opts)
	if err != nil {
		return fail(err)
	}
	if published.UpToDate(g) && !opts.force {
		status.Printf("%s is up to date", ref)
		rec.Digest = published.Root.Digest.String()
		rec.Push = &pipeline.Push{Status: StatusUpToDate, DryRun: opts.dryRun}
		return rec, Result{Status: StatusUpToDate, Digest: rec.Digest, Time: stamp}
	}
	changes := published.Diff(g)
	if opts.force && published.UpToDate(g) {
		changes = "forced"
	}
	if opts.dryRun {
		status.Printf("Would build and push %s: %s", ref, changes)
		rec.Tags = tags
		rec.Push = &pipeline.Push{Status: StatusWouldPush, DryRun: true, Tagged: tags}
		return rec, Result{Status: StatusWouldPush, Tags: tags, Changes: changes, Time: stamp}
	}
	status.Printf("Building %s: %s", ref, changes)
	dst, err := targets.Open(ctx, ref)
	if err != nil {
		return fail(err)
	}
	res, err := b.Build(ctx, g, dst)
	if err != nil {
		return fail(err)
	}
	// Everything is in place; only now are the tags written, the moving
	// ones last.
	rep, err := transfer.Push(ctx, dst, res.Root, dst, transfer.Options{
		Tags:    tags,
		Unique:  publish.Unique(g, tags),
		OnEvent: func(e transfer.Event) { option.WarnKept(status, repo, e) },
	})
	if err != nil {
		return fail(fmt.Errorf("tagging %s: %w", ref, err))
	}
	tags = slices.DeleteFunc(tags, func(t string) bool { return slices.Contains(rep.Kept, t) })
	status.Printf("Pushed %s %s as %s", ref, res.Root.Digest, strings.Join(tags, ", "))
	rec.Digest = res.Root.Digest.String()
	rec.MediaType = res.Root.MediaType
	rec.Size = res.Root.Size
	rec.Tags = tags
	rec.Push = &pipeline.Push{Status: StatusPushed, Tagged: rep.Tagged, Unchanged: rep.Unchanged, Kept: rep.Kept}
	rec.Images = pipeline.Images(res)
	return rec, Result{Status: StatusPushed, Digest: rec.Digest, Tags: tags, Kept: rep.Kept, Changes: changes, Time: stamp}
}

// readPublished reads what the destination has, without creating anything:
// a layout directory that does not exist yet has nothing.
func readPublished(ctx context.Context, ref target.Reference, targets *option.Targets, opts *pushOptions) (publish.Published, error) {
	var src oras.ReadOnlyTarget
	var err error
	if ref.Kind == target.KindLayout {
		if _, err := os.Stat(filepath.Join(ref.Path, "index.json")); errors.Is(err, os.ErrNotExist) {
			return publish.Published{}, nil
		}
		// The layout's own store, which this run also writes with.
		src, err = targets.Open(ctx, ref)
	} else {
		src, err = target.OpenSource(ctx, ref, opts.Remote.Options())
	}
	if err != nil {
		return publish.Published{}, err
	}
	return publish.ReadPublished(ctx, src, ref.Reference)
}

// mergeResults adds results to the JSON object in path, keyed by
// name:version, keeping the entries of other runs (other shards), and
// replaces the file atomically.
func mergeResults(ctx context.Context, path string, results map[string]Result) error {
	all := map[string]Result{}
	data, err := readlimit.ReadFile(ctx, path, readlimit.Config, "a results file")
	switch {
	case err == nil:
		if len(strings.TrimSpace(string(data))) > 0 {
			if err := json.Unmarshal(data, &all); err != nil {
				return fmt.Errorf("--results %s: not a results file (%v): expected a JSON object by name:version, as push writes it", path, err)
			}
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("--results %s: %w", path, err)
	}
	for k, r := range results {
		all[k] = r
	}
	out, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".results-*")
	if err != nil {
		return fmt.Errorf("--results %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(out, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

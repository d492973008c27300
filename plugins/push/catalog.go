package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/pkg/publish"
	"github.com/containerdisk/kubectl-containerdisk/pkg/readlimit"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
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
	StatusPushed    = publish.StatusPushed
	StatusUpToDate  = publish.StatusUpToDate
	StatusWouldPush = publish.StatusWouldPush
	StatusFailed    = publish.StatusFailed
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
	job := &publish.Job{
		Builder: &publish.Builder{
			Client:   client,
			CacheDir: opts.cacheDir,
			Options:  containerdisk.Options{Format: format, Compression: compression, TempDir: opts.tempDir},
			Progress: option.DownloadProgress(status, streams.ErrOut, streams.ErrOutIsTerminal(), opts.Quiet),
			Log:      option.CustomizeLog(status),
		},
		Prefix:  prefix,
		Remote:  opts.Remote.Options(),
		Compare: true,
		DryRun:  opts.dryRun,
		Force:   opts.force,
		Now:     opts.now,
		Workers: opts.workers,
		OnEvent: func(e publish.Event) { showEvent(status, e) },
	}
	outcomes := job.Run(ctx, groups)
	stamp := opts.now.UTC().Format("2006-01-02T15:04:05Z")
	records := make([]pipeline.Record, len(groups))
	results := make([]Result, len(groups))
	for i, o := range outcomes {
		records[i] = o.Record
		results[i] = Result{Status: o.Status, Digest: o.Record.Digest, Tags: o.Record.Tags, Changes: o.Changes, Time: stamp}
		if o.Record.Push != nil {
			results[i].Kept = o.Record.Push.Kept
		}
		if o.Err != nil {
			results[i].Error = o.Err.Error()
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

// showEvent tells on stderr how an entry goes through the job.
func showEvent(status *option.Status, e publish.Event) {
	switch e.Kind {
	case publish.EventUpToDate:
		status.Printf("%s is up to date", e.Ref)
	case publish.EventWouldPush:
		status.Printf("Would build and push %s: %s", e.Ref, e.Changes)
	case publish.EventBuilding:
		status.Printf("Building %s: %s", e.Ref, e.Changes)
	case publish.EventKept:
		option.WarnKept(status, e.Ref.WithReference(""), e.Transfer)
	case publish.EventDone:
		status.Printf("Pushed %s %s as %s", e.Ref, e.Root.Digest, strings.Join(e.Tags, ", "))
	case publish.EventFailed:
		status.Printf("Failed %s: %s", pipeline.Show(e.Group.Key()), cli.Explain(e.Err))
	}
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

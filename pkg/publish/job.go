package publish

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/pkg/transfer"
)

// Statuses of an Outcome, as records and results files show them.
const (
	StatusPushed    = "pushed"
	StatusUpToDate  = "up-to-date"
	StatusWouldPush = "would-push"
	StatusBuilt     = "built"
	StatusFailed    = "failed"
)

// Kinds of an Event.
const (
	// EventUpToDate: what Ref holds has the group's checksums; nothing
	// is built.
	EventUpToDate = "up-to-date"
	// EventWouldPush: a dry run found Changes; nothing is built.
	EventWouldPush = "would-push"
	// EventBuilding: the group is being built into Ref because of Changes.
	EventBuilding = "building"
	// EventKept: tagging left a unique tag on the other image it names
	// (Transfer is the transfer.ActionKept event).
	EventKept = "kept"
	// EventDone: the group is built (and, when comparing, tagged); Root
	// is its index or manifest and Tags the tags written.
	EventDone = "done"
	// EventFailed: the group failed with Err.
	EventFailed = "failed"
)

// Event tells how one group goes through a Job, for progress and warnings.
type Event struct {
	Kind     string
	Group    catalog.Group
	Ref      target.Reference
	Changes  string
	Root     ocispec.Descriptor
	Tags     []string
	Transfer transfer.Event
	Err      error
}

// Outcome is what a Job did with one group.
type Outcome struct {
	// Status is one of the Status constants.
	Status string
	// Record describes the group as the JSON lines show it.
	Record pipeline.Record
	// Changes says how upstream differs from what was published
	// ("forced" with Force); empty when nothing was compared.
	Changes string
	// Err is why the group failed: Record.Error, unwrapped.
	Err error
}

// Job builds catalog groups below Prefix, each name:version into
// PREFIX/NAME:VERSION. With Compare it publishes them (push): it reads what
// each reference already holds and builds only the groups whose upstream
// checksums changed, then writes the tags of Tags, the moving ones last and
// never moving a unique one. Without it (build) every group is built and
// tagged with its version only, its unique tags left in its record for a
// later push.
type Job struct {
	// Builder downloads and packs the releases.
	Builder *Builder
	// Prefix is the registry repository prefix or layout directory.
	Prefix target.Reference
	// Remote are the options registries are opened with.
	Remote target.RemoteOptions
	// Compare, DryRun and Force: see Job. DryRun and Force go with
	// Compare: a dry run builds nothing, Force builds what is up to date.
	Compare, DryRun, Force bool
	// Now stamps the timestamped tag.
	Now time.Time
	// Workers is how many groups are handled at once (at least one).
	Workers int
	// OnEvent, when set, is called as groups go through the job, from
	// several goroutines at once.
	OnEvent func(Event)

	mu      sync.Mutex
	targets map[string]oras.GraphTarget
}

// Run handles every group, at most Workers at once, and returns their
// outcomes in the groups' order. Once ctx is done, the groups not started
// fail with ctx's error; the ones under way stop where they are, and
// nothing unfinished is tagged.
func (j *Job) Run(ctx context.Context, groups []catalog.Group) []Outcome {
	out := make([]Outcome, len(groups))
	var eg errgroup.Group
	eg.SetLimit(max(j.Workers, 1))
	for i, g := range groups {
		eg.Go(func() error {
			if ctx.Err() == nil {
				out[i] = j.group(ctx, g)
			}
			return nil
		})
	}
	eg.Wait() //nolint:errcheck // the calls return no error
	for i, o := range out {
		if o.Status == "" {
			err := ctx.Err()
			out[i] = Outcome{Status: StatusFailed, Err: err, Record: pipeline.Record{Name: groups[i].Name, Version: groups[i].Version, Error: err.Error()}}
		}
	}
	return out
}

func (j *Job) emit(e Event) {
	if j.OnEvent != nil {
		j.OnEvent(e)
	}
}

// group builds, and with Compare publishes, one group.
func (j *Job) group(ctx context.Context, g catalog.Group) Outcome {
	ref := j.Prefix.Join(g.Name).WithReference(g.Version)
	rec := pipeline.Record{Name: g.Name, Version: g.Version, Latest: g.Latest()}
	if j.Compare {
		rec.Reference = ref.String()
		if len(g.Releases) > 0 {
			rec.Metadata = &g.Releases[0].Metadata
		}
	} else {
		rec.Tags = UniqueTags(g)
	}
	fail := func(err error) Outcome {
		j.emit(Event{Kind: EventFailed, Group: g, Ref: ref, Err: err})
		rec.Error = err.Error()
		return Outcome{Status: StatusFailed, Record: rec, Err: err}
	}
	// Nothing is opened, so nothing created, for a release that cannot
	// be built or whose name would not stay below the prefix.
	if err := g.Err(); err != nil {
		return fail(err)
	}
	if err := pipeline.ValidateGroup(g); err != nil {
		return fail(err)
	}
	if !j.Compare {
		return j.build(ctx, g, ref, rec, fail)
	}

	published, err := j.published(ctx, ref)
	if err != nil {
		return fail(err)
	}
	if published.UpToDate(g) && !j.Force {
		j.emit(Event{Kind: EventUpToDate, Group: g, Ref: ref, Root: published.Root})
		rec.Digest = published.Root.Digest.String()
		rec.Push = &pipeline.Push{Status: StatusUpToDate, DryRun: j.DryRun}
		return Outcome{Status: StatusUpToDate, Record: rec}
	}
	changes := published.Diff(g)
	if j.Force && published.UpToDate(g) {
		changes = "forced"
	}
	policy := GroupPolicy(g, j.Now)
	tags := policy.Tags()
	if j.DryRun {
		j.emit(Event{Kind: EventWouldPush, Group: g, Ref: ref, Changes: changes, Tags: tags})
		rec.Tags = tags
		rec.Push = &pipeline.Push{Status: StatusWouldPush, DryRun: true, Tagged: tags}
		return Outcome{Status: StatusWouldPush, Record: rec, Changes: changes}
	}
	j.emit(Event{Kind: EventBuilding, Group: g, Ref: ref, Changes: changes})
	dst, res, err := j.buildInto(ctx, g, ref)
	if err != nil {
		return fail(err)
	}
	// Everything is in place; only now are the tags written, the moving
	// ones last.
	rep, err := transfer.Push(ctx, dst, res.Root, dst, transfer.Options{
		Tags:   tags,
		Unique: policy.UniqueTags(),
		OnEvent: func(e transfer.Event) {
			if e.Action == transfer.ActionKept {
				j.emit(Event{Kind: EventKept, Group: g, Ref: ref, Transfer: e})
			}
		},
	})
	if err != nil {
		return fail(fmt.Errorf("tagging %s: %w", ref, err))
	}
	tags = slices.DeleteFunc(tags, func(t string) bool { return slices.Contains(rep.Kept, t) })
	j.emit(Event{Kind: EventDone, Group: g, Ref: ref, Root: res.Root, Tags: tags, Changes: changes})
	describe(&rec, res)
	rec.Tags = tags
	rec.Push = &pipeline.Push{Status: StatusPushed, Tagged: rep.Tagged, Unchanged: rep.Unchanged, Kept: rep.Kept}
	return Outcome{Status: StatusPushed, Record: rec, Changes: changes}
}

// build builds g into ref and tags it with its version only.
func (j *Job) build(ctx context.Context, g catalog.Group, ref target.Reference, rec pipeline.Record, fail func(error) Outcome) Outcome {
	dst, res, err := j.buildInto(ctx, g, ref)
	if err != nil {
		return fail(err)
	}
	if err := dst.Tag(ctx, res.Root, ref.Reference); err != nil {
		return fail(fmt.Errorf("tagging %s as %q: %w", res.Root.Digest, ref.Reference, err))
	}
	j.emit(Event{Kind: EventDone, Group: g, Ref: ref, Root: res.Root, Tags: []string{ref.Reference}})
	describe(&rec, res)
	rec.Reference = target.AbsLayoutPath(ref).String()
	rec.Metadata = &g.Releases[0].Metadata
	return Outcome{Status: StatusBuilt, Record: rec}
}

// buildInto builds g, untagged, into ref's repository.
func (j *Job) buildInto(ctx context.Context, g catalog.Group, ref target.Reference) (oras.GraphTarget, containerdisk.Result, error) {
	dst, err := j.open(ctx, ref)
	if err != nil {
		return nil, containerdisk.Result{}, err
	}
	res, err := j.Builder.Build(ctx, g, dst)
	if err != nil {
		return nil, res, err
	}
	return dst, res, nil
}

// describe records the tagged image res in rec.
func describe(rec *pipeline.Record, res containerdisk.Result) {
	rec.Digest = res.Root.Digest.String()
	rec.MediaType = res.Root.MediaType
	rec.Size = res.Root.Size
	rec.Images = pipeline.Images(res)
}

// published reads what ref holds, without creating anything: a layout
// directory that does not exist yet has nothing.
func (j *Job) published(ctx context.Context, ref target.Reference) (Published, error) {
	var src oras.ReadOnlyTarget
	var err error
	if ref.Kind == target.KindLayout {
		if _, err := os.Stat(filepath.Join(ref.Path, "index.json")); errors.Is(err, os.ErrNotExist) {
			return Published{}, nil
		}
		// The layout's own store, which this run also writes with.
		src, err = j.open(ctx, ref)
	} else {
		src, err = target.OpenSource(ctx, ref, j.Remote)
	}
	if err != nil {
		return Published{}, err
	}
	return ReadPublished(ctx, src, ref.Reference)
}

// open returns the target of ref's repository, opened once and shared by
// the job's goroutines: two versions of a name go into one layout, whose
// index must not be written by two stores at once. A layout directory is
// created when needed.
func (j *Job) open(ctx context.Context, ref target.Reference) (oras.GraphTarget, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	key := ref.Repo()
	if t, ok := j.targets[key]; ok {
		return t, nil
	}
	if ref.Kind == target.KindLayout {
		if err := os.MkdirAll(ref.Path, 0o755); err != nil {
			return nil, err
		}
	}
	t, err := target.Open(ctx, ref, j.Remote)
	if err != nil {
		return nil, err
	}
	if j.targets == nil {
		j.targets = map[string]oras.GraphTarget{}
	}
	j.targets[key] = t
	return t, nil
}

// Package transfer copies images between targets: the blobs first, then
// manifests, then the index, and the tags last, so that a tag never points
// at something incomplete.
package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"

	"github.com/containerdisk/kubectl-containerdisk/pkg/upload"
)

// Options configures Push.
type Options struct {
	// Tags are written once the whole image is in place, in order. Put
	// unique tags first and moving tags (such as "41" or "latest") last.
	Tags []string
	// Unique lists those of Tags that pin one image (such as
	// "41-2612031327"): one that already names another image is kept on
	// it, never moved, and reported as ActionKept; the other tags are
	// still written.
	Unique []string
	// DryRun checks what is missing and writes nothing.
	DryRun bool
	// MountFrom lists repositories of the destination registry that may
	// already hold the blobs; they are mounted instead of uploaded.
	MountFrom []string
	// Concurrency is how many blobs are copied at once; 3 when zero.
	Concurrency int
	// OnEvent, when set, is told of each node as it is handled. It may be
	// called from several goroutines at once.
	OnEvent func(Event)
}

// Action says what happened to a node or a tag.
type Action string

// Actions reported by Push.
const (
	ActionUploaded    Action = "uploaded"
	ActionMounted     Action = "mounted"
	ActionExists      Action = "exists"
	ActionWouldUpload Action = "would-upload"
	ActionTagged      Action = "tagged"
	ActionWouldTag    Action = "would-tag"
	ActionUnchanged   Action = "unchanged"
	// ActionResumed: an upload cut midway goes on at Event.Offset.
	ActionResumed Action = "resumed"
	// ActionKept: a unique tag already names another image (Event.Was)
	// and is left on it.
	ActionKept Action = "kept"
)

// Event reports one handled node or tag.
type Event struct {
	Action     Action
	Descriptor ocispec.Descriptor
	// Tag is set for tag events.
	Tag string
	// Offset is where a resumed upload goes on.
	Offset int64
	// Was is, for a kept tag, the image it names and keeps naming.
	Was ocispec.Descriptor
}

// Report summarises a push.
type Report struct {
	Root   ocispec.Descriptor
	DryRun bool
	// Uploaded counts the blobs and manifests sent (or, in a dry run, that
	// would be sent) and their bytes.
	Uploaded      int
	UploadedBytes int64
	// Mounted counts blobs mounted from another repository.
	Mounted int
	// Existing counts nodes the destination already had, with everything
	// below them.
	Existing int
	// Tagged lists the tags written (or, in a dry run, that would be);
	// Unchanged the tags that already pointed at Root; Kept the unique
	// tags that name another image and were left on it.
	Tagged    []string
	Unchanged []string
	Kept      []string
}

// UpToDate reports whether the push had nothing to do.
func (r Report) UpToDate() bool {
	return r.Uploaded == 0 && r.Mounted == 0 && len(r.Tagged) == 0
}

// Push copies the graph rooted at root from src to dst and then writes the
// tags. When every tag already points at root, only the tags are resolved:
// no blob is looked at.
func Push(ctx context.Context, src content.ReadOnlyStorage, root ocispec.Descriptor, dst oras.Target, opts Options) (Report, error) {
	rep := Report{Root: root, DryRun: opts.DryRun}
	emit := reporter(&rep, opts.OnEvent)

	pending, err := pendingTags(ctx, dst, root, opts, emit)
	if err != nil {
		return rep, err
	}
	if len(opts.Tags) > 0 && len(pending) == 0 {
		return rep, nil
	}

	if opts.DryRun {
		if err := plan(ctx, src, root, dst, emit); err != nil {
			return rep, err
		}
		for _, tag := range pending {
			emit(Event{Action: ActionWouldTag, Tag: tag, Descriptor: root})
		}
		return rep, nil
	}

	if err := oras.CopyGraph(ctx, src, dst, root, copyOptions(src, dst, opts, emit)); err != nil {
		return rep, fmt.Errorf("copying %s: %w", root.Digest, err)
	}
	for _, tag := range pending {
		if err := tagRoot(ctx, src, dst, root, tag); err != nil {
			return rep, fmt.Errorf("tagging %s as %q: %w", root.Digest, tag, err)
		}
		emit(Event{Action: ActionTagged, Tag: tag, Descriptor: root})
	}
	return rep, nil
}

// reporter returns the one emit every step of a push reports through: it
// counts the event into rep and then passes it on to onEvent. CopyGraph
// calls it from several goroutines, hence the lock; onEvent runs outside
// it so a slow listener does not hold up the count.
func reporter(rep *Report, onEvent func(Event)) func(Event) {
	var mu sync.Mutex
	return func(e Event) {
		mu.Lock()
		switch e.Action {
		case ActionUploaded, ActionWouldUpload:
			rep.Uploaded++
			rep.UploadedBytes += e.Descriptor.Size
		case ActionMounted:
			rep.Mounted++
		case ActionExists:
			rep.Existing++
		case ActionTagged, ActionWouldTag:
			rep.Tagged = append(rep.Tagged, e.Tag)
		case ActionUnchanged:
			rep.Unchanged = append(rep.Unchanged, e.Tag)
		case ActionKept:
			rep.Kept = append(rep.Kept, e.Tag)
		}
		mu.Unlock()
		if onEvent != nil {
			onEvent(e)
		}
	}
}

// pendingTags resolves each tag on dst and returns those still to write.
// A tag already on root is reported unchanged, and a unique tag naming
// another image is kept there: neither is written again. Resolving comes
// first so that a push whose tags are all in place touches no blob.
func pendingTags(ctx context.Context, dst oras.Target, root ocispec.Descriptor, opts Options, emit func(Event)) ([]string, error) {
	var pending []string
	for _, tag := range dedupe(opts.Tags) {
		desc, err := dst.Resolve(ctx, tag)
		switch {
		case err == nil && desc.Digest == root.Digest:
			emit(Event{Action: ActionUnchanged, Tag: tag, Descriptor: root})
		case err == nil && slices.Contains(opts.Unique, tag):
			emit(Event{Action: ActionKept, Tag: tag, Descriptor: root, Was: desc})
		case err == nil || errors.Is(err, errdef.ErrNotFound):
			pending = append(pending, tag)
		default:
			return pending, fmt.Errorf("resolving tag %q: %w", tag, err)
		}
	}
	return pending, nil
}

// copyOptions turns CopyGraph's callbacks into push events. For an
// upload.Repository the blobs go through its uploader instead of CopyGraph's
// own copy (see uploadBlobs); for any other target a MountFrom list is
// handed to CopyGraph as it is.
func copyOptions(src content.ReadOnlyStorage, dst oras.Target, opts Options, emit func(Event)) oras.CopyGraphOptions {
	copyOpts := oras.CopyGraphOptions{
		Concurrency: opts.Concurrency,
		PostCopy: func(_ context.Context, d ocispec.Descriptor) error {
			emit(Event{Action: ActionUploaded, Descriptor: d})
			return nil
		},
		OnCopySkipped: func(_ context.Context, d ocispec.Descriptor) error {
			emit(Event{Action: ActionExists, Descriptor: d})
			return nil
		},
		OnMounted: func(_ context.Context, d ocispec.Descriptor) error {
			emit(Event{Action: ActionMounted, Descriptor: d})
			return nil
		},
	}
	if repo, ok := dst.(*upload.Repository); ok {
		copyOpts.PreCopy = uploadBlobs(src, repo, opts.MountFrom, emit)
	} else if len(opts.MountFrom) > 0 {
		copyOpts.MountFrom = func(context.Context, ocispec.Descriptor) ([]string, error) {
			return opts.MountFrom, nil
		}
	}
	return copyOpts
}

// uploadBlobs is the PreCopy hook that sends blobs up with the repository's
// uploader, which mounts them from mountFrom, sends large ones in chunks and
// resumes a cut upload, reading the source again from there. Manifests are
// left to CopyGraph; a blob it handled is skipped there.
func uploadBlobs(src content.ReadOnlyStorage, repo *upload.Repository, mountFrom []string, emit func(Event)) func(context.Context, ocispec.Descriptor) error {
	up := *repo.Uploader
	up.OnResume = func(d ocispec.Descriptor, off int64) {
		emit(Event{Action: ActionResumed, Descriptor: d, Offset: off})
		if repo.Uploader.OnResume != nil {
			repo.Uploader.OnResume(d, off)
		}
	}
	return func(ctx context.Context, d ocispec.Descriptor) error {
		if repo.IsManifest(d) {
			return nil
		}
		mounted, err := up.Upload(ctx, d, mountFrom, upload.FetchOpener(src, d))
		if err != nil {
			return err
		}
		if mounted {
			emit(Event{Action: ActionMounted, Descriptor: d})
		} else {
			emit(Event{Action: ActionUploaded, Descriptor: d})
		}
		return oras.SkipNode
	}
}

// tagRoot tags with the manifest bytes at hand: a registry then takes one
// PUT, where a plain Tag would fetch the manifest back first.
func tagRoot(ctx context.Context, src content.ReadOnlyStorage, dst oras.Target, root ocispec.Descriptor, tag string) error {
	if rp, ok := dst.(registry.ReferencePusher); ok {
		b, err := content.FetchAll(ctx, src, root)
		if err != nil {
			return err
		}
		return rp.PushReference(ctx, root, bytes.NewReader(b), tag)
	}
	return dst.Tag(ctx, root, tag)
}

// plan walks the graph as CopyGraph would and reports what is missing.
func plan(ctx context.Context, src content.ReadOnlyStorage, root ocispec.Descriptor, dst oras.Target, emit func(Event)) error {
	seen := map[string]bool{}
	var walk func(d ocispec.Descriptor) error
	walk = func(d ocispec.Descriptor) error {
		if seen[d.Digest.String()] {
			return nil
		}
		seen[d.Digest.String()] = true
		ok, err := dst.Exists(ctx, d)
		if err != nil {
			return fmt.Errorf("checking %s: %w", d.Digest, err)
		}
		if ok {
			emit(Event{Action: ActionExists, Descriptor: d})
			return nil
		}
		succ, err := content.Successors(ctx, src, d)
		if err != nil {
			return fmt.Errorf("reading %s: %w", d.Digest, err)
		}
		for _, s := range succ {
			if err := walk(s); err != nil {
				return err
			}
		}
		emit(Event{Action: ActionWouldUpload, Descriptor: d})
		return nil
	}
	return walk(root)
}

func dedupe(tags []string) []string {
	var out []string
	for _, t := range tags {
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// Package transfer copies images between targets: the blobs first, then
// manifests, then the index, and the tags last, so that a tag never points
// at something incomplete. Every byte read from the source is checked
// against its digest before the target commits it.
package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/containerdisk/kubectl-containerdisk/pkg/upload"
)

// Options configures Copy and Push.
type Options struct {
	// Tags are written once the whole image is in place, in order. Put
	// unique tags first and moving tags (such as "41" or "latest") last.
	// Without tags, the image is copied by digest only.
	Tags []string
	// Unique lists those of Tags that pin one image (such as
	// "41-2612031327"): one that already names another image is kept on
	// it, never moved, and reported as ActionKept; the other tags are
	// still written.
	Unique []string
	// DryRun checks what is missing and writes nothing.
	DryRun bool
	// PlanMounts has a dry run ask, for each missing blob, whether it
	// would be mounted (ActionWouldMount) rather than uploaded: a HEAD
	// request per blob and repository, to a destination that is an
	// upload.MountChecker.
	PlanMounts bool
	// MountFrom lists repositories of the destination registry that may
	// already hold the blobs; they are mounted instead of uploaded.
	MountFrom []string
	// MountCandidates, when set, names the repositories of the
	// destination registry known to hold a blob, to mount it from instead
	// of trying each of MountFrom in turn: a mount that fails costs an
	// upload session opened and cancelled.
	MountCandidates func(d digest.Digest) []string
	// Concurrency is how many blobs are copied at once; 3 when zero.
	Concurrency int
	// Name names the image in errors ("copying NAME: ..."); the root's
	// digest when empty.
	Name string
	// Prepare, when set, is called once the tags show that something is
	// to be copied, before the source is read: it may fill in the graph
	// below its Root, which it keeps, or refuse the copy with an error.
	Prepare func(ctx context.Context, g *Graph) error
	// OnEvent, when set, is told of each node as it is handled. It may be
	// called from several goroutines at once.
	OnEvent func(Event)
}

// Action says what happened to a node or a tag.
type Action string

// Actions reported by Copy.
const (
	ActionUploaded    Action = "uploaded"
	ActionMounted     Action = "mounted"
	ActionExists      Action = "exists"
	ActionWouldUpload Action = "would-upload"
	ActionWouldMount  Action = "would-mount"
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

// Report summarises a copy.
type Report struct {
	Root   ocispec.Descriptor
	DryRun bool
	// Uploaded counts the blobs and manifests sent (or, in a dry run, that
	// would be sent) and their bytes.
	Uploaded      int
	UploadedBytes int64
	// Mounted counts blobs mounted (or that would be) from another
	// repository.
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

// UpToDate reports whether the copy had nothing to do.
func (r Report) UpToDate() bool {
	return r.Uploaded == 0 && r.Mounted == 0 && len(r.Tagged) == 0
}

// Graph is what a copy writes: the image Root and what is below it.
type Graph struct {
	Root ocispec.Descriptor
	// Raw is Root's content when at hand: read already, or made (an index
	// cut to some platforms, which the source lacks). Copy fills it in
	// when it reads the root.
	Raw []byte
	// Children are the entries of the index Root to copy; nil for all.
	Children []ocispec.Descriptor
	// Sparse says Root is the source's index with only Children copied:
	// the destination may hold it with other entries, and a registry may
	// refuse it (a *SparseIndexError).
	Sparse bool
}

// SparseIndexError reports a registry that refused a sparse index, whose
// entries left out are missing.
type SparseIndexError struct {
	Index digest.Digest
	// Registry is the registry's error, as text only: as an errcode.Error
	// in the chain, it would have oras-go copy the chosen manifests again
	// and retry, to the same refusal.
	Registry string
}

func (e *SparseIndexError) Error() string {
	return fmt.Sprintf("the registry refused the sparse index %s: %s", e.Index, e.Registry)
}

// Push copies the whole graph rooted at root from src to dst and then
// writes the tags: see Copy.
func Push(ctx context.Context, src content.ReadOnlyStorage, root ocispec.Descriptor, dst oras.Target, opts Options) (Report, error) {
	return Copy(ctx, src, &Graph{Root: root}, dst, opts)
}

// Copy copies g from src to dst and then writes the tags.
//
// Each tag is resolved at dst first: when every tag already names the
// root (without tags, when dst has the root), and dst has each of the
// Children of a sparse graph, nothing else is asked, and no blob is looked
// at. When dst has the image but not every tag, only the tags are written.
//
// Otherwise the nodes dst lacks stream from src, a few at once, checked
// against their digests as they stream, a mismatch failing the copy before
// dst commits the node. A destination that is an upload.BlobUploader sends
// the blobs itself (mounting them from MountFrom, resuming cut uploads);
// another is given MountFrom as oras.CopyGraph takes it.
func Copy(ctx context.Context, src content.ReadOnlyStorage, g *Graph, dst oras.Target, opts Options) (Report, error) {
	rep := Report{Root: g.Root, DryRun: opts.DryRun}
	c := &copier{src: src, verified: verifiedSource{src}, dst: dst, g: g, opts: opts, rep: &rep}
	if c.opts.Name == "" {
		c.opts.Name = g.Root.Digest.String()
	}
	pending, upToDate, err := c.pendingTags(ctx)
	if err != nil || upToDate {
		return rep, err
	}
	if opts.Prepare != nil {
		if err := opts.Prepare(ctx, g); err != nil {
			return rep, err
		}
	}
	if opts.DryRun {
		if err := c.plan(ctx); err != nil {
			return rep, err
		}
		for _, tag := range pending {
			c.emit(Event{Action: ActionWouldTag, Tag: tag, Descriptor: g.Root})
		}
		return rep, nil
	}
	if err := c.copyGraph(ctx); err != nil {
		return rep, fmt.Errorf("copying %s: %w", c.opts.Name, err)
	}
	for _, tag := range pending {
		if err := c.tag(ctx, tag); err != nil {
			return rep, fmt.Errorf("tagging %s as %q: %w", g.Root.Digest, tag, err)
		}
		c.emit(Event{Action: ActionTagged, Tag: tag, Descriptor: g.Root})
	}
	return rep, nil
}

// copier is one Copy.
type copier struct {
	src      content.ReadOnlyStorage
	verified content.ReadOnlyStorage // src, checked as it is read
	dst      oras.Target
	g        *Graph
	opts     Options

	mu  sync.Mutex // guards rep
	rep *Report
}

// emit counts an event into the report and then passes it on to OnEvent.
// CopyGraph calls it from several goroutines, hence the lock; OnEvent runs
// outside it so a slow listener does not hold up the count.
func (c *copier) emit(e Event) {
	c.mu.Lock()
	switch e.Action {
	case ActionUploaded, ActionWouldUpload:
		c.rep.Uploaded++
		c.rep.UploadedBytes += e.Descriptor.Size
	case ActionMounted, ActionWouldMount:
		c.rep.Mounted++
	case ActionExists:
		c.rep.Existing++
	case ActionTagged, ActionWouldTag:
		c.rep.Tagged = append(c.rep.Tagged, e.Tag)
	case ActionUnchanged:
		c.rep.Unchanged = append(c.rep.Unchanged, e.Tag)
	case ActionKept:
		c.rep.Kept = append(c.rep.Kept, e.Tag)
	}
	c.mu.Unlock()
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(e)
	}
}

// pendingTags resolves each tag at dst and returns those still to write.
// A tag already on the root is reported unchanged, and a unique tag naming
// another image is kept there: neither is written again. Resolving comes
// first so that a copy whose tags are all in place touches no blob. The
// image is up to date when no tag is pending (without tags, when dst has
// the root) and, for a sparse graph, dst has each of its children.
func (c *copier) pendingTags(ctx context.Context) (pending []string, upToDate bool, err error) {
	root := c.g.Root
	tags := dedupe(c.opts.Tags)
	if len(tags) == 0 {
		ok, err := c.dst.Exists(ctx, root)
		if err != nil {
			return nil, false, fmt.Errorf("checking %s at the target: %w", root.Digest, err)
		}
		if !ok {
			return nil, false, nil
		}
	}
	for _, tag := range tags {
		desc, err := c.dst.Resolve(ctx, tag)
		switch {
		case err == nil && desc.Digest == root.Digest:
			c.emit(Event{Action: ActionUnchanged, Tag: tag, Descriptor: root})
		case err == nil && slices.Contains(c.opts.Unique, tag):
			c.emit(Event{Action: ActionKept, Tag: tag, Descriptor: root, Was: desc})
		case err == nil || errors.Is(err, errdef.ErrNotFound):
			pending = append(pending, tag)
		default:
			return pending, false, fmt.Errorf("resolving tag %q at the target: %w", tag, err)
		}
	}
	if len(pending) > 0 {
		return pending, false, nil
	}
	if c.g.Sparse {
		// The index has the source's digest whatever entries are chosen:
		// those chosen now must be there too.
		for _, ch := range c.g.Children {
			ok, err := c.dst.Exists(ctx, ch)
			if err != nil {
				return nil, false, fmt.Errorf("checking %s at the target: %w", ch.Digest, err)
			}
			if !ok {
				return nil, false, nil
			}
		}
	}
	if len(tags) == 0 {
		c.emit(Event{Action: ActionExists, Descriptor: root})
	}
	return nil, true, nil
}

// mountFrom is where d may be mounted from.
func (c *copier) mountFrom(d ocispec.Descriptor) []string {
	if c.opts.MountCandidates != nil {
		return c.opts.MountCandidates(d.Digest)
	}
	return c.opts.MountFrom
}

// copyGraph copies the nodes of the graph dst lacks, root last.
func (c *copier) copyGraph(ctx context.Context) error {
	g := c.g
	var dst content.Storage = c.dst
	if g.Sparse {
		// The index may be there with other entries than those chosen
		// now: look below it whatever.
		dst = hideRoot{Target: c.dst, root: g.Root.Digest}
	}
	up, _ := c.dst.(upload.BlobUploader)
	opts := oras.CopyGraphOptions{
		Concurrency: c.opts.Concurrency,
		FindSuccessors: func(ctx context.Context, f content.Fetcher, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			if d.Digest != g.Root.Digest {
				return content.Successors(ctx, f, d)
			}
			if g.Children != nil {
				return g.Children, nil
			}
			if g.Raw == nil {
				raw, err := content.FetchAll(ctx, f, d)
				if err != nil {
					return nil, err
				}
				g.Raw = raw
			}
			return content.Successors(ctx, rawFetcher(g.Raw), d)
		},
		PreCopy: func(ctx context.Context, d ocispec.Descriptor) error {
			if d.Digest == g.Root.Digest && g.Raw != nil {
				// Its bytes are at hand, read or made.
				return c.pushRoot(ctx)
			}
			if up == nil || upload.IsManifest(d.MediaType) {
				return nil
			}
			// The uploader checks the digest as it reads: it is given
			// the source itself, so that nothing is hashed twice.
			mounted, err := up.UploadBlob(ctx, d, c.mountFrom(d), upload.FetchOpener(c.src, d), func(off int64) {
				c.emit(Event{Action: ActionResumed, Descriptor: d, Offset: off})
			})
			if err != nil {
				return err
			}
			if mounted {
				c.emit(Event{Action: ActionMounted, Descriptor: d})
			} else {
				c.emit(Event{Action: ActionUploaded, Descriptor: d})
			}
			return oras.SkipNode
		},
		PostCopy: func(_ context.Context, d ocispec.Descriptor) error {
			c.emit(Event{Action: ActionUploaded, Descriptor: d})
			return nil
		},
		OnCopySkipped: func(_ context.Context, d ocispec.Descriptor) error {
			c.emit(Event{Action: ActionExists, Descriptor: d})
			return nil
		},
		OnMounted: func(_ context.Context, d ocispec.Descriptor) error {
			c.emit(Event{Action: ActionMounted, Descriptor: d})
			return nil
		},
	}
	if up == nil && (len(c.opts.MountFrom) > 0 || c.opts.MountCandidates != nil) {
		opts.MountFrom = func(_ context.Context, d ocispec.Descriptor) ([]string, error) {
			return c.mountFrom(d), nil
		}
	}
	return oras.CopyGraph(ctx, c.verified, dst, g.Root, opts)
}

// pushRoot writes the root from its bytes at hand: an index cut to some
// entries, which the source does not have, or has with more (sparse), or
// the source's own.
func (c *copier) pushRoot(ctx context.Context) error {
	g := c.g
	if g.Sparse {
		ok, err := c.dst.Exists(ctx, g.Root)
		if err != nil {
			return err
		}
		if ok {
			c.emit(Event{Action: ActionExists, Descriptor: g.Root})
			return oras.SkipNode
		}
	}
	err := c.dst.Push(ctx, g.Root, bytes.NewReader(g.Raw))
	if err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		if g.Sparse && missingReferences(err) {
			return &SparseIndexError{Index: g.Root.Digest, Registry: err.Error()}
		}
		return fmt.Errorf("pushing %s: %w", g.Root.Digest, err)
	}
	c.emit(Event{Action: ActionUploaded, Descriptor: g.Root})
	return oras.SkipNode
}

// missingReferences reports a registry's refusal of a manifest that
// references content it does not have.
func missingReferences(err error) bool {
	codes := []string{errcode.ErrorCodeManifestBlobUnknown, errcode.ErrorCodeBlobUnknown, errcode.ErrorCodeManifestUnknown, errcode.ErrorCodeManifestInvalid}
	var resp *errcode.ErrorResponse
	if !errors.As(err, &resp) {
		return false
	}
	return slices.ContainsFunc(resp.Errors, func(e errcode.Error) bool { return slices.Contains(codes, e.Code) })
}

// tag writes tag. A registry is sent the manifest with the tag, one PUT,
// where a plain Tag would fetch the manifest back from it first.
func (c *copier) tag(ctx context.Context, tag string) error {
	rp, ok := c.dst.(registry.ReferencePusher)
	if !ok {
		return c.dst.Tag(ctx, c.g.Root, tag)
	}
	if c.g.Raw == nil {
		// The target had the image: it is read from the source.
		raw, err := content.FetchAll(ctx, c.verified, c.g.Root)
		if err != nil {
			return err
		}
		c.g.Raw = raw
	}
	return rp.PushReference(ctx, c.g.Root, bytes.NewReader(c.g.Raw), tag)
}

// plan walks the graph as copyGraph would, with HEAD requests at the
// target, and reports what is missing.
func (c *copier) plan(ctx context.Context) error {
	g := c.g
	mc, _ := c.dst.(upload.MountChecker)
	seen := map[digest.Digest]bool{}
	var walk func(d ocispec.Descriptor) error
	walk = func(d ocispec.Descriptor) error {
		if seen[d.Digest] || isForeignLayer(d.MediaType) {
			return nil
		}
		seen[d.Digest] = true
		ok, err := c.dst.Exists(ctx, d)
		if err != nil {
			return fmt.Errorf("checking %s at the target: %w", d.Digest, err)
		}
		if ok && !(g.Sparse && d.Digest == g.Root.Digest) {
			c.emit(Event{Action: ActionExists, Descriptor: d})
			return nil
		}
		var succ []ocispec.Descriptor
		switch {
		case d.Digest == g.Root.Digest && g.Children != nil:
			succ = g.Children
		case d.Digest == g.Root.Digest && g.Raw != nil:
			succ, err = content.Successors(ctx, rawFetcher(g.Raw), d)
		default:
			succ, err = content.Successors(ctx, c.verified, d)
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", d.Digest, err)
		}
		for _, s := range succ {
			if err := walk(s); err != nil {
				return err
			}
		}
		switch {
		case ok:
			c.emit(Event{Action: ActionExists, Descriptor: d})
		case c.opts.PlanMounts && mc != nil && !upload.IsManifest(d.MediaType) && mc.CanMount(ctx, d, c.mountFrom(d)):
			c.emit(Event{Action: ActionWouldMount, Descriptor: d})
		default:
			c.emit(Event{Action: ActionWouldUpload, Descriptor: d})
		}
		return nil
	}
	return walk(g.Root)
}

// hideRoot is a target that says it lacks root, so that CopyGraph looks at
// what is below it.
type hideRoot struct {
	oras.Target
	root digest.Digest
}

func (h hideRoot) Exists(ctx context.Context, d ocispec.Descriptor) (bool, error) {
	if d.Digest == h.root {
		return false, nil
	}
	return h.Target.Exists(ctx, d)
}

// isForeignLayer reports layers that are not to be copied, as CopyGraph
// leaves them.
func isForeignLayer(mediaType string) bool {
	return strings.Contains(mediaType, "nondistributable") || mediaType == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
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

package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upload"
)

// CopyOptions configures CopyImage.
type CopyOptions struct {
	// Platforms are the platforms to copy of a multi-platform image, in
	// any form NormalizePlatform takes ("amd64", "linux/arm64",
	// "linux/arm64/v8"); empty copies them all, and the image keeps its
	// digest.
	Platforms []string
	// Mode says how platforms are left out; PlatformRewrite when empty.
	Mode PlatformMode
	// DryRun looks at the target with HEAD requests only and reports what
	// a copy would send.
	DryRun bool
	// MountFrom lists repositories of the target's registry that may hold
	// the blobs: they are mounted from there rather than uploaded.
	MountFrom []string
	// MountCandidates, when set, names the repositories of the target's
	// registry known to hold a blob, to mount it from instead of trying
	// each of MountFrom in turn: a mount that fails costs an upload
	// session opened and cancelled.
	MountCandidates func(d digest.Digest) []string
	// Concurrency is how many blobs of the image are copied at once; 3
	// when zero.
	Concurrency int
	// OnEvent, when set, is told of each blob, manifest and tag handled.
	// It may be called from several goroutines at once.
	OnEvent func(Event)
	// LargeBlob is the size from which a blob goes to a registry in
	// chunks, each resumable; when zero, every blob goes in one PUT.
	// ChunkSize is their size (upload.DefaultChunkSize when zero), raised
	// to the registry's OCI-Chunk-Min-Length. A PUT cut midway is resumed
	// in chunks from what the registry holds.
	LargeBlob, ChunkSize int64
}

// Action says what happened to a node or a tag.
type Action string

// Actions reported by CopyImage.
const (
	ActionCopied     Action = "copied"
	ActionMounted    Action = "mounted"
	ActionExists     Action = "exists"
	ActionWouldCopy  Action = "would-copy"
	ActionWouldMount Action = "would-mount"
	ActionTagged     Action = "tagged"
	ActionWouldTag   Action = "would-tag"
	// ActionUnchanged is a tag that already named the image.
	ActionUnchanged Action = "unchanged"
	// ActionResumed is an upload that failed midway going on at Offset.
	ActionResumed Action = "resumed"
)

// Event reports one handled node or tag.
type Event struct {
	Action     Action
	Descriptor ocispec.Descriptor
	// Tag is set for tag events.
	Tag string
	// Offset is where a resumed upload goes on.
	Offset int64
}

// Report summarises a CopyImage.
type Report struct {
	// Source and Target name the images: "host/repository:tag" for a
	// registry, the tag (or digest) alone for other targets.
	Source, Target string
	// SourceDigest is the source image; TargetDigest the image written,
	// which differs when PlatformRewrite left platforms out.
	SourceDigest, TargetDigest digest.Digest
	// TargetMediaType is the media type of the image written: an OCI or
	// Docker manifest or index.
	TargetMediaType string
	// Mode is the platform mode that applied: empty when the image was
	// copied whole (no platforms chosen, a single-platform image, or every
	// platform of the index chosen).
	Mode PlatformMode
	// Platforms are the platforms copied, as far as the copy read them
	// (not in a sync with nothing to do, nor of a whole index the target
	// already had).
	Platforms []string
	// Copied counts the blobs and manifests sent (or, in a dry run, to
	// send), and CopiedBytes their size; Mounted those mounted from
	// MountFrom; Existing those the target had, each with what is below it.
	Copied, Mounted, Existing int
	CopiedBytes               int64
	// UpToDate says that the target had the image under every tag, and
	// nothing was written.
	UpToDate bool
	// Tags are the tags written (or, in a dry run, to write).
	Tags []string
}

// SparseIndexError reports a registry that refused an index whose
// unchosen platforms are missing, as distribution/v3 does in its default
// configuration (validation.manifests.indexes.platforms: all).
type SparseIndexError struct {
	// Target names the repository; Index is the refused index.
	Target string
	Index  digest.Digest
	// Registry is the registry's error.
	Registry string
}

// SparseIndexError keeps the registry's answer as text only: as an
// errcode.Error in the chain, it would have oras-go copy the chosen
// manifests again and retry, to the same refusal.
func (e *SparseIndexError) Error() string {
	return fmt.Sprintf("%s refused the sparse index %s, which lists platforms that were not copied (%s); copy with platform mode %q, which writes a new index of the chosen platforms, or choose every platform",
		e.Target, e.Index, e.Registry, PlatformRewrite)
}

// CopyImage copies the image srcRef (a tag or digest) of src to dst, and
// tags it there with tags (none: the image is copied by digest only).
//
// The source is resolved with a HEAD request, and each tag at the target
// too: when every tag already names the image, nothing else is asked, so
// a sync with nothing to do sends HEAD requests only — except that leaving
// platforms out of a multi-platform image needs its index, one GET at the
// source. When the target has the image but not every tag, only the tags
// are written.
//
// Otherwise the blobs the target lacks (HEAD) stream from the source to
// the target, without temporary files, a few at once: mounted from
// MountFrom when possible; checked against their digests as they stream,
// a mismatch failing the copy before the target commits the blob; sent to
// a registry with uploads that resume where they stopped when a connection
// fails (see LargeBlob). Manifests follow, then the index, and the tags
// only once everything is in place.
//
// With Platforms, a multi-platform image is cut to the chosen platforms:
// PlatformRewrite writes a new index of them (a new digest, the source's
// recorded in AnnotationSourceDigest); PlatformSparse keeps the source
// index and its digest, and copies only the chosen platforms' images,
// which some registries refuse (a *SparseIndexError). Choosing every
// platform keeps the source index in both modes. A single-platform image
// whose platform was not chosen is an error (*NoPlatformError).
func CopyImage(ctx context.Context, src oras.ReadOnlyTarget, srcRef string, dst oras.Target, tags []string, opts CopyOptions) (Report, error) {
	rep := Report{Source: refName(src, srcRef)}
	tags = uniqueStrings(tags)
	if len(tags) > 0 {
		rep.Target = refName(dst, tags[0])
	}
	chosen, err := parsePlatforms(opts.Platforms)
	if err != nil {
		return rep, err
	}
	mode := opts.Mode
	if mode == "" {
		mode = PlatformRewrite
	}
	if mode != PlatformRewrite && mode != PlatformSparse {
		return rep, fmt.Errorf("unknown platform mode %q: expected %s or %s", mode, PlatformRewrite, PlatformSparse)
	}
	srcDesc, err := src.Resolve(ctx, srcRef)
	if err != nil {
		return rep, fmt.Errorf("resolving %s: %w", rep.Source, err)
	}
	rep.SourceDigest = srcDesc.Digest
	if rep.Target == "" {
		rep.Target = refName(dst, srcDesc.Digest.String())
	}
	c := &copier{src: src, dst: dst, opts: opts, rep: &rep, chosen: chosen, mode: mode}
	if repo, ok := dst.(*remote.Repository); ok {
		c.repo = repo
		c.up = &upload.Uploader{
			Repo:      repo,
			LargeBlob: opts.LargeBlob,
			ChunkSize: opts.ChunkSize,
			OnResume: func(d ocispec.Descriptor, off int64) {
				c.emit(Event{Action: ActionResumed, Descriptor: d, Offset: off})
			},
		}
	}

	// Cutting platforms out of an index needs the index; otherwise the
	// target is looked at first, with HEAD requests.
	readFirst := len(chosen) > 0 && isIndex(srcDesc.MediaType)
	var pending []string
	if !readFirst {
		rep.TargetDigest, rep.TargetMediaType = srcDesc.Digest, srcDesc.MediaType
		up, p, err := c.pendingTags(ctx, srcDesc, tags, nil)
		if err != nil || up {
			rep.UpToDate = up
			return rep, err
		}
		pending = p
	}
	sel, err := c.choose(ctx, srcDesc)
	if err != nil {
		return rep, err
	}
	rep.TargetDigest, rep.TargetMediaType, rep.Mode, rep.Platforms = sel.root.Digest, sel.root.MediaType, sel.mode, sel.platforms
	if readFirst {
		var children []ocispec.Descriptor
		if sel.mode == PlatformSparse {
			// The sparse index has the source's digest whatever was
			// chosen: the chosen images must be there too.
			children = sel.children
		}
		up, p, err := c.pendingTags(ctx, sel.root, tags, children)
		if err != nil || up {
			rep.UpToDate = up
			return rep, err
		}
		pending = p
	}

	if opts.DryRun {
		if err := c.plan(ctx, sel); err != nil {
			return rep, err
		}
		for _, tag := range pending {
			c.emit(Event{Action: ActionWouldTag, Tag: tag, Descriptor: sel.root})
		}
		return rep, nil
	}
	if err := c.copyGraph(ctx, sel); err != nil {
		return rep, err
	}
	for _, tag := range pending {
		if err := c.tag(ctx, sel, tag); err != nil {
			return rep, fmt.Errorf("tagging %s as %q: %w", sel.root.Digest, tag, err)
		}
		c.emit(Event{Action: ActionTagged, Tag: tag, Descriptor: sel.root})
	}
	return rep, nil
}

// copier is one CopyImage.
type copier struct {
	src    oras.ReadOnlyTarget
	dst    oras.Target
	repo   *remote.Repository // dst, when a registry repository
	up     *upload.Uploader   // for repo
	opts   CopyOptions
	chosen []platformSpec
	mode   PlatformMode

	mu  sync.Mutex // guards rep
	rep *Report
}

func (c *copier) emit(e Event) {
	c.mu.Lock()
	switch e.Action {
	case ActionCopied, ActionWouldCopy:
		c.rep.Copied++
		c.rep.CopiedBytes += e.Descriptor.Size
	case ActionMounted, ActionWouldMount:
		c.rep.Mounted++
	case ActionExists:
		c.rep.Existing++
	case ActionTagged, ActionWouldTag:
		c.rep.Tags = append(c.rep.Tags, e.Tag)
	}
	c.mu.Unlock()
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(e)
	}
}

// pendingTags resolves each tag at the target (HEAD) and returns those
// that do not name root. It reports the image up to date when every tag
// names it, and each of children exists (HEAD); without tags, when root
// exists.
func (c *copier) pendingTags(ctx context.Context, root ocispec.Descriptor, tags []string, children []ocispec.Descriptor) (upToDate bool, pending []string, err error) {
	if len(tags) == 0 {
		ok, err := c.dst.Exists(ctx, root)
		if err != nil {
			return false, nil, fmt.Errorf("checking %s at the target: %w", root.Digest, err)
		}
		if !ok {
			return false, nil, nil
		}
	}
	var unchanged []string
	for _, tag := range tags {
		d, err := c.dst.Resolve(ctx, tag)
		switch {
		case err == nil && d.Digest == root.Digest:
			unchanged = append(unchanged, tag)
		case err == nil || errors.Is(err, errdef.ErrNotFound):
			pending = append(pending, tag)
		default:
			return false, nil, fmt.Errorf("resolving tag %q at the target: %w", tag, err)
		}
	}
	for _, tag := range unchanged {
		c.emit(Event{Action: ActionUnchanged, Tag: tag, Descriptor: root})
	}
	if len(pending) > 0 {
		return false, pending, nil
	}
	for _, ch := range children {
		ok, err := c.dst.Exists(ctx, ch)
		if err != nil {
			return false, nil, fmt.Errorf("checking %s at the target: %w", ch.Digest, err)
		}
		if !ok {
			// Every tag names the index, but a chosen image is missing:
			// it goes in under the same index.
			return false, nil, nil
		}
	}
	return true, nil, nil
}

// selection is what a copy writes.
type selection struct {
	// root is the image written; raw its bytes, once read (or made).
	root ocispec.Descriptor
	raw  []byte
	// children are the entries of the index root to copy; nil for all.
	children []ocispec.Descriptor
	// sparse says root is the source index with only children copied.
	sparse    bool
	mode      PlatformMode
	platforms []string
}

// choose applies the chosen platforms to the source image.
func (c *copier) choose(ctx context.Context, srcDesc ocispec.Descriptor) (*selection, error) {
	sel := &selection{root: srcDesc}
	if len(c.chosen) == 0 {
		return sel, nil
	}
	raw, err := content.FetchAll(ctx, c.src, srcDesc)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", c.rep.Source, err)
	}
	sel.raw = raw
	if !isIndex(srcDesc.MediaType) {
		p, err := c.imagePlatform(ctx, raw)
		if err != nil {
			return nil, err
		}
		name := platformName(p)
		if !chosenBy(c.chosen, p) {
			return nil, &NoPlatformError{Image: c.rep.Source, Chosen: specNames(c.chosen), Available: []string{name}}
		}
		sel.platforms = []string{name}
		return sel, nil
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("reading index %s: %w", srcDesc.Digest, err)
	}
	kept := chooseManifests(idx.Manifests, c.chosen)
	if len(kept) == 0 {
		return nil, &NoPlatformError{Image: c.rep.Source, Chosen: specNames(c.chosen), Available: indexPlatforms(idx.Manifests)}
	}
	sel.platforms = indexPlatforms(kept)
	if len(kept) == len(idx.Manifests) {
		return sel, nil
	}
	sel.mode, sel.children = c.mode, kept
	if c.mode == PlatformSparse {
		sel.sparse = true
		return sel, nil
	}
	if sel.raw, err = rewriteIndex(raw, kept, srcDesc.Digest); err != nil {
		return nil, err
	}
	sel.root = content.NewDescriptorFromBytes(srcDesc.MediaType, sel.raw)
	return sel, nil
}

// maxConfigBytes bounds the image config read for its platform.
const maxConfigBytes = 4 << 20

// imagePlatform reads the platform of a single-platform image from its
// config.
func (c *copier) imagePlatform(ctx context.Context, raw []byte) (*ocispec.Platform, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("reading the manifest of %s: %w", c.rep.Source, err)
	}
	if m.Config.Size <= 0 || m.Config.Size > maxConfigBytes {
		return nil, nil
	}
	b, err := content.FetchAll(ctx, c.src, m.Config)
	if err != nil {
		return nil, fmt.Errorf("reading the config of %s: %w", c.rep.Source, err)
	}
	var p ocispec.Platform
	if json.Unmarshal(b, &p) != nil || p.Architecture == "" {
		return nil, nil
	}
	return &p, nil
}

// copyGraph copies the nodes of sel the target lacks, root last.
func (c *copier) copyGraph(ctx context.Context, sel *selection) error {
	var dst content.Storage = c.dst
	if sel.sparse {
		// The index may be there with other platforms than those chosen
		// now: look below it whatever.
		dst = hideRoot{Target: c.dst, root: sel.root.Digest}
	}
	g := oras.CopyGraphOptions{
		Concurrency: c.opts.Concurrency,
		FindSuccessors: func(ctx context.Context, f content.Fetcher, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			if d.Digest != sel.root.Digest {
				return content.Successors(ctx, f, d)
			}
			if sel.children != nil {
				return sel.children, nil
			}
			if sel.raw == nil {
				raw, err := content.FetchAll(ctx, f, d)
				if err != nil {
					return nil, err
				}
				sel.raw = raw
			}
			succ, err := content.Successors(ctx, rawFetcher(sel.raw), d)
			if err == nil && isIndex(d.MediaType) && sel.platforms == nil {
				sel.platforms = indexPlatforms(succ)
				c.mu.Lock()
				c.rep.Platforms = sel.platforms
				c.mu.Unlock()
			}
			return succ, err
		},
		PreCopy: func(ctx context.Context, d ocispec.Descriptor) error {
			if d.Digest == sel.root.Digest && sel.raw != nil {
				// Its bytes are at hand, read or made.
				return c.pushRoot(ctx, sel)
			}
			if c.up == nil || upload.IsManifest(d.MediaType) {
				return nil
			}
			mounted, err := c.up.Upload(ctx, d, c.mountFrom(d), upload.FetchOpener(c.src, d))
			if err != nil {
				return err
			}
			if mounted {
				c.emit(Event{Action: ActionMounted, Descriptor: d})
			} else {
				c.emit(Event{Action: ActionCopied, Descriptor: d})
			}
			return oras.SkipNode
		},
		PostCopy: func(_ context.Context, d ocispec.Descriptor) error {
			c.emit(Event{Action: ActionCopied, Descriptor: d})
			return nil
		},
		OnCopySkipped: func(_ context.Context, d ocispec.Descriptor) error {
			c.emit(Event{Action: ActionExists, Descriptor: d})
			return nil
		},
	}
	if err := oras.CopyGraph(ctx, verifiedSource{c.src}, dst, sel.root, g); err != nil {
		return fmt.Errorf("copying %s to %s: %w", c.rep.Source, c.rep.Target, err)
	}
	return nil
}

// pushRoot writes the root from its bytes at hand: an index cut to the
// chosen platforms, which the source does not have (rewrite) or has with
// more (sparse), or the source's own.
func (c *copier) pushRoot(ctx context.Context, sel *selection) error {
	if sel.sparse {
		ok, err := c.dst.Exists(ctx, sel.root)
		if err != nil {
			return err
		}
		if ok {
			c.emit(Event{Action: ActionExists, Descriptor: sel.root})
			return oras.SkipNode
		}
	}
	err := c.dst.Push(ctx, sel.root, bytes.NewReader(sel.raw))
	if err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		if sel.sparse && missingReferences(err) {
			return &SparseIndexError{Target: c.rep.Target, Index: sel.root.Digest, Registry: err.Error()}
		}
		return fmt.Errorf("pushing %s: %w", sel.root.Digest, err)
	}
	c.emit(Event{Action: ActionCopied, Descriptor: sel.root})
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
func (c *copier) tag(ctx context.Context, sel *selection, tag string) error {
	rp, ok := c.dst.(registry.ReferencePusher)
	if !ok {
		return c.dst.Tag(ctx, sel.root, tag)
	}
	if sel.raw == nil {
		// The target had the image: it is read from the source.
		raw, err := content.FetchAll(ctx, c.src, sel.root)
		if err != nil {
			return err
		}
		sel.raw = raw
	}
	return rp.PushReference(ctx, sel.root, bytes.NewReader(sel.raw), tag)
}

// plan walks the graph as copyGraph would, with HEAD requests at the
// target, and reports what is missing.
func (c *copier) plan(ctx context.Context, sel *selection) error {
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
		if ok && !(sel.sparse && d.Digest == sel.root.Digest) {
			c.emit(Event{Action: ActionExists, Descriptor: d})
			return nil
		}
		var succ []ocispec.Descriptor
		switch {
		case d.Digest == sel.root.Digest && sel.children != nil:
			succ = sel.children
		case upload.IsManifest(d.MediaType):
			if succ, err = content.Successors(ctx, verifiedSource{c.src}, d); err != nil {
				return fmt.Errorf("reading %s: %w", d.Digest, err)
			}
		}
		for _, s := range succ {
			if err := walk(s); err != nil {
				return err
			}
		}
		if ok {
			c.emit(Event{Action: ActionExists, Descriptor: d})
			return nil
		}
		if !upload.IsManifest(d.MediaType) && c.repo != nil {
			for _, from := range c.mountFrom(d) {
				ref := c.repo.Reference
				ref.Repository = from
				other := &remote.Repository{Client: c.repo.Client, Reference: ref, PlainHTTP: c.repo.PlainHTTP}
				if ok, err := other.Blobs().Exists(ctx, d); err == nil && ok {
					c.emit(Event{Action: ActionWouldMount, Descriptor: d})
					return nil
				}
			}
		}
		c.emit(Event{Action: ActionWouldCopy, Descriptor: d})
		return nil
	}
	return walk(sel.root)
}

// mountFrom is where d may be mounted from.
func (c *copier) mountFrom(d ocispec.Descriptor) []string {
	if c.opts.MountCandidates != nil {
		return c.opts.MountCandidates(d.Digest)
	}
	return c.opts.MountFrom
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

// verifiedSource is a source whose content is checked against its
// descriptors as it is read: blobs by a blobReader, which also goes on
// after a cut stream; manifests by content.NewVerifyReader.
type verifiedSource struct {
	oras.ReadOnlyTarget
}

func (s verifiedSource) Fetch(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	if !upload.IsManifest(d.MediaType) {
		return upload.NewReader(ctx, d, upload.FetchOpener(s.ReadOnlyTarget, d))
	}
	rc, err := s.ReadOnlyTarget.Fetch(ctx, d)
	if err != nil {
		return nil, err
	}
	return &verifiedReadCloser{vr: content.NewVerifyReader(rc, d), c: rc, left: d.Size}, nil
}

// verifiedReadCloser withholds the last bytes of content that does not
// match its digest, and returns the mismatch instead.
type verifiedReadCloser struct {
	vr   *content.VerifyReader
	c    io.Closer
	left int64
}

func (v *verifiedReadCloser) Read(p []byte) (int, error) {
	n, err := v.vr.Read(p)
	v.left -= int64(n)
	if n > 0 && v.left == 0 {
		if verr := v.vr.Verify(); verr != nil {
			return 0, verr
		}
	}
	return n, err
}

func (v *verifiedReadCloser) Close() error { return v.c.Close() }

// rawFetcher serves bytes already read.
type rawFetcher []byte

func (r rawFetcher) Fetch(context.Context, ocispec.Descriptor) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(r)), nil
}

func isIndex(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageIndex || mediaType == containerdisk.MediaTypeDockerManifestList
}

// isForeignLayer reports layers that are not to be copied, as CopyGraph
// leaves them.
func isForeignLayer(mediaType string) bool {
	return strings.Contains(mediaType, "nondistributable") || mediaType == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
}

// indexPlatforms names the platforms of an index's entries, leaving out
// those without one (attestations).
func indexPlatforms(ds []ocispec.Descriptor) []string {
	var out []string
	for _, d := range ds {
		if n := platformName(d.Platform); n != "unknown" && !strings.HasPrefix(n, "unknown/") && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func specNames(ps []platformSpec) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// refName names ref of t: "host/repository:tag" (or "@digest") for a
// registry repository, ref alone for others.
func refName(t any, ref string) string {
	repo, ok := t.(*remote.Repository)
	if !ok {
		return ref
	}
	r := repo.Reference
	r.Reference = ref
	return r.String()
}

func uniqueStrings(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

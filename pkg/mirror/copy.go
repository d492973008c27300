package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/transfer"
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
	// a copy would send, and what it would mount.
	DryRun bool
	// MountFrom, MountCandidates, Concurrency and OnEvent are those of
	// transfer.Options.
	MountFrom       []string
	MountCandidates func(d digest.Digest) []string
	Concurrency     int
	OnEvent         func(transfer.Event)
}

// Report summarises a CopyImage: the copy's transfer.Report, and what was
// copied from where.
type Report struct {
	transfer.Report
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
	// already had under every tag).
	Platforms []string
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
// an *upload.Repository with uploads that resume where they stopped when a
// connection fails. Manifests follow, then the index, and the tags only
// once everything is in place: see transfer.Copy, which does the copy.
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
	if i := slices.IndexFunc(tags, func(t string) bool { return t != "" }); i >= 0 {
		rep.Target = refName(dst, tags[i])
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
	c := &chooser{src: src, name: rep.Source, chosen: chosen, mode: mode}
	topts := transfer.Options{
		Tags: tags, DryRun: opts.DryRun, PlanMounts: true,
		MountFrom: opts.MountFrom, MountCandidates: opts.MountCandidates, Concurrency: opts.Concurrency,
		Name: rep.Source + " to " + rep.Target, OnEvent: opts.OnEvent,
	}
	sel := &selection{Graph: transfer.Graph{Root: srcDesc}}
	if len(chosen) > 0 && isIndex(srcDesc.MediaType) {
		// Cutting platforms out of an index needs the index, before the
		// target is looked at.
		if sel, err = c.choose(ctx, srcDesc); err != nil {
			return rep, err
		}
	} else {
		// The target is looked at first, with HEAD requests; the image
		// is read only when it is to be copied.
		topts.Prepare = func(ctx context.Context, g *transfer.Graph) error {
			s, err := c.choose(ctx, srcDesc)
			if err == nil {
				*g, sel.mode, sel.platforms = s.Graph, s.mode, s.platforms
			}
			return err
		}
	}
	rep.TargetDigest, rep.TargetMediaType = sel.Root.Digest, sel.Root.MediaType
	rep.Report, err = transfer.Copy(ctx, src, &sel.Graph, dst, topts)
	rep.Mode, rep.Platforms = sel.mode, sel.platforms
	if rep.Platforms == nil && isIndex(sel.Root.MediaType) && sel.Raw != nil {
		// The whole index, as the copy read it.
		var idx ocispec.Index
		if json.Unmarshal(sel.Raw, &idx) == nil {
			rep.Platforms = indexPlatforms(idx.Manifests)
		}
	}
	var serr *transfer.SparseIndexError
	if errors.As(err, &serr) {
		err = fmt.Errorf("copying %s: %w", topts.Name, &SparseIndexError{Target: rep.Target, Index: serr.Index, Registry: serr.Registry})
	}
	return rep, err
}

// chooser applies the chosen platforms to a source image.
type chooser struct {
	src    oras.ReadOnlyTarget
	name   string // of the source image
	chosen []platformSpec
	mode   PlatformMode
}

// selection is what a copy writes, and the platforms chosen.
type selection struct {
	transfer.Graph
	mode      PlatformMode
	platforms []string
}

// choose applies the chosen platforms to the source image.
func (c *chooser) choose(ctx context.Context, srcDesc ocispec.Descriptor) (*selection, error) {
	sel := &selection{Graph: transfer.Graph{Root: srcDesc}}
	if len(c.chosen) == 0 {
		return sel, nil
	}
	raw, err := content.FetchAll(ctx, c.src, srcDesc)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", c.name, err)
	}
	sel.Raw = raw
	if !isIndex(srcDesc.MediaType) {
		p, err := c.imagePlatform(ctx, raw)
		if err != nil {
			return nil, err
		}
		name := platformName(p)
		if !chosenBy(c.chosen, p) {
			return nil, &NoPlatformError{Image: c.name, Chosen: specNames(c.chosen), Available: []string{name}}
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
		return nil, &NoPlatformError{Image: c.name, Chosen: specNames(c.chosen), Available: indexPlatforms(idx.Manifests)}
	}
	sel.platforms = indexPlatforms(kept)
	if len(kept) == len(idx.Manifests) {
		return sel, nil
	}
	sel.mode, sel.Children = c.mode, kept
	if c.mode == PlatformSparse {
		sel.Sparse = true
		return sel, nil
	}
	if sel.Raw, err = rewriteIndex(raw, kept, srcDesc.Digest); err != nil {
		return nil, err
	}
	sel.Root = content.NewDescriptorFromBytes(srcDesc.MediaType, sel.Raw)
	return sel, nil
}

// maxConfigBytes bounds the image config read for its platform.
const maxConfigBytes = 4 << 20

// imagePlatform reads the platform of a single-platform image from its
// config.
func (c *chooser) imagePlatform(ctx context.Context, raw []byte) (*ocispec.Platform, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("reading the manifest of %s: %w", c.name, err)
	}
	if m.Config.Size <= 0 || m.Config.Size > maxConfigBytes {
		return nil, nil
	}
	b, err := content.FetchAll(ctx, c.src, m.Config)
	if err != nil {
		return nil, fmt.Errorf("reading the config of %s: %w", c.name, err)
	}
	var p ocispec.Platform
	if json.Unmarshal(b, &p) != nil || p.Architecture == "" {
		return nil, nil
	}
	return &p, nil
}

func isIndex(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageIndex || mediaType == containerdisk.MediaTypeDockerManifestList
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
	var repo *remote.Repository
	switch t := t.(type) {
	case *remote.Repository:
		repo = t
	case *upload.Repository:
		repo = t.Repository
	default:
		return ref
	}
	r := repo.Reference
	r.Reference = ref
	return r.String()
}

package mirror

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
)

// RepositoryLister lists the repositories of a registry, a page at a time
// from after last; *remote.Registry is one, through the catalog API.
type RepositoryLister interface {
	Repositories(ctx context.Context, last string, fn func(repos []string) error) error
}

// ErrNoCatalog is matched (errors.Is) by the error of [Repositories] when
// the registry does not list its repositories: it has no catalog API
// (Docker Hub, GHCR and others), or does not let the client use it.
var ErrNoCatalog = errors.New("the registry does not list its repositories")

// Repositories calls fn with each page of the names of the repositories in
// reg, in the registry's (lexical) order. A *remote.Registry asks for pages
// of its RepositoryListPageSize (the registry's choice when zero) and
// follows the Link headers from one page to the next. An error of fn ends
// the listing and is returned as it is.
func Repositories(ctx context.Context, reg RepositoryLister, fn func(repos []string) error) error {
	var fnErr error
	p := pager{what: "the repository list"}
	err := reg.Repositories(ctx, "", func(repos []string) error {
		if fnErr = p.page(repos); fnErr == nil {
			fnErr = fn(repos)
		}
		return fnErr
	})
	if p.err != nil {
		return fmt.Errorf("listing the repositories: %w", p.err)
	}
	if err == nil || (fnErr != nil && errors.Is(err, fnErr)) {
		return err
	}
	var resp *errcode.ErrorResponse
	if errors.As(err, &resp) {
		switch {
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			return fmt.Errorf("listing the repositories: %w: %w; log in as a user allowed to list the catalog, or name the repositories in the config", ErrNoCatalog, err)
		case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed || hasErrorCode(resp, errcode.ErrorCodeUnsupported):
			return fmt.Errorf("listing the repositories: %w (it has no catalog API): %w; name the repositories in the config", ErrNoCatalog, err)
		}
	}
	return fmt.Errorf("listing the repositories: %w", err)
}

func hasErrorCode(resp *errcode.ErrorResponse, code string) bool {
	for _, e := range resp.Errors {
		if e.Code == code {
			return true
		}
	}
	return false
}

// Tags calls fn with each page of the tags of repo. A *remote.Repository
// asks for pages of its TagListPageSize (the registry's choice when zero) and
// follows the Link headers; an OCI layout lists the names in its index.json
// in one page. An error of fn ends the listing and is returned as it is.
func Tags(ctx context.Context, repo registry.TagLister, fn func(tags []string) error) error {
	var fnErr error
	p := pager{what: "the tag list"}
	err := repo.Tags(ctx, "", func(tags []string) error {
		if fnErr = p.page(tags); fnErr == nil {
			fnErr = fn(tags)
		}
		return fnErr
	})
	if p.err != nil {
		return fmt.Errorf("listing the tags: %w", p.err)
	}
	if err == nil || (fnErr != nil && errors.Is(err, fnErr)) {
		return err
	}
	return fmt.Errorf("listing the tags: %w", err)
}

// MaxListPages is the most pages [Tags] and [Repositories] read of one
// listing: a million names at the 100 a page registries commonly send.
const MaxListPages = 10000

// ErrEndlessListing is matched (errors.Is) by the error of [Tags] and
// [Repositories] when a registry's pages do not end: a page came again (its
// Link: rel="next" header leads back), or there were more than
// MaxListPages of them.
var ErrEndlessListing = errors.New("the listing does not end")

// pager checks that the pages of a listing end: every page is new, and
// there are at most MaxListPages. A registry follows its pages with names
// after the last one given, so two equal pages, even empty ones, mean that
// a next link leads back.
type pager struct {
	what  string
	pages int
	seen  map[[sha256.Size]byte]int // page digest → page number
	err   error
}

func (p *pager) page(names []string) error {
	p.pages++
	if p.pages > MaxListPages {
		p.err = fmt.Errorf("%w: the registry sent more than %d pages of %s; expected its Link: rel=\"next\" headers to end", ErrEndlessListing, MaxListPages, p.what)
		return p.err
	}
	h := sha256.New()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if first, ok := p.seen[sum]; ok {
		p.err = fmt.Errorf("%w: the registry sent page %d of %s again as page %d; its Link: rel=\"next\" header leads back to a page already read", ErrEndlessListing, first, p.what, p.pages)
		return p.err
	}
	if p.seen == nil {
		p.seen = map[[sha256.Size]byte]int{}
	}
	p.seen[sum] = p.pages
	return nil
}

// ImageInfo describes an image (a manifest) or a multi-platform image (an
// index or Docker manifest list) and what it takes to copy it.
type ImageInfo struct {
	// Digest and MediaType are those of the root: the manifest or index the
	// reference resolves to.
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType"`
	// Platforms are the images of an index, in its order, or the one image
	// of a manifest.
	Platforms []PlatformInfo `json:"platforms"`
	// TotalSize is the total size of the distinct blobs of the graph, the
	// root included: what a copy to an empty target transfers. A layer that
	// several platforms share counts once here, but in each of their sizes.
	TotalSize int64 `json:"totalSize"`
}

// PlatformInfo describes one image of an [ImageInfo].
type PlatformInfo struct {
	// Platform is the platform the index gives, or, for an image that is
	// the root or whose index entry gives none, the one of its config; nil
	// when neither says.
	Platform  *ocispec.Platform `json:"platform,omitempty"`
	Digest    digest.Digest     `json:"digest"`
	MediaType string            `json:"mediaType"`
	// Size is the manifest's size plus its config's and its layers'.
	Size int64 `json:"size"`
}

// Inspect resolves ref in src and describes what it points to, fetching
// the manifests and the image configs but no layer.
func Inspect(ctx context.Context, src oras.ReadOnlyTarget, ref string) (ImageInfo, error) {
	root, err := src.Resolve(ctx, ref)
	if err != nil {
		return ImageInfo{}, fmt.Errorf("inspecting %s: %w", ref, err)
	}
	info := ImageInfo{Digest: root.Digest, MediaType: root.MediaType}
	in := &inspector{src: src, seen: make(map[digest.Digest]bool)}
	switch root.MediaType {
	case ocispec.MediaTypeImageIndex, containerdisk.MediaTypeDockerManifestList:
		in.count(root)
		var index ocispec.Index
		if err := in.fetchJSON(ctx, root, &index); err != nil {
			return ImageInfo{}, fmt.Errorf("inspecting %s: %w", ref, err)
		}
		for _, m := range index.Manifests {
			p, err := in.platform(ctx, m)
			if err != nil {
				return ImageInfo{}, fmt.Errorf("inspecting %s: %w", ref, err)
			}
			info.Platforms = append(info.Platforms, p)
		}
	case ocispec.MediaTypeImageManifest, containerdisk.MediaTypeDockerManifest:
		p, err := in.platform(ctx, root)
		if err != nil {
			return ImageInfo{}, fmt.Errorf("inspecting %s: %w", ref, err)
		}
		info.Platforms = []PlatformInfo{p}
	default:
		return ImageInfo{}, fmt.Errorf("inspecting %s: it is a %s; expected an image manifest or index", ref, root.MediaType)
	}
	info.TotalSize = in.total
	return info, nil
}

// inspector adds up the sizes of the blobs of a graph, each once.
type inspector struct {
	src   content.Fetcher
	seen  map[digest.Digest]bool
	total int64
}

func (in *inspector) count(desc ocispec.Descriptor) {
	if !in.seen[desc.Digest] {
		in.seen[desc.Digest] = true
		in.total += desc.Size
	}
}

// platform describes the image (or nested index) desc.
func (in *inspector) platform(ctx context.Context, desc ocispec.Descriptor) (PlatformInfo, error) {
	p := PlatformInfo{Platform: desc.Platform, Digest: desc.Digest, MediaType: desc.MediaType}
	size, err := in.size(ctx, desc, make(map[digest.Digest]bool), p.Platform == nil)
	if err != nil {
		return PlatformInfo{}, err
	}
	p.Size = size.bytes
	if p.Platform == nil {
		p.Platform = size.platform
	}
	return p, nil
}

type graphSize struct {
	bytes    int64
	platform *ocispec.Platform
}

// size adds up the sizes of the distinct blobs below desc, desc included,
// and reads the platform from the image config when wantPlatform.
func (in *inspector) size(ctx context.Context, desc ocispec.Descriptor, seen map[digest.Digest]bool, wantPlatform bool) (graphSize, error) {
	var s graphSize
	if seen[desc.Digest] {
		return s, nil
	}
	seen[desc.Digest] = true
	in.count(desc)
	s.bytes = desc.Size
	switch desc.MediaType {
	case ocispec.MediaTypeImageManifest, containerdisk.MediaTypeDockerManifest:
		var m ocispec.Manifest
		if err := in.fetchJSON(ctx, desc, &m); err != nil {
			return s, err
		}
		for _, b := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if !seen[b.Digest] {
				seen[b.Digest] = true
				in.count(b)
				s.bytes += b.Size
			}
		}
		if wantPlatform && (m.Config.MediaType == ocispec.MediaTypeImageConfig || m.Config.MediaType == containerdisk.MediaTypeDockerConfig) {
			var config ocispec.Image
			if err := in.fetchJSON(ctx, m.Config, &config); err != nil {
				return s, err
			}
			if config.OS != "" || config.Architecture != "" {
				p := config.Platform
				s.platform = &p
			}
		}
	case ocispec.MediaTypeImageIndex, containerdisk.MediaTypeDockerManifestList:
		var index ocispec.Index
		if err := in.fetchJSON(ctx, desc, &index); err != nil {
			return s, err
		}
		for _, m := range index.Manifests {
			sub, err := in.size(ctx, m, seen, false)
			if err != nil {
				return s, err
			}
			s.bytes += sub.bytes
		}
	}
	return s, nil
}

// fetchJSON fetches desc, verified, and decodes it into v.
func (in *inspector) fetchJSON(ctx context.Context, desc ocispec.Descriptor, v any) error {
	return containerdisk.FetchManifestJSON(ctx, in.src, desc, v)
}

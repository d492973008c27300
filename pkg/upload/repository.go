package upload

import (
	"context"
	"fmt"
	"io"
	"slices"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"
)

// Repository is a registry repository whose blobs are pushed with an
// Uploader: in chunks from Uploader.LargeBlob on, resumed from what the
// registry holds after a dropped connection, and checked against their
// digest as they stream. Manifests, tags, mounts and reads are the
// repository's own.
type Repository struct {
	*remote.Repository
	Uploader *Uploader
}

// NewRepository wraps repo; u gives the sizes and OnResume (its Repo is
// set to repo).
func NewRepository(repo *remote.Repository, u Uploader) *Repository {
	u.Repo = repo
	return &Repository{Repository: repo, Uploader: &u}
}

// Push pushes a manifest as the repository does, and a blob with the
// Uploader. The blob's content is read again from where the registry
// stopped when it can seek (a file); another reader is read once, and an
// upload cut midway then fails.
func (r *Repository) Push(ctx context.Context, desc ocispec.Descriptor, content io.Reader) error {
	if r.IsManifest(desc) {
		return r.Repository.Push(ctx, desc, content)
	}
	_, err := r.Uploader.Upload(ctx, desc, nil, readerOpener(content))
	return err
}

// BlobUploader is a target that sends blobs itself, with the upload
// protocol, rather than through Push: a copy hands it each blob with where
// it may be mounted from and how to read it again from an offset, so that
// a cut upload resumes instead of starting over.
type BlobUploader interface {
	// UploadBlob sends the blob desc, read with open, or mounts it from
	// the first of mountFrom that has it, and reports whether it was
	// mounted. onResume, when set, is told where a cut upload goes on.
	UploadBlob(ctx context.Context, desc ocispec.Descriptor, mountFrom []string, open Opener, onResume func(offset int64)) (mounted bool, err error)
}

// MountChecker is a target that can tell, without writing anything,
// whether a blob would be mounted rather than uploaded.
type MountChecker interface {
	// CanMount reports whether one of the repositories from, of the
	// target's registry, holds desc.
	CanMount(ctx context.Context, desc ocispec.Descriptor, from []string) bool
}

// UploadBlob sends a blob with the Uploader; its OnResume is told of a
// resume after onResume.
func (r *Repository) UploadBlob(ctx context.Context, desc ocispec.Descriptor, mountFrom []string, open Opener, onResume func(offset int64)) (bool, error) {
	u := *r.Uploader
	if onResume != nil {
		u.OnResume = func(d ocispec.Descriptor, off int64) {
			onResume(off)
			if r.Uploader.OnResume != nil {
				r.Uploader.OnResume(d, off)
			}
		}
	}
	return u.Upload(ctx, desc, mountFrom, open)
}

// CanMount asks each repository of from for desc with a HEAD request. A
// failed request counts as no: the upload would then try the next one too.
func (r *Repository) CanMount(ctx context.Context, desc ocispec.Descriptor, from []string) bool {
	for _, name := range from {
		ref := r.Reference
		ref.Repository = name
		other := &remote.Repository{Client: r.Client, Reference: ref, PlainHTTP: r.PlainHTTP}
		if ok, err := other.Blobs().Exists(ctx, desc); err == nil && ok {
			return true
		}
	}
	return false
}

// IsManifest tells manifests from blobs by media type, as the repository
// does.
func (r *Repository) IsManifest(desc ocispec.Descriptor) bool {
	if len(r.ManifestMediaTypes) == 0 {
		return IsManifest(desc.MediaType)
	}
	return slices.Contains(r.ManifestMediaTypes, desc.MediaType)
}

// IsManifest reports the media types a registry repository takes as
// manifests when it is told of none: those of remote.Repository.
func IsManifest(mediaType string) bool {
	return slices.Contains(manifestMediaTypes, mediaType)
}

var manifestMediaTypes = []string{
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	ocispec.MediaTypeImageManifest,
	ocispec.MediaTypeImageIndex,
	"application/vnd.oci.artifact.manifest.v1+json",
}

// readerOpener opens r at an offset: by seeking when it can, else only
// once, at 0.
func readerOpener(r io.Reader) Opener {
	opened := false
	return func(_ context.Context, off int64) (io.ReadCloser, error) {
		if s, ok := r.(io.Seeker); ok {
			if _, err := s.Seek(off, io.SeekStart); err != nil {
				return nil, err
			}
			return io.NopCloser(r), nil
		}
		if opened || off != 0 {
			return nil, permanentError{fmt.Errorf("the content cannot be read again from byte %d", off)}
		}
		opened = true
		return io.NopCloser(r), nil
	}
}

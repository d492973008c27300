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

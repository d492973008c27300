package transfer

import (
	"bytes"
	"context"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"

	"github.com/containerdisk/kubectl-containerdisk/pkg/upload"
)

// verifiedSource is a source whose content is checked against its
// descriptors as it is read, so that a target never commits content that
// does not match: blobs by upload.NewReader, which also goes on after a
// cut stream; manifests by content.NewVerifyReader.
type verifiedSource struct {
	content.ReadOnlyStorage
}

func (s verifiedSource) Fetch(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	if !upload.IsManifest(d.MediaType) {
		return upload.NewReader(ctx, d, upload.FetchOpener(s.ReadOnlyStorage, d))
	}
	rc, err := s.ReadOnlyStorage.Fetch(ctx, d)
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

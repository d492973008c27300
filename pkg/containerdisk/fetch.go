package containerdisk

import (
	"context"
	"encoding/json"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
)

// MaxManifestSize bounds what FetchManifest reads: a manifest, index or
// config is kilobytes; a registry answering more is not to be believed.
const MaxManifestSize = 4 << 20

// FetchManifest fetches a manifest, index or config, verified against desc,
// refusing one larger than MaxManifestSize.
func FetchManifest(ctx context.Context, f content.Fetcher, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > MaxManifestSize {
		return nil, fmt.Errorf("%s %s is %d bytes: expected a manifest, index or config of at most %d", desc.MediaType, desc.Digest, desc.Size, MaxManifestSize)
	}
	b, err := content.FetchAll(ctx, f, desc)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", desc.Digest, err)
	}
	return b, nil
}

// FetchManifestJSON is FetchManifest decoding the content into v.
func FetchManifestJSON(ctx context.Context, f content.Fetcher, desc ocispec.Descriptor, v any) error {
	b, err := FetchManifest(ctx, f, desc)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding %s: %w", desc.Digest, err)
	}
	return nil
}

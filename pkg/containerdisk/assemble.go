package containerdisk

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"

	"github.com/containerdisk/kubectl-containerdisk/pkg/disk"
)

// ReadImage reads back the image of one architecture that a build wrote,
// from its manifest and config (never its layer), so that images built by
// separate processes can be put into one index with AssembleIndex.
func ReadImage(ctx context.Context, src content.Fetcher, manifest ocispec.Descriptor) (Image, error) {
	if manifest.MediaType != ocispec.MediaTypeImageManifest && manifest.MediaType != MediaTypeDockerManifest {
		return Image{}, fmt.Errorf("%s is %s: expected the manifest of one architecture's image", manifest.Digest, manifest.MediaType)
	}
	var m ocispec.Manifest
	if err := FetchManifestJSON(ctx, src, manifest, &m); err != nil {
		return Image{}, err
	}
	if len(m.Layers) != 1 {
		return Image{}, fmt.Errorf("manifest %s has %d layers: expected the one disk layer of a containerdisk", manifest.Digest, len(m.Layers))
	}
	var cfg ocispec.Image
	if err := FetchManifestJSON(ctx, src, m.Config, &cfg); err != nil {
		return Image{}, err
	}
	if len(cfg.RootFS.DiffIDs) != 1 || cfg.Created == nil {
		return Image{}, fmt.Errorf("config %s: expected one diff ID and a creation time, as build writes them", m.Config.Digest)
	}
	sum, err := ParseChecksum(cfg.Config.Labels[LabelChecksum])
	if err != nil {
		sum = Checksum{}
	}
	img := Image{
		Platform: cfg.Platform,
		Manifest: ocispec.Descriptor{MediaType: manifest.MediaType, Digest: manifest.Digest, Size: manifest.Size},
		Config:   m.Config,
		Layer:    m.Layers[0],
		DiffID:   cfg.RootFS.DiffIDs[0],
		Checksum: sum,
		// A customized disk's index entry records its spec digest too.
		Customize: cfg.Config.Labels[LabelCustomize],
		Created:   cfg.Created.UTC(),
	}
	if len(cfg.History) > 0 {
		img.Disk.Format = disk.Format(strings.TrimPrefix(cfg.History[0].Comment, "disk/"))
	}
	p := img.Platform
	img.Manifest.Platform = &p
	return img, nil
}

// AssembleIndex writes to dst the index over images, each built by a
// process of its own (read with ReadImage), exactly as Build writes it
// when it builds them all at once: in the order of Architectures, with the
// checksum beside each manifest and opts' annotations (Source, Version,
// Annotations). The creation time is the images' own, which must be one
// and the same (a build of one architecture given --created): images
// built at different times would make an index that no single build
// makes. One image is its own root, as Build returns it. Nothing is
// tagged.
func AssembleIndex(ctx context.Context, dst Storage, images []Image, opts Options) (Result, error) {
	if len(images) == 0 {
		return Result{}, fmt.Errorf("assembling an index: no image")
	}
	images = slices.Clone(images)
	slices.SortStableFunc(images, func(a, b Image) int {
		return slices.Index(Architectures, a.Platform.Architecture) - slices.Index(Architectures, b.Platform.Architecture)
	})
	format := FormatOCI
	if images[0].Manifest.MediaType == MediaTypeDockerManifest {
		format = FormatDocker
	}
	if opts.Format != "" && opts.Format != format {
		return Result{}, fmt.Errorf("the images are %s manifests: expected %s", format, opts.Format)
	}
	opts.Format = format
	created := images[0].Created
	if !opts.Created.IsZero() {
		created = opts.Created.UTC().Truncate(time.Second)
	}
	for i, img := range images {
		if i > 0 && img.Platform.Architecture == images[i-1].Platform.Architecture {
			return Result{}, fmt.Errorf("two images for architecture %s (%s and %s): expected one per architecture", img.Platform.Architecture, images[i-1].Manifest.Digest, img.Manifest.Digest)
		}
		if (img.Manifest.MediaType == MediaTypeDockerManifest) != (format == FormatDocker) {
			return Result{}, fmt.Errorf("%s of %s is %s, %s of %s is %s: expected one manifest format", images[0].Manifest.Digest, images[0].Platform.Architecture, images[0].Manifest.MediaType, img.Manifest.Digest, img.Platform.Architecture, img.Manifest.MediaType)
		}
		if !img.Created.Equal(created) {
			return Result{}, fmt.Errorf("%s was created %s, %s %s: expected one creation time (build each architecture with the same --created), or the index would not be the one a single build makes", img.Platform.Architecture, img.Created.Format(time.RFC3339), images[0].Platform.Architecture, created.Format(time.RFC3339))
		}
	}
	opts.Created = created
	res := Result{Images: images}
	if len(images) == 1 {
		res.Root = images[0].Manifest
		return res, nil
	}
	var err error
	res.Root, err = pushIndex(ctx, dst, images, opts)
	return res, err
}

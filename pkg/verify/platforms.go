package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
)

// Platforms returns the linux architectures an image has: those of its
// index's manifests, or its single config's.
func Platforms(ctx context.Context, src content.Fetcher, root ocispec.Descriptor) ([]string, error) {
	b, err := containerdisk.FetchManifest(ctx, src, root)
	if err != nil {
		return nil, err
	}
	if isIndex(root.MediaType, b) {
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, fmt.Errorf("parsing index %s: %w", root.Digest, err)
		}
		var arches []string
		for _, d := range idx.Manifests {
			p := d.Platform
			if p == nil || (p.OS != "" && p.OS != "linux") || p.Architecture == "" || p.Architecture == "unknown" {
				continue
			}
			if !slices.Contains(arches, p.Architecture) {
				arches = append(arches, p.Architecture)
			}
		}
		if len(arches) == 0 {
			return nil, fmt.Errorf("index %s lists no linux image", root.Digest)
		}
		return arches, nil
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil || m.Config.Digest == "" {
		return nil, fmt.Errorf("%s is a %q, not an image manifest or index", root.Digest, root.MediaType)
	}
	cb, err := containerdisk.FetchManifest(ctx, src, m.Config)
	if err != nil {
		return nil, err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cb, &cfg); err != nil || cfg.Architecture == "" {
		return nil, fmt.Errorf("config %s names no architecture", m.Config.Digest)
	}
	return []string{cfg.Architecture}, nil
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"
)

// check verifies that the registry dst holds every "REPOSITORY TAG" of the
// list file as the registry src does: the tag at the same index digest, both
// arches' manifests, and every config and layer blob in that repository. A
// sync that dropped an arch, rewrote a manifest (a digest changes) or left a
// blob out fails it.
func check(ctx context.Context, src, dst, list string) error {
	f, err := os.Open(list)
	if err != nil {
		return err
	}
	defer f.Close()
	var errs []error
	var tagCount, manifestCount, blobCount int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, tag, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok {
			continue
		}
		from, err := plainRepository(src, name)
		if err != nil {
			return err
		}
		to, err := plainRepository(dst, name)
		if err != nil {
			return err
		}
		want, err := from.Resolve(ctx, tag)
		if err != nil {
			return fmt.Errorf("resolving %s:%s in the source: %w", name, tag, err)
		}
		got, err := to.Resolve(ctx, tag)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s/%s:%s: %w", dst, name, tag, err))
			continue
		}
		tagCount++
		if got.Digest != want.Digest {
			errs = append(errs, fmt.Errorf("%s/%s:%s is %s, the source has %s", dst, name, tag, got.Digest, want.Digest))
			continue
		}
		var index ocispec.Index
		if err := fetchJSON(ctx, from, want, &index); err != nil {
			return fmt.Errorf("reading the index of %s:%s: %w", name, tag, err)
		}
		for _, m := range index.Manifests {
			if ok, err := to.Exists(ctx, m); err != nil || !ok {
				errs = append(errs, fmt.Errorf("%s/%s:%s: no %s manifest %s (%v)", dst, name, tag, m.Platform.Architecture, m.Digest, err))
				continue
			}
			manifestCount++
			var manifest ocispec.Manifest
			if err := fetchJSON(ctx, from, m, &manifest); err != nil {
				return fmt.Errorf("reading a manifest of %s:%s: %w", name, tag, err)
			}
			for _, b := range append([]ocispec.Descriptor{manifest.Config}, manifest.Layers...) {
				if ok, err := to.Blobs().Exists(ctx, b); err != nil || !ok {
					errs = append(errs, fmt.Errorf("%s/%s: no blob %s (%v)", dst, name, b.Digest, err))
					continue
				}
				blobCount++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(errs) > 0 {
		return fmt.Errorf("the target is not a complete copy:\n%w", errors.Join(errs...))
	}
	fmt.Fprintf(os.Stderr, "complete copy: %d tags, %d manifests, %d blob links\n", tagCount, manifestCount, blobCount)
	return nil
}

func plainRepository(host, name string) (*remote.Repository, error) {
	r, err := remote.NewRepository(host + "/" + name)
	if err != nil {
		return nil, err
	}
	r.PlainHTTP = true
	return r, nil
}

func fetchJSON(ctx context.Context, r *remote.Repository, desc ocispec.Descriptor, v any) error {
	rc, err := r.Fetch(ctx, desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	data, err := content.ReadAll(io.Reader(rc), desc)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/containerdisk/kubectl-containerdisk/internal/testregistry"
)

// The data set: 8 repositories × 3 tags, each tag an index of one image per
// arch. Every image has two layers, a base layer that all the images of its
// arch share (across repositories, as images built FROM one base do) and a
// layer of its own, so a mirror that copies blobs once per registry rather
// than once per repository has an edge, as it should.
var (
	repositories = []string{
		"containerdisks/fedora", "containerdisks/centos-stream", "containerdisks/almalinux",
		"containerdisks/ubuntu", "containerdisks/debian", "containerdisks/opensuse-leap",
		"containerdisks/opensuse-tumbleweed", "containerdisks/cirros",
	}
	tags   = []string{"1.0", "1.1", "2.0"}
	arches = []string{"amd64", "arm64"}
)

// baseShare is the part of the set's unique bytes each arch's base layer
// takes: with two arches, a quarter of the set is base layers.
const baseShare = 8

// blockSize is the unit of the layer content: one block in four is zeros
// (the unused space of a disk), one is text, two are random bytes, so gzip
// roughly halves a layer, as it does a real disk image.
const blockSize = 64 << 10

// blob is a made-up layer, config, manifest or index, held in memory.
type blob struct {
	desc ocispec.Descriptor
	data []byte
	// diffID is the digest of a layer's uncompressed tar.
	diffID digest.Digest
}

// fill starts a registry stored in dir, pushes the data set of about gib
// GiB of unique blobs to it, stops it, and writes "REPOSITORY TAG" lines to
// out.
func fill(ctx context.Context, out io.Writer, dir string, gib float64) error {
	r, err := testregistry.Start(dir)
	if err != nil {
		return err
	}
	defer r.Close()
	start := time.Now()

	total := int64(gib * (1 << 30))
	baseSize := total / baseShare
	images := int64(len(repositories) * len(tags) * len(arches))
	layerSize := (total - int64(len(arches))*baseSize) / images

	repo := func(name string) (*remote.Repository, error) { return plainRepository(r.Host, name) }

	// The bases first: pushed once to the first repository and mounted in
	// the others, as a registry holding images built on one base has it.
	bases := make(map[string]blob)
	for _, arch := range arches {
		b, err := makeLayer("base-"+arch, baseSize)
		if err != nil {
			return err
		}
		bases[arch] = b
		for i, name := range repositories {
			rp, err := repo(name)
			if err != nil {
				return err
			}
			if i == 0 {
				err = rp.Push(ctx, b.desc, bytes.NewReader(b.data))
			} else {
				err = rp.Mount(ctx, b.desc, repositories[0], func() (io.ReadCloser, error) {
					return io.NopCloser(bytes.NewReader(b.data)), nil
				})
			}
			if err != nil {
				return fmt.Errorf("pushing the %s base to %s: %w", arch, name, err)
			}
		}
	}

	// Then one job per tag, each making and pushing its images and index.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, name := range repositories {
		for _, tag := range tags {
			g.Go(func() error {
				rp, err := repo(name)
				if err != nil {
					return err
				}
				if err := pushTag(gctx, rp, name, tag, bases, layerSize); err != nil {
					return fmt.Errorf("pushing %s:%s: %w", name, tag, err)
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// The registry counted the bytes uploaded: each blob once, as the bases
	// were mounted.
	unique := r.Stats().BlobBytesIn
	logical := images * (baseSize + layerSize)
	fmt.Fprintf(os.Stderr, "filled %s in %.1f s: %d repositories x %d tags x %d arches, %.0f MiB of blobs (%.0f MiB counted per image); layers of about %.0f MiB (bases) and %.1f MiB (images)\n",
		dir, time.Since(start).Seconds(), len(repositories), len(tags), len(arches),
		float64(unique)/(1<<20), float64(logical)/(1<<20), float64(baseSize)/(1<<20), float64(layerSize)/(1<<20))
	for _, name := range repositories {
		for _, tag := range tags {
			fmt.Fprintln(out, name, tag)
		}
	}
	return r.Close()
}

// pushTag makes the per-arch images of name:tag on the shared bases, pushes
// them, and tags their index.
func pushTag(ctx context.Context, rp *remote.Repository, name, tag string, bases map[string]blob, layerSize int64) error {
	var manifests []ocispec.Descriptor
	for _, arch := range arches {
		layer, err := makeLayer(name+":"+tag+"/"+arch, layerSize)
		if err != nil {
			return err
		}
		base := bases[arch]
		config, err := jsonBlob(ocispec.MediaTypeImageConfig, ocispec.Image{
			Platform: ocispec.Platform{Architecture: arch, OS: "linux"},
			Config: ocispec.ImageConfig{
				Entrypoint: []string{"no-entrypoint"},
				Env:        []string{"INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.medium"},
				Labels:     map[string]string{"shasum": layer.diffID.Encoded()},
			},
			RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{base.diffID, layer.diffID}},
		}, nil)
		if err != nil {
			return err
		}
		manifest, err := jsonBlob(ocispec.MediaTypeImageManifest, ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: ocispec.MediaTypeImageManifest,
			Config:    config.desc,
			Layers:    []ocispec.Descriptor{base.desc, layer.desc},
		}, &ocispec.Platform{Architecture: arch, OS: "linux"})
		if err != nil {
			return err
		}
		for _, b := range []blob{layer, config, manifest} {
			if err := rp.Push(ctx, b.desc, bytes.NewReader(b.data)); err != nil {
				return err
			}
		}
		manifests = append(manifests, manifest.desc)
	}
	index, err := jsonBlob(ocispec.MediaTypeImageIndex, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: manifests,
	}, nil)
	if err != nil {
		return err
	}
	return rp.PushReference(ctx, index.desc, bytes.NewReader(index.data), tag)
}

// jsonBlob encodes v as a blob of mediaType.
func jsonBlob(mediaType string, v any, platform *ocispec.Platform) (blob, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return blob{}, err
	}
	return blob{
		desc: ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data)), Platform: platform},
		data: data,
	}, nil
}

// makeLayer makes a gzip layer shaped like a containerdisk's, disk/ and
// disk/disk.img owned by qemu (107), whose file has about twice size bytes
// of content seeded by seed, so that the layer is about size bytes.
func makeLayer(seed string, size int64) (blob, error) {
	fileSize := max(2*size/blockSize, 1) * blockSize
	var buf bytes.Buffer
	buf.Grow(int(size + size/8))
	blobHash, diffHash := sha256.New(), sha256.New()
	zw, err := gzip.NewWriterLevel(io.MultiWriter(&buf, blobHash), gzip.BestSpeed)
	if err != nil {
		return blob{}, err
	}
	tw := tar.NewWriter(io.MultiWriter(zw, diffHash))
	epoch := time.Unix(0, 0)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "disk/", Mode: 0o555, Uid: 107, Gid: 107, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return blob{}, err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "disk/disk.img", Mode: 0o444, Uid: 107, Gid: 107, Size: fileSize, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return blob{}, err
	}
	if err := writeContent(tw, seed, fileSize); err != nil {
		return blob{}, err
	}
	if err := tw.Close(); err != nil {
		return blob{}, err
	}
	if err := zw.Close(); err != nil {
		return blob{}, err
	}
	return blob{
		desc:   ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: sum(blobHash), Size: int64(buf.Len())},
		data:   buf.Bytes(),
		diffID: sum(diffHash),
	}, nil
}

// writeContent writes size bytes (a multiple of blockSize) of zero, text
// and random blocks, the random ones from a generator seeded by seed.
func writeContent(w io.Writer, seed string, size int64) error {
	h := sha256.Sum256([]byte(seed))
	s1, s2 := binary.LittleEndian.Uint64(h[:]), binary.LittleEndian.Uint64(h[8:])
	rng := rand.New(rand.NewPCG(s1, s2))
	block := make([]byte, blockSize)
	const text = "containerdisk mirror benchmark: a line of text, like a config file. "
	for off, i := int64(0), 0; off < size; off, i = off+blockSize, i+1 {
		switch i % 4 {
		case 0:
			clear(block)
		case 1:
			for j := range block {
				block[j] = text[j%len(text)]
			}
			binary.LittleEndian.PutUint64(block, uint64(off)^s1)
		default:
			for j := 0; j < len(block); j += 8 {
				binary.LittleEndian.PutUint64(block[j:], rng.Uint64())
			}
		}
		if _, err := w.Write(block); err != nil {
			return err
		}
	}
	return nil
}

func sum(h hash.Hash) digest.Digest {
	return digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil))
}

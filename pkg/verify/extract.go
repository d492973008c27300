package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/disk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/internal/ctxio"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
)

// sparseBlock is the granularity at which runs of zeros in a disk become
// holes in the extracted file: raw disks are mostly zeros.
const sparseBlock = 4096

// ArchNotFoundError reports an image that has no manifest for the requested
// architecture.
type ArchNotFoundError struct {
	// Arch is the architecture asked for.
	Arch string
	// Available are the architectures the image has.
	Available []string
}

func (e *ArchNotFoundError) Error() string {
	if len(e.Available) == 0 {
		return fmt.Sprintf("the image has no %s disk: its index lists no linux platform", e.Arch)
	}
	return fmt.Sprintf("the image has no %s disk: it has %s; pass one of those as the architecture",
		e.Arch, strings.Join(e.Available, ", "))
}

// ExtractDisk writes the disk file of a containerdisk to dir and returns
// its path. root is an image index, from which the manifest of arch is
// chosen, or a single manifest; arch may be empty when there is only one.
// The layer (tar, gzip or zstd; OCI or Docker media types) is streamed and
// its digest checked; the disk is written with holes where it is zero,
// never held in memory, and renamed into place only once the whole layer
// has been verified. A layer with entries that climb out of their
// directory, with links or with more than one disk file is refused, and so
// is a disk that fails the checks build applies (package disk): an
// *ImageDiskError, for example for a qcow2 that names a backing file, which
// QEMU would open on this host.
func ExtractDisk(ctx context.Context, src content.Fetcher, root ocispec.Descriptor, arch, dir string) (string, error) {
	if arch != "" {
		a, err := containerdisk.NormalizeArch(arch)
		if err != nil {
			return "", err
		}
		arch = a
	}
	manifest, err := resolveManifest(ctx, src, root, arch)
	if err != nil {
		return "", err
	}
	if len(manifest.Layers) != 1 {
		return "", fmt.Errorf("manifest %s has %d layers: a containerdisk has exactly one, holding disk/<file>", root.Digest, len(manifest.Layers))
	}
	return extractLayer(ctx, src, manifest.Layers[0], dir)
}

// resolveManifest returns the manifest of arch under root.
func resolveManifest(ctx context.Context, src content.Fetcher, root ocispec.Descriptor, arch string) (ocispec.Manifest, error) {
	b, err := containerdisk.FetchManifest(ctx, src, root)
	if err != nil {
		return ocispec.Manifest{}, err
	}
	if isIndex(root.MediaType, b) {
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return ocispec.Manifest{}, fmt.Errorf("parsing index %s: %w", root.Digest, err)
		}
		desc, err := pickManifest(idx, arch)
		if err != nil {
			return ocispec.Manifest{}, err
		}
		if b, err = containerdisk.FetchManifest(ctx, src, desc); err != nil {
			return ocispec.Manifest{}, err
		}
		root = desc
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return ocispec.Manifest{}, fmt.Errorf("parsing manifest %s: %w", root.Digest, err)
	}
	if m.Config.Digest == "" {
		return ocispec.Manifest{}, fmt.Errorf("%s is a %q, not an image manifest or index", root.Digest, root.MediaType)
	}
	if arch != "" && root.Platform != nil && root.Platform.Architecture != arch {
		return ocispec.Manifest{}, &ArchNotFoundError{Arch: arch, Available: []string{root.Platform.Architecture}}
	}
	if arch != "" && root.Platform == nil {
		// A manifest met without an index says its architecture in its
		// config only.
		cb, err := containerdisk.FetchManifest(ctx, src, m.Config)
		if err != nil {
			return ocispec.Manifest{}, err
		}
		var cfg ocispec.Image
		if err := json.Unmarshal(cb, &cfg); err != nil {
			return ocispec.Manifest{}, fmt.Errorf("parsing config %s: %w", m.Config.Digest, err)
		}
		if cfg.Architecture != "" && cfg.Architecture != arch {
			return ocispec.Manifest{}, &ArchNotFoundError{Arch: arch, Available: []string{cfg.Architecture}}
		}
	}
	return m, nil
}

// isIndex tells an index from a manifest by its media type or, when the
// descriptor has none, by its content.
func isIndex(mediaType string, b []byte) bool {
	switch mediaType {
	case ocispec.MediaTypeImageIndex, containerdisk.MediaTypeDockerManifestList:
		return true
	case ocispec.MediaTypeImageManifest, containerdisk.MediaTypeDockerManifest:
		return false
	}
	var probe struct {
		MediaType string            `json:"mediaType"`
		Manifests []json.RawMessage `json:"manifests"`
	}
	_ = json.Unmarshal(b, &probe)
	return probe.MediaType == ocispec.MediaTypeImageIndex || probe.MediaType == containerdisk.MediaTypeDockerManifestList || probe.Manifests != nil
}

// pickManifest chooses the linux manifest of arch, or the only one.
func pickManifest(idx ocispec.Index, arch string) (ocispec.Descriptor, error) {
	var available []string
	var match []ocispec.Descriptor
	for _, d := range idx.Manifests {
		p := d.Platform
		if p == nil || (p.OS != "" && p.OS != "linux") || p.Architecture == "unknown" {
			continue // attestations and other platforms
		}
		if !slices.Contains(available, p.Architecture) {
			available = append(available, p.Architecture)
		}
		if arch == "" || p.Architecture == arch {
			match = append(match, d)
		}
	}
	switch {
	case arch == "" && len(available) > 1:
		return ocispec.Descriptor{}, fmt.Errorf("the image has disks for %s: pass one of those as the architecture", strings.Join(available, ", "))
	case len(match) == 0:
		return ocispec.Descriptor{}, &ArchNotFoundError{Arch: arch, Available: available}
	}
	return match[0], nil
}

// extractLayer streams the layer and writes its one disk file to dir.
func extractLayer(ctx context.Context, src content.Fetcher, layer ocispec.Descriptor, dir string) (string, error) {
	rc, err := src.Fetch(ctx, layer)
	if err != nil {
		return "", fmt.Errorf("fetching layer %s: %w", layer.Digest, err)
	}
	defer rc.Close()
	vr := content.NewVerifyReader(ctxio.Reader(ctx, rc), layer)
	tr, closeDecompressor, err := decompress(layer.MediaType, vr)
	if err != nil {
		return "", err
	}
	defer closeDecompressor()

	var tmp *os.File
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	diskName := ""
	t := tar.NewReader(tr)
	for {
		hdr, err := t.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("reading layer %s: %w", layer.Digest, err)
		}
		name, inDisk, err := layerPath(hdr.Name)
		if err != nil {
			return "", err
		}
		if !inDisk {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		default:
			return "", fmt.Errorf("layer entry %q is a %s: expected the disk as a regular file", hdr.Name, typeName(hdr.Typeflag))
		}
		if strings.Contains(name, "/") {
			return "", fmt.Errorf("layer entry %q is in a subdirectory of disk/: expected the disk file directly under disk/", hdr.Name)
		}
		if diskName != "" {
			return "", fmt.Errorf("layer has two disk files, disk/%s and disk/%s: a containerdisk holds exactly one", diskName, name)
		}
		diskName = name
		if tmp, err = os.CreateTemp(dir, "."+name+".*.partial"); err != nil {
			return "", fmt.Errorf("extracting disk: %w", err)
		}
		if err := copySparse(tmp, t, hdr.Size); err != nil {
			return "", fmt.Errorf("extracting disk/%s: %w", name, err)
		}
	}
	if diskName == "" {
		return "", fmt.Errorf("layer %s has no file under disk/: it is not a containerdisk", layer.Digest)
	}
	// The rest of the stream (tar padding, compressor trailer) is read so
	// that the whole blob is checked against its digest.
	if _, err := io.Copy(io.Discard, tr); err != nil {
		return "", fmt.Errorf("reading layer %s: %w", layer.Digest, err)
	}
	if _, err := io.Copy(io.Discard, vr); err != nil {
		return "", fmt.Errorf("reading layer %s: %w", layer.Digest, err)
	}
	if err := vr.Verify(); err != nil {
		return "", fmt.Errorf("verifying layer %s: %w", layer.Digest, err)
	}
	if err := checkDisk(tmp, diskName); err != nil {
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("extracting disk/%s: %w", diskName, err)
	}
	dst := filepath.Join(dir, diskName)
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", fmt.Errorf("extracting disk/%s: %w", diskName, err)
	}
	tmp = nil
	return dst, nil
}

// ImageDiskError reports an image whose disk fails the checks build applies
// (package disk): a qcow2 that names a backing file or an external data
// file, that is encrypted, truncated or corrupt, or a file that is no disk.
// The image did not come out of build, or was changed since; its disk is
// never booted, because QEMU would open the files such a disk names on the
// host that boots it.
type ImageDiskError struct {
	// Name is the disk's path in the layer, disk/<file>.
	Name string
	// Err says what is wrong; it unwraps to one of disk's Err… sentinels.
	Err *disk.InvalidDiskError
}

func (e *ImageDiskError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s in the image: %v", e.Name, e.Err.Err)
	if e.Err.Reason != "" {
		fmt.Fprintf(&b, ": %s", e.Err.Reason)
	}
	if e.Err.Hint != "" {
		fmt.Fprintf(&b, "; %s", e.Err.Hint)
	}
	b.WriteString("; verify boots only a disk that \"kubectl containerdisk build\" accepts: rebuild the image from one")
	return b.String()
}

// Unwrap returns the disk check's error.
func (e *ImageDiskError) Unwrap() error { return e.Err }

// checkDisk applies the checks of build to the extracted disk f. The disk
// is inspected without its temporary path, so that the hints name a disk
// the image's publisher has, not a file of this host.
func checkDisk(f *os.File, name string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("checking disk/%s: %w", name, err)
	}
	_, err = disk.InspectReaderAt(f, fi.Size())
	var invalid *disk.InvalidDiskError
	if errors.As(err, &invalid) {
		return &ImageDiskError{Name: "disk/" + name, Err: invalid}
	}
	if err != nil {
		return fmt.Errorf("checking disk/%s: %w", name, err)
	}
	return nil
}

// layerPath cleans a tar entry name and says whether it is under disk/.
// Names that climb out of the layer's root are refused, wherever they are.
func layerPath(name string) (rel string, inDisk bool, err error) {
	clean := path.Clean("/" + name)
	if raw := strings.TrimPrefix(name, "/"); raw == ".." || strings.HasPrefix(raw, "../") || strings.Contains(raw, "/../") || strings.HasSuffix(raw, "/..") {
		return "", false, fmt.Errorf("layer entry %q climbs out of its directory: refusing a path traversal", name)
	}
	rel = strings.TrimPrefix(clean, "/")
	if rel == "disk" {
		return "", true, nil
	}
	rest, ok := strings.CutPrefix(rel, "disk/")
	return rest, ok, nil
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symbolic link"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "device"
	case tar.TypeFifo:
		return "named pipe"
	}
	return fmt.Sprintf("tar entry of type %q", t)
}

// decompress returns the tar stream of a layer of the given media type.
func decompress(mediaType string, r io.Reader) (io.Reader, func(), error) {
	switch {
	case strings.HasSuffix(mediaType, "+gzip") || strings.HasSuffix(mediaType, ".tar.gzip"):
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("reading gzip layer: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case strings.HasSuffix(mediaType, "+zstd"):
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, fmt.Errorf("reading zstd layer: %w", err)
		}
		return zr, zr.Close, nil
	case mediaType == ocispec.MediaTypeImageLayer || mediaType == containerdisk.MediaTypeDockerLayer ||
		strings.HasSuffix(mediaType, ".tar"):
		return r, func() {}, nil
	}
	return nil, nil, fmt.Errorf("layer media type %q: expected a tar layer (OCI or Docker), uncompressed, gzip or zstd", mediaType)
}

// copySparse copies size bytes from r to f, seeking over blocks of zeros
// instead of writing them, so that a raw disk keeps its holes.
func copySparse(f *os.File, r io.Reader, size int64) error {
	buf := make([]byte, 1<<20)
	zero := make([]byte, sparseBlock)
	var written int64
	for written < size {
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), size-written)])
		if n > 0 {
			chunk := buf[:n]
			for len(chunk) > 0 {
				// A run of data blocks goes out in one write, a run of
				// zero blocks in one seek.
				end := 0
				zeros := bytes.Equal(chunk[:min(sparseBlock, len(chunk))], zero[:min(sparseBlock, len(chunk))])
				for end < len(chunk) {
					b := chunk[end:min(end+sparseBlock, len(chunk))]
					if bytes.Equal(b, zero[:len(b)]) != zeros {
						break
					}
					end += len(b)
				}
				if zeros {
					if _, err := f.Seek(int64(end), io.SeekCurrent); err != nil {
						return err
					}
				} else if _, err := f.Write(chunk[:end]); err != nil {
					return err
				}
				chunk = chunk[end:]
			}
			written += int64(n)
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return fmt.Errorf("layer ends after %d of its %d bytes", written, size)
			}
			return err
		}
	}
	// A trailing hole only moved the offset: the size comes from here.
	return f.Truncate(size)
}

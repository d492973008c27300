package mirror

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/oci"

	"github.com/containerdisk/kubectl-containerdisk/pkg/internal/ctxio"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
)

// archiveTime is the modification time of every entry in an archive, so that
// the same layout always makes the same bytes.
var archiveTime = time.Unix(0, 0).UTC()

// WriteArchive writes the OCI image layout in layoutDir (as `oci:DIR` copies
// write it) to archivePath as a single uncompressed tar: the "oci-layout"
// file, "index.json", then each blob under "blobs/<algorithm>/", in that
// order, all with mode 0644 (directories 0755), owner 0:0 and modification
// time 1970-01-01. This is the OCI image layout specification's layout in
// one tar, the form skopeo's oci-archive transport reads (tested), and
// podman load, docker load (25 and later) and ctr images import (not
// tested here); blobs shared by several images are in it once.
//
// Only what index.json reaches is written: every manifest it lists and,
// recursively, their indexes, manifests, configs and layers. A blob that is
// missing, has another size than its descriptor says, or does not match its
// digest fails the write, so an archive that was written is complete and
// intact. Other files in the directory, such as the "ingest" directory of
// oras-go's store, are left out. The entries of index.json are sorted (by
// "org.opencontainers.image.ref.name", then digest), and the blobs by path,
// so the same layout always gives the same archive.
//
// The names in index.json are the layout's own: oras-go's store (and with
// it a copy to `oci:DIR:TAG`) records each tag in the
// "org.opencontainers.image.ref.name" annotation, which is what skopeo and
// podman look an image up by (`oci-archive:FILE:NAME`); a name may be a
// bare tag ("41") or, for a layout holding several repositories, a
// repository and tag ("containerdisks/fedora:41"). containerd's
// `ctr images import` (not installed here, so untested) names an image
// after that annotation when it is a full reference
// ("registry.example.com/containerdisks/fedora:41"), after an
// "io.containerd.image.name" annotation if the entry has one, and
// otherwise only with --base-name: "ctr images import --base-name
// registry.example.com/containerdisks/fedora FILE" imports the tag "41" as
// "registry.example.com/containerdisks/fedora:41". skopeo 1.9 finds only
// images in OCI format: its oci transports pass over the index.json entries
// of Docker manifests and manifest lists, which oras-go and containerd read.
//
// The archive is written to a temporary file next to archivePath and
// renamed into place once complete, so archivePath is never a partial
// archive, and writing again from the same (perhaps grown) layout replaces
// it. To add images to an archive, copy them into its layout directory (a
// copy into an OCI layout fetches only the blobs it lacks) and write the
// archive again.
//
// The layout's index lock ([target.LockLayout]) is held from reading
// index.json to the rename, so that of several processes writing into the
// layout and then the archive, the last to rename it writes every image.
func WriteArchive(ctx context.Context, layoutDir, archivePath string) error {
	unlock, err := target.LockLayout(layoutDir)
	if err != nil {
		return fmt.Errorf("writing archive %s: %w", archivePath, err)
	}
	defer unlock()
	plan, err := planArchive(ctx, layoutDir)
	if err != nil {
		return fmt.Errorf("writing archive %s: %w", archivePath, err)
	}
	err = target.WriteFileAtomic(archivePath, "."+filepath.Base(archivePath)+".*.tmp", func(w io.Writer) error {
		return plan.write(ctx, w)
	})
	if err != nil {
		return fmt.Errorf("writing archive %s: %w", archivePath, err)
	}
	return nil
}

// archivePlan is what WriteArchive writes: index.json's bytes and the
// blobs, sorted by path.
type archivePlan struct {
	dir   string
	index []byte
	blobs []ocispec.Descriptor
}

// planArchive reads the layout in dir and walks its graph from index.json.
func planArchive(ctx context.Context, dir string) (*archivePlan, error) {
	layoutBytes, err := os.ReadFile(filepath.Join(dir, ocispec.ImageLayoutFile))
	if err != nil {
		return nil, fmt.Errorf("%q is not an OCI image layout: %w; expected a directory written by a copy to oci:DIR", dir, err)
	}
	var layout ocispec.ImageLayout
	if err := json.Unmarshal(layoutBytes, &layout); err != nil {
		return nil, &target.LayoutError{Path: dir, File: ocispec.ImageLayoutFile, Err: fmt.Errorf("not JSON: %w", err)}
	}
	if layout.Version != ocispec.ImageLayoutVersion {
		return nil, &target.LayoutError{Path: dir, File: ocispec.ImageLayoutFile, Err: fmt.Errorf("imageLayoutVersion is %q, not %q", layout.Version, ocispec.ImageLayoutVersion)}
	}
	indexBytes, err := os.ReadFile(filepath.Join(dir, ocispec.ImageIndexFile))
	if err != nil {
		return nil, err
	}
	var index ocispec.Index
	if err := json.Unmarshal(indexBytes, &index); err != nil {
		return nil, &target.LayoutError{Path: dir, File: ocispec.ImageIndexFile, Err: fmt.Errorf("not a JSON image index: %w", err)}
	}
	if len(index.Manifests) == 0 {
		return nil, fmt.Errorf("the layout %s holds no image: its index.json lists no manifest", dir)
	}
	slices.SortStableFunc(index.Manifests, compareIndexEntries)
	plan := &archivePlan{dir: dir}
	if plan.index, err = json.Marshal(index); err != nil {
		return nil, err
	}

	// Walk the graph breadth-first; oras-go's storage verifies what
	// Successors fetches, the manifests and indexes.
	storage := oci.NewStorageFromFS(os.DirFS(dir))
	seen := make(map[digest.Digest]bool)
	queue := slices.Clone(index.Manifests)
	for len(queue) > 0 {
		desc := queue[0]
		queue = queue[1:]
		if seen[desc.Digest] {
			continue
		}
		seen[desc.Digest] = true
		if err := desc.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("a descriptor in the layout %s has the digest %q: %w", dir, desc.Digest, err)
		}
		p := layoutBlobPath(desc.Digest)
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			return nil, fmt.Errorf("the layout %s is incomplete: %w", dir, err)
		}
		if fi.Size() != desc.Size || !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("the layout %s is corrupt: %s is %d bytes, the descriptor (%s) says %d", dir, p, fi.Size(), desc.MediaType, desc.Size)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		next, err := content.Successors(ctx, storage, desc)
		if err != nil {
			return nil, fmt.Errorf("reading %s %s in the layout %s: %w", desc.MediaType, desc.Digest, dir, err)
		}
		plan.blobs = append(plan.blobs, desc)
		queue = append(queue, next...)
	}
	slices.SortFunc(plan.blobs, func(a, b ocispec.Descriptor) int {
		return strings.Compare(layoutBlobPath(a.Digest), layoutBlobPath(b.Digest))
	})
	return plan, nil
}

// compareIndexEntries orders the entries of an archive's index.json: named
// ones first, by name, then by digest.
func compareIndexEntries(a, b ocispec.Descriptor) int {
	an, aok := a.Annotations[ocispec.AnnotationRefName]
	bn, bok := b.Annotations[ocispec.AnnotationRefName]
	if aok != bok {
		if aok {
			return -1
		}
		return 1
	}
	return cmp.Or(strings.Compare(an, bn), strings.Compare(string(a.Digest), string(b.Digest)))
}

// layoutBlobPath is the slash-separated path of a blob in a layout.
func layoutBlobPath(d digest.Digest) string {
	return path.Join(ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

// write writes the archive to w.
func (p *archivePlan) write(ctx context.Context, w io.Writer) error {
	tw := tar.NewWriter(w)
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}
	if err := writeTarFile(tw, ocispec.ImageLayoutFile, int64(len(layout)), bytes.NewReader(layout)); err != nil {
		return err
	}
	if err := writeTarFile(tw, ocispec.ImageIndexFile, int64(len(p.index)), bytes.NewReader(p.index)); err != nil {
		return err
	}
	dirs := map[string]bool{}
	for _, desc := range p.blobs {
		name := layoutBlobPath(desc.Digest)
		// Directory entries, for tools that do not make parents.
		for _, d := range []string{ocispec.ImageBlobsDir, path.Dir(name)} {
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(tarHeader(d+"/", tar.TypeDir, 0o755, 0)); err != nil {
					return err
				}
			}
		}
		if err := p.writeBlob(ctx, tw, name, desc); err != nil {
			return err
		}
	}
	return tw.Close()
}

// writeBlob copies one blob into the archive, verifying its digest.
func (p *archivePlan) writeBlob(ctx context.Context, tw *tar.Writer, name string, desc ocispec.Descriptor) error {
	f, err := os.Open(filepath.Join(p.dir, filepath.FromSlash(name)))
	if err != nil {
		return err
	}
	defer f.Close()
	verifier := desc.Digest.Verifier()
	r := io.TeeReader(ctxio.Reader(ctx, f), verifier)
	if err := writeTarFile(tw, name, desc.Size, r); err != nil {
		return err
	}
	if !verifier.Verified() {
		return fmt.Errorf("the layout %s is corrupt: the content of %s does not match its digest", p.dir, name)
	}
	return nil
}

// writeTarFile writes a regular file of size bytes from r.
func writeTarFile(tw *tar.Writer, name string, size int64, r io.Reader) error {
	if err := tw.WriteHeader(tarHeader(name, tar.TypeReg, 0o644, size)); err != nil {
		return err
	}
	n, err := io.Copy(tw, r)
	if err != nil {
		return fmt.Errorf("archiving %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("archiving %s: read %d bytes, expected %d", name, n, size)
	}
	return nil
}

// tarHeader is the header of every archive entry: no owner names, the
// fixed time, and the format left to archive/tar (USTAR unless a long name
// or a size of 8 GiB or more needs PAX).
func tarHeader(name string, typ byte, mode, size int64) *tar.Header {
	return &tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: size, ModTime: archiveTime}
}

package target

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/errdef"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/internal/ctxio"
	"github.com/containerdisk/kubectl-containerdisk/pkg/upload"
)

// Files this tool keeps in a layout directory beside the OCI ones. Tools
// that read layouts (skopeo, oras, crane, umoci) pass over files they do
// not know.
const (
	// indexLockFile is locked exclusively for each change of index.json,
	// and while an archive is written from the layout.
	indexLockFile = ".kubectl-containerdisk.lock"
	// writersLockFile is locked shared by every process that has the
	// layout open for writing, so that one that finds no other holder
	// knows that what lies in ingest/ is left over.
	writersLockFile = ".kubectl-containerdisk-writers.lock"
	// ingestDir is where oras-go's store writes a blob before it is
	// renamed into blobs/.
	ingestDir = "ingest"
	// indexTempPattern names index.json while it is written.
	indexTempPattern = ".index.json.*.tmp"
)

// LayoutError reports an OCI image layout (a directory, or an archive of
// one) that cannot be read as one: a malformed oci-layout or index.json, a
// truncated tar. It is an input error.
type LayoutError struct {
	// Path is the layout directory or the archive.
	Path string
	// File is the file of the layout that is wrong ("index.json",
	// "oci-layout"); empty when the whole is.
	File string
	// Archive is set when Path is an archive.
	Archive bool
	// Err says what is wrong.
	Err error
}

func (e *LayoutError) Error() string {
	kind, expected := "OCI layout", "a directory with an oci-layout file, an index.json and blobs/, as build, mirror and skopeo write it"
	if e.Archive {
		kind, expected = "OCI archive", "an uncompressed tar of an OCI image layout, as mirror to oci-archive:FILE and skopeo write it"
	}
	file := ""
	if e.File != "" {
		file = e.File + ": "
	}
	return fmt.Sprintf("malformed %s %s: %s%v; expected %s", kind, e.Path, file, e.Err, expected)
}

// InputError marks the error as the input's, so that a command exits 2.
func (e *LayoutError) InputError() bool { return true }

// Unwrap returns what is wrong.
func (e *LayoutError) Unwrap() error { return e.Err }

// Layout is an OCI image layout directory opened for writing, an
// [oras.GraphTarget] that several processes (and goroutines) may write to at
// once without losing one another's tags. Each blob is written to a file
// of its own in ingest/, checked, and renamed into blobs/ (manifests through
// oras-go's store, which indexes them for Predecessors); index.json is changed under an exclusive lock on a file in the directory,
// read afresh, changed by one entry, and written to a temporary file renamed
// into place, so a reader never sees it half written and a writer never
// drops the tag another wrote since it opened the layout. Tags are resolved
// from index.json as it is on disk.
//
// index.json lists the layout's roots only, as skopeo and umoci write it:
// each tagged manifest once per tag, and a manifest pushed without a tag
// (by digest) untagged, unless it is one of the manifests of an index
// pushed or tagged since. The platform manifests of an index are reached
// from it as blobs, so that crane, which refuses a layout of more than one
// entry, and skopeo, which needs a name when there are several, read a
// layout of one image as they read their own. (oras-go's store lists
// every manifest pushed; layouts written so, by earlier versions too, are
// read as before, and lose their untagged platform manifests when their
// index is tagged again.)
type Layout struct {
	dir     string
	store   *oci.Store
	writers *os.File
}

var _ oras.GraphTarget = (*Layout)(nil)

// OpenLayout opens or creates the OCI image layout directory dir. When no
// other process has the layout open for writing, blobs left half written
// in its ingest/ directory by one that was killed are removed. Close
// releases the layout (exiting does too).
func OpenLayout(ctx context.Context, dir string) (*Layout, error) {
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("opening OCI layout %q: it is a file, expected a directory", dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("opening OCI layout %q: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, ocispec.ImageBlobsDir), 0o755); err != nil {
		return nil, fmt.Errorf("opening OCI layout %q: %w", dir, err)
	}
	l := &Layout{dir: abs}
	err = l.prepare(dir)
	if err == nil {
		l.store, err = oci.NewWithContext(ctx, abs)
		if err != nil {
			err = &LayoutError{Path: dir, Err: err}
		} else {
			// index.json is written here, under the lock.
			l.store.AutoSaveIndex = false
		}
	}
	if err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// prepare writes oci-layout and index.json when they are missing, checks
// them when not, takes the writers' lock and, if it is the only writer,
// removes what others left in ingest/; all under the index lock.
func (l *Layout) prepare(dir string) error {
	unlock, err := LockLayout(l.dir)
	if err != nil {
		return err
	}
	defer unlock()
	fsys := os.DirFS(l.dir)
	if _, err := fs.Stat(fsys, ocispec.ImageLayoutFile); errors.Is(err, fs.ErrNotExist) {
		data, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
		if err := writeFileAtomic(l.dir, ocispec.ImageLayoutFile, ".oci-layout.*.tmp", data); err != nil {
			return fmt.Errorf("creating OCI layout %q: %w", dir, err)
		}
	} else if err := checkLayoutFile(fsys, dir, false); err != nil {
		return err
	}
	if _, err := fs.Stat(fsys, ocispec.ImageIndexFile); errors.Is(err, fs.ErrNotExist) {
		empty := &ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
		if err := l.writeIndex(empty); err != nil {
			return err
		}
	} else if _, err := readIndex(fsys, dir, false); err != nil {
		return err
	}

	if l.writers, err = os.OpenFile(filepath.Join(l.dir, writersLockFile), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return fmt.Errorf("opening OCI layout %q: %w", dir, err)
	}
	alone, err := lockFile(l.writers, true, false)
	if err != nil {
		return fmt.Errorf("opening OCI layout %q: %w", dir, err)
	}
	if alone {
		// No other writer is live: what ingest/ holds will never be
		// renamed into blobs/, and neither will a temporary index.
		removeEntries(filepath.Join(l.dir, ingestDir), "*")
		removeEntries(l.dir, indexTempPattern)
		if err := unlockFile(l.writers); err != nil {
			return err
		}
	}
	// Held until Close or exit: others opening the layout see a writer.
	if _, err := lockFile(l.writers, false, true); err != nil {
		return fmt.Errorf("opening OCI layout %q: %w", dir, err)
	}
	return nil
}

// removeEntries removes the files in dir whose names match pattern, as
// far as it can: a file it cannot remove does no harm.
func removeEntries(dir, pattern string) {
	names, _ := filepath.Glob(filepath.Join(dir, pattern))
	for _, n := range names {
		os.Remove(n)
	}
}

// Close releases the layout. It is open for writing until then.
func (l *Layout) Close() error {
	if l.writers == nil {
		return nil
	}
	err := l.writers.Close()
	l.writers = nil
	return err
}

// LockLayout takes the exclusive lock on the index of the layout
// directory dir that Layout takes for each change of index.json: while it
// is held, index.json does not change. The returned function releases it.
func LockLayout(dir string) (unlock func() error, err error) {
	f, err := os.OpenFile(filepath.Join(dir, indexLockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking OCI layout %q: %w", dir, err)
	}
	if _, err := lockFile(f, true, true); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking OCI layout %q: %w", dir, err)
	}
	// Closing the file releases the lock.
	return f.Close, nil
}

// Fetch reads a blob.
func (l *Layout) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	return l.store.Fetch(ctx, desc)
}

// Exists reports whether the layout holds a blob.
func (l *Layout) Exists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	return l.store.Exists(ctx, desc)
}

// Push writes a blob, checking its size and digest. It stops when ctx is
// done. A blob is written to a file of its own in ingest/, removed on any
// error (oras-go's store, v2.7.0, leaves it there), and renamed into blobs/
// once whole. A manifest pushed is listed in index.json.
func (l *Layout) Push(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	r = ctxio.Reader(ctx, r)
	if !upload.IsManifest(desc.MediaType) {
		return l.pushBlob(desc, r)
	}
	// A manifest is small: read and checked here, oras-go's store only
	// writes it, and indexes it for Predecessors.
	data, err := content.ReadAll(r, desc)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", desc.Digest, desc.MediaType, err)
	}
	if err := l.store.Push(ctx, desc, bytes.NewReader(data)); err != nil {
		return err
	}
	children := indexChildren(desc.MediaType, data)
	return l.updateIndex(func(idx *ocispec.Index) {
		dropUntagged(idx, children)
		addUntagged(idx, desc)
	})
}

// indexChildren returns the digests of the manifests an index (OCI or
// Docker) lists; none for other media types or what does not parse.
func indexChildren(mediaType string, data []byte) map[digest.Digest]bool {
	if mediaType != ocispec.MediaTypeImageIndex && mediaType != containerdisk.MediaTypeDockerManifestList {
		return nil
	}
	var idx ocispec.Index
	if json.Unmarshal(data, &idx) != nil {
		return nil
	}
	children := make(map[digest.Digest]bool, len(idx.Manifests))
	for _, m := range idx.Manifests {
		children[m.Digest] = true
	}
	return children
}

// dropUntagged removes the untagged entries of idx whose digests are in
// children: they are reached from their index.
func dropUntagged(idx *ocispec.Index, children map[digest.Digest]bool) {
	if len(children) == 0 {
		return
	}
	idx.Manifests = slices.DeleteFunc(idx.Manifests, func(m ocispec.Descriptor) bool {
		_, tagged := m.Annotations[ocispec.AnnotationRefName]
		return !tagged && children[m.Digest]
	})
}

// blobCopyBuffer is the size of the writes of a blob into the layout.
const blobCopyBuffer = 128 << 10

// pushBlob writes a blob through a temporary file in ingest/.
func (l *Layout) pushBlob(desc ocispec.Descriptor, r io.Reader) (err error) {
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("%s: %s: %w", desc.Digest, desc.MediaType, errdef.ErrInvalidDigest)
	}
	blob := filepath.Join(l.dir, ocispec.ImageBlobsDir, desc.Digest.Algorithm().String(), desc.Digest.Encoded())
	if _, err := os.Stat(blob); err == nil {
		return fmt.Errorf("%s: %s: %w", desc.Digest, desc.MediaType, errdef.ErrAlreadyExists)
	}
	for _, d := range []string{filepath.Dir(blob), filepath.Join(l.dir, ingestDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// The name oras-go's store gives its ingest files.
	f, err := os.CreateTemp(filepath.Join(l.dir, ingestDir), desc.Digest.Encoded()+"_*")
	if err != nil {
		return err
	}
	defer removeOnError(f, &err)
	vr := content.NewVerifyReader(r, desc)
	// The writer hides os.File's ReadFrom, which would copy in 32 KiB
	// reads; blobs are often GiBs. 128 KiB is the size measured fastest:
	// 1 MiB writes made a 1 GiB blob take 3 times as long in the kernel.
	if _, err := io.CopyBuffer(struct{ io.Writer }{f}, vr, make([]byte, blobCopyBuffer)); err != nil {
		return fmt.Errorf("writing blob %s: %w", desc.Digest, err)
	}
	if err := vr.Verify(); err != nil {
		return fmt.Errorf("writing blob %s: %w", desc.Digest, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Blobs are read-only once stored, as oras-go's store makes them.
	if err := os.Chmod(f.Name(), 0o444); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), blob); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			// Another writer stored it first (on Windows, where a rename
			// does not replace a read-only file).
			return fmt.Errorf("%s: %s: %w", desc.Digest, desc.MediaType, errdef.ErrAlreadyExists)
		}
		return err
	}
	return nil
}

// Tag points ref at desc in index.json, replacing what it pointed at.
func (l *Layout) Tag(ctx context.Context, desc ocispec.Descriptor, ref string) error {
	// oras-go's store checks the reference and that the blob exists, and
	// keeps its own graph for Predecessors.
	if err := l.store.Tag(ctx, desc, ref); err != nil {
		return err
	}
	// The platform manifests of an index tagged again in a layout written
	// by an earlier version are listed untagged: they go now.
	var children map[digest.Digest]bool
	if desc.MediaType == ocispec.MediaTypeImageIndex || desc.MediaType == containerdisk.MediaTypeDockerManifestList {
		data, err := content.FetchAll(ctx, l.store, desc)
		if err != nil {
			return err
		}
		children = indexChildren(desc.MediaType, data)
	}
	return l.updateIndex(func(idx *ocispec.Index) {
		dropUntagged(idx, children)
		if ref == desc.Digest.String() {
			addUntagged(idx, desc)
			return
		}
		idx.Manifests = slices.DeleteFunc(idx.Manifests, func(m ocispec.Descriptor) bool {
			name, tagged := m.Annotations[ocispec.AnnotationRefName]
			return name == ref || (!tagged && m.Digest == desc.Digest)
		})
		annotations := maps.Clone(desc.Annotations)
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[ocispec.AnnotationRefName] = ref
		desc.Annotations = annotations
		idx.Manifests = append(idx.Manifests, desc)
	})
}

// addUntagged lists desc in idx without a name, unless it is listed.
func addUntagged(idx *ocispec.Index, desc ocispec.Descriptor) {
	if slices.ContainsFunc(idx.Manifests, func(m ocispec.Descriptor) bool { return m.Digest == desc.Digest }) {
		return
	}
	if _, ok := desc.Annotations[ocispec.AnnotationRefName]; ok {
		desc.Annotations = maps.Clone(desc.Annotations)
		delete(desc.Annotations, ocispec.AnnotationRefName)
	}
	idx.Manifests = append(idx.Manifests, desc)
}

// Resolve resolves a tag from index.json as it is now, or a digest.
func (l *Layout) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	if ref == "" {
		return ocispec.Descriptor{}, errdef.ErrMissingReference
	}
	if _, err := digest.Parse(ref); err == nil {
		desc, err := l.store.Resolve(ctx, ref)
		if err != nil {
			return desc, err
		}
		return typeBlob(ctx, l.store, desc)
	}
	idx, err := readIndex(os.DirFS(l.dir), l.dir, false)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	for _, m := range slices.Backward(idx.Manifests) {
		if m.Annotations[ocispec.AnnotationRefName] == ref {
			return m, nil
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("%s: %w", ref, errdef.ErrNotFound)
}

// Predecessors returns the manifests this process knows to point at node.
func (l *Layout) Predecessors(ctx context.Context, node ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	return l.store.Predecessors(ctx, node)
}

// Tags lists the names in index.json as it is now, sorted, from the one
// after last.
func (l *Layout) Tags(ctx context.Context, last string, fn func(tags []string) error) error {
	idx, err := readIndex(os.DirFS(l.dir), l.dir, false)
	if err != nil {
		return err
	}
	var tags []string
	for _, m := range idx.Manifests {
		if name := m.Annotations[ocispec.AnnotationRefName]; name != "" && name > last && !slices.Contains(tags, name) {
			tags = append(tags, name)
		}
	}
	slices.Sort(tags)
	if len(tags) == 0 {
		return nil
	}
	return fn(tags)
}

// updateIndex changes index.json under the lock: read afresh, changed,
// renamed into place.
func (l *Layout) updateIndex(change func(*ocispec.Index)) error {
	unlock, err := LockLayout(l.dir)
	if err != nil {
		return err
	}
	defer unlock()
	idx, err := readIndex(os.DirFS(l.dir), l.dir, false)
	if err != nil {
		return err
	}
	change(idx)
	return l.writeIndex(idx)
}

func (l *Layout) writeIndex(idx *ocispec.Index) error {
	data, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(l.dir, ocispec.ImageIndexFile, indexTempPattern, data); err != nil {
		return fmt.Errorf("writing the index of OCI layout %q: %w", l.dir, err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file in dir and renames it to
// name, so that readers see the old file or the new one, whole.
func writeFileAtomic(dir, name, pattern string, data []byte) error {
	return WriteFileAtomic(filepath.Join(dir, name), pattern, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFileAtomic writes path through write into a temporary file named by
// pattern in path's directory, synced and made readable by all (0644), then
// renamed into place: readers see the old file or the new one, whole, and a
// failed write leaves nothing behind. The writer is buffered.
func WriteFileAtomic(path, pattern string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), pattern)
	if err != nil {
		return err
	}
	defer removeOnError(f, &err)
	w := bufio.NewWriterSize(f, 1<<20)
	if err := write(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	// The rename must not publish what a crash could still lose.
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// CreateTemp makes the file readable by its owner only; layouts and
	// archives are made to be read by others.
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// readIndex reads and parses the index.json of the layout in fsys, which
// is path (an archive when archive is set).
func readIndex(fsys fs.FS, path string, archive bool) (*ocispec.Index, error) {
	data, err := fs.ReadFile(fsys, ocispec.ImageIndexFile)
	if err != nil {
		return nil, &LayoutError{Path: path, File: ocispec.ImageIndexFile, Archive: archive, Err: err}
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, &LayoutError{Path: path, File: ocispec.ImageIndexFile, Archive: archive, Err: fmt.Errorf("not a JSON image index: %w", err)}
	}
	if idx.SchemaVersion != 2 {
		return nil, &LayoutError{Path: path, File: ocispec.ImageIndexFile, Archive: archive, Err: fmt.Errorf("schemaVersion is %d, not 2", idx.SchemaVersion)}
	}
	for _, m := range idx.Manifests {
		if err := m.Digest.Validate(); err != nil {
			return nil, &LayoutError{Path: path, File: ocispec.ImageIndexFile, Archive: archive, Err: fmt.Errorf("a manifest has the digest %q: %w", m.Digest, err)}
		}
	}
	return &idx, nil
}

// checkLayoutFile reads the oci-layout file of the layout in fsys.
func checkLayoutFile(fsys fs.FS, path string, archive bool) error {
	data, err := fs.ReadFile(fsys, ocispec.ImageLayoutFile)
	if err != nil {
		return &LayoutError{Path: path, File: ocispec.ImageLayoutFile, Archive: archive, Err: err}
	}
	var layout ocispec.ImageLayout
	if err := json.Unmarshal(data, &layout); err != nil {
		return &LayoutError{Path: path, File: ocispec.ImageLayoutFile, Archive: archive, Err: fmt.Errorf("not JSON: %w", err)}
	}
	if layout.Version != ocispec.ImageLayoutVersion {
		return &LayoutError{Path: path, File: ocispec.ImageLayoutFile, Archive: archive, Err: fmt.Errorf("imageLayoutVersion is %q, not %q", layout.Version, ocispec.ImageLayoutVersion)}
	}
	return nil
}

// typeBlob gives the media type of a manifest that desc, resolved by its
// digest, describes as a blob: oras-go's stores know the media types of
// the manifests index.json lists, not of the platform manifests an index
// there points at, which they resolve as "application/octet-stream". The
// media type is read from the manifest, as a registry answers it for a
// manifest asked by digest; other blobs are returned as they are.
func typeBlob(ctx context.Context, fetcher content.Fetcher, desc ocispec.Descriptor) (ocispec.Descriptor, error) {
	if desc.MediaType != blobMediaType || desc.Size > maxManifestSize {
		return desc, nil
	}
	data, err := content.FetchAll(ctx, fetcher, desc)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var m struct {
		MediaType string          `json:"mediaType"`
		Config    json.RawMessage `json:"config"`
		Layers    json.RawMessage `json:"layers"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(data, &m) != nil {
		return desc, nil
	}
	switch {
	case upload.IsManifest(m.MediaType):
		desc.MediaType = m.MediaType
	case m.MediaType != "":
	case m.Manifests != nil:
		desc.MediaType = ocispec.MediaTypeImageIndex
	case m.Config != nil && m.Layers != nil:
		desc.MediaType = ocispec.MediaTypeImageManifest
	}
	return desc, nil
}

// blobMediaType is the media type oras-go's stores resolve a blob with.
const blobMediaType = "application/octet-stream"

// maxManifestSize is the largest manifest typeBlob reads, the limit
// oras-go's registry client puts on manifests.
const maxManifestSize = 4 << 20

// LayoutReader is an OCI image layout opened for reading: oras-go's
// read-only store, which resolves the digest of a manifest that index.json
// does not list (the platform manifests of an index) with its media type.
type LayoutReader struct {
	*oci.ReadOnlyStore
}

var _ oras.ReadOnlyGraphTarget = (*LayoutReader)(nil)

// Resolve resolves a tag of index.json, or a digest.
func (r *LayoutReader) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	desc, err := r.ReadOnlyStore.Resolve(ctx, ref)
	if err != nil || ref != desc.Digest.String() {
		return desc, err
	}
	return typeBlob(ctx, r.ReadOnlyStore, desc)
}

// OpenLayoutFS opens the OCI image layout in fsys for reading: a layout
// directory or, when archive is set, the files of an archive; path names
// it in errors. A malformed oci-layout or index.json is a *LayoutError.
func OpenLayoutFS(ctx context.Context, fsys fs.FS, path string, archive bool) (*LayoutReader, error) {
	if err := checkLayoutFile(fsys, path, archive); err != nil {
		return nil, err
	}
	if _, err := readIndex(fsys, path, archive); err != nil {
		return nil, err
	}
	s, err := oci.NewFromFS(ctx, fsys)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, &LayoutError{Path: path, Archive: archive, Err: err}
	}
	return &LayoutReader{ReadOnlyStore: s}, nil
}

// DockerInLayout says who cannot read an image of mediaType from an OCI
// layout or archive: "" for OCI media types, else what the image is and
// which readers miss it. containers/image before 5.35 (skopeo 1.18 and
// earlier, podman 5.4 and earlier; Debian 12 ships skopeo 1.9 and podman
// 4.3) looks an image up by name in index.json among OCI manifests and
// indexes only, and so finds no Docker manifest or manifest list there
// ("no descriptor found for reference"); oras, crane, regctl and
// containerd read them. The digest stays what it is: converting the image
// to OCI media types would change it.
func DockerInLayout(mediaType string) string {
	var what string
	switch mediaType {
	case containerdisk.MediaTypeDockerManifestList:
		what = "a Docker manifest list"
	case containerdisk.MediaTypeDockerManifest:
		what = "a Docker schema2 manifest"
	default:
		return ""
	}
	return what + ": skopeo 1.18 and earlier and podman 5.4 and earlier cannot read it by name from an OCI layout or archive"
}

// removeOnError closes and removes f once the function writing it returns
// *err: a file written under a temporary name is either renamed into place
// whole or gone.
func removeOnError(f *os.File, err *error) {
	if *err != nil {
		f.Close()
		os.Remove(f.Name())
	}
}

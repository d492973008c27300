package target

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"oras.land/oras-go/v2"
)

// Archive is an OCI archive opened for reading: an [oras.ReadOnlyGraphTarget]
// whose tags are the "org.opencontainers.image.ref.name" names of its
// index.json, so that a copy from it to a registry is an oras.Copy like any
// other. Blobs are read in place, from their offset in the tar file: opening
// an archive reads its headers only, and nothing is extracted.
type Archive struct {
	*LayoutReader
	f *os.File
}

var _ oras.ReadOnlyGraphTarget = (*Archive)(nil)

// OpenArchive opens an archive mirror wrote (pkg/mirror's WriteArchive), or
// any uncompressed tar of an OCI image layout (skopeo's oci-archive, docker
// save of Docker 25 and later), for reading. Close releases it.
//
// oras-go's oci.NewFromTar (v2.7.0) does the same, but re-reads each
// entry's header from the one block before its data, missing what only a
// PAX record holds: it reads a blob of 8 GiB or more, whose size only a PAX
// record can hold, as empty.
func OpenArchive(ctx context.Context, archivePath string) (*Archive, error) {
	f, err := os.Open(archivePath)
	if err != nil {
		return nil, fmt.Errorf("opening archive: %w", err)
	}
	fsys, err := indexTar(f)
	if err != nil {
		f.Close()
		return nil, &LayoutError{Path: archivePath, Archive: true, Err: err}
	}
	store, err := OpenLayoutFS(ctx, fsys, archivePath, true)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Archive{LayoutReader: store, f: f}, nil
}

// Close closes the archive file.
func (a *Archive) Close() error {
	return a.f.Close()
}

// tarFS is the regular files of a tar archive, read in place.
type tarFS struct {
	r       io.ReaderAt
	entries map[string]tarEntry
}

type tarEntry struct {
	hdr    *tar.Header
	offset int64
}

// Magic numbers of compressed files that people may take for a tar.
var compressedMagic = []struct {
	name  string
	magic []byte
	hint  string
}{
	{"gzip", []byte{0x1f, 0x8b}, "gunzip"},
	{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd}, "unzstd"},
	{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0}, "unxz"},
}

// indexTar reads the headers of the tar in f and notes where each regular
// file's data starts.
func indexTar(f *os.File) (*tarFS, error) {
	var head [8]byte
	n, _ := io.ReadFull(f, head[:])
	for _, c := range compressedMagic {
		if bytes.HasPrefix(head[:n], c.magic) {
			return nil, fmt.Errorf("it is %s-compressed; expected an uncompressed tar: decompress it first (%s)", c.name, c.hint)
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	fsys := &tarFS{r: f, entries: make(map[string]tarEntry)}
	// tar.Reader reads exactly the header blocks of an entry (PAX and GNU
	// long-name blocks included) and skips data with Seek, so after Next
	// the file offset is where the entry's data starts.
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("it is not a tar, or is cut short: %w", err)
		}
		name := path.Clean(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeDir, tar.TypeXGlobalHeader:
			continue
		case tar.TypeReg:
		default:
			return nil, fmt.Errorf("its entry %s is of type %q; expected regular files and directories only, as in an OCI image layout", hdr.Name, hdr.Typeflag)
		}
		if !fs.ValidPath(name) {
			return nil, fmt.Errorf("its entry %q is outside the archive's root", hdr.Name)
		}
		// Sparse files have data in pieces, which a plain offset cannot
		// read; layouts never need them.
		for k := range hdr.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return nil, fmt.Errorf("its entry %s is a sparse file, which is not supported", hdr.Name)
			}
		}
		offset, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		// tar.Reader seeks over data without reading it, so a tar cut
		// short in the last entry's data reads as whole.
		if offset+hdr.Size > size {
			return nil, fmt.Errorf("it is cut short: its entry %s has %d of its %d bytes", hdr.Name, max(size-offset, 0), hdr.Size)
		}
		// As when a tar is extracted, a later entry replaces an earlier one.
		fsys.entries[name] = tarEntry{hdr: hdr, offset: offset}
	}
	return fsys, nil
}

// Open opens the named regular file.
func (t *tarFS) Open(name string) (fs.File, error) {
	e, err := t.entry("open", name)
	if err != nil {
		return nil, err
	}
	return &tarFile{SectionReader: io.NewSectionReader(t.r, e.offset, e.hdr.Size), hdr: e.hdr}, nil
}

// Stat describes the named regular file.
func (t *tarFS) Stat(name string) (fs.FileInfo, error) {
	e, err := t.entry("stat", name)
	if err != nil {
		return nil, err
	}
	return e.hdr.FileInfo(), nil
}

func (t *tarFS) entry(op, name string) (tarEntry, error) {
	if !fs.ValidPath(name) {
		return tarEntry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	e, ok := t.entries[name]
	if !ok {
		return tarEntry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return e, nil
}

// tarFile is an open regular file of a tarFS. Its reads go to the shared
// archive file with ReadAt, so files can be read concurrently.
type tarFile struct {
	*io.SectionReader
	hdr *tar.Header
}

func (f *tarFile) Stat() (fs.FileInfo, error) { return f.hdr.FileInfo(), nil }

func (f *tarFile) Close() error { return nil }

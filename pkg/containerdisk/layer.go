package containerdisk

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"

	"github.com/containerdisk/kubectl-containerdisk/pkg/internal/ctxio"
)

// layerEpoch is the modification time of every entry in a layer: layers
// depend on the disk content alone, so a rebuild of the same upstream file
// reuses the blob already in the registry.
var layerEpoch = time.Unix(0, 0).UTC()

// copyBufferSize is the read size of the input; large reads keep the
// compressor's workers busy.
const copyBufferSize = 1 << 20

// writeBufferSize is the size of the writes of the layer file: larger
// writes were measured slower in the kernel (1 MiB: 3 times as long for a
// 1 GiB layer as 128 KiB).
const writeBufferSize = 128 << 10

// layer is a compressed layer written to a temporary file.
type layer struct {
	path     string
	digest   digest.Digest
	diffID   digest.Digest
	size     int64
	checksum Checksum
}

// writeLayer streams the disk file into a tar with disk/ and disk/<name>,
// compresses it and writes it to a temporary file in dir, hashing the
// input, the tar and the compressed bytes in the same single pass.
func writeLayer(ctx context.Context, d Disk, name string, c Compression, dir string, progress io.Writer) (*layer, error) {
	in, err := os.Open(d.Path)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return nil, err
	}
	out, err := os.CreateTemp(dir, "layer-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("creating temporary layer file: %w", err)
	}
	l := &layer{path: out.Name()}
	ok := false
	defer func() {
		out.Close()
		if !ok {
			os.Remove(l.path)
		}
	}()

	alg := d.Checksum.Algorithm
	if alg == "" {
		alg = "sha256"
	}
	inHash := newHash(alg)
	diffHash := sha256.New()
	blobHash := sha256.New()
	counter := &countWriter{}
	buffered := bufio.NewWriterSize(out, writeBufferSize)
	// Uncompressed, the blob is the tar: its digest is the diff ID, and a
	// third hash over the whole disk would be wasted.
	var compressed io.Writer = io.MultiWriter(buffered, blobHash, counter)
	if c == CompressionNone {
		compressed = io.MultiWriter(buffered, counter)
	}
	zw, err := newCompressor(compressed, c)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(io.MultiWriter(zw, diffHash))
	dirHdr := &tar.Header{
		Typeflag: tar.TypeDir, Name: "disk/", Mode: 0o555,
		Uid: QemuID, Gid: QemuID, ModTime: layerEpoch,
	}
	fileHdr := &tar.Header{
		Typeflag: tar.TypeReg, Name: "disk/" + name, Mode: 0o444, Size: fi.Size(),
		Uid: QemuID, Gid: QemuID, ModTime: layerEpoch,
	}
	if err := tw.WriteHeader(dirHdr); err != nil {
		return nil, err
	}
	if err := tw.WriteHeader(fileHdr); err != nil {
		return nil, err
	}
	var src io.Reader = io.TeeReader(ctxio.Reader(ctx, in), inHash)
	if d.Verified {
		src = ctxio.Reader(ctx, in)
	}
	if progress != nil {
		src = io.TeeReader(src, progress)
	}
	n, err := io.CopyBuffer(tw, src, make([]byte, copyBufferSize))
	if err != nil {
		return nil, fmt.Errorf("reading disk %q: %w", d.Path, err)
	}
	if n != fi.Size() {
		return nil, fmt.Errorf("reading disk %q: read %d bytes, expected %d: the file changed while it was read", d.Path, n, fi.Size())
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if err := buffered.Flush(); err != nil {
		return nil, fmt.Errorf("writing temporary layer file: %w", err)
	}
	if err := out.Close(); err != nil {
		return nil, fmt.Errorf("writing temporary layer file: %w", err)
	}
	l.checksum = Checksum{Algorithm: alg, Hex: fmt.Sprintf("%x", inHash.Sum(nil))}
	if d.Verified && !d.Checksum.IsZero() {
		l.checksum = d.Checksum
	}
	if !d.Checksum.IsZero() && d.Checksum != l.checksum {
		return nil, &ChecksumMismatchError{Path: d.Path, Expected: d.Checksum, Actual: l.checksum}
	}
	l.diffID = digest.NewDigestFromBytes(digest.SHA256, diffHash.Sum(nil))
	l.digest = digest.NewDigestFromBytes(digest.SHA256, blobHash.Sum(nil))
	if c == CompressionNone {
		l.digest = l.diffID
	}
	l.size = counter.n
	ok = true
	return l, nil
}

// VerifyChecksum hashes the file of d with the algorithm of d.Checksum
// (sha256 when it is unset) and returns the result: a
// *ChecksumMismatchError when d.Checksum is set and differs. It is for a
// disk that is changed before it is built (customized), whose image must
// record the checksum of the file it was made from.
func VerifyChecksum(ctx context.Context, d Disk) (Checksum, error) {
	alg := d.Checksum.Algorithm
	if alg == "" {
		alg = "sha256"
	}
	f, err := os.Open(d.Path)
	if err != nil {
		return Checksum{}, err
	}
	defer f.Close()
	h := newHash(alg)
	if _, err := io.CopyBuffer(h, ctxio.Reader(ctx, f), make([]byte, copyBufferSize)); err != nil {
		return Checksum{}, fmt.Errorf("reading disk %q: %w", d.Path, err)
	}
	sum := Checksum{Algorithm: alg, Hex: fmt.Sprintf("%x", h.Sum(nil))}
	if !d.Checksum.IsZero() && d.Checksum != sum {
		return Checksum{}, &ChecksumMismatchError{Path: d.Path, Expected: d.Checksum, Actual: sum}
	}
	return sum, nil
}

func newHash(alg string) hash.Hash {
	if alg == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

// nopWriteCloser passes writes through and closes nothing.
type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// newCompressor returns a deterministic compressor: the same input gives the
// same bytes whatever the machine's core count, so digests are reproducible.
func newCompressor(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case CompressionNone:
		return nopWriteCloser{w}, nil
	case CompressionZstd:
		return zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(2),
			zstd.WithZeroFrames(true))
	default:
		zw, err := pgzip.NewWriterLevel(w, pgzip.BestSpeed)
		if err != nil {
			return nil, err
		}
		// Fixed 1 MiB blocks: the output depends on the block size only,
		// never on how many blocks are compressed at once.
		if err := zw.SetConcurrency(1<<20, 4); err != nil {
			return nil, err
		}
		return zw, nil
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

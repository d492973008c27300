// Package disk validates a local VM disk image before it is packaged into a
// containerdisk.
//
// KubeVirt boots whatever file it finds under /disk in a containerdisk, and it
// only finds out that the file is an HTML error page, a gzip stream, a qcow2
// overlay whose backing file stayed on the build machine, or a download that
// was cut short when a VM fails to boot on a cluster. This package catches
// those mistakes on the machine that still has the file, before anything is
// written or pushed.
//
// Inspection reads only metadata through an [io.ReaderAt]: the qcow2 header,
// its tables and a few raw sectors. It never reads guest data, so it takes
// milliseconds on multi-gigabyte images, and it never allocates more than the
// file could hold, so a hostile header cannot exhaust memory.
package disk

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Format is a disk image format.
type Format string

// The disk image formats that KubeVirt boots from a containerdisk.
const (
	// FormatQCOW2 is a qcow2 image (version 2 or 3).
	FormatQCOW2 Format = "qcow2"
	// FormatRaw is a raw disk: the guest-visible bytes, sector by sector.
	FormatRaw Format = "raw"
)

// Info describes a validated disk image.
type Info struct {
	// Format is the image format.
	Format Format
	// Size is the file size in bytes.
	Size int64
	// VirtualSize is the guest-visible size in bytes; for a raw disk it is
	// the file size.
	VirtualSize int64
}

// Sentinel errors for the kinds of invalid disk. An *InvalidDiskError unwraps
// to exactly one of them, so callers can branch with errors.Is without
// parsing messages.
var (
	// ErrNotDisk means the file is neither a qcow2 image nor a raw disk:
	// for example a text or HTML file, an archive, a compressed stream, an
	// image in another format, or a file whose size is not whole sectors.
	ErrNotDisk = errors.New("not a qcow2 or raw disk image")
	// ErrBackingFile means the qcow2 image is an overlay that needs a
	// backing file, which a containerdisk cannot carry.
	ErrBackingFile = errors.New("qcow2 image depends on a backing file")
	// ErrTruncated means the image refers to data beyond the end of the
	// file, typically because a download or copy was cut short.
	ErrTruncated = errors.New("disk image is truncated")
	// ErrCorrupt means the qcow2 metadata is inconsistent, or the image is
	// marked dirty or corrupt.
	ErrCorrupt = errors.New("qcow2 image is corrupt")
	// ErrUnsupported means the qcow2 image uses a feature that a
	// containerdisk cannot carry or that this package does not know, such as
	// encryption, an external data file or unknown incompatible features.
	ErrUnsupported = errors.New("qcow2 image uses an unsupported feature")
)

// InvalidDiskError reports why a file cannot be packaged as a containerdisk.
// Its message names the file, says what was found and what was expected, and
// suggests the next command to run.
type InvalidDiskError struct {
	// Path is the inspected file; empty when inspecting an io.ReaderAt.
	Path string
	// Reason says what was found, for example "the file is empty".
	Reason string
	// Hint says what was expected and what to try next.
	Hint string
	// Err is the sentinel (ErrNotDisk, ErrBackingFile, ErrTruncated,
	// ErrCorrupt or ErrUnsupported) that classifies the problem.
	Err error
}

// Error returns a message of the form
// `disk "x.img": <kind>: <reason>; <hint>`.
func (e *InvalidDiskError) Error() string {
	var b strings.Builder
	if e.Path != "" {
		fmt.Fprintf(&b, "disk %q: ", e.Path)
	} else {
		b.WriteString("disk: ")
	}
	kind := e.Err
	if kind == nil {
		kind = ErrNotDisk
	}
	b.WriteString(kind.Error())
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// InputError marks the error as the input's, so that a command exits 2.
func (e *InvalidDiskError) InputError() bool { return true }

// Unwrap returns the sentinel that classifies the error.
func (e *InvalidDiskError) Unwrap() error { return e.Err }

// Inspect validates the disk file at path and says what it is.
//
// It returns an *InvalidDiskError (matching one of the Err… sentinels) when
// the file is not a self-contained, intact qcow2 or raw disk, and a wrapped
// *fs.PathError when the file cannot be opened or read.
func Inspect(path string) (Info, error) {
	// Stat before opening: opening a FIFO would block until a writer appears.
	fi, err := os.Stat(path)
	if err != nil {
		return Info{}, fmt.Errorf("inspecting disk: %w", err)
	}
	if !fi.Mode().IsRegular() {
		what := "a " + fi.Mode().Type().String() + " file"
		if fi.IsDir() {
			what = "a directory"
		}
		return Info{}, &InvalidDiskError{
			Path:   path,
			Reason: "it is " + what,
			Hint:   "expected a regular file holding a qcow2 or raw disk image; try \"ls -l " + shellQuote(path) + "\"",
			Err:    ErrNotDisk,
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return Info{}, fmt.Errorf("inspecting disk: %w", err)
	}
	defer f.Close()
	// Take the size from the open file, not the earlier Stat, in case the
	// path was replaced in between.
	fi, err = f.Stat()
	if err != nil {
		return Info{}, fmt.Errorf("inspecting disk: %w", err)
	}
	return inspect(f, fi.Size(), path)
}

// InspectReaderAt validates the disk image of the given size readable from r
// and says what it is. Errors are as for Inspect, without a path.
func InspectReaderAt(r io.ReaderAt, size int64) (Info, error) {
	return inspect(r, size, "")
}

// sniffLen is how much of the file's start every check may look at; it covers
// the MBR boot signature (offset 510) and the tar magic (offset 257).
const sniffLen = 512

func inspect(r io.ReaderAt, size int64, path string) (Info, error) {
	if size < 0 {
		return Info{}, fmt.Errorf("inspecting disk: negative size %d", size)
	}
	in := &inspector{r: r, size: uint64(size), path: path}
	if size == 0 {
		return Info{}, in.invalid(ErrNotDisk, "the file is empty", in.notDiskHint())
	}
	head := make([]byte, min(size, sniffLen))
	if err := in.read(head, 0, "the first sector"); err != nil {
		return Info{}, err
	}
	// Every other check trusts the size, so prove that the reader really
	// holds that many bytes: a caller's size can be wrong, and a file can
	// shrink while it is inspected.
	var last [1]byte
	if err := in.read(last[:], uint64(size)-1, "the last byte"); err != nil {
		return Info{}, err
	}
	if len(head) >= 4 && string(head[:4]) == qcow2Magic {
		return in.qcow2(head)
	}
	return in.raw(head)
}

// inspector carries what every check needs to read the file and to build
// errors that name it.
type inspector struct {
	r    io.ReaderAt
	size uint64
	path string
}

// invalid builds an *InvalidDiskError for the inspected file.
func (in *inspector) invalid(kind error, reason, hint string) *InvalidDiskError {
	return &InvalidDiskError{Path: in.path, Reason: reason, Hint: hint, Err: kind}
}

// inFile reports whether the n bytes at off lie inside the file, without
// overflowing on offsets read from an untrusted header.
func (in *inspector) inFile(off, n uint64) bool {
	return off <= in.size && n <= in.size-off
}

// read fills p from off. The caller names the structure being read so that a
// short file produces a truncation error that says what is missing.
func (in *inspector) read(p []byte, off uint64, what string) error {
	if !in.inFile(off, uint64(len(p))) {
		return in.truncated(fmt.Sprintf("%s (%d bytes at offset %#x) extends past the end of the file (%d bytes)", what, len(p), off, in.size))
	}
	n, err := in.r.ReadAt(p, int64(off))
	if n == len(p) {
		// io.ReaderAt may report io.EOF together with a full read at the end.
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// The file is shorter than its stated size: it shrank while being
		// inspected, or the caller's size was wrong.
		return in.truncated(fmt.Sprintf("reading %s at offset %#x returned %d of %d bytes", what, off, n, len(p)))
	}
	if in.path != "" {
		return fmt.Errorf("reading %s of disk %q: %w", what, in.path, err)
	}
	return fmt.Errorf("reading %s of disk: %w", what, err)
}

// truncated builds the ErrTruncated error; truncation is nearly always an
// interrupted download or copy, so the hint says to fetch the file again.
func (in *inspector) truncated(reason string) *InvalidDiskError {
	return in.invalid(ErrTruncated, reason,
		"expected every table and cluster the image refers to inside the file; the file was probably cut short while downloading or copying: fetch it again and verify its checksum, or try "+in.cmd("qemu-img check", in.arg()))
}

// notDiskHint is the hint for a file that is no disk image at all.
func (in *inspector) notDiskHint() string {
	return `expected a qcow2 file (magic QFI\xfb) or a raw disk with an MBR/GPT partition table; try ` + in.cmd("qemu-img info", in.arg())
}

// arg is the file's name as a shell word for suggested commands.
func (in *inspector) arg() string {
	if in.path == "" {
		return "DISK"
	}
	return shellQuote(in.path)
}

// cmd formats a suggested command line, quoted so that it stands apart from
// the surrounding prose.
func (in *inspector) cmd(words ...string) string {
	return fmt.Sprintf("%q", strings.Join(words, " "))
}

// siblingArg suggests an output file next to the input, with the input's
// extension replaced by ext, for commands that convert the input.
func (in *inspector) siblingArg(suffix string) string {
	if in.path == "" {
		return "OUT" + suffix
	}
	base := in.path
	for _, ext := range []string{".gz", ".xz", ".zst", ".bz2", ".qcow2", ".qcow", ".img", ".raw", ".vmdk", ".vdi", ".vhdx", ".vhd", ".qed"} {
		if strings.HasSuffix(base, ext) && len(base) > len(ext) {
			base = strings.TrimSuffix(base, ext)
			break
		}
	}
	out := base + suffix
	if out == in.path {
		out = base + "-converted" + suffix
	}
	return shellQuote(out)
}

// shellQuote quotes s for a POSIX shell when it holds anything but the
// characters that are safe unquoted.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_./-+=:,@%", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

package disk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"
)

const (
	sectorSize = 512
	// isoMagicOffset is where ISO 9660 puts "CD001": byte 1 of the primary
	// volume descriptor in sector 16 of 2048 bytes.
	isoMagicOffset = 16*2048 + 1
	isoMagic       = "CD001"
)

// wrapper describes a file format that commonly arrives in place of a disk:
// a compressed stream or an archive the disk must be taken out of first.
type wrapper struct {
	magic  string
	offset int
	name   string
	// hint builds the command that unwraps the file.
	hint func(in *inspector) string
}

var wrappers = []wrapper{
	{"\x1f\x8b", 0, "a gzip-compressed file", func(in *inspector) string {
		return "decompress it first: " + in.cmd("gunzip -k", in.arg())
	}},
	{"\xfd7zXZ\x00", 0, "an xz-compressed file", func(in *inspector) string {
		return "decompress it first: " + in.cmd("xz -dk", in.arg())
	}},
	{"\x28\xb5\x2f\xfd", 0, "a zstd-compressed file", func(in *inspector) string {
		return "decompress it first: " + in.cmd("zstd -d", in.arg())
	}},
	{"BZh", 0, "a bzip2-compressed file", func(in *inspector) string {
		return "decompress it first: " + in.cmd("bunzip2 -k", in.arg())
	}},
	{"PK\x03\x04", 0, "a zip archive", func(in *inspector) string {
		return "extract the disk image from it first: " + in.cmd("unzip", in.arg())
	}},
	{"ustar", 257, "a tar archive", func(in *inspector) string {
		return "extract the disk image from it first: " + in.cmd("tar -xvf", in.arg())
	}},
}

// foreign describes another VM disk format that qemu-img can convert.
type foreign struct {
	magic  string
	offset int
	name   string
}

var foreigns = []foreign{
	{"KDMV", 0, "a VMware VMDK image"},
	{"# Disk DescriptorFile", 0, "a VMware VMDK descriptor"},
	{"vhdxfile", 0, "a Hyper-V VHDX image"},
	{"conectix", 0, "a dynamic Hyper-V VHD image"},
	{"\x7f\x10\xda\xbe", 64, "a VirtualBox VDI image"},
	{"QED\x00", 0, "a QED image"},
}

// raw checks a file that is not qcow2. A raw disk has no header of its own,
// so the only evidence that it is a disk at all is what a bootable disk starts
// with: a partition table (MBR, or GPT behind its protective MBR) or an ISO
// 9660 volume. Anything else is far more likely to be a mistake, such as an
// error page saved in place of the download, than a disk worth booting.
func (in *inspector) raw(head []byte) (Info, error) {
	for _, w := range wrappers {
		if hasMagic(head, w.offset, w.magic) {
			return Info{}, in.invalid(ErrNotDisk, "the file is "+w.name,
				"expected an uncompressed qcow2 or raw disk image; "+w.hint(in))
		}
	}
	for _, f := range foreigns {
		if hasMagic(head, f.offset, f.magic) {
			return Info{}, in.invalid(ErrNotDisk, "the file is "+f.name,
				"expected a qcow2 or raw disk image; convert it first: "+in.cmd("qemu-img convert -O qcow2", in.arg(), in.siblingArg(".qcow2")))
		}
	}
	if text, ok := looksLikeText(head); ok {
		return Info{}, in.invalid(ErrNotDisk, fmt.Sprintf("the file is text, starting %q", text),
			"expected a qcow2 or raw disk image, not a text or HTML file such as an error page saved in place of a download; check the download URL, or try "+in.cmd("file", in.arg()))
	}
	if in.size%sectorSize != 0 {
		return Info{}, in.invalid(ErrNotDisk,
			fmt.Sprintf("its size, %d bytes, is not a whole number of %d-byte sectors", in.size, sectorSize),
			"expected a raw disk to be whole sectors; if this is a download, it may be incomplete: fetch it again and verify its checksum, or try "+in.cmd("qemu-img info", in.arg()))
	}
	if len(head) == sectorSize && binary.LittleEndian.Uint16(head[510:]) == 0xaa55 {
		return in.rawInfo(), nil
	}
	if in.inFile(isoMagicOffset, uint64(len(isoMagic))) {
		var buf [len(isoMagic)]byte
		if err := in.read(buf[:], isoMagicOffset, "the ISO 9660 volume descriptor"); err != nil {
			return Info{}, err
		}
		if string(buf[:]) == isoMagic {
			return in.rawInfo(), nil
		}
	}
	return Info{}, in.invalid(ErrNotDisk,
		"it has no qcow2 header, no MBR/GPT boot signature (0x55 0xAA at offset 510) and no ISO 9660 volume",
		in.notDiskHint())
}

func (in *inspector) rawInfo() Info {
	return Info{Format: FormatRaw, Size: int64(in.size), VirtualSize: int64(in.size)}
}

func hasMagic(head []byte, offset int, magic string) bool {
	return len(head) >= offset+len(magic) && string(head[offset:offset+len(magic)]) == magic
}

// looksLikeText reports whether the start of the file is printable UTF-8 text
// and returns a short excerpt of it for the error message.
func looksLikeText(head []byte) (string, bool) {
	sample := head
	// A multi-byte rune may be cut at the end of the sample.
	for i := 0; i < utf8.UTFMax && len(sample) > 0 && !utf8.Valid(sample); i++ {
		sample = sample[:len(sample)-1]
	}
	if len(sample) == 0 || !utf8.Valid(sample) {
		return "", false
	}
	for _, r := range string(sample) {
		if r < 0x20 && !strings.ContainsRune("\t\n\r\f", r) || r == 0x7f {
			return "", false
		}
	}
	excerpt := string(bytes.TrimSpace(sample))
	if line, _, ok := strings.Cut(excerpt, "\n"); ok {
		excerpt = line
	}
	const maxExcerpt = 40
	if len(excerpt) > maxExcerpt {
		cut := maxExcerpt
		for cut > 0 && !utf8.RuneStart(excerpt[cut]) {
			cut--
		}
		excerpt = excerpt[:cut] + "..."
	}
	return strings.TrimSpace(excerpt), true
}

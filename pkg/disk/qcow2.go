package disk

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"strings"
)

// The qcow2 layout, from QEMU's docs/interop/qcow2.txt.
const (
	qcow2Magic = "QFI\xfb"

	qcow2V2HeaderLen = 72
	qcow2V3HeaderLen = 104

	minClusterBits = 9  // 512-byte clusters, the format's minimum
	maxClusterBits = 21 // 2 MiB clusters, QEMU's implementation limit
	// Extended L2 entries split a cluster into 32 subclusters, which the
	// format only allows from 16 KiB clusters up.
	minExtendedL2ClusterBits = 14

	// QEMU refuses images whose tables exceed these limits (QCOW_MAX_*), so
	// such an image could not boot; checking them also bounds how much this
	// package reads and allocates.
	maxL1Bytes           = 32 << 20
	maxRefcountTableSize = 8 << 20
	maxSnapshots         = 65536
	maxBackingFileSize   = 1023

	// Incompatible feature bits; an image with any other bit set must not
	// be opened.
	incompatDirty       = 1 << 0
	incompatCorrupt     = 1 << 1
	incompatDataFile    = 1 << 2
	incompatCompression = 1 << 3
	incompatExtendedL2  = 1 << 4
	incompatKnown       = incompatDirty | incompatCorrupt | incompatDataFile | incompatCompression | incompatExtendedL2

	compressionZlib = 0
	compressionZstd = 1

	// Header extension types.
	extEnd           = 0x00000000
	extBackingFormat = 0xe2792aca
	extFeatureNames  = 0x6803f857
	extDataFile      = 0x44415441

	featureNameEntryLen = 48
	snapshotHeaderLen   = 40

	// Table entry layouts.
	l1ReservedMask       = 0x7f000000000001ff
	tableOffsetMask      = 0x00fffffffffffe00
	refcountReservedMask = 0x1ff
	l2Compressed         = 1 << 62
	l2StdReservedMask    = 0x3f000000000001fe
	l2StdZero            = 1 << 0

	// tableChunk bounds the buffer used to stream L1 and refcount tables,
	// which may be megabytes long.
	tableChunk = 1 << 20
)

// qcow2Header holds the header fields this package checks. Version 2 images
// have no fields past snapshotsOffset; they read as zero.
type qcow2Header struct {
	version               uint32
	backingFileOffset     uint64
	backingFileSize       uint32
	clusterBits           uint32
	size                  uint64
	cryptMethod           uint32
	l1Size                uint32
	l1TableOffset         uint64
	refcountTableOffset   uint64
	refcountTableClusters uint32
	nbSnapshots           uint32
	snapshotsOffset       uint64
	incompatible          uint64
	refcountOrder         uint32
	headerLength          uint32
	compressionType       uint8
}

// qcow2Image is the state of one qcow2 inspection.
type qcow2Image struct {
	*inspector
	h qcow2Header

	clusterSize uint64
	// l2EntryLen is 8, or 16 with extended L2 entries.
	l2EntryLen uint64
	l2Bits     uint // log2 of the entries per L2 table

	backingFormat string
	dataFile      string
	featureNames  map[uint8]string // incompatible feature bit -> name
}

// qcow2 checks a file that starts with the qcow2 magic. The checks run from
// the cheapest and most actionable (header fields, backing file, features)
// to the table walk that proves every referenced cluster is in the file.
func (in *inspector) qcow2(head []byte) (Info, error) {
	q := &qcow2Image{inspector: in}
	if err := q.parseHeader(head); err != nil {
		return Info{}, err
	}
	checks := []func() error{
		q.readExtensions,
		q.checkBackingFile,
		q.checkEncryption,
		q.checkFeatures,
		q.checkL1Table,
		q.checkRefcountTable,
		q.checkSnapshots,
		q.walkRefcountTable,
		q.walkL1Table,
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return Info{}, err
		}
	}
	return Info{Format: FormatQCOW2, Size: int64(in.size), VirtualSize: int64(q.h.size)}, nil
}

func (q *qcow2Image) corrupt(format string, args ...any) *InvalidDiskError {
	return q.invalid(ErrCorrupt, fmt.Sprintf(format, args...),
		"expected a consistent qcow2 image; try "+q.cmd("qemu-img check", q.arg())+", and rebuild or fetch the image again if it reports errors")
}

func (q *qcow2Image) unsupported(reason, hint string) *InvalidDiskError {
	return q.invalid(ErrUnsupported, reason, hint)
}

func (q *qcow2Image) truncatedf(format string, args ...any) *InvalidDiskError {
	return q.truncated(fmt.Sprintf(format, args...))
}

// convertHint suggests rewriting the image as a plain qcow2, which drops
// whatever feature made it unusable.
func (q *qcow2Image) convertHint(expected string) string {
	return "expected " + expected + "; try " + q.cmd("qemu-img convert -O qcow2", q.arg(), q.siblingArg("-plain.qcow2"))
}

func (q *qcow2Image) parseHeader(head []byte) error {
	if len(head) < qcow2V2HeaderLen {
		return q.truncatedf("the qcow2 header needs %d bytes but the file has %d", qcow2V2HeaderLen, len(head))
	}
	be := binary.BigEndian
	h := &q.h
	h.version = be.Uint32(head[4:])
	h.backingFileOffset = be.Uint64(head[8:])
	h.backingFileSize = be.Uint32(head[16:])
	h.clusterBits = be.Uint32(head[20:])
	h.size = be.Uint64(head[24:])
	h.cryptMethod = be.Uint32(head[32:])
	h.l1Size = be.Uint32(head[36:])
	h.l1TableOffset = be.Uint64(head[40:])
	h.refcountTableOffset = be.Uint64(head[48:])
	h.refcountTableClusters = be.Uint32(head[56:])
	h.nbSnapshots = be.Uint32(head[60:])
	h.snapshotsOffset = be.Uint64(head[64:])

	switch {
	case h.version == 1:
		return q.unsupported("it is a qcow version 1 image, which QEMU no longer boots", q.convertHint("qcow2 version 2 or 3"))
	case h.version > 3:
		return q.unsupported(fmt.Sprintf("qcow2 version %d is newer than this tool understands", h.version), q.convertHint("qcow2 version 2 or 3"))
	case h.version < 2:
		return q.corrupt("the header says qcow2 version %d; expected 2 or 3", h.version)
	}
	if h.clusterBits < minClusterBits || h.clusterBits > maxClusterBits {
		return q.corrupt("cluster_bits is %d; expected %d to %d (512 bytes to 2 MiB clusters)", h.clusterBits, minClusterBits, maxClusterBits)
	}
	q.clusterSize = 1 << h.clusterBits

	h.headerLength = qcow2V2HeaderLen
	h.refcountOrder = 4
	if h.version >= 3 {
		if len(head) < qcow2V3HeaderLen {
			return q.truncatedf("the qcow2 version 3 header needs %d bytes but the file has %d", qcow2V3HeaderLen, len(head))
		}
		h.incompatible = be.Uint64(head[72:])
		h.refcountOrder = be.Uint32(head[96:])
		h.headerLength = be.Uint32(head[100:])
		if h.headerLength < qcow2V3HeaderLen || uint64(h.headerLength) > q.clusterSize {
			return q.corrupt("header_length is %d; expected %d to %d (the cluster size)", h.headerLength, qcow2V3HeaderLen, q.clusterSize)
		}
		if h.headerLength > 104 {
			var ct [1]byte
			if err := q.read(ct[:], 104, "the compression type field"); err != nil {
				return err
			}
			h.compressionType = ct[0]
		}
		if h.refcountOrder > 6 {
			return q.corrupt("refcount_order is %d; expected 0 to 6", h.refcountOrder)
		}
	}

	if h.size == 0 {
		return q.corrupt("the virtual size is 0 bytes, so there is nothing to boot")
	}
	if h.size > math.MaxInt64 {
		return q.corrupt("the virtual size %d does not fit in 63 bits", h.size)
	}

	q.l2EntryLen = 8
	if h.incompatible&incompatExtendedL2 != 0 {
		q.l2EntryLen = 16
		if h.clusterBits < minExtendedL2ClusterBits {
			return q.corrupt("extended L2 entries need clusters of at least 16 KiB, but cluster_bits is %d", h.clusterBits)
		}
	}
	q.l2Bits = uint(h.clusterBits) - uint(bits.TrailingZeros64(q.l2EntryLen))
	return nil
}

// readExtensions reads the header extensions between the header and the end
// of the first cluster, for the names of the backing format, the external
// data file and the features that the error messages mention.
func (q *qcow2Image) readExtensions() error {
	start := uint64(q.h.headerLength)
	end := q.clusterSize
	if q.h.backingFileOffset != 0 && q.h.backingFileOffset > start && q.h.backingFileOffset < end {
		end = q.h.backingFileOffset
	}
	clipped := false
	if end > q.size {
		end, clipped = q.size, true
	}
	if end <= start {
		if clipped {
			return q.truncatedf("the file ends at %d bytes, inside the qcow2 header", q.size)
		}
		return nil
	}
	buf := make([]byte, end-start)
	if err := q.read(buf, start, "the qcow2 header extensions"); err != nil {
		return err
	}
	be := binary.BigEndian
	for pos := uint64(0); ; {
		if pos+8 > uint64(len(buf)) {
			if clipped {
				return q.truncatedf("the qcow2 header extensions run past the end of the file (%d bytes)", q.size)
			}
			return nil
		}
		typ := be.Uint32(buf[pos:])
		n := uint64(be.Uint32(buf[pos+4:]))
		if typ == extEnd {
			return nil
		}
		data := pos + 8
		if n > uint64(len(buf))-data {
			if clipped {
				return q.truncatedf("the qcow2 header extension %#x runs past the end of the file (%d bytes)", typ, q.size)
			}
			return q.corrupt("the qcow2 header extension %#x at offset %#x is %d bytes long and overflows the first cluster", typ, start+pos, n)
		}
		body := buf[data : data+n]
		switch typ {
		case extBackingFormat:
			q.backingFormat = string(body)
		case extDataFile:
			q.dataFile = string(body)
		case extFeatureNames:
			for e := 0; e+featureNameEntryLen <= len(body); e += featureNameEntryLen {
				entry := body[e : e+featureNameEntryLen]
				if entry[0] != 0 { // only incompatible features matter here
					continue
				}
				name, _, _ := strings.Cut(string(entry[2:]), "\x00")
				if q.featureNames == nil {
					q.featureNames = make(map[uint8]string)
				}
				q.featureNames[entry[1]] = name
			}
		}
		pos = data + (n+7)&^7
	}
}

func (q *qcow2Image) checkBackingFile() error {
	h := q.h
	if h.backingFileOffset == 0 {
		return nil
	}
	reason := "it is an overlay that stores only changes on top of a backing file"
	if h.backingFileSize > 0 && h.backingFileSize <= maxBackingFileSize && q.inFile(h.backingFileOffset, uint64(h.backingFileSize)) {
		name := make([]byte, h.backingFileSize)
		if err := q.read(name, h.backingFileOffset, "the backing file name"); err != nil {
			return err
		}
		reason = fmt.Sprintf("it is an overlay that stores only changes on top of the backing file %q", name)
		if q.backingFormat != "" {
			reason += fmt.Sprintf(" (format %s)", q.backingFormat)
		}
	}
	return q.invalid(ErrBackingFile, reason,
		"expected a self-contained image, because the backing file is not packaged into the containerdisk; with the backing file in place, flatten it: "+
			q.cmd("qemu-img convert -O qcow2", q.arg(), q.siblingArg("-flat.qcow2")))
}

func (q *qcow2Image) checkEncryption() error {
	var how string
	switch q.h.cryptMethod {
	case 0:
		return nil
	case 1:
		how = "AES"
	case 2:
		how = "LUKS"
	default:
		how = fmt.Sprintf("unknown method %d", q.h.cryptMethod)
	}
	return q.unsupported(fmt.Sprintf("it is encrypted (%s)", how),
		"expected an unencrypted image, because KubeVirt has no key to open a containerdisk; decrypt it with the key in KEYFILE: "+
			q.cmd("qemu-img convert --object secret,id=sec0,file=KEYFILE --image-opts driver=qcow2,file.filename="+q.arg()+",encrypt.key-secret=sec0 -O qcow2", q.siblingArg("-plain.qcow2")))
}

func (q *qcow2Image) checkFeatures() error {
	inc := q.h.incompatible
	if unknown := inc &^ incompatKnown; unknown != 0 {
		var names []string
		for b := range 64 {
			if unknown&(1<<b) == 0 {
				continue
			}
			if name := q.featureNames[uint8(b)]; name != "" {
				names = append(names, fmt.Sprintf("bit %d (%q)", b, name))
			} else {
				names = append(names, fmt.Sprintf("bit %d", b))
			}
		}
		return q.unsupported("it sets unknown incompatible feature "+strings.Join(names, ", "),
			"expected only the incompatible features qemu 7 and later define (dirty, corrupt, external data file, compression type, extended L2 entries); try "+q.cmd("qemu-img info", q.arg())+" with the qemu-img that wrote it")
	}
	if inc&incompatCorrupt != 0 {
		return q.invalid(ErrCorrupt, "QEMU marked it corrupt (incompatible feature bit 1)",
			"expected an image QEMU considers consistent; try "+q.cmd("qemu-img check -r all", q.arg())+" to repair it, or rebuild it from its source")
	}
	if inc&incompatDirty != 0 {
		return q.invalid(ErrCorrupt, "it was not closed cleanly (dirty bit set), so its reference counts may be stale",
			"expected a cleanly closed image; run "+q.cmd("qemu-img check -r all", q.arg())+" to repair it")
	}
	if inc&incompatDataFile != 0 {
		reason := "its guest data lives in an external data file"
		if q.dataFile != "" {
			reason = fmt.Sprintf("its guest data lives in the external data file %q", q.dataFile)
		}
		return q.unsupported(reason, q.convertHint("a self-contained image, because the data file is not packaged into the containerdisk"))
	}
	ct := q.h.compressionType
	switch {
	case inc&incompatCompression != 0 && ct == compressionZlib:
		return q.corrupt("the compression type feature bit is set but compression_type is 0 (zlib)")
	case inc&incompatCompression == 0 && ct != compressionZlib:
		return q.corrupt("compression_type is %d but the compression type feature bit is not set", ct)
	case ct != compressionZlib && ct != compressionZstd:
		return q.unsupported(fmt.Sprintf("compression_type %d is unknown", ct), q.convertHint("zlib or zstd compression"))
	}
	return nil
}

// l1EntriesNeeded is how many L1 entries it takes to map the virtual size.
func (q *qcow2Image) l1EntriesNeeded() uint64 {
	shift := uint(q.h.clusterBits) + q.l2Bits
	return (q.h.size + (1 << shift) - 1) >> shift
}

// checkTable checks that a table of n bytes at off is cluster aligned and
// inside the file.
func (q *qcow2Image) checkTable(what string, off, n uint64) error {
	if off%q.clusterSize != 0 {
		return q.corrupt("the %s offset %#x is not aligned to the %d-byte cluster size", what, off, q.clusterSize)
	}
	if off < q.clusterSize {
		return q.corrupt("the %s offset %#x points into the header cluster", what, off)
	}
	if !q.inFile(off, n) {
		return q.truncatedf("the %s (%d bytes at offset %#x) extends past the end of the file (%d bytes)", what, n, off, q.size)
	}
	return nil
}

func (q *qcow2Image) checkL1Table() error {
	h := q.h
	need := q.l1EntriesNeeded()
	if uint64(h.l1Size) < need {
		return q.corrupt("the L1 table has %d entries but a virtual size of %d bytes needs %d", h.l1Size, h.size, need)
	}
	return q.checkLimitedTable("L1 table", h.l1TableOffset, uint64(h.l1Size)*8, maxL1Bytes)
}

func (q *qcow2Image) checkRefcountTable() error {
	h := q.h
	if h.refcountTableClusters == 0 {
		return q.corrupt("the refcount table is 0 clusters long")
	}
	return q.checkLimitedTable("refcount table", h.refcountTableOffset, uint64(h.refcountTableClusters)<<h.clusterBits, maxRefcountTableSize)
}

// checkLimitedTable checks a table of n bytes at off: no larger than QEMU
// opens (limit), and inside the file.
func (q *qcow2Image) checkLimitedTable(what string, off, n, limit uint64) error {
	if n > limit {
		return q.unsupported(fmt.Sprintf("its %s is %d bytes, more than QEMU's limit of %d", what, n, limit), q.convertHint("an image QEMU can open"))
	}
	return q.checkTable(what, off, n)
}

// checkSnapshots checks that the internal snapshot table, and the L1 table of
// each snapshot, lie inside the file. Snapshots are allowed: QEMU boots the
// active state and ignores them.
func (q *qcow2Image) checkSnapshots() error {
	h := q.h
	if h.nbSnapshots == 0 {
		return nil
	}
	if h.nbSnapshots > maxSnapshots {
		return q.corrupt("it claims %d internal snapshots; QEMU allows at most %d", h.nbSnapshots, maxSnapshots)
	}
	if err := q.checkTable("snapshot table", h.snapshotsOffset, snapshotHeaderLen); err != nil {
		return err
	}
	be := binary.BigEndian
	off := h.snapshotsOffset
	var hdr [snapshotHeaderLen]byte
	for i := range h.nbSnapshots {
		what := fmt.Sprintf("snapshot table entry %d", i)
		if err := q.read(hdr[:], off, what); err != nil {
			return err
		}
		l1Off := be.Uint64(hdr[0:])
		l1Size := uint64(be.Uint32(hdr[8:]))
		idLen := uint64(be.Uint16(hdr[12:]))
		nameLen := uint64(be.Uint16(hdr[14:]))
		extraLen := uint64(be.Uint32(hdr[36:]))
		entryLen := snapshotHeaderLen + extraLen + idLen + nameLen
		// QEMU does not write the padding after the last entry, so only the
		// entry itself must be in the file.
		if !q.inFile(off, entryLen) {
			return q.truncatedf("%s (%d bytes at offset %#x) extends past the end of the file (%d bytes)", what, entryLen, off, q.size)
		}
		if l1Size*8 > maxL1Bytes {
			return q.unsupported(fmt.Sprintf("the L1 table of snapshot %d is %d bytes, more than QEMU's limit of %d", i, l1Size*8, maxL1Bytes), q.convertHint("an image QEMU can open"))
		}
		if err := q.checkTable(fmt.Sprintf("L1 table of snapshot %d", i), l1Off, l1Size*8); err != nil {
			return err
		}
		off += (entryLen + 7) &^ 7
	}
	return nil
}

// forEachEntry streams the table of n bytes at off in bounded chunks and
// calls fn with each 8-byte big-endian entry and its index.
func (q *qcow2Image) forEachEntry(what string, off, n uint64, fn func(i, e uint64) error) error {
	buf := make([]byte, min(n, tableChunk))
	for done := uint64(0); done < n; {
		chunk := buf[:min(n-done, uint64(len(buf)))]
		if err := q.read(chunk, off+done, what); err != nil {
			return err
		}
		for j := 0; j+8 <= len(chunk); j += 8 {
			if err := fn((done+uint64(j))/8, binary.BigEndian.Uint64(chunk[j:])); err != nil {
				return err
			}
		}
		done += uint64(len(chunk))
	}
	return nil
}

// walkRefcountTable checks that every refcount block lies inside the file: a
// missing block reads as zeros, and QEMU would then hand out clusters that
// are still in use the first time it writes to the image.
func (q *qcow2Image) walkRefcountTable() error {
	h := q.h
	n := uint64(h.refcountTableClusters) << h.clusterBits
	return q.forEachEntry("refcount table", h.refcountTableOffset, n, func(i, e uint64) error {
		if e == 0 {
			return nil
		}
		if e&refcountReservedMask != 0 || e%q.clusterSize != 0 {
			return q.corrupt("refcount table entry %d (%#x) is not a cluster-aligned offset", i, e)
		}
		if !q.inFile(e, q.clusterSize) {
			return q.truncatedf("refcount block %d at offset %#x extends past the end of the file (%d bytes)", i, e, q.size)
		}
		return nil
	})
}

// walkL1Table checks every L2 table of the active L1 table, reading each
// distinct table once so that a crafted L1 table cannot make the walk read
// more than the file holds.
func (q *qcow2Image) walkL1Table() error {
	h := q.h
	var l2 []byte
	seen := make(map[uint64]bool)
	return q.forEachEntry("L1 table", h.l1TableOffset, uint64(h.l1Size)*8, func(i, e uint64) error {
		if e&l1ReservedMask != 0 {
			return q.corrupt("L1 entry %d (%#x) has reserved bits set", i, e)
		}
		off := e & tableOffsetMask
		if off == 0 {
			return nil
		}
		if off%q.clusterSize != 0 || off < q.clusterSize {
			return q.corrupt("L1 entry %d points to an L2 table at %#x, which is not a cluster-aligned offset past the header", i, off)
		}
		if !q.inFile(off, q.clusterSize) {
			return q.truncatedf("L1 entry %d points to an L2 table at offset %#x, past the end of the file (%d bytes)", i, off, q.size)
		}
		if seen[off] {
			return nil
		}
		seen[off] = true
		if l2 == nil {
			// Allocated only now that a cluster is known to fit in the file.
			l2 = make([]byte, q.clusterSize)
		}
		if err := q.read(l2, off, fmt.Sprintf("the L2 table at %#x", off)); err != nil {
			return err
		}
		return q.checkL2Table(i, off, l2)
	})
}

// checkL2Table checks that the data each entry of one L2 table refers to is
// inside the file. l1Index says which part of the virtual disk it maps.
func (q *qcow2Image) checkL2Table(l1Index, tableOff uint64, l2 []byte) error {
	be := binary.BigEndian
	clusterBits := uint(q.h.clusterBits)
	extended := q.l2EntryLen == 16
	// Compressed descriptors pack the host offset into the low x bits and
	// the count of extra 512-byte sectors into bits x to 61.
	x := 62 - (clusterBits - 8)
	sizeRounded := (q.size + sectorSize - 1) &^ (sectorSize - 1)
	for j := uint64(0); j+q.l2EntryLen <= uint64(len(l2)); j += q.l2EntryLen {
		e := be.Uint64(l2[j:])
		var bitmap uint64
		if extended {
			bitmap = be.Uint64(l2[j+8:])
		}
		idx := j / q.l2EntryLen
		guest := l1Index<<(clusterBits+q.l2Bits) | idx<<clusterBits
		where := func() string {
			return fmt.Sprintf("entry %d of the L2 table at %#x (guest offset %#x)", idx, tableOff, guest)
		}

		if e&l2Compressed != 0 {
			host := e & (1<<x - 1)
			sectors := (e>>x)&(1<<(62-x)-1) + 1
			if host < q.clusterSize {
				return q.corrupt("%s points to compressed data at %#x, inside the header cluster", where(), host)
			}
			if host >= q.size {
				return q.truncatedf("%s points to compressed data at offset %#x, past the end of the file (%d bytes)", where(), host, q.size)
			}
			// The data ends somewhere in its last sector, and QEMU ends the
			// file there, so only the sector-rounded ends are comparable.
			end := host&^(sectorSize-1) + sectors*sectorSize
			if end > sizeRounded {
				return q.truncatedf("%s points to compressed data at offset %#x spanning %d sectors, past the end of the file (%d bytes)", where(), host, sectors, q.size)
			}
			continue
		}

		if e&l2StdReservedMask != 0 {
			return q.corrupt("%s (%#x) has reserved bits set", where(), e)
		}
		host := e & tableOffsetMask
		// need is how many bytes of the host cluster hold guest data and
		// so must be in the file.
		var need uint64
		if extended {
			alloc, zero := uint32(bitmap), uint32(bitmap>>32)
			if host == 0 {
				if alloc != 0 {
					return q.corrupt("%s marks subclusters allocated but has no host offset", where())
				}
				continue
			}
			if alloc&zero != 0 {
				return q.corrupt("%s marks subclusters both allocated and zero", where())
			}
			// QEMU writes only the allocated subclusters, so a file may
			// end inside its last cluster.
			need = uint64(32-bits.LeadingZeros32(alloc)) << (clusterBits - 5)
		} else {
			if host == 0 {
				continue
			}
			// A zero cluster with a preallocated host offset reads as
			// zeros without touching the host cluster.
			if e&l2StdZero == 0 {
				need = q.clusterSize
			}
		}
		if host%q.clusterSize != 0 || host < q.clusterSize {
			return q.corrupt("%s points to a data cluster at %#x, which is not a cluster-aligned offset past the header", where(), host)
		}
		if need > 0 && !q.inFile(host, need) {
			return q.truncatedf("%s points to a data cluster whose %d bytes of data span offsets %#x to %#x, but the file ends at %#x (%d bytes)", where(), need, host, host+need, q.size, q.size)
		}
	}
	return nil
}

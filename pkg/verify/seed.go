package verify

import (
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"strings"
)

// SeedLabel is the volume label cloud-init's NoCloud data source looks for.
const SeedLabel = "cidata"

// ISO 9660 layout of a seed: the volume descriptors, the two path tables and
// the root directory each take one sector, the files follow.
const (
	isoSector      = 2048
	isoPVDSector   = 16
	isoTermSector  = 17
	isoLPathSector = 18
	isoMPathSector = 19
	isoRootSector  = 20
	isoDataSector  = 21
	// isoPadSectors of zeros end the volume, as mkisofs pads its images:
	// probes that read near the end of a device (busybox's findfs among
	// them) fail on an image of a few sectors.
	isoPadSectors = 150
)

// The Rock Ridge extension reference, as mkisofs writes it; readers match
// on the identifier alone.
const (
	rripID         = "RRIP_1991A"
	rripDescriptor = "THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS"
	rripSource     = "PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE."
)

// WriteNoCloudSeed writes a NoCloud seed to path: an ISO 9660 image labelled
// cidata holding the files user-data and meta-data, as cloud-localds and
// KubeVirt's cloudInitNoCloud make it. It needs no external tool.
//
// The file names are carried by Rock Ridge records, which the Linux kernel
// reads by default; the plain ISO 9660 names (USER-DATA.;1) read back as
// "user-data" under Linux's default name mapping too.
func WriteNoCloudSeed(path string, userData, metaData []byte) error {
	img, err := noCloudISO(map[string][]byte{"user-data": userData, "meta-data": metaData})
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, img, 0o644); err != nil {
		return fmt.Errorf("writing NoCloud seed: %w", err)
	}
	return nil
}

type isoFile struct {
	name   string
	data   []byte
	sector uint32
}

// noCloudISO returns the image of a single-directory ISO 9660 volume labelled
// SeedLabel with the given files. Seeds are a few KiB, so the image is built
// in memory.
func noCloudISO(files map[string][]byte) ([]byte, error) {
	list := make([]isoFile, 0, len(files))
	for name, data := range files {
		if int64(len(data)) > 1<<30 {
			return nil, fmt.Errorf("seed file %s is %d bytes: expected at most 1 GiB", name, len(data))
		}
		list = append(list, isoFile{name: name, data: data})
	}
	// Directory records are sorted by their ISO 9660 identifier.
	sort.Slice(list, func(i, j int) bool { return isoName(list[i].name) < isoName(list[j].name) })
	next := uint32(isoDataSector)
	for i := range list {
		list[i].sector = next
		next += isoSectors(len(list[i].data))
	}
	total := next + isoPadSectors
	img := make([]byte, int(total)*isoSector)

	root := isoDirRecord(isoRootSector, isoSector, true, []byte{0}, append(append(suspSP(), rripPX(0o40555, 2)...), suspER()...))
	parent := isoDirRecord(isoRootSector, isoSector, true, []byte{1}, rripPX(0o40555, 2))
	dir := append(append([]byte{}, root...), parent...)
	for _, f := range list {
		su := append(rripPX(0o100444, 1), rripNM(f.name)...)
		dir = append(dir, isoDirRecord(f.sector, uint32(len(f.data)), false, []byte(isoName(f.name)), su)...)
		copy(img[int(f.sector)*isoSector:], f.data)
	}
	if len(dir) > isoSector {
		return nil, fmt.Errorf("seed directory is %d bytes: expected at most one sector", len(dir))
	}
	copy(img[isoRootSector*isoSector:], dir)

	// Path tables: one entry, the root directory, which is its own parent.
	pt := make([]byte, 10)
	pt[0] = 1
	binary.LittleEndian.PutUint32(pt[2:], isoRootSector)
	binary.LittleEndian.PutUint16(pt[6:], 1)
	copy(img[isoLPathSector*isoSector:], pt)
	binary.BigEndian.PutUint32(pt[2:], isoRootSector)
	binary.BigEndian.PutUint16(pt[6:], 1)
	copy(img[isoMPathSector*isoSector:], pt)

	pvd := img[isoPVDSector*isoSector : (isoPVDSector+1)*isoSector]
	pvd[0] = 1
	copy(pvd[1:], "CD001")
	pvd[6] = 1
	isoPad(pvd[8:40], "LINUX")
	isoPad(pvd[40:72], SeedLabel)
	isoBoth32(pvd[80:], total)
	isoBoth16(pvd[120:], 1)
	isoBoth16(pvd[124:], 1)
	isoBoth16(pvd[128:], isoSector)
	isoBoth32(pvd[132:], uint32(len(pt)))
	binary.LittleEndian.PutUint32(pvd[140:], isoLPathSector)
	binary.BigEndian.PutUint32(pvd[148:], isoMPathSector)
	copy(pvd[156:190], isoDirRecord(isoRootSector, isoSector, true, []byte{0}, nil))
	for _, field := range [][2]int{{190, 318}, {318, 446}, {446, 574}, {574, 702}, {702, 739}, {739, 776}, {776, 813}} {
		isoPad(pvd[field[0]:field[1]], "")
	}
	isoPad(pvd[574:702], "KUBECTL-CONTAINERDISK")
	// Creation, modification, expiration and effective dates: a fixed
	// date keeps the image reproducible; "unset" is sixteen '0' digits.
	copy(pvd[813:], "1970010100000000\x00")
	copy(pvd[830:], "1970010100000000\x00")
	copy(pvd[847:], "0000000000000000\x00")
	copy(pvd[864:], "0000000000000000\x00")
	pvd[881] = 1

	term := img[isoTermSector*isoSector:]
	term[0] = 255
	copy(term[1:], "CD001")
	term[6] = 1
	return img, nil
}

// isoName is the ISO 9660 identifier of a file: upper case with a version.
// It keeps '-', which strict level 1 forbids but every reader accepts.
func isoName(name string) string {
	n := strings.ToUpper(name)
	if !strings.Contains(n, ".") {
		n += "."
	}
	return n + ";1"
}

func isoSectors(n int) uint32 { return uint32((n + isoSector - 1) / isoSector) }

// isoDirRecord is an ISO 9660 directory record with a system use area.
func isoDirRecord(extent, size uint32, dir bool, id, systemUse []byte) []byte {
	n := 33 + len(id)
	if n%2 == 1 {
		n++
	}
	rec := make([]byte, n, n+len(systemUse)+1)
	isoBoth32(rec[2:], extent)
	isoBoth32(rec[10:], size)
	rec[18] = 70 // 1970-01-01 00:00:00 UTC: reproducible
	rec[19] = 1
	rec[20] = 1
	if dir {
		rec[25] = 2
	}
	isoBoth16(rec[28:], 1)
	rec[32] = byte(len(id))
	copy(rec[33:], id)
	rec = append(rec, systemUse...)
	if len(rec)%2 == 1 {
		rec = append(rec, 0)
	}
	rec[0] = byte(len(rec))
	return rec
}

// suspSP marks the start of System Use Sharing Protocol records.
func suspSP() []byte { return []byte{'S', 'P', 7, 1, 0xBE, 0xEF, 0} }

// suspER names the Rock Ridge extension in the root's "." record.
func suspER() []byte {
	e := []byte{'E', 'R', 0, 1, byte(len(rripID)), byte(len(rripDescriptor)), byte(len(rripSource)), 1}
	e = append(e, rripID+rripDescriptor+rripSource...)
	e[2] = byte(len(e))
	return e
}

// rripPX gives POSIX mode and link count, owned by root.
func rripPX(mode, links uint32) []byte {
	e := make([]byte, 36)
	copy(e, "PX")
	e[2], e[3] = 36, 1
	isoBoth32(e[4:], mode)
	isoBoth32(e[12:], links)
	return e
}

// rripNM gives the file's POSIX name.
func rripNM(name string) []byte {
	return append([]byte{'N', 'M', byte(5 + len(name)), 1, 0}, name...)
}

func isoBoth16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

func isoBoth32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

// isoPad fills a text field with s and trailing spaces.
func isoPad(dst []byte, s string) {
	n := copy(dst, s)
	for i := n; i < len(dst); i++ {
		dst[i] = ' '
	}
}

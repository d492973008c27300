package disk_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/containerdisk/kubectl-containerdisk/pkg/disk"
)

// rawSize is deliberately not a multiple of the 64 KiB cluster size, so the
// last guest cluster of every qcow2 fixture is only partly guest-visible.
const rawSize = 4<<20 + 1536

const cluster = 64 << 10

// qemuImg runs the real qemu-img in dir and returns its stdout.
func qemuImg(tb testing.TB, dir string, args ...string) []byte {
	tb.Helper()
	bin, err := exec.LookPath("qemu-img")
	if err != nil {
		tb.Fatalf("these tests build their fixtures with qemu-img, which is missing: %v; install it with \"apt-get install -y qemu-utils\"", err)
	}
	for attempt := 1; ; attempt++ {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		// Creating a LUKS image, qemu-img times its key derivation with
		// the thread's CPU clock, and gives up when a run is too short to
		// register on it: a measurement, not a failure of the image.
		if err != nil && attempt < 5 && strings.Contains(stderr.String(), "Unable to get accurate CPU usage") {
			continue
		}
		if err != nil {
			tb.Fatalf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
		}
		return out
	}
}

// rawDisk returns a raw disk image with an MBR boot signature and a mix of
// incompressible and compressible blocks, so that "qemu-img convert -c"
// writes both compressed and uncompressed clusters.
func rawDisk() []byte {
	b := make([]byte, rawSize)
	b[510], b[511] = 0x55, 0xaa
	rng := rand.New(rand.NewPCG(1, 2))
	for _, off := range []int{1 << 20, 0x250000} {
		for i := off; i < off+cluster; i += 8 {
			binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
		}
	}
	copy(b[0x180000:], bytes.Repeat([]byte("compressible guest data "), 3000))
	for i := range 256 {
		b[rawSize-512+i] = byte(i)
	}
	return b
}

func writeFile(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// derive writes dst as a copy of src changed by edit, for fixtures that no
// tool produces on purpose: truncated and corrupted images.
func derive(tb testing.TB, dir, src, dst string, edit func(testing.TB, []byte) []byte) {
	tb.Helper()
	writeFile(tb, filepath.Join(dir, dst), edit(tb, readFile(tb, filepath.Join(dir, src))))
}

func cut(n int) func(testing.TB, []byte) []byte {
	return func(_ testing.TB, b []byte) []byte { return b[:n] }
}

func cutBy(n int) func(testing.TB, []byte) []byte {
	return func(_ testing.TB, b []byte) []byte { return b[:len(b)-n] }
}

func put32(off int, v uint32) func(testing.TB, []byte) []byte {
	return func(_ testing.TB, b []byte) []byte { binary.BigEndian.PutUint32(b[off:], v); return b }
}

func put64(off int, v uint64) func(testing.TB, []byte) []byte {
	return func(_ testing.TB, b []byte) []byte { binary.BigEndian.PutUint64(b[off:], v); return b }
}

// pointPastEnd stores at off a cluster-aligned offset beyond the end of the
// image, as a table pointer in a truncated image would be.
func pointPastEnd(off int) func(testing.TB, []byte) []byte {
	return func(_ testing.TB, b []byte) []byte {
		binary.BigEndian.PutUint64(b[off:], uint64(len(b)+cluster)&^(cluster-1))
		return b
	}
}

// firstL1Entry locates the active L1 table through the image's own header.
func firstL1Entry(b []byte) int { return int(binary.BigEndian.Uint64(b[40:])) }

// firstRefcountEntry locates the refcount table through the image's header.
func firstRefcountEntry(b []byte) int { return int(binary.BigEndian.Uint64(b[48:])) }

// lastCompressedCluster returns the host offset of the compressed cluster
// stored last in a qcow2 image, walking its L1 and L2 tables.
func lastCompressedCluster(tb testing.TB, b []byte) int {
	be := binary.BigEndian
	clusterBits := be.Uint32(b[20:])
	x := 62 - (clusterBits - 8)
	last := 0
	for i := range int(be.Uint32(b[36:])) {
		l2 := int(be.Uint64(b[firstL1Entry(b)+8*i:]) & 0x00fffffffffffe00)
		for j := l2; l2 != 0 && j < l2+1<<clusterBits; j += 8 {
			if e := be.Uint64(b[j:]); e&(1<<62) != 0 {
				last = max(last, int(e&(1<<x-1)))
			}
		}
	}
	if last == 0 {
		tb.Fatal("fixture has no compressed clusters")
	}
	return last
}

// setIncompatible sets bits in the qcow2 v3 incompatible_features field.
func setIncompatible(bits uint64) func(testing.TB, []byte) []byte {
	return func(_ testing.TB, b []byte) []byte {
		binary.BigEndian.PutUint64(b[72:], binary.BigEndian.Uint64(b[72:])|bits)
		return b
	}
}

// editFirstL2Entry rewrites the first allocated entry of the first L2 table,
// found through the image's own header and L1 table.
func editFirstL2Entry(edit func(uint64) uint64) func(testing.TB, []byte) []byte {
	return func(tb testing.TB, b []byte) []byte {
		l2 := int(binary.BigEndian.Uint64(b[firstL1Entry(b):]) & 0x00fffffffffffe00)
		for i := l2; l2 != 0 && i < l2+cluster; i += 8 {
			if e := binary.BigEndian.Uint64(b[i:]); e != 0 {
				binary.BigEndian.PutUint64(b[i:], edit(e))
				return b
			}
		}
		tb.Fatal("fixture has no allocated L2 entry to edit")
		return nil
	}
}

// fixtures is the directory of test images shared by the tests in this
// package. Building it takes seconds (LUKS key derivation dominates), so it is
// built once, on first use, and removed by TestMain.
var fixtures struct {
	once  sync.Once
	root  string
	dir   string
	built bool
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtures.root != "" {
		os.RemoveAll(fixtures.root)
	}
	os.Exit(code)
}

// fixtureDir returns the directory of test images, building it on first use.
// Tests must not modify it.
func fixtureDir(tb testing.TB) string {
	tb.Helper()
	fixtures.once.Do(func() {
		root, err := os.MkdirTemp("", "disk-fixtures-")
		if err != nil {
			tb.Fatal(err)
		}
		fixtures.root = root
		fixtures.dir = makeFixtures(tb, root)
		fixtures.built = true
	})
	if !fixtures.built {
		tb.Fatal("building the test images failed in an earlier test")
	}
	return fixtures.dir
}

// makeFixtures builds every test image in dir and returns dir. Real images
// come from qemu-img; the broken ones are real images with bytes cut off or
// patched.
func makeFixtures(tb testing.TB, dir string) string {
	tb.Helper()
	raw := rawDisk()
	writeFile(tb, filepath.Join(dir, "mbr.raw"), raw)
	q := func(args ...string) { qemuImg(tb, dir, args...) }

	// Images qemu-img writes and KubeVirt boots.
	q("convert", "-O", "qcow2", "mbr.raw", "good.qcow2")
	q("convert", "-c", "-O", "qcow2", "mbr.raw", "compressed.qcow2")
	q("convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", "mbr.raw", "zstd.qcow2")
	q("convert", "-c", "-O", "qcow2", "-o", "cluster_size=4096", "mbr.raw", "compressed-4k.qcow2")
	q("convert", "-O", "qcow2", "-o", "compat=0.10", "mbr.raw", "v2.qcow2")
	q("convert", "-O", "qcow2", "-o", "extended_l2=on", "mbr.raw", "extended-l2.qcow2")
	q("convert", "-O", "qcow2", "-o", "cluster_size=512", "mbr.raw", "cluster-512.qcow2")
	q("convert", "-O", "qcow2", "-o", "cluster_size=2M", "mbr.raw", "cluster-2m.qcow2")
	q("convert", "-O", "qcow2", "-o", "lazy_refcounts=on", "mbr.raw", "lazy-refcounts.qcow2")
	q("create", "-q", "-f", "qcow2", "blank.qcow2", "10M")
	q("create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", "prealloc-metadata.qcow2", "1M")
	q("convert", "-O", "qcow2", "mbr.raw", "snapshots.qcow2")
	q("snapshot", "-c", "first", "snapshots.qcow2")
	q("snapshot", "-c", "second", "snapshots.qcow2")
	q("convert", "-O", "qcow2", "mbr.raw", "bitmap.qcow2")
	q("bitmap", "--add", "bitmap.qcow2", "changes")

	// Images qemu-img writes that a containerdisk cannot carry.
	q("create", "-q", "-f", "qcow2", "-b", "good.qcow2", "-F", "qcow2", "overlay.qcow2")
	q("create", "-q", "-f", "qcow2", "-o", "data_file=guest-data.raw", "data-file.qcow2", "1M")
	q("create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=passphrase",
		"-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10,encrypt.hash-alg=sha512", "luks.qcow2", "1M")
	q("create", "-q", "-f", "qcow", "qcow1.img", "1M")
	q("create", "-q", "-f", "vmdk", "disk.vmdk", "1M")
	q("create", "-q", "-f", "vdi", "disk.vdi", "1M")
	q("create", "-q", "-f", "vhdx", "disk.vhdx", "1M")
	q("create", "-q", "-f", "vpc", "disk.vhd", "1M")
	q("create", "-q", "-f", "qed", "disk.qed", "1M")

	good := readFile(tb, filepath.Join(dir, "good.qcow2"))

	// Truncated images: a cut inside the last data cluster leaves every
	// table intact, so only the L2 walk can notice it.
	derive(tb, dir, "good.qcow2", "cut-data.qcow2", cutBy(cluster/2))
	derive(tb, dir, "good.qcow2", "cut-one-byte.qcow2", cutBy(1))
	derive(tb, dir, "compressed.qcow2", "cut-compressed-uncompressible.qcow2", cutBy(1))
	derive(tb, dir, "v2.qcow2", "cut-v2.qcow2", cutBy(cluster/2))
	derive(tb, dir, "extended-l2.qcow2", "cut-subcluster.qcow2", cutBy(512))
	derive(tb, dir, "good.qcow2", "cut-l1.qcow2", cut(firstL1Entry(good)+4))
	derive(tb, dir, "good.qcow2", "cut-header.qcow2", cut(50))
	derive(tb, dir, "good.qcow2", "cut-v3-header.qcow2", cut(90))
	derive(tb, dir, "good.qcow2", "l2-past-end.qcow2", pointPastEnd(firstL1Entry(good)))
	derive(tb, dir, "good.qcow2", "refcount-block-past-end.qcow2", pointPastEnd(firstRefcountEntry(good)))
	derive(tb, dir, "snapshots.qcow2", "snapshot-table-past-end.qcow2", pointPastEnd(64))
	// Every cluster of hex-disk.raw compresses to about half, so its qcow2
	// ends in compressed data rather than in a whole cluster, and each
	// compressed cluster spans many sectors.
	hex := make([]byte, 2<<20)
	copy(hex, raw[:512])
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 512; i < len(hex); i++ {
		hex[i] = "0123456789abcdef"[rng.IntN(16)]
	}
	writeFile(tb, filepath.Join(dir, "hex-disk.raw"), hex)
	q("convert", "-c", "-O", "qcow2", "hex-disk.raw", "all-compressed.qcow2")
	derive(tb, dir, "all-compressed.qcow2", "cut-compressed.qcow2", cutBy(4096))
	derive(tb, dir, "all-compressed.qcow2", "cut-inside-compressed.qcow2", func(tb testing.TB, b []byte) []byte {
		return b[:lastCompressedCluster(tb, b)+1]
	})

	// Whole images small enough to seed the fuzzer, which gets far more
	// from mutating complete tables than from the head of a large image.
	writeFile(tb, filepath.Join(dir, "tiny.raw"), hex[:16<<10])
	q("convert", "-O", "qcow2", "-o", "cluster_size=512", "tiny.raw", "tiny.qcow2")
	q("convert", "-c", "-O", "qcow2", "-o", "cluster_size=4096", "tiny.raw", "tiny-compressed.qcow2")

	// Corrupted headers and tables.
	derive(tb, dir, "good.qcow2", "version-0.qcow2", put32(4, 0))
	derive(tb, dir, "good.qcow2", "version-4.qcow2", put32(4, 4))
	derive(tb, dir, "good.qcow2", "cluster-bits-30.qcow2", put32(20, 30))
	derive(tb, dir, "good.qcow2", "cluster-bits-8.qcow2", put32(20, 8))
	derive(tb, dir, "good.qcow2", "header-length-8.qcow2", put32(100, 8))
	derive(tb, dir, "good.qcow2", "size-0.qcow2", put64(24, 0))
	derive(tb, dir, "good.qcow2", "l1-too-small.qcow2", put64(24, 1<<40))
	derive(tb, dir, "good.qcow2", "l1-misaligned.qcow2", put64(40, uint64(firstL1Entry(good)+8)))
	derive(tb, dir, "good.qcow2", "dirty.qcow2", setIncompatible(1<<0))
	derive(tb, dir, "good.qcow2", "corrupt-bit.qcow2", setIncompatible(1<<1))
	derive(tb, dir, "good.qcow2", "data-file-bit.qcow2", setIncompatible(1<<2))
	derive(tb, dir, "good.qcow2", "compression-bit-zlib.qcow2", setIncompatible(1<<3))
	derive(tb, dir, "good.qcow2", "unknown-feature.qcow2", setIncompatible(1<<40))
	derive(tb, dir, "good.qcow2", "aes.qcow2", put32(32, 1))
	derive(tb, dir, "good.qcow2", "l2-reserved-bits.qcow2", editFirstL2Entry(func(e uint64) uint64 { return e | 1<<57 }))
	derive(tb, dir, "good.qcow2", "l2-misaligned.qcow2", editFirstL2Entry(func(e uint64) uint64 { return e + 512 }))

	// Raw disks and files that are not disks.
	derive(tb, dir, "mbr.raw", "odd-size.raw", func(_ testing.TB, b []byte) []byte { return append(b, make([]byte, 100)...) })
	iso := make([]byte, 64<<10)
	copy(iso[32768:], "\x01CD001\x01")
	writeFile(tb, filepath.Join(dir, "cdrom.iso"), iso)
	writeFile(tb, filepath.Join(dir, "zeros.raw"), make([]byte, 1<<20))
	writeFile(tb, filepath.Join(dir, "empty.img"), nil)
	writeFile(tb, filepath.Join(dir, "notes.txt"), bytes.Repeat([]byte("not a disk\n"), 512)[:4096])
	writeFile(tb, filepath.Join(dir, "error-page.img"), []byte("<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n"))
	writeFile(tb, filepath.Join(dir, "disk.img.xz"), append([]byte("\xfd7zXZ\x00"), make([]byte, 506)...))
	writeFile(tb, filepath.Join(dir, "disk.img.zst"), append([]byte("\x28\xb5\x2f\xfd"), make([]byte, 508)...))
	writeFile(tb, filepath.Join(dir, "disk.img.bz2"), append([]byte("BZh91AY&SY"), make([]byte, 502)...))

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	writeFile(tb, filepath.Join(dir, "disk.img.gz"), gz.Bytes())

	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	if err := tw.WriteHeader(&tar.Header{Name: "disk.raw", Mode: 0o644, Size: 4096}); err != nil {
		tb.Fatal(err)
	}
	if _, err := tw.Write(raw[:4096]); err != nil {
		tb.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	writeFile(tb, filepath.Join(dir, "disk.tar"), tarball.Bytes())

	if err := os.Mkdir(filepath.Join(dir, "a-directory"), 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// qemuInfo is the part of "qemu-img info --output=json" the tests compare.
type qemuInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
}

func TestInspect(t *testing.T) {
	dir := fixtureDir(t)

	accepted := []struct {
		file   string
		format disk.Format
	}{
		{"good.qcow2", disk.FormatQCOW2},
		{"compressed.qcow2", disk.FormatQCOW2},
		{"all-compressed.qcow2", disk.FormatQCOW2}, // ends inside a cluster, after compressed data
		{"zstd.qcow2", disk.FormatQCOW2},
		{"compressed-4k.qcow2", disk.FormatQCOW2},
		{"v2.qcow2", disk.FormatQCOW2},
		{"extended-l2.qcow2", disk.FormatQCOW2}, // ends inside its last cluster, after the last subcluster
		{"cluster-512.qcow2", disk.FormatQCOW2},
		{"cluster-2m.qcow2", disk.FormatQCOW2},
		{"lazy-refcounts.qcow2", disk.FormatQCOW2},
		{"tiny.qcow2", disk.FormatQCOW2},
		{"tiny-compressed.qcow2", disk.FormatQCOW2},
		{"blank.qcow2", disk.FormatQCOW2},             // ends inside the L1 table's cluster
		{"prealloc-metadata.qcow2", disk.FormatQCOW2}, // zero clusters with host offsets
		{"snapshots.qcow2", disk.FormatQCOW2},         // ends mid-sector, inside the snapshot table
		{"bitmap.qcow2", disk.FormatQCOW2},
		{"mbr.raw", disk.FormatRaw},
		{"cdrom.iso", disk.FormatRaw},
	}
	for _, tc := range accepted {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			info, err := disk.Inspect(path)
			if err != nil {
				t.Fatalf("Inspect(%q) = %v, want a %s disk", path, err, tc.format)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			// qemu-img is the reference for what a format's virtual size is.
			var want qemuInfo
			if err := json.Unmarshal(qemuImg(t, dir, "info", "--output=json", tc.file), &want); err != nil {
				t.Fatal(err)
			}
			got := qemuInfo{Format: string(info.Format), VirtualSize: info.VirtualSize}
			if got != want || want.Format != string(tc.format) {
				t.Errorf("Inspect(%q) = %+v, qemu-img info says %+v, want format %s", path, got, want, tc.format)
			}
			if info.Size != fi.Size() {
				t.Errorf("Inspect(%q).Size = %d, want the file size %d", path, info.Size, fi.Size())
			}
		})
	}

	rejected := []struct {
		file string
		want error
		// say are further substrings the message must contain, to prove
		// which check fired and that the hint fits the problem.
		say []string
	}{
		{"overlay.qcow2", disk.ErrBackingFile, []string{`backing file "good.qcow2"`, "format qcow2", "qemu-img convert -O qcow2 "}},

		{"cut-data.qcow2", disk.ErrTruncated, []string{"data cluster", "fetch it again"}},
		{"cut-one-byte.qcow2", disk.ErrTruncated, []string{"data cluster", "the file ends at"}},
		{"cut-compressed-uncompressible.qcow2", disk.ErrTruncated, []string{"data cluster"}},
		{"cut-v2.qcow2", disk.ErrTruncated, []string{"data cluster"}},
		{"cut-subcluster.qcow2", disk.ErrTruncated, []string{"data cluster", "the file ends at"}},
		{"cut-compressed.qcow2", disk.ErrTruncated, []string{"compressed data"}},
		{"cut-inside-compressed.qcow2", disk.ErrTruncated, []string{"compressed data", "sectors"}},
		{"cut-l1.qcow2", disk.ErrTruncated, []string{"L1 table"}},
		{"cut-header.qcow2", disk.ErrTruncated, []string{"header"}},
		{"cut-v3-header.qcow2", disk.ErrTruncated, []string{"version 3 header"}},
		{"l2-past-end.qcow2", disk.ErrTruncated, []string{"L2 table"}},
		{"refcount-block-past-end.qcow2", disk.ErrTruncated, []string{"refcount block"}},
		{"snapshot-table-past-end.qcow2", disk.ErrTruncated, []string{"snapshot table"}},

		{"version-0.qcow2", disk.ErrCorrupt, []string{"version 0"}},
		{"version-4.qcow2", disk.ErrUnsupported, []string{"version 4"}},
		{"qcow1.img", disk.ErrUnsupported, []string{"qcow version 1", "qemu-img convert -O qcow2"}},
		{"cluster-bits-30.qcow2", disk.ErrCorrupt, []string{"cluster_bits is 30"}},
		{"cluster-bits-8.qcow2", disk.ErrCorrupt, []string{"cluster_bits is 8"}},
		{"header-length-8.qcow2", disk.ErrCorrupt, []string{"header_length is 8"}},
		{"size-0.qcow2", disk.ErrCorrupt, []string{"virtual size is 0"}},
		{"l1-too-small.qcow2", disk.ErrCorrupt, []string{"L1 table has 1 entries"}},
		{"l1-misaligned.qcow2", disk.ErrCorrupt, []string{"not aligned"}},
		{"l2-reserved-bits.qcow2", disk.ErrCorrupt, []string{"reserved bits"}},
		{"l2-misaligned.qcow2", disk.ErrCorrupt, []string{"not a cluster-aligned offset"}},
		{"dirty.qcow2", disk.ErrCorrupt, []string{"not closed cleanly", "qemu-img check -r all"}},
		{"corrupt-bit.qcow2", disk.ErrCorrupt, []string{"marked it corrupt", "qemu-img check -r all"}},
		{"compression-bit-zlib.qcow2", disk.ErrCorrupt, []string{"compression type"}},

		{"data-file-bit.qcow2", disk.ErrUnsupported, []string{"external data file"}},
		{"data-file.qcow2", disk.ErrUnsupported, []string{`external data file "guest-data.raw"`}},
		{"unknown-feature.qcow2", disk.ErrUnsupported, []string{"bit 40"}},
		{"luks.qcow2", disk.ErrUnsupported, []string{"encrypted (LUKS)"}},
		{"aes.qcow2", disk.ErrUnsupported, []string{"encrypted (AES)"}},

		{"empty.img", disk.ErrNotDisk, []string{"empty", `magic QFI\xfb`}},
		{"odd-size.raw", disk.ErrNotDisk, []string{"512-byte sectors"}},
		{"zeros.raw", disk.ErrNotDisk, []string{"no MBR/GPT boot signature", `try "qemu-img info `}},
		{"notes.txt", disk.ErrNotDisk, []string{`text, starting "not a disk"`}},
		{"error-page.img", disk.ErrNotDisk, []string{`text, starting "<!DOCTYPE html>"`, "download URL"}},
		{"disk.img.gz", disk.ErrNotDisk, []string{"gzip", "decompress it first", "gunzip -k "}},
		{"disk.img.xz", disk.ErrNotDisk, []string{"xz", "decompress it first", "xz -dk "}},
		{"disk.img.zst", disk.ErrNotDisk, []string{"zstd", "decompress it first", "zstd -d "}},
		{"disk.img.bz2", disk.ErrNotDisk, []string{"bzip2", "decompress it first", "bunzip2 -k "}},
		{"disk.tar", disk.ErrNotDisk, []string{"tar archive", "tar -xvf "}},
		{"disk.vmdk", disk.ErrNotDisk, []string{"VMDK", "qemu-img convert -O qcow2 "}},
		{"disk.vdi", disk.ErrNotDisk, []string{"VDI", "qemu-img convert -O qcow2 "}},
		{"disk.vhdx", disk.ErrNotDisk, []string{"VHDX", "qemu-img convert -O qcow2 "}},
		{"disk.vhd", disk.ErrNotDisk, []string{"VHD image", "qemu-img convert -O qcow2 "}},
		{"disk.qed", disk.ErrNotDisk, []string{"QED", "qemu-img convert -O qcow2 "}},
		{"a-directory", disk.ErrNotDisk, []string{"directory"}},
	}
	for _, tc := range rejected {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			info, err := disk.Inspect(path)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Inspect(%q) = %+v, %v; want error %q", path, info, err, tc.want)
			}
			if info != (disk.Info{}) {
				t.Errorf("Inspect(%q) returned %+v with its error, want the zero Info", path, info)
			}
			var invalid *disk.InvalidDiskError
			if !errors.As(err, &invalid) {
				t.Fatalf("Inspect(%q) error %T is not an *InvalidDiskError", path, err)
			}
			if invalid.Path != path {
				t.Errorf("InvalidDiskError.Path = %q, want %q", invalid.Path, path)
			}
			msg := err.Error()
			for _, s := range append([]string{`disk "` + path + `"`, tc.want.Error(), "expected "}, tc.say...) {
				if !strings.Contains(msg, s) {
					t.Errorf("Inspect(%q) error %q does not contain %q", path, msg, s)
				}
			}
		})
	}
}

func TestInspectMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.qcow2")
	_, err := disk.Inspect(path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Inspect(%q) = %v, want an error matching fs.ErrNotExist", path, err)
	}
	var invalid *disk.InvalidDiskError
	if errors.As(err, &invalid) {
		t.Errorf("Inspect(%q) = %v, an *InvalidDiskError, want a plain I/O error", path, err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("Inspect(%q) error %q does not name the file", path, err)
	}
}

// TestInvalidDiskErrorMessage pins the full message layout documented on
// InvalidDiskError, which users see verbatim.
func TestInvalidDiskErrorMessage(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		err  func() error
		want string
	}{
		{
			name: "file",
			err: func() error {
				path := filepath.Join(dir, "x.img")
				writeFile(t, path, nil)
				_, err := disk.Inspect(path)
				return err
			},
			want: `disk "` + dir + `/x.img": not a qcow2 or raw disk image: the file is empty; ` +
				`expected a qcow2 file (magic QFI\xfb) or a raw disk with an MBR/GPT partition table; try "qemu-img info ` + dir + `/x.img"`,
		},
		{
			name: "file name that needs shell quoting",
			err: func() error {
				path := filepath.Join(dir, "my disk.img")
				writeFile(t, path, nil)
				_, err := disk.Inspect(path)
				return err
			},
			want: `disk "` + dir + `/my disk.img": not a qcow2 or raw disk image: the file is empty; ` +
				`expected a qcow2 file (magic QFI\xfb) or a raw disk with an MBR/GPT partition table; try "qemu-img info '` + dir + `/my disk.img'"`,
		},
		{
			name: "reader",
			err: func() error {
				_, err := disk.InspectReaderAt(bytes.NewReader(nil), 0)
				return err
			},
			want: `disk: not a qcow2 or raw disk image: the file is empty; ` +
				`expected a qcow2 file (magic QFI\xfb) or a raw disk with an MBR/GPT partition table; try "qemu-img info DISK"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			if err == nil {
				t.Fatal("got no error")
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("error message\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestInspectReaderAt(t *testing.T) {
	dir := fixtureDir(t)
	good := readFile(t, filepath.Join(dir, "good.qcow2"))
	raw := readFile(t, filepath.Join(dir, "mbr.raw"))
	tests := []struct {
		name     string
		r        io.ReaderAt
		size     int64
		want     disk.Info
		wantErr  error
		wantText string
	}{
		{name: "qcow2", r: bytes.NewReader(good), size: int64(len(good)),
			want: disk.Info{Format: disk.FormatQCOW2, Size: int64(len(good)), VirtualSize: rawSize}},
		{name: "raw", r: bytes.NewReader(raw), size: int64(len(raw)),
			want: disk.Info{Format: disk.FormatRaw, Size: int64(len(raw)), VirtualSize: int64(len(raw))}},
		{name: "size larger than the data", r: bytes.NewReader(good), size: int64(len(good)) + cluster,
			wantErr: disk.ErrTruncated, wantText: "returned"},
		{name: "qcow2 read as a shorter file", r: bytes.NewReader(good), size: int64(len(good)) - cluster,
			wantErr: disk.ErrTruncated, wantText: "data cluster"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, err := disk.InspectReaderAt(tc.r, tc.size)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantText) {
					t.Fatalf("InspectReaderAt() = %+v, %v; want error %q mentioning %q", info, err, tc.wantErr, tc.wantText)
				}
				return
			}
			if err != nil || info != tc.want {
				t.Fatalf("InspectReaderAt() = %+v, %v; want %+v", info, err, tc.want)
			}
		})
	}

	if _, err := disk.InspectReaderAt(bytes.NewReader(nil), -1); err == nil {
		t.Error("InspectReaderAt with size -1 succeeded, want an error")
	}
}

// countingReaderAt counts the bytes read from a real file.
type countingReaderAt struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// TestInspectReadsOnlyMetadata guards the promise that multi-gigabyte images
// are inspected without reading their data: a 64 MiB image full of data must
// take only its metadata to check.
func TestInspectReadsOnlyMetadata(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 64<<20)
	data[510], data[511] = 0x55, 0xaa
	for i := 512; i < len(data); i += 512 {
		data[i] = 1 // every cluster allocated
	}
	writeFile(t, filepath.Join(dir, "full.raw"), data)
	qemuImg(t, dir, "convert", "-O", "qcow2", "full.raw", "full.qcow2")
	for _, name := range []string{"full.raw", "full.qcow2"} {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			r := &countingReaderAt{r: f}
			if _, err := disk.InspectReaderAt(r, fi.Size()); err != nil {
				t.Fatal(err)
			}
			// Header cluster, refcount table and block, L1 table and one
			// L2 table: five 64 KiB clusters.
			const limit = 5 * cluster
			if got := r.n.Load(); got > limit {
				t.Errorf("inspecting a %d-byte %s read %d bytes, want at most %d", fi.Size(), name, got, limit)
			}
		})
	}
}

// FuzzInspectReaderAt feeds mutated images to InspectReaderAt, which must
// neither panic nor allocate beyond the input, and must classify every
// rejection with one of the sentinels.
func FuzzInspectReaderAt(f *testing.F) {
	dir := fixtureDir(f)
	entries, err := os.ReadDir(dir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		// Small seeds keep each execution, and the minimization of every
		// new input, fast.
		data := readFile(f, filepath.Join(dir, e.Name()))
		f.Add(data[:min(len(data), 64<<10)])
	}
	sentinels := []error{disk.ErrNotDisk, disk.ErrBackingFile, disk.ErrTruncated, disk.ErrCorrupt, disk.ErrUnsupported}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := disk.InspectReaderAt(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			var invalid *disk.InvalidDiskError
			if !errors.As(err, &invalid) {
				t.Fatalf("error %v (%T) is not an *InvalidDiskError", err, err)
			}
			n := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error %v matches %d sentinels, want exactly 1", err, n)
			}
			return
		}
		if info.Size != int64(len(data)) || info.VirtualSize <= 0 {
			t.Fatalf("InspectReaderAt() = %+v for %d bytes, want Size %d and a positive VirtualSize", info, len(data), len(data))
		}
		switch info.Format {
		case disk.FormatRaw:
			if info.VirtualSize != info.Size || info.Size%512 != 0 {
				t.Fatalf("raw Info %+v: want VirtualSize == Size, a multiple of 512", info)
			}
		case disk.FormatQCOW2:
		default:
			t.Fatalf("InspectReaderAt() format %q, want qcow2 or raw", info.Format)
		}
	})
}

package verify

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/disk"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// An image is untrusted input to a local boot: a qcow2 disk can name files
// of the host that boots it (a backing file, an external data file), and
// QEMU opens them. These tests craft such disks with the real qemu-img and
// check that verify refuses them with the checks build applies, before
// QEMU starts, and that QEMU is started so that it follows no backing file
// even when a check is bypassed.

// hostileDisk is a disk an image could carry, with what its check says.
type hostileDisk struct {
	name string
	path string
	// kind is the disk package's sentinel for it.
	kind error
	// words must appear in the error.
	words []string
}

// hostileDisks makes, in dir, disks that build refuses: overlays on a file
// of this host and on a bootable disk of this host, a qcow2 with an
// external data file, an encrypted one and a truncated one.
func hostileDisks(t *testing.T, dir string) []hostileDisk {
	t.Helper()
	secret := filepath.Join(dir, "passwd")
	if err := os.WriteFile(secret, []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	qemuImg := func(args ...string) {
		t.Helper()
		if _, err := testdisk.QemuImg(args...); err != nil {
			t.Fatal(err)
		}
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	// -u: the backing file is not opened to take its size.
	qemuImg("create", "-q", "-f", "qcow2", "-u", "-b", secret, "-F", "raw", p("passwd.qcow2"), "8M")
	boot := bootDisk(t, "amd64")
	qemuImg("create", "-q", "-f", "qcow2", "-b", boot, "-F", "qcow2", p("boot.qcow2"))
	qemuImg("create", "-q", "-f", "qcow2", "-o", "data_file="+p("data.raw"), p("datafile.qcow2"), "8M")
	qemuImg("create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=password",
		"-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", p("encrypted.qcow2"), "8M")
	if err := testdisk.WriteQCOW2(p("whole.qcow2"), 1<<20, 1, false); err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(p("whole.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("truncated.qcow2"), whole[:len(whole)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	return []hostileDisk{
		{"backing file of the host", p("passwd.qcow2"), disk.ErrBackingFile, []string{"backing file", `"` + secret + `" (format raw)`, "qemu-img convert -O qcow2"}},
		{"bootable backing file of the host", p("boot.qcow2"), disk.ErrBackingFile, []string{"backing file", `"` + boot + `"`}},
		{"external data file", p("datafile.qcow2"), disk.ErrUnsupported, []string{"data file", p("data.raw")}},
		{"encrypted", p("encrypted.qcow2"), disk.ErrUnsupported, []string{"encrypted"}},
		{"truncated", p("truncated.qcow2"), disk.ErrTruncated, []string{"truncated"}},
	}
}

// TestExtractDiskRefusesHostileDisks pulls images whose disk build would
// refuse, made by hand: each is refused with the disk check's words, and
// nothing is left to boot.
func TestExtractDiskRefusesHostileDisks(t *testing.T) {
	for _, d := range hostileDisks(t, t.TempDir()) {
		t.Run(d.name, func(t *testing.T) {
			body, err := os.ReadFile(d.path)
			if err != nil {
				t.Fatal(err)
			}
			store, root := handMadeImage(t, []tarEntry{
				{name: "disk/", typeflag: tar.TypeDir},
				{name: "disk/disk.qcow2", typeflag: tar.TypeReg, body: string(body)},
			}, ocispec.MediaTypeImageLayer)
			out := t.TempDir()
			got, err := ExtractDisk(context.Background(), store, root, "amd64", out)
			var ide *ImageDiskError
			if !errors.As(err, &ide) || !errors.Is(err, d.kind) {
				t.Fatalf("ExtractDisk = %q, %v: want an *ImageDiskError for %v", got, err, d.kind)
			}
			t.Logf("error: %v", err)
			msg := err.Error()
			for _, w := range append([]string{"disk/disk.qcow2 in the image: ", "kubectl containerdisk build"}, d.words...) {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q", w)
				}
			}
			// The hints name the publisher's disk, not a file of this host.
			if strings.Contains(msg, out) {
				t.Errorf("error names the temporary directory %s", out)
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("a refused disk left %d files in the output directory", len(entries))
			}
		})
	}
}

// TestBootLocalRefusesHostileDisks boots the same disks directly: each is
// refused before QEMU starts, at once. An overlay on the bootable disk
// would otherwise boot that disk and pass.
func TestBootLocalRefusesHostileDisks(t *testing.T) {
	needQEMU(t, "amd64")
	for _, d := range hostileDisks(t, t.TempDir()) {
		t.Run(d.name, func(t *testing.T) {
			start := time.Now()
			res, err := BootLocal(context.Background(), LocalOptions{
				Disk: d.path, Arch: "amd64", Accel: "tcg", Marker: testMarker(t), Timeout: 2 * time.Minute,
			})
			if res.Passed || !errors.Is(err, d.kind) {
				t.Fatalf("BootLocal: passed %v, %v: want an error for %v", res.Passed, err, d.kind)
			}
			var be *BootError
			if errors.As(err, &be) {
				t.Fatalf("QEMU ran: %v", err)
			}
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("refused after %s, not at once", elapsed)
			}
			if !strings.Contains(err.Error(), d.path) {
				t.Errorf("error does not name the disk %s: %v", d.path, err)
			}
		})
	}
}

// TestQEMUArgsDiskNode checks the disk's -drive: its format named, no
// backing chain, a plain file, snapshot mode.
func TestQEMUArgsDiskNode(t *testing.T) {
	tests := []struct {
		format disk.Format
		path   string
		want   string
	}{
		{disk.FormatQCOW2, "/tmp/d/disk.qcow2",
			`if=none,id=disk,snapshot=on,file=json:{"backing":null,,"driver":"qcow2",,"file":{"driver":"file",,"filename":"/tmp/d/disk.qcow2"}}`},
		{disk.FormatRaw, "/tmp/a,b/disk.img",
			`if=none,id=disk,snapshot=on,file=json:{"backing":null,,"driver":"raw",,"file":{"driver":"file",,"filename":"/tmp/a,,b/disk.img"}}`},
	}
	for _, tt := range tests {
		t.Run(string(tt.format), func(t *testing.T) {
			args, err := qemuArgs("amd64", "tcg", "1G", "", tt.path, tt.format, "/tmp/seed.iso", t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			var drive string
			for i, a := range args {
				if a == "-drive" && strings.Contains(args[i+1], "id=disk,") {
					drive = args[i+1]
				}
			}
			if drive != tt.want {
				t.Errorf("disk drive\n %s\nwant\n %s", drive, tt.want)
			}
		})
	}
	if _, err := qemuArgs("amd64", "tcg", "1G", "", "/tmp/\xff.img", disk.FormatRaw, "/tmp/seed.iso", t.TempDir()); err == nil {
		t.Error("a path that is not UTF-8 was accepted")
	}
}

// TestQEMUIgnoresBackingFile starts QEMU on an empty overlay of the
// bootable disk with the command line of a boot, as if the checks had
// missed it: QEMU does not follow the backing file, so the firmware finds
// nothing to boot, where with the backing file it would boot.
func TestQEMUIgnoresBackingFile(t *testing.T) {
	needQEMU(t, "amd64")
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	overlay := filepath.Join(dir, "boot.qcow2")
	if _, err := testdisk.QemuImg("create", "-q", "-f", "qcow2", "-b", bootDisk(t, "amd64"), "-F", "qcow2", overlay); err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(dir, "seed.iso")
	marker := testMarker(t)
	if err := WriteNoCloudSeed(seed, []byte(UserData{Marker: marker}.Script()), metaData()); err != nil {
		t.Fatal(err)
	}
	args, err := qemuArgs("amd64", "tcg", "256M", "", overlay, disk.FormatQCOW2, seed, dir)
	if err != nil {
		t.Fatal(err)
	}
	run := qemuRun{qemu: qemu, args: args, marker: marker, timeout: 2 * time.Minute,
		report: BootError{Disk: overlay, Arch: "amd64", Accel: "tcg"}}
	res, err := run.boot(context.Background())
	if res.Passed {
		t.Fatalf("QEMU booted the backing file of %s", overlay)
	}
	t.Logf("error:\n%v", err)
	if !errors.Is(err, ErrQEMUExited) || !strings.Contains(res.ConsoleTail, "not a bootable disk") {
		t.Errorf("error %v: want SeaBIOS's \"not a bootable disk\" on an empty disk", err)
	}
}

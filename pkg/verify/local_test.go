package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
)

// These tests boot a real disk under QEMU: the one hack/bootdisk.sh builds
// (a Debian kernel and a busybox initramfs that runs NoCloud user-data),
// which reaches its user-data in about 5 s under TCG (amd64) and 10 s
// (arm64, UEFI). They fail, rather than skip, when the disk or QEMU is
// missing, so that CI cannot pass without booting anything.

// bootDisk returns the test boot disk of arch: $CONTAINERDISK_BOOTDISK
// (amd64) or $CONTAINERDISK_BOOTDISK_ARM64, else the newest one in
// hack/bootdisk.sh's cache.
func bootDisk(t *testing.T, arch string) string {
	t.Helper()
	env := "CONTAINERDISK_BOOTDISK"
	if arch != "amd64" {
		env += "_" + strings.ToUpper(arch)
	}
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("$%s: %v; build the disk with hack/bootdisk.sh %s", env, err, arch)
		}
		return p
	}
	cache := os.Getenv("BOOTDISK_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "kubectl-containerdisk", "bootdisk")
	}
	matches, _ := filepath.Glob(filepath.Join(cache, "*", "disk-"+arch+".qcow2"))
	sort.Slice(matches, func(i, j int) bool { return modTime(matches[i]).After(modTime(matches[j])) })
	if len(matches) == 0 {
		t.Fatalf("no %s boot disk in %s: build it with `hack/bootdisk.sh %s` (or point $%s at one)", arch, cache, arch, env)
	}
	return matches[0]
}

func modTime(p string) time.Time {
	fi, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// needQEMU fails the test when the emulator for arch is not installed.
func needQEMU(t *testing.T, arch string) {
	t.Helper()
	bin, pkg := "qemu-system-x86_64", "qemu-system-x86"
	if arch == "arm64" {
		bin, pkg = "qemu-system-aarch64", "qemu-system-arm qemu-efi-aarch64"
		if _, err := os.Stat(DefaultAArch64Firmware); err != nil {
			t.Fatalf("arm64 UEFI firmware: %v; install it with apt-get install qemu-efi-aarch64", err)
		}
	}
	if _, err := exec.LookPath(bin); err != nil {
		t.Fatalf("%s: %v; install it with apt-get install %s", bin, err, pkg)
	}
}

func testMarker(t *testing.T) string {
	return fmt.Sprintf("LOCAL-TEST-%d", time.Now().UnixNano())
}

func TestBootLocal(t *testing.T) {
	tests := []struct {
		name     string
		arch     string
		userData func(marker string) []byte
	}{
		{"amd64 script", "amd64", func(m string) []byte { return []byte(UserData{Marker: m}.Script()) }},
		{"amd64 default user-data", "amd64", func(string) []byte { return nil }},
		{"amd64 cloud-config of the cluster path", "amd64", func(m string) []byte {
			return []byte(UserData{Marker: m, AuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx test"}}.CloudConfig())
		}},
		{"arm64 script", "arm64", func(m string) []byte { return []byte(UserData{Marker: m}.Script()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			needQEMU(t, tt.arch)
			disk := bootDisk(t, tt.arch)
			before := fileState(t, disk)
			marker := testMarker(t)
			var console bytes.Buffer
			res, err := BootLocal(context.Background(), LocalOptions{
				Disk: disk, Arch: tt.arch, Marker: marker, UserData: tt.userData(marker),
				// Generous: the whole test suite may share the CPUs. The
				// boot time target (30 s under TCG) is checked by
				// BenchmarkVerifyLocal4, on a quiet machine.
				Timeout: 5 * time.Minute, Console: &console,
			})
			if err != nil {
				t.Fatalf("BootLocal: %v\nconsole:\n%s", err, console.String())
			}
			if !res.Passed {
				t.Fatalf("BootLocal passed no marker: %+v", res)
			}
			t.Logf("%s booted to its user-data in %s under %s", tt.arch, res.BootTime.Round(10*time.Millisecond), res.Accel)
			if !strings.Contains(res.ConsoleTail, marker) {
				t.Errorf("console tail lacks the marker:\n%s", res.ConsoleTail)
			}
			if !strings.Contains(console.String(), "bootdisk: booted") {
				t.Errorf("console copy lacks the init's boot line:\n%s", console.String())
			}
			if after := fileState(t, disk); after != before {
				t.Errorf("the disk changed: %s, then %s: snapshot mode must never write it", before, after)
			}
		})
	}
}

// TestBootLocalZeroDisk boots a disk of zeros (an empty qcow2, which passes
// build's checks): each firmware says there is nothing to boot, and the
// boot fails at once (SeaBIOS reboots, which ends QEMU; UEFI falls back to
// its shell, whose prompt ends the boot) rather than at the timeout.
func TestBootLocalZeroDisk(t *testing.T) {
	tests := []struct {
		arch     string
		want     error
		console  string
		errWords string
	}{
		{"amd64", ErrQEMUExited, "SeaBIOS", "not a bootable disk"},
		{"arm64", ErrNoBootDevice, "EFI Internal Shell", "no EFI boot loader"},
	}
	for _, tt := range tests {
		t.Run(tt.arch, func(t *testing.T) {
			needQEMU(t, tt.arch)
			zero := filepath.Join(t.TempDir(), "zero.qcow2")
			if _, err := testdisk.QemuImg("create", "-q", "-f", "qcow2", zero, "64M"); err != nil {
				t.Fatal(err)
			}
			const timeout = 2 * time.Minute
			res, err := BootLocal(context.Background(), LocalOptions{Disk: zero, Arch: tt.arch, Marker: testMarker(t), Timeout: timeout})
			if err == nil || res.Passed {
				t.Fatalf("a zeroed disk passed: %+v", res)
			}
			t.Logf("error:\n%v", err)
			var be *BootError
			if !errors.As(err, &be) || !errors.Is(err, tt.want) {
				t.Fatalf("error %v: want a *BootError for %v", err, tt.want)
			}
			if be.Elapsed >= timeout/2 {
				t.Errorf("the boot failed after %v, not at once (timeout %v)", be.Elapsed, timeout)
			}
			for _, want := range []string{"console tail:", tt.errWords} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q", want)
				}
			}
			if !strings.Contains(res.ConsoleTail, tt.console) {
				t.Errorf("console tail lacks the firmware's words %q:\n%s", tt.console, res.ConsoleTail)
			}
		})
	}
}

func TestBootLocalStops(t *testing.T) {
	needQEMU(t, "amd64")
	tests := []struct {
		name    string
		timeout time.Duration
		cancel  time.Duration
		want    error
	}{
		{"context cancelled", time.Minute, time.Second, context.Canceled},
		{"timeout", 1500 * time.Millisecond, 0, ErrBootTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A path of this test's own, to find its QEMU among the
			// machine's processes.
			disk := filepath.Join(t.TempDir(), "disk.qcow2")
			if err := os.Symlink(bootDisk(t, "amd64"), disk); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel > 0 {
				time.AfterFunc(tt.cancel, cancel)
			}
			start := time.Now()
			res, err := BootLocal(ctx, LocalOptions{
				Disk: disk, Arch: "amd64", Marker: testMarker(t), Timeout: tt.timeout,
				UserData: []byte("#!/bin/sh\necho not the marker\n"),
			})
			elapsed := time.Since(start)
			if !errors.Is(err, tt.want) {
				t.Fatalf("BootLocal: %v, passed %v: want %v", err, res.Passed, tt.want)
			}
			if !strings.Contains(err.Error(), "console tail") {
				t.Errorf("error lacks the console tail: %v", err)
			}
			limit := tt.timeout
			if tt.cancel > 0 {
				limit = tt.cancel
			}
			if elapsed > limit+3*time.Second {
				t.Errorf("BootLocal returned after %s: QEMU was not stopped promptly", elapsed)
			}
			if procs := processesWith(t, disk); len(procs) > 0 {
				t.Errorf("QEMU still runs after BootLocal returned: %s", strings.Join(procs, "; "))
			}
		})
	}
}

// processesWith lists the processes whose command line contains s.
func processesWith(t *testing.T, s string) []string {
	t.Helper()
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil || len(cmdlines) == 0 {
		t.Fatalf("listing processes: %v", err)
	}
	var found []string
	for _, p := range cmdlines {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the process has exited
		}
		if cmd := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})); strings.Contains(cmd, s) {
			found = append(found, filepath.Base(filepath.Dir(p))+": "+cmd)
		}
	}
	return found
}

// fileState is a disk file's size and modification time.
func fileState(t *testing.T, p string) string {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d bytes modified %s", fi.Size(), fi.ModTime().Format(time.RFC3339Nano))
}

func TestLocalConsoleTail(t *testing.T) {
	w := newConsoleWatch("MARK", nil)
	var in bytes.Buffer
	in.WriteString("\x1b[2J\x1b[01;01HSeaBIOS\r\n")
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&in, "line %d\r\n", i)
	}
	in.WriteString("MARK\r\n")
	// One byte a read: the marker arrives in pieces.
	w.read(iotest.OneByteReader(&in), time.Now())
	if !w.seen() {
		t.Error("a marker split across the input was not seen")
	}
	tail := w.tail()
	lines := strings.Split(tail, "\n")
	if len(lines) != consoleTailLines || lines[0] != "line 12" || lines[len(lines)-1] != "MARK" {
		t.Errorf("tail:\n%s\nwant the last %d lines, line 12 to MARK", tail, consoleTailLines)
	}
	if strings.ContainsAny(tail, "\r\x1b") {
		t.Errorf("tail keeps control characters: %q", tail)
	}
}

// TestBootLocalFallsBackWhenKVMFails runs a QEMU that, asked for KVM,
// reports a KVM internal error and stalls the guest, as QEMU does on a
// host whose /dev/kvm opens without hardware virtualization; asked for
// TCG, it is the real QEMU. The boot must fall back to TCG at once and
// pass, not wait for the timeout.
func TestBootLocalFallsBackWhenKVMFails(t *testing.T) {
	needQEMU(t, "amd64")
	real, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	bootdisk := bootDisk(t, "amd64")
	dir := t.TempDir()
	log := filepath.Join(dir, "accels")
	wrapper := filepath.Join(dir, "qemu")
	script := `#!/bin/sh
case "$*" in
*accel=kvm*)
	echo kvm >> ` + log + `
	echo "SeaBIOS (version 1.16.2)"
	echo "KVM internal error. Suberror: 1" >&2
	echo "emulation failure" >&2
	exec sleep 600 ;;
esac
echo tcg >> ` + log + `
exec ` + real + ` "$@"
`
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	marker := testMarker(t)
	start := time.Now()
	res, err := BootLocal(context.Background(), LocalOptions{
		Disk: bootdisk, Arch: "amd64", Marker: marker, QEMU: wrapper,
		Accel: "", Timeout: 5 * time.Minute, kvm: func() bool { return true },
	})
	if err != nil {
		t.Fatalf("BootLocal: %v", err)
	}
	if !res.Passed || res.Accel != "tcg" {
		t.Fatalf("BootLocal = %+v, want passed under tcg", res)
	}
	got, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "kvm\ntcg\n" {
		t.Errorf("accelerators tried = %q, want kvm then tcg", got)
	}
	t.Logf("fell back to tcg and booted in %s", time.Since(start).Round(10*time.Millisecond))

	// Asked for KVM explicitly, the failure is reported, not hidden.
	_, err = BootLocal(context.Background(), LocalOptions{
		Disk: bootdisk, Arch: "amd64", Marker: marker, QEMU: wrapper, Accel: "kvm", Timeout: time.Minute,
	})
	if !errors.Is(err, ErrKVMFailed) || !strings.Contains(err.Error(), "KVM internal error") {
		t.Fatalf("BootLocal with accel kvm: %v, want ErrKVMFailed quoting QEMU", err)
	}
}

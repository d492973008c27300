package verify

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/disk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/inputerr"
)

// Defaults of a local boot.
const (
	// DefaultLocalTimeout is how long BootLocal waits for the marker: a
	// cloud image boots cloud-init in about a minute under TCG.
	DefaultLocalTimeout = 5 * time.Minute
	// DefaultLocalMemory is the guest memory, in QEMU's -m syntax.
	DefaultLocalMemory = "1G"
	// DefaultAArch64Firmware is Debian's UEFI firmware for arm64 guests
	// (package qemu-efi-aarch64).
	DefaultAArch64Firmware = "/usr/share/AAVMF/AAVMF_CODE.fd"
	// consoleTailLines is how much of the console an error quotes.
	consoleTailLines = 20
	// consoleKeep is how many bytes of console output are kept for the tail.
	consoleKeep = 64 << 10
)

// Kinds of failed boot; a *BootError unwraps to one of them or to the
// context's error.
var (
	// ErrBootTimeout means the marker did not appear in time.
	ErrBootTimeout = errors.New("the marker did not appear on the console in time")
	// ErrQEMUExited means QEMU stopped before the marker appeared: the
	// guest powered off or rebooted (QEMU runs with -no-reboot), or QEMU
	// itself failed.
	ErrQEMUExited = errors.New("QEMU exited before the marker appeared on the console")
	// ErrNoBootDevice means the UEFI firmware found nothing to start on
	// the disk and fell back to its shell.
	ErrNoBootDevice = errors.New("the UEFI firmware found nothing to boot on the disk")
	// ErrKVMFailed means KVM could not run the guest: QEMU reported a KVM
	// internal error and stopped the guest (a /dev/kvm that opens on a
	// host without hardware virtualization, as in some sandboxes).
	ErrKVMFailed = errors.New("KVM could not run the guest")
)

// kvmInternalError is what QEMU writes to its standard error when KVM
// cannot emulate an instruction; the guest is then paused for good.
const kvmInternalError = "KVM internal error"

// uefiShellPrompt is what the firmware prints once every boot option
// failed and no startup.nsh booted anything: it waits there for a person.
const uefiShellPrompt = "Shell> "

// LocalOptions configures BootLocal.
type LocalOptions struct {
	// Disk is the qcow2 or raw disk to boot. It must pass the checks that
	// build applies (package disk): a qcow2 that names a backing file or a
	// data file, which QEMU would open, is refused. It runs in QEMU's
	// snapshot mode: the file is never written.
	Disk string
	// Arch is the guest architecture, amd64 or arm64 (x86_64 and aarch64
	// are accepted); the host's when empty.
	Arch string
	// UserData is the NoCloud user-data; when empty, the script of
	// UserData{Marker: Marker}, which prints the marker on the consoles.
	UserData []byte
	// Marker is the text whose appearance on the serial console proves
	// that the guest booted and ran its user-data. Required.
	Marker string
	// Timeout bounds the boot; DefaultLocalTimeout when zero.
	Timeout time.Duration
	// QEMU is the emulator binary; qemu-system-x86_64 or
	// qemu-system-aarch64 from PATH when empty.
	QEMU string
	// Firmware is the UEFI code image (pflash). arm64 guests need one and
	// get DefaultAArch64Firmware when empty; amd64 guests boot with QEMU's
	// BIOS unless it is set. A sibling file named with VARS instead of
	// CODE is used as the variable store, in snapshot mode.
	Firmware string
	// Memory is the guest memory in QEMU's -m syntax; DefaultLocalMemory
	// when empty.
	Memory string
	// Accel is the QEMU accelerator: "kvm" or "tcg"; when empty, kvm when
	// /dev/kvm opens and the guest has the host's architecture, else tcg
	// (software emulation, ten to fifty times slower). An automatic kvm
	// whose QEMU dies before printing anything, or reports a KVM internal
	// error (a /dev/kvm that opens but cannot run guests, as in some
	// sandboxes and nested setups), is retried as tcg.
	Accel string
	// kvm, when set, replaces the check that /dev/kvm opens (tests).
	kvm func() bool
	// Console, when set, receives a copy of the serial console as it
	// arrives.
	Console io.Writer
}

// LocalResult is the outcome of a local boot.
type LocalResult struct {
	// Passed says that the marker appeared on the console.
	Passed bool
	// Accel is the accelerator QEMU ran with.
	Accel string
	// BootTime is the time from QEMU's start to the marker.
	BootTime time.Duration
	// ConsoleTail is the end of the console output, cleaned of escape
	// sequences.
	ConsoleTail string
}

// BootError reports a boot that did not reach the marker.
type BootError struct {
	// Err is ErrBootTimeout, ErrQEMUExited, ErrNoBootDevice or the
	// context's error.
	Err   error
	Disk  string
	Arch  string
	Accel string
	// Elapsed is how long QEMU ran.
	Elapsed time.Duration
	// Exit is QEMU's exit status when it exited by itself.
	Exit string
	// Stderr is the end of what QEMU wrote to its standard error.
	Stderr string
	// ConsoleTail is the end of the console output.
	ConsoleTail string
}

func (e *BootError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "booting %s (%s, %s): %v after %s", e.Disk, e.Arch, e.Accel, e.Err, e.Elapsed.Round(100*time.Millisecond))
	if e.Exit != "" {
		fmt.Fprintf(&b, " (%s)", e.Exit)
	}
	switch {
	case errors.Is(e.Err, ErrBootTimeout):
		b.WriteString("; the guest may be slow under tcg (raise the timeout) or stuck (read the console tail)")
	case errors.Is(e.Err, ErrQEMUExited) && e.Stderr == "":
		b.WriteString("; the guest powered off or rebooted: read the console tail")
	case errors.Is(e.Err, ErrKVMFailed):
		b.WriteString("; this host's KVM cannot run the guest: boot under tcg instead")
	case errors.Is(e.Err, ErrNoBootDevice):
		b.WriteString("; the disk has no EFI boot loader the firmware could start (a BIOS-only image, or one for another architecture?)")
	}
	if e.Stderr != "" {
		fmt.Fprintf(&b, "\nQEMU said:\n%s", indent(e.Stderr))
	}
	if e.ConsoleTail == "" {
		b.WriteString("\nconsole tail: (the console printed nothing)")
	} else {
		fmt.Fprintf(&b, "\nconsole tail:\n%s", indent(e.ConsoleTail))
	}
	return b.String()
}

// Unwrap returns the kind of failure.
func (e *BootError) Unwrap() error { return e.Err }

// BootLocal boots a disk under QEMU with a NoCloud seed carrying the
// user-data, and watches the serial console for the marker. QEMU is
// stopped as soon as the marker appears, at the timeout, or when ctx is
// cancelled; it never outlives the call. The error of a failed boot is a
// *BootError that quotes the end of the console.
func BootLocal(ctx context.Context, opts LocalOptions) (LocalResult, error) {
	b, err := planLocal(opts)
	if err != nil {
		return LocalResult{}, err
	}
	return b.run(ctx)
}

// localBoot is a boot whose inputs are checked and whose defaults are
// filled in: nothing has started yet.
type localBoot struct {
	opts     LocalOptions
	arch     string
	format   disk.Format
	accel    string
	qemu     string
	firmware string
	userData []byte
	timeout  time.Duration
	memory   string
}

// planLocal checks everything a boot needs before anything starts, in the
// order a user fixes them: the marker, the architecture, the disk, then
// the QEMU binary and firmware for that architecture.
func planLocal(opts LocalOptions) (localBoot, error) {
	if opts.Marker == "" {
		return localBoot{}, errors.New("no marker given: expected the text the guest prints on its console once it has booted")
	}
	b := localBoot{opts: opts, userData: opts.UserData, timeout: opts.Timeout, memory: opts.Memory}
	var err error
	if b.arch, err = localArch(opts.Arch); err != nil {
		return localBoot{}, err
	}
	// The checks of build, before anything starts: QEMU opens the backing
	// and data files a qcow2 names, which must not reach this host's files.
	info, err := disk.Inspect(opts.Disk)
	if err != nil {
		return localBoot{}, fmt.Errorf("checking the disk to boot: %w", err)
	}
	b.format = info.Format
	b.accel = localAccel(opts, b.arch)
	if b.qemu, b.firmware, err = findQEMU(opts, b.arch); err != nil {
		return localBoot{}, err
	}
	if len(b.userData) == 0 {
		b.userData = []byte(UserData{Marker: opts.Marker}.Script())
	}
	if b.timeout <= 0 {
		b.timeout = DefaultLocalTimeout
	}
	if b.memory == "" {
		b.memory = DefaultLocalMemory
	}
	return b, nil
}

// localArch normalises the architecture to boot (the host's when empty)
// and refuses those there is no QEMU machine for.
func localArch(arch string) (string, error) {
	if arch == "" {
		arch = runtime.GOARCH
	}
	arch, err := containerdisk.NormalizeArch(arch)
	if err != nil {
		return "", err
	}
	if arch != "amd64" && arch != "arm64" {
		return "", &inputerr.Error{Input: arch, What: "unknown architecture for a local boot", Expected: "amd64 or arm64"}
	}
	return arch, nil
}

// localAccel is the accelerator asked for, or else kvm when /dev/kvm opens
// and the guest has the host's architecture, else tcg.
func localAccel(opts LocalOptions, arch string) string {
	if opts.Accel != "" {
		return opts.Accel
	}
	usable := opts.kvm
	if usable == nil {
		usable = kvmUsable
	}
	if arch == runtime.GOARCH && usable() {
		return "kvm"
	}
	return "tcg"
}

// findQEMU finds the QEMU binary for arch and the UEFI firmware it boots
// with (arm64 always has one), saying which Debian package to install
// when either is missing.
func findQEMU(opts LocalOptions, arch string) (qemuPath, firmware string, err error) {
	qemu := opts.QEMU
	if qemu == "" {
		qemu = map[string]string{"amd64": "qemu-system-x86_64", "arm64": "qemu-system-aarch64"}[arch]
	}
	qemuPath, err = exec.LookPath(qemu)
	if err != nil {
		pkg := map[string]string{"amd64": "qemu-system-x86", "arm64": "qemu-system-arm"}[arch]
		return "", "", fmt.Errorf("QEMU for %s: %w; install it (Debian: apt-get install %s) or name the binary", arch, err, pkg)
	}
	firmware = opts.Firmware
	if firmware == "" && arch == "arm64" {
		firmware = DefaultAArch64Firmware
	}
	if firmware != "" {
		if _, err := os.Stat(firmware); err != nil {
			return "", "", fmt.Errorf("UEFI firmware: %w; install it (Debian: apt-get install qemu-efi-aarch64 for arm64, ovmf for amd64) or name the file", err)
		}
	}
	return qemuPath, firmware, nil
}

// run writes the seed into a temporary directory, boots, and when a kvm
// boot it chose itself fails the way a broken KVM does, boots again under
// tcg.
func (b localBoot) run(ctx context.Context) (LocalResult, error) {
	tmp, err := os.MkdirTemp("", "containerdisk-verify-")
	if err != nil {
		return LocalResult{}, err
	}
	defer os.RemoveAll(tmp)
	seed := filepath.Join(tmp, "seed.iso")
	if err := WriteNoCloudSeed(seed, b.userData, metaData()); err != nil {
		return LocalResult{}, err
	}
	run := qemuRun{qemu: b.qemu, marker: b.opts.Marker, console: b.opts.Console, timeout: b.timeout,
		report: BootError{Disk: b.opts.Disk, Arch: b.arch}}
	if b.firmware != "" {
		// UEFI falls back to its shell when the disk boots nothing; the
		// shell would wait there until the timeout.
		run.stuck = uefiShellPrompt
	}
	boot := func(accel string) (LocalResult, error) {
		args, err := qemuArgs(b.arch, accel, b.memory, b.firmware, b.opts.Disk, b.format, seed, tmp)
		if err != nil {
			return LocalResult{}, err
		}
		run.args, run.report.Accel = args, accel
		return run.boot(ctx)
	}
	start := time.Now()
	res, err := boot(b.accel)
	if b.opts.Accel == "" && b.accel == "kvm" && kvmBroken(err) {
		// /dev/kvm opens but KVM cannot run the guest (nested or
		// emulated KVM, as in some sandboxes, aborts at once or stops
		// the guest with an internal error): fall back to emulation
		// within what is left of the timeout.
		run.timeout = b.timeout - time.Since(start)
		res, err = boot("tcg")
	}
	return res, err
}

// kvmBroken reports whether a boot failed the way a KVM that cannot run
// guests makes it fail: KVM's internal error, or QEMU gone at once with a
// failure status before the guest printed anything.
func kvmBroken(err error) bool {
	var be *BootError
	return errors.As(err, &be) && (errors.Is(err, ErrKVMFailed) ||
		errors.Is(err, ErrQEMUExited) && be.Exit != "exit status 0" && be.ConsoleTail == "")
}

// qemuRun is one QEMU process and what to watch for on its console.
type qemuRun struct {
	qemu   string
	args   []string
	marker string
	// stuck, when set, is console output that means the boot cannot go
	// on: the UEFI shell's prompt.
	stuck   string
	console io.Writer
	timeout time.Duration
	// report holds the fields of a failure known before the start.
	report BootError
}

// boot runs QEMU until the marker appears, QEMU exits, the timeout passes
// or ctx is done, and returns only once QEMU has exited.
func (r qemuRun) boot(ctx context.Context) (LocalResult, error) {
	cmd := exec.Command(r.qemu, r.args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return LocalResult{}, err
	}
	stderr := &tailBuffer{max: 4 << 10, trigger: []byte(kvmInternalError), hit: make(chan struct{})}
	cmd.Stderr = stderr
	stopWithParent(cmd)
	watch := newConsoleWatch(r.marker, r.console)
	watch.stuck = []byte(r.stuck)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return LocalResult{}, fmt.Errorf("starting QEMU: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		watch.read(stdout, start)
		done <- cmd.Wait()
	}()

	res := LocalResult{Accel: r.report.Accel}
	fail := func(kind error, exit string) (LocalResult, error) {
		res.ConsoleTail = watch.tail()
		be := r.report
		be.Err, be.Elapsed, be.Exit = kind, time.Since(start), exit
		be.Stderr, be.ConsoleTail = strings.TrimSpace(stderr.String()), res.ConsoleTail
		return res, &be
	}
	stop := func() {
		_ = cmd.Process.Kill()
		<-done
	}
	timer := time.NewTimer(r.timeout)
	defer timer.Stop()
	select {
	case <-watch.found:
		stop()
	case <-watch.dead:
		stop()
		if !watch.seen() {
			return fail(ErrNoBootDevice, "")
		}
	case <-stderr.hit:
		stop()
		if !watch.seen() {
			return fail(ErrKVMFailed, "")
		}
	case err := <-done:
		// QEMU ends with the guest's power-off: the marker may have been
		// its last words.
		if !watch.seen() {
			exit := "exit status 0"
			if err != nil {
				exit = err.Error()
			}
			return fail(ErrQEMUExited, exit)
		}
	case <-timer.C:
		stop()
		if !watch.seen() {
			return fail(ErrBootTimeout, "")
		}
	case <-ctx.Done():
		stop()
		return fail(ctx.Err(), "")
	}
	res.Passed = true
	res.BootTime = watch.at
	res.ConsoleTail = watch.tail()
	return res, nil
}

// qemuArgs is the command line of a boot: no network, no display, the
// serial console on stdout, the disk in snapshot mode, the seed read-only.
func qemuArgs(arch, accel, memory, firmware, diskPath string, format disk.Format, seed, tmp string) ([]string, error) {
	drive, err := diskDrive(diskPath, format)
	if err != nil {
		return nil, err
	}
	cpu := "max"
	if accel == "kvm" {
		cpu = "host"
	}
	var machine string
	switch arch {
	case "amd64":
		// graphics=off makes SeaBIOS write to the serial console too, so
		// that a disk it cannot boot says so in the console tail.
		machine = "q35,graphics=off"
	case "arm64":
		machine = "virt,gic-version=max"
		if cpu == "max" {
			// Pointer authentication emulated the architected way
			// takes much of TCG's time; the implementation-defined
			// algorithm is several times faster.
			cpu = "max,pauth-impdef=on"
		}
	}
	args := []string{
		"-name", "containerdisk-verify",
		"-machine", machine + ",accel=" + accel,
		"-cpu", cpu,
		"-m", memory,
		"-nodefaults", "-no-user-config", "-display", "none",
		// A guest that reboots (a kernel panic, a BIOS with nothing to
		// boot, retrying at once) ends the run instead of looping.
		"-no-reboot", "-boot", "reboot-timeout=0",
		"-chardev", "stdio,id=console,signal=off",
		"-serial", "chardev:console",
	}
	if firmware != "" {
		vars, err := firmwareVars(firmware, tmp)
		if err != nil {
			return nil, err
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,readonly=on,file="+qemuEscape(firmware),
			"-drive", "if=pflash,format=raw,snapshot=on,file="+qemuEscape(vars))
	}
	// The disk is the first boot device whatever the firmware's defaults.
	args = append(args,
		"-drive", drive,
		"-device", "virtio-blk-pci,drive=disk,bootindex=0",
		"-drive", "if=none,id=seed,readonly=on,format=raw,file="+qemuEscape(seed),
		"-device", "virtio-blk-pci,drive=seed")
	return args, nil
}

// firmwareVars returns the UEFI variable store for the code image: its
// VARS sibling as Debian ships them (AAVMF_CODE.fd, AAVMF_VARS.fd), used in
// snapshot mode, or else an empty store of the same size.
func firmwareVars(code, tmp string) (string, error) {
	dir, base := filepath.Split(code)
	if strings.Contains(base, "CODE") {
		vars := filepath.Join(dir, strings.Replace(base, "CODE", "VARS", 1))
		if _, err := os.Stat(vars); err == nil {
			return vars, nil
		}
	}
	fi, err := os.Stat(code)
	if err != nil {
		return "", err
	}
	vars := filepath.Join(tmp, "vars.fd")
	f, err := os.Create(vars)
	if err != nil {
		return "", err
	}
	err = f.Truncate(fi.Size())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return vars, err
}

// diskDrive is the -drive option of the disk, in snapshot mode. Its node
// is given as JSON, the one -drive syntax that can say "backing": null:
// the format is named, so that QEMU never probes (a raw disk that starts
// like a qcow2 header cannot fool it), and the image gets no backing chain,
// so that QEMU opens no file the image names even if a check missed one.
// The file driver reads the path as a local file, never as a protocol.
func diskDrive(path string, format disk.Format) (string, error) {
	if !utf8.ValidString(path) {
		return "", fmt.Errorf("disk path %q: expected valid UTF-8, which QEMU's JSON options need", path)
	}
	node := map[string]any{
		"driver":  format,
		"backing": nil,
		"file":    map[string]any{"driver": "file", "filename": path},
	}
	b, err := json.Marshal(node)
	if err != nil {
		return "", err
	}
	return "if=none,id=disk,snapshot=on,file=" + qemuEscape("json:"+string(b)), nil
}

// kvmUsable reports whether this process can open /dev/kvm.
func kvmUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// stopWithParent asks the kernel to kill QEMU if this process dies first
// (Linux's parent-death signal), so that not even a SIGKILL of the verifier
// leaves a VM behind. The field exists on Linux only; reflection keeps this
// file building everywhere. QEMU stays in the caller's process group: a
// Ctrl-C in the terminal reaches it too.
func stopWithParent(cmd *exec.Cmd) {
	attr := &syscall.SysProcAttr{}
	f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig")
	if !f.IsValid() || f.Kind() != reflect.Int {
		return
	}
	f.SetInt(9) // SIGKILL
	cmd.SysProcAttr = attr
}

func metaData() []byte {
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	return []byte("instance-id: containerdisk-verify-" + hex.EncodeToString(id) + "\nlocal-hostname: containerdisk-verify\n")
}

// qemuEscape escapes a value inside a QEMU option list, where ',' separates
// options.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }

// consoleWatch reads the serial console, copies it to an optional writer,
// keeps its end and closes found when the marker appears.
type consoleWatch struct {
	marker  []byte
	copy    io.Writer
	keep    []byte
	found   chan struct{}
	matched bool
	// stuck, when set, closes dead when it appears before the marker.
	stuck []byte
	dead  chan struct{}
	died  bool
	// at is the time from start to the marker, written before found closes.
	at time.Duration
}

func newConsoleWatch(marker string, copy io.Writer) *consoleWatch {
	return &consoleWatch{marker: []byte(marker), copy: copy, found: make(chan struct{}), dead: make(chan struct{})}
}

// read consumes r until it ends. Only this goroutine writes the fields;
// others read them after found is closed or read has returned.
func (w *consoleWatch) read(r io.Reader, start time.Time) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if w.copy != nil {
				_, _ = w.copy.Write(buf[:n])
			}
			// The marker can straddle two reads: search from just
			// before the new bytes.
			from := max(0, len(w.keep)-len(w.marker)+1)
			w.keep = append(w.keep, buf[:n]...)
			if !w.matched && bytes.Contains(w.keep[from:], w.marker) {
				w.matched = true
				w.at = time.Since(start)
				close(w.found)
			}
			if !w.matched && !w.died && len(w.stuck) > 0 &&
				bytes.Contains(w.keep[max(0, len(w.keep)-n-len(w.stuck)+1):], w.stuck) {
				w.died = true
				close(w.dead)
			}
			if len(w.keep) > 2*consoleKeep {
				w.keep = append(w.keep[:0], w.keep[len(w.keep)-consoleKeep:]...)
			}
		}
		if err != nil {
			return
		}
	}
}

func (w *consoleWatch) seen() bool {
	select {
	case <-w.found:
		return true
	default:
		return false
	}
}

// tail returns the last lines of the console as text: carriage returns,
// terminal escape sequences and other control characters removed.
func (w *consoleWatch) tail() string {
	text := cleanConsole(w.keep)
	lines := strings.Split(strings.TrimRight(text, "\n \t"), "\n")
	if len(lines) > consoleTailLines {
		lines = lines[len(lines)-consoleTailLines:]
	}
	return strings.Join(lines, "\n")
}

// cleanConsole drops ANSI escape sequences and control characters but for
// newlines and tabs, and turns CRLF into LF.
func cleanConsole(b []byte) string {
	var out strings.Builder
	r := bufio.NewReader(bytes.NewReader(b))
	for {
		c, err := r.ReadByte()
		if err != nil {
			break
		}
		switch {
		case c == 0x1b:
			next, err := r.ReadByte()
			if err != nil {
				break
			}
			if next == '[' {
				// CSI: parameters and intermediates up to a final byte.
				for {
					f, err := r.ReadByte()
					if err != nil || (f >= 0x40 && f <= 0x7e) {
						break
					}
				}
			}
		case c == '\n' || c == '\t' || c >= 0x20 && c != 0x7f:
			out.WriteByte(c)
		}
	}
	return strings.TrimLeft(out.String(), "\n")
}

// tailBuffer keeps the last max bytes written to it, and closes hit the
// first time trigger appears in what was written.
type tailBuffer struct {
	max     int
	trigger []byte
	hit     chan struct{}

	mu    sync.Mutex
	b     []byte
	fired bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.b)
	t.b = append(t.b, p...)
	if len(t.trigger) > 0 && !t.fired &&
		bytes.Contains(t.b[max(0, n-len(t.trigger)+1):], t.trigger) {
		t.fired = true
		close(t.hit)
	}
	if len(t.b) > 2*t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.b) > t.max {
		return string(t.b[len(t.b)-t.max:])
	}
	return string(t.b)
}

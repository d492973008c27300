package customize

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/disk"
)

// These tests run the real libguestfs tools on the small guest disk
// hack/guestdisk.sh builds (a busybox root that inspection takes for
// Debian). Every tool call starts an appliance VM, 25-45 s under TCG, so the
// tests make few calls and run in parallel, each on its own copy of the
// disk. They fail, rather than skip, when the disk or the tools are missing.
// On machines where /dev/kvm opens but QEMU aborts under KVM, run them with
// LIBGUESTFS_BACKEND_SETTINGS=force_tcg (make test-go sets it).

// guestDisk returns the test guest disk of arch (testdisk.GuestDisk).
func guestDisk(t *testing.T, arch string) string {
	t.Helper()
	p, err := testdisk.GuestDisk(arch)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testPackage is the package hack/guestdisk.sh puts next to the disk.
const testPackage = "containerdisk-test_1.0_all.deb"

// baseCopy copies the cached disk into the test's directory, so that no test
// can harm the cache even if Run wrote its base.
func baseCopy(t *testing.T, arch string) string {
	t.Helper()
	src := guestDisk(t, arch)
	dst := filepath.Join(t.TempDir(), "base.qcow2")
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// logTo collects Run's progress and prints it with the test's output.
type logTo struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
}

func (l *logTo) log(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
	l.t.Log(s)
}

// guestfish runs guestfish read-only on the disk with inspection and
// returns its output lines for the script: one appliance start.
func guestfish(t *testing.T, path string, script string) []string {
	t.Helper()
	start := time.Now()
	cmd := exec.Command("guestfish", "--ro", "--format=qcow2", "-a", path, "-i")
	cmd.Stdin = strings.NewReader(script)
	cmd.Env = toolEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("guestfish: %v\n%s", err, out)
	}
	t.Logf("guestfish check: %s", time.Since(start).Round(100*time.Millisecond))
	// guestfish ends what cat prints with a newline of its own, so a file
	// that ends in one is followed by an empty line.
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func logSteps(t *testing.T, res Result) {
	t.Helper()
	for _, s := range res.Steps {
		t.Logf("step %s: %s", s.Name, s.Duration.Round(100*time.Millisecond))
	}
}

func stepNames(res Result) []string {
	var names []string
	for _, s := range res.Steps {
		names = append(names, s.Name)
	}
	return names
}

// TestRunAMD64 applies every kind of step to an amd64 guest on an amd64
// host: file operations, an offline package install through a guest
// command, sysprep, guest commands after it that check the guest's files
// from the inside, resize and sparsify.
func TestRunAMD64(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Fatalf("this test runs a guest command of an amd64 disk; it needs an amd64 host, not %s", runtime.GOARCH)
	}
	t.Parallel()
	base := baseCopy(t, "amd64")
	deb := filepath.Join(filepath.Dir(guestDisk(t, "amd64")), testPackage)
	before := sha256File(t, base)
	// check is a guest command that fails Run, with its message in the
	// error, unless the test holds in the guest.
	check := func(test, msg string) string {
		return "run-command " + test + " || { echo 'guest check failed: " + msg + "'; exit 1; }"
	}
	spec := Spec{
		Commands: []string{
			"# the package is copied in, then installed by the guest's dpkg",
			"write /etc/motd:customized by pkg/customize",
			"mkdir /opt/custom",
			"copy-in " + testPackage + ":/tmp",
			"run-command dpkg -i /tmp/" + testPackage + " && rm /tmp/" + testPackage,
		},
		Sysprep: &Sysprep{Enabled: true, Operations: []string{"bash-history", "logfiles", "machine-id"}},
		PostCommands: []string{
			check(`grep -qx 'hello from containerdisk-test' /usr/share/containerdisk-test/hello.txt`, "the package is not installed"),
			check(`test ! -e /tmp/`+testPackage, "the package file is left in /tmp"),
			check(`grep -qx 'customized by pkg/customize' /etc/motd`, "write"),
			check(`test -d /opt/custom`, "mkdir"),
			check(`test ! -e /root/.bash_history`, "sysprep bash-history"),
			check(`test ! -e /var/log/test.log`, "sysprep logfiles"),
			// Not machine-id: virt-customize writes a new one when it finds
			// it empty (TestRunForeignArchFileOperations checks it).
		},
		Resize:   "+64M",
		Sparsify: true,
	}
	l := &logTo{t: t}
	res, err := Run(context.Background(), Request{
		Base: base, Format: disk.FormatQCOW2, Arch: "amd64", Spec: spec,
		WorkDir: t.TempDir(), Dir: filepath.Dir(deb), Timeout: 10 * time.Minute, Log: l.log,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	logSteps(t, res)
	if got, want := strings.Join(stepNames(res), ","), "copy,resize,customize,sysprep,postCommands,sparsify"; got != want {
		t.Errorf("steps = %s, want %s", got, want)
	}
	// The digest covers the package file copied in, not only the spec.
	inputs, err := spec.InputsDigest(filepath.Dir(deb))
	if err != nil {
		t.Fatal(err)
	}
	if res.SpecDigest != inputs || inputs == spec.Digest() || res.Format != disk.FormatQCOW2 {
		t.Errorf("result = %+v, want format qcow2 and digest %s (not the spec's own %s)", res, inputs, spec.Digest())
	}
	if after := sha256File(t, base); after != before {
		t.Errorf("base changed: sha256 %s, was %s", after, before)
	}
	info, err := disk.Inspect(res.Path)
	if err != nil {
		t.Fatalf("the result is no valid disk: %v", err)
	}
	baseInfo, err := disk.Inspect(base)
	if err != nil {
		t.Fatal(err)
	}
	if info.VirtualSize != baseInfo.VirtualSize+64<<20 {
		t.Errorf("virtual size %d, want %d + 64 MiB", info.VirtualSize, baseInfo.VirtualSize)
	}
	out, err := exec.Command("qemu-img", "info", "--output=json", res.Path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var qi struct {
		BackingFilename string `json:"backing-filename"`
		Format          string `json:"format"`
	}
	if err := json.Unmarshal(out, &qi); err != nil {
		t.Fatal(err)
	}
	if qi.BackingFilename != "" || qi.Format != "qcow2" {
		t.Errorf("qemu-img info: format %q, backing file %q; want qcow2 without one", qi.Format, qi.BackingFilename)
	}
	// virt-customize keeps the output of guest commands in the guest's
	// /tmp/builder.log unless told not to: a published image must not carry
	// it. Read from the ext4 partition (at 1 MiB) without an appliance.
	raw := filepath.Join(t.TempDir(), "disk.raw")
	if out, err := exec.Command("qemu-img", "convert", "-O", "raw", res.Path, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	ls, err := exec.Command("/sbin/debugfs", "-R", "ls /tmp", raw+"?offset=1048576").CombinedOutput()
	if err != nil || !strings.Contains(string(ls), ".") {
		t.Fatalf("debugfs ls /tmp: %v\n%s", err, ls)
	}
	if strings.Contains(string(ls), "builder.log") {
		t.Errorf("the guest's /tmp has virt-customize's log:\n%s", ls)
	}
}

// TestRunForeignArchFileOperations customizes an arm64 disk on this amd64
// host with file operations and sysprep, and reads them back; libguestfs
// sees the disk as aarch64.
func TestRunForeignArchFileOperations(t *testing.T) {
	t.Parallel()
	arch := "arm64"
	if runtime.GOARCH == "arm64" {
		t.Fatalf("this test needs a disk of another architecture than the host's (%s)", runtime.GOARCH)
	}
	base := baseCopy(t, arch)
	l := &logTo{t: t}
	res, err := Run(context.Background(), Request{
		Base: base, Arch: arch, WorkDir: t.TempDir(), Timeout: 10 * time.Minute, Log: l.log,
		Spec: Spec{
			Commands: []string{
				"write /etc/motd:arm64 customized on " + runtime.GOARCH,
				"append-line /etc/motd:second line",
				"mkdir /opt/arm",
				"root-password password:s3cret",
				"hostname arm64-guest",
				"ssh-inject root:string:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKtest test@customize",
			},
			Sysprep: &Sysprep{Enabled: true, Operations: []string{"bash-history", "logfiles", "machine-id"}},
		},
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	logSteps(t, res)
	if got, want := strings.Join(stepNames(res), ","), "copy,customize,sysprep"; got != want {
		t.Errorf("steps = %s, want %s", got, want)
	}
	got := guestfish(t, res.Path, `inspect-get-arch /dev/sda1
cat /etc/motd
is-dir /opt/arm
cat /etc/hostname
cat /root/.ssh/authorized_keys
exists /root/.bash_history
exists /var/log/test.log
filesize /etc/machine-id
grep ^root: /etc/shadow
`)
	// root-password wrote a hash of the password, whatever the host.
	if n := len(got); n == 0 || !strings.HasPrefix(got[n-1], "root:$") {
		t.Errorf("root's shadow line is not a password hash: %q", got)
	} else {
		got = got[:n-1]
	}
	want := []string{
		"aarch64",
		"arm64 customized on " + runtime.GOARCH, "second line",
		"true",
		"arm64-guest",
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKtest test@customize",
		"false", // sysprep bash-history
		"false", // sysprep logfiles
		"0",     // sysprep machine-id empties it
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("guest files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRunForeignArchRefused asks for a guest command on an arm64 disk on an
// amd64 host: Run refuses before starting any tool, naming the operation,
// both architectures and the cluster path.
func TestRunForeignArchRefused(t *testing.T) {
	t.Parallel()
	if runtime.GOARCH == "arm64" {
		t.Fatalf("this test needs a disk of another architecture than the host's (%s)", runtime.GOARCH)
	}
	base := guestDisk(t, "arm64")
	work := t.TempDir()
	l := &logTo{t: t}
	start := time.Now()
	res, err := Run(context.Background(), Request{
		Base: base, Arch: "arm64", WorkDir: work, Log: l.log,
		Spec: Spec{Commands: []string{"write /etc/motd:hi", "run-command dpkg -i /tmp/x.deb"}},
	})
	var ae *ArchError
	if !errors.As(err, &ae) {
		t.Fatalf("Run: %v, want an *ArchError", err)
	}
	for _, s := range []string{"commands[1]: run-command", "arm64 (aarch64)", "this host is " + runtime.GOARCH, "kubectl containerdisk pipeline --in-cluster"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	if len(l.lines) != 0 || len(res.Steps) != 0 {
		t.Errorf("tools ran before the refusal: log %q, steps %v", l.lines, res.Steps)
	}
	if entries, _ := os.ReadDir(work); len(entries) != 0 {
		t.Errorf("the work directory has %d entries, want none", len(entries))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the refusal took %s: it must come before any appliance starts", d)
	}
}

// TestRunFailures covers a guest command that fails, a disk libguestfs
// cannot inspect, and a tool killed at its timeout: each error names the
// tool, its exit status and the libguestfs tail, the base is unchanged and
// no result is left behind.
func TestRunFailures(t *testing.T) {
	t.Parallel()
	noOS := filepath.Join(t.TempDir(), "empty.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", noOS, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v\n%s", err, out)
	}
	type outcome struct {
		err error
		d   time.Duration
	}
	cases := []struct {
		name    string
		base    string
		cmd     string
		timeout time.Duration
		want    []string

		before, work string
		done         chan outcome
	}{
		{name: "command fails", base: baseCopy(t, "amd64"), cmd: "run-command echo the guest says no; exit 3",
			want: []string{"customize: step customize: virt-customize: exit status 1", "the guest says no", "command exited with an error"}},
		{name: "no operating system", base: noOS, cmd: "write /etc/motd:hi",
			want: []string{"virt-customize: exit status 1", "no operating systems were found"}},
		{name: "timeout", base: baseCopy(t, "amd64"), cmd: "run-command sleep 3600", timeout: 45 * time.Second,
			want: []string{"virt-customize: killed at the timeout: no result after 45s"}},
	}
	// All runs start at once, not as parallel subtests: go test runs only
	// GOMAXPROCS parallel tests, and these wait on QEMU, not on Go.
	for i := range cases {
		tc := &cases[i]
		tc.before = sha256File(t, tc.base)
		tc.work = t.TempDir()
		tc.done = make(chan outcome, 1)
		timeout := tc.timeout
		if timeout == 0 {
			timeout = 10 * time.Minute
		}
		l := &logTo{t: t}
		go func() {
			start := time.Now()
			_, err := Run(context.Background(), Request{
				Base: tc.base, Arch: "amd64", WorkDir: tc.work, Timeout: timeout, Log: l.log,
				Spec: Spec{Commands: []string{tc.cmd}},
			})
			tc.done <- outcome{err, time.Since(start)}
		}()
	}
	for i := range cases {
		tc := &cases[i]
		t.Run(tc.name, func(t *testing.T) {
			o := <-tc.done
			err := o.err
			t.Logf("failed after %s", o.d.Round(100*time.Millisecond))
			var te *ToolError
			if !errors.As(err, &te) {
				t.Fatalf("Run: %v, want a *ToolError", err)
			}
			t.Logf("error:\n%v", err)
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not mention %q", s)
				}
			}
			if te.Tool != "virt-customize" || len(te.Tail) == 0 || len(te.Tail) > tailLines {
				t.Errorf("ToolError: tool %q with %d tail lines, want virt-customize with 1 to %d", te.Tool, len(te.Tail), tailLines)
			}
			if after := sha256File(t, tc.base); after != tc.before {
				t.Errorf("base changed: sha256 %s, was %s", after, tc.before)
			}
			if _, err := os.Stat(filepath.Join(tc.work, "customized.qcow2")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the partial result is left: %v", err)
			}
			// Nothing of the tool may outlive Run: its QEMU would hold the
			// disk.
			if procs := processesWith(tc.work); len(procs) > 0 {
				t.Errorf("processes still use %s after Run: %q", tc.work, procs)
			}
		})
	}
}

// processesWith lists the command lines of processes that mention s.
func processesWith(s string) []string {
	var found []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), s) {
			found = append(found, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// TestRunPackages installs packages with the guest's apt from a flat
// repository the test serves: one the repository has, checked by a guest
// command in the same run, and one it has not, which fails the run with
// apt's own message, the base unchanged and no result left.
//
// The repository is on the host's loopback only: the appliance's QEMU user
// network (libguestfs gives it net=169.254.0.0/16) maps the gateway
// address 169.254.2.2 to the host's 127.0.0.1. Run installs before the
// spec's commands, so the source is written by a first run whose result is
// the base of the other two: three appliance starts, two of them at once.
func TestRunPackages(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Fatalf("this test runs the guest's apt of an amd64 disk; it needs an amd64 host, not %s", runtime.GOARCH)
	}
	t.Parallel()
	deb, err := os.ReadFile(filepath.Join(filepath.Dir(guestDisk(t, "amd64")), testPackage))
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	if err := os.WriteFile(filepath.Join(repo, testPackage), deb, 0o644); err != nil {
		t.Fatal(err)
	}
	// The stanza of hack/guestdisk.sh's package, as dpkg-scanpackages
	// writes it; with [trusted=yes] apt needs no Release file.
	sum := sha256.Sum256(deb)
	index := fmt.Sprintf("Package: containerdisk-test\nVersion: 1.0\nArchitecture: all\nFilename: ./%s\nSize: %d\nSHA256: %s\nDescription: installs one file, for the tests of pkg/customize\n",
		testPackage, len(deb), hex.EncodeToString(sum[:]))
	if err := os.WriteFile(filepath.Join(repo, "Packages"), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	served := map[string]bool{}
	files := http.FileServer(http.Dir(repo))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		served[path.Clean(r.URL.Path)] = true
		mu.Unlock()
		files.ServeHTTP(w, r)
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	source := fmt.Sprintf("deb [trusted=yes] http://169.254.2.2:%d/ ./", port)

	l := &logTo{t: t}
	sources, err := Run(context.Background(), Request{
		Base: baseCopy(t, "amd64"), Arch: "amd64", WorkDir: t.TempDir(), Timeout: 10 * time.Minute, Log: l.log,
		Spec: Spec{Commands: []string{"write /etc/apt/sources.list:" + source}},
	})
	if err != nil {
		t.Fatalf("Run writing the apt source: %v", err)
	}
	base := sources.Path
	before := sha256File(t, base)

	type outcome struct {
		res  Result
		err  error
		work string
	}
	run := func(spec Spec) chan outcome {
		done := make(chan outcome, 1)
		work := t.TempDir()
		go func() {
			res, err := Run(context.Background(), Request{
				Base: base, Arch: "amd64", WorkDir: work, Timeout: 10 * time.Minute, Log: l.log, Spec: spec,
			})
			done <- outcome{res, err, work}
		}()
		return done
	}
	// Both start at once: they only read base.
	installed := run(Spec{
		Packages: []string{"containerdisk-test"},
		Network:  true,
		Commands: []string{"run-command grep -qx 'hello from containerdisk-test' /usr/share/containerdisk-test/hello.txt || { echo 'guest check failed: the package is not installed'; exit 1; }"},
	})
	missing := run(Spec{Packages: []string{"a-package-that-does-not-exist"}, Network: true})

	t.Run("installs", func(t *testing.T) {
		o := <-installed
		if o.err != nil {
			t.Fatalf("Run: %v", o.err)
		}
		logSteps(t, o.res)
		mu.Lock()
		defer mu.Unlock()
		if !served["/"+testPackage] {
			t.Errorf("the guest's apt did not download /%s from the test's repository; it asked for %v", testPackage, served)
		}
	})
	t.Run("missing package", func(t *testing.T) {
		o := <-missing
		var te *ToolError
		if !errors.As(o.err, &te) {
			t.Fatalf("Run: %v, want a *ToolError", o.err)
		}
		t.Logf("error:\n%v", o.err)
		for _, s := range []string{
			"customize: step customize: virt-customize: exit status 1",
			"E: Unable to locate package a-package-that-does-not-exist",
			"command exited with an error",
		} {
			if !strings.Contains(o.err.Error(), s) {
				t.Errorf("error does not mention %q", s)
			}
		}
		if after := sha256File(t, base); after != before {
			t.Errorf("base changed: sha256 %s, was %s", after, before)
		}
		if _, err := os.Stat(filepath.Join(o.work, "customized.qcow2")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the partial result is left: %v", err)
		}
		if procs := processesWith(o.work); len(procs) > 0 {
			t.Errorf("processes still use %s after Run: %q", o.work, procs)
		}
	})
}

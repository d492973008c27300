package customize

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/pkg/disk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/inputerr"
)

// DefaultTimeout bounds each tool call when Request.Timeout is zero. A call
// takes under a minute under TCG; one guest command was once seen to hang
// for good, and a timeout is what turns that into an error.
const DefaultTimeout = 15 * time.Minute

// tailLines is how much of a failing tool's output its error keeps: enough
// for libguestfs's own message and the guest command's output before it.
const tailLines = 20

// Request is one customization of one disk.
type Request struct {
	// Base is the disk to customize, typically the cached download. It is
	// only read.
	Base string
	// Format is Base's format, "qcow2" or "raw"; empty means whatever
	// pkg/disk finds, and a mismatch is an error.
	Format disk.Format
	// Arch is the disk's architecture as OCI names it: amd64, arm64,
	// s390x, ppc64le or riscv64.
	Arch string
	// Spec is what to do.
	Spec Spec
	// WorkDir receives the result (customized.qcow2) and scratch files; it
	// must exist. Nothing else in it is touched.
	WorkDir string
	// Dir is the directory relative host paths in commands (copy-in,
	// upload, run, firstboot) are read from, usually that of the catalog
	// file; empty means the process's working directory.
	Dir string
	// Timeout bounds each tool call; zero means DefaultTimeout.
	Timeout time.Duration
	// Log, when set, receives progress: each step and the tools' output,
	// one line per call.
	Log func(string)
}

// Result is a customized disk.
type Result struct {
	// Path is the customized disk, in WorkDir.
	Path string
	// Format is always qcow2, without a backing file.
	Format disk.Format
	// SpecDigest is Spec.InputsDigest(Dir) of the applied spec: its
	// digest and that of the host files it read.
	SpecDigest string
	// Steps are the steps run, in order, with their durations.
	Steps []Step
}

// Step is one step of a run and its duration.
type Step struct {
	// Name is "copy", "resize", "customize", "sysprep", "postCommands" or
	// "sparsify".
	Name string
	// Duration is how long the step took.
	Duration time.Duration
}

// ArchError reports operations that run guest programs, asked of a disk of
// another architecture than the host's. No tool was started.
type ArchError struct {
	// Operations are the offending operations, as Spec.GuestExec lists
	// them.
	Operations []string
	// DiskArch and HostArch are OCI architecture names.
	DiskArch, HostArch string
}

func (e *ArchError) Error() string {
	return fmt.Sprintf("%s runs programs of the guest, which needs a host of the disk's architecture %s (%s), but this host is %s: "+
		"run it on a %s node with `kubectl containerdisk pipeline --in-cluster`, or keep to file operations (write, copy-in, mkdir, edit, ssh-inject, root-password, sysprep) here",
		strings.Join(e.Operations, ", "), e.DiskArch, libguestfsArch[e.DiskArch], e.HostArch, e.DiskArch)
}

// CheckArch reports whether this host can apply the spec to a disk of
// architecture arch: an *ArchError when the spec runs guest programs and
// arch is not the host's. It starts nothing, so a caller can refuse a disk
// before downloading it.
func (s Spec) CheckArch(arch string) error {
	if _, ok := libguestfsArch[arch]; !ok {
		return &inputerr.Error{What: "disk architecture", Input: arch, Expected: "amd64, arm64, s390x, ppc64le or riscv64"}
	}
	if ops := s.GuestExec(); len(ops) > 0 && arch != runtime.GOARCH {
		return &ArchError{Operations: ops, DiskArch: arch, HostArch: runtime.GOARCH}
	}
	return nil
}

// ToolError reports a tool that failed or timed out.
type ToolError struct {
	// Tool is the program, e.g. "virt-customize".
	Tool string
	// ExitCode is its exit status, or -1 when it was killed.
	ExitCode int
	// TimedOut reports that it was killed at Request.Timeout.
	TimedOut bool
	// Tail is the last lines of its output (stdout and stderr together).
	Tail []string
	// Err is the error from running it.
	Err error
}

func (e *ToolError) Error() string {
	var b strings.Builder
	b.WriteString(e.Tool)
	switch {
	case e.TimedOut:
		fmt.Fprintf(&b, ": killed at the timeout: %v", e.Err)
	case e.ExitCode >= 0:
		fmt.Fprintf(&b, ": exit status %d", e.ExitCode)
	default:
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if len(e.Tail) > 0 {
		b.WriteString("; last lines of its output:\n")
		for _, l := range e.Tail {
			b.WriteString("  ")
			b.WriteString(l)
			b.WriteString("\n")
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Unwrap returns the error from running the tool.
func (e *ToolError) Unwrap() error { return e.Err }

// Run applies req.Spec to a copy of req.Base and returns the copy. The steps
// run in this order, each only when the spec asks for it:
//
//  1. copy: qemu-img convert to a qcow2 in WorkDir (always)
//  2. resize: qemu-img resize
//  3. customize: one virt-customize call for Update, Packages, Commands
//     and SELinuxRelabel
//  4. sysprep: virt-sysprep
//  5. postCommands: a second virt-customize call
//  6. sparsify: virt-sparsify --in-place
//
// Before any tool starts, Run validates the spec, checks Base with pkg/disk
// and refuses guest-program operations on a foreign architecture
// (*ArchError). A failing tool gives a *ToolError with the last lines of its
// output. On error the partial result is removed; Base is never written.
func Run(ctx context.Context, req Request) (Result, error) {
	res := Result{Format: disk.FormatQCOW2}
	if err := req.Spec.Validate(); err != nil {
		return res, fmt.Errorf("customize spec: %w", err)
	}
	// Reading the host files now finds a missing one, or a link out of
	// Dir, before any tool starts.
	var err error
	if res.SpecDigest, err = req.Spec.InputsDigest(req.Dir); err != nil {
		return res, fmt.Errorf("customize spec: %w", err)
	}
	if err := req.Spec.CheckArch(req.Arch); err != nil {
		return res, err
	}
	info, err := disk.Inspect(req.Base)
	if err != nil {
		return res, fmt.Errorf("customizing: %w", err)
	}
	if req.Format != "" && req.Format != info.Format {
		return res, &inputerr.Error{What: "disk format of " + req.Base, Input: string(req.Format), Expected: string(info.Format) + ", which it is"}
	}
	var grow int64
	if req.Spec.Resize != "" {
		n, plus, _ := parseSize(req.Spec.Resize)
		if !plus && n < info.VirtualSize {
			return res, inputerr.Errorf("customize spec: resize: %s is smaller than the disk's %d bytes: only growing is supported", req.Spec.Resize, info.VirtualSize)
		}
		grow = n
	}
	if err := lookTools(req.Spec); err != nil {
		return res, err
	}
	workDir, err := filepath.Abs(req.WorkDir)
	if err != nil {
		return res, fmt.Errorf("customizing: %w", err)
	}
	// The tools run in Dir, so a relative Base would be read from there.
	if req.Base, err = filepath.Abs(req.Base); err != nil {
		return res, fmt.Errorf("customizing: %w", err)
	}
	r := &runner{req: req, timeout: req.Timeout, env: toolEnv()}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	out := filepath.Join(workDir, "customized.qcow2")
	ok := false
	defer func() {
		if !ok {
			os.Remove(out)
		}
	}()

	// A full copy rather than an overlay: the result must not depend on
	// Base, and one copy now costs less than an overlay flattened later.
	if err := r.step(ctx, &res, "copy", "qemu-img", "convert", "-f", string(info.Format), "-O", "qcow2", req.Base, out); err != nil {
		return res, err
	}
	if grow > 0 {
		if err := r.step(ctx, &res, "resize", "qemu-img", "resize", "-f", "qcow2", out, req.Spec.Resize); err != nil {
			return res, err
		}
	}
	s := req.Spec
	var lines []string
	if s.Update {
		lines = append(lines, "update")
	}
	if len(s.Packages) > 0 {
		lines = append(lines, "install "+strings.Join(s.Packages, ","))
	}
	lines = append(lines, s.Commands...)
	if len(lines) > 0 || s.SELinuxRelabel {
		file := filepath.Join(workDir, "commands")
		if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			return res, fmt.Errorf("customizing: %w", err)
		}
		defer os.Remove(file)
		// --no-logfile: virt-customize otherwise leaves the output of the
		// guest commands in the guest's /tmp/builder.log, which a
		// published image must not carry.
		args := []string{"--format", "qcow2", "-a", out, network(s.Network), "--no-logfile", "--commands-from-file", file}
		if s.SELinuxRelabel {
			args = append(args, "--selinux-relabel")
		}
		if err := r.step(ctx, &res, "customize", "virt-customize", args...); err != nil {
			return res, err
		}
	}
	if s.sysprepEnabled() {
		args := []string{"--format", "qcow2", "-a", out}
		if len(s.Sysprep.Operations) > 0 {
			args = append(args, "--operations", strings.Join(s.Sysprep.Operations, ","))
		}
		if err := r.step(ctx, &res, "sysprep", "virt-sysprep", args...); err != nil {
			return res, err
		}
	}
	if len(s.PostCommands) > 0 {
		file := filepath.Join(workDir, "postcommands")
		if err := os.WriteFile(file, []byte(strings.Join(s.PostCommands, "\n")+"\n"), 0o600); err != nil {
			return res, fmt.Errorf("customizing: %w", err)
		}
		defer os.Remove(file)
		if err := r.step(ctx, &res, "postCommands", "virt-customize", "--format", "qcow2", "-a", out, network(s.Network), "--no-logfile", "--commands-from-file", file); err != nil {
			return res, err
		}
	}
	if s.Sparsify {
		if err := r.step(ctx, &res, "sparsify", "virt-sparsify", "--in-place", "--format", "qcow2", out); err != nil {
			return res, err
		}
	}
	// The tools write qcow2 through QEMU; checking the result the way a
	// download is checked keeps a broken result from reaching build.
	if _, err := disk.Inspect(out); err != nil {
		return res, fmt.Errorf("customized disk: %w", err)
	}
	ok = true
	res.Path = out
	return res, nil
}

func network(on bool) string {
	if on {
		return "--network"
	}
	return "--no-network"
}

// lookTools checks that the tools the spec needs are installed, so a
// missing package is one clear error before a copy of a large disk.
func lookTools(s Spec) error {
	tools := []string{"qemu-img"}
	if len(s.Packages) > 0 || s.Update || len(s.Commands) > 0 || s.SELinuxRelabel || len(s.PostCommands) > 0 {
		tools = append(tools, "virt-customize")
	}
	if s.sysprepEnabled() {
		tools = append(tools, "virt-sysprep")
	}
	if s.Sparsify {
		tools = append(tools, "virt-sparsify")
	}
	var missing []string
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("customizing needs %s, not found in PATH; on Debian: apt-get install --no-install-recommends qemu-utils guestfs-tools libguestfs-tools linux-image-cloud-%s (the appliance needs a kernel in /boot)",
			strings.Join(missing, ", "), runtime.GOARCH)
	}
	return nil
}

// toolEnv is the tools' environment: the process's, with the direct
// backend unless one is chosen. libvirt's backend, the default, needs a
// libvirt daemon that containers and CI machines rarely run.
func toolEnv() []string {
	env := os.Environ()
	if os.Getenv("LIBGUESTFS_BACKEND") == "" {
		env = append(env, "LIBGUESTFS_BACKEND=direct")
	}
	return env
}

type runner struct {
	req     Request
	timeout time.Duration
	env     []string
}

func (r *runner) log(s string) {
	if r.req.Log != nil {
		r.req.Log(s)
	}
}

// step runs one tool call as the named step and records its duration.
func (r *runner) step(ctx context.Context, res *Result, name, tool string, args ...string) error {
	r.log(fmt.Sprintf("customize: %s: %s", name, tool))
	start := time.Now()
	err := r.run(ctx, tool, args...)
	d := time.Since(start)
	res.Steps = append(res.Steps, Step{Name: name, Duration: d})
	if err != nil {
		return fmt.Errorf("customize: step %s: %w", name, err)
	}
	r.log(fmt.Sprintf("customize: %s: done in %s", name, d.Round(100*time.Millisecond)))
	return nil
}

// run runs tool in its own process group, so that at the timeout the
// appliance's QEMU dies with it instead of holding the disk.
func (r *runner) run(parent context.Context, tool string, args ...string) error {
	ctx, cancel := context.WithTimeout(parent, r.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env = r.env
	cmd.Dir = r.req.Dir
	ownProcessGroup(cmd)
	// A child that keeps the output pipe open must not hold Wait forever.
	cmd.WaitDelay = 10 * time.Second
	tail := &tailWriter{log: r.log, prefix: tool + ": "}
	cmd.Stdout = tail
	cmd.Stderr = tail
	err := cmd.Run()
	tail.flush()
	if err == nil {
		return nil
	}
	te := &ToolError{Tool: tool, ExitCode: -1, Tail: tail.lines, Err: err}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		te.ExitCode = exit.ExitCode()
	}
	switch {
	case parent.Err() != nil:
		te.Err = fmt.Errorf("%w (%v)", parent.Err(), err)
		te.ExitCode = -1
	case ctx.Err() != nil:
		te.TimedOut = true
		te.ExitCode = -1
		te.Err = fmt.Errorf("no result after %s: %w", r.timeout, err)
	}
	return te
}

// tailWriter passes each output line to log and keeps the last tailLines.
// Both stdout and stderr write to it, from the exec package's goroutines.
type tailWriter struct {
	mu     sync.Mutex
	log    func(string)
	prefix string
	buf    []byte
	lines  []string
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexAny(string(w.buf), "\r\n")
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *tailWriter) line(l string) {
	l = strings.TrimRight(l, " \t")
	if l == "" {
		return
	}
	if strings.HasPrefix(l, w.prefix) {
		w.log(l)
	} else {
		w.log(w.prefix + l)
	}
	w.lines = append(w.lines, l)
	if len(w.lines) > tailLines {
		w.lines = w.lines[len(w.lines)-tailLines:]
	}
}

func (w *tailWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

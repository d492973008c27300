// Package customize applies a customization spec to a VM disk with the
// libguestfs tools (virt-customize, virt-sysprep, virt-sparsify) and
// qemu-img, between the download of a disk and its build into a
// containerdisk.
//
// It works on a copy: the base disk, typically a cached download, is never
// written. The result is a self-contained qcow2 (no backing file) that
// pkg/disk accepts, so every check of a plain download applies to it.
//
// Operations that run the guest's own programs (run-command, install,
// update…) need a host of the disk's architecture; Run refuses them on
// another host before starting any tool. File operations (write, copy-in,
// mkdir, edit, ssh-inject, root-password, sysprep's file operations) work on
// any host.
//
// The tools start a small appliance VM. Run sets LIBGUESTFS_BACKEND=direct
// when it is unset and passes the rest of the environment through; on hosts
// where /dev/kvm is present but unusable (QEMU aborts under KVM) set
// LIBGUESTFS_BACKEND_SETTINGS=force_tcg. Under TCG every tool call costs
// 25-45 s, which is why the spec is applied with as few calls as possible.
package customize

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Spec is a customization of a disk, as written under `customize:` in a
// catalog entry. The zero Spec changes nothing but the copy's format.
type Spec struct {
	// Packages are installed with the guest's package manager (apt, dnf…),
	// after Update and before Commands. It needs Network.
	Packages []string `json:"packages,omitempty" yaml:"packages,omitempty"`
	// Update upgrades the guest's packages first. It needs Network.
	Update bool `json:"update,omitempty" yaml:"update,omitempty"`
	// Commands are virt-customize --commands-from-file lines, verbatim:
	// "run-command apt-get clean", "write /etc/motd:hello", "# a comment".
	// A line ending in a backslash continues on the next one.
	Commands []string `json:"commands,omitempty" yaml:"commands,omitempty"`
	// Sysprep, when set and enabled, runs virt-sysprep after Commands.
	Sysprep *Sysprep `json:"sysprep,omitempty" yaml:"sysprep,omitempty"`
	// SELinuxRelabel relabels the guest's files after Commands (or, on a
	// host of another architecture, marks them for relabelling at boot).
	SELinuxRelabel bool `json:"selinuxRelabel,omitempty" yaml:"selinuxRelabel,omitempty"`
	// Resize grows the virtual disk before anything else: "+2G" adds 2 GiB,
	// "20G" sets the size, which must not be smaller than the disk's. The
	// guest grows its partition itself at boot (cloud-init growpart).
	Resize string `json:"resize,omitempty" yaml:"resize,omitempty"`
	// Sparsify returns the free space of the guest's file systems to the
	// host (virt-sparsify --in-place), last, so the image is smaller.
	Sparsify bool `json:"sparsify,omitempty" yaml:"sparsify,omitempty"`
	// Network gives the appliance a network while Packages, Update and
	// Commands run. Without it the run uses no network, which keeps it
	// reproducible.
	Network bool `json:"network,omitempty" yaml:"network,omitempty"`
	// PostCommands are virt-customize lines, like Commands, run after
	// Sysprep: for what sysprep would undo or remove. Note that
	// virt-customize writes a new /etc/machine-id when it finds it empty,
	// undoing sysprep's machine-id operation: end with "truncate
	// /etc/machine-id" to keep it empty.
	PostCommands []string `json:"postCommands,omitempty" yaml:"postCommands,omitempty"`
}

// Sysprep selects virt-sysprep's operations.
type Sysprep struct {
	// Enabled runs virt-sysprep.
	Enabled bool `json:"enabled" yaml:"enabled"`
	// Operations are virt-sysprep --operations items: operation names as
	// `virt-sysprep --list-operations` prints them, "defaults", "all", and
	// "-name" to remove one. Empty means virt-sysprep's defaults.
	Operations []string `json:"operations,omitempty" yaml:"operations,omitempty"`
}

// packageName is what a package manager takes as one argument: a name,
// optionally with a version or release after = or :. No spaces or commas,
// which would split it.
var packageName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._:~=*@/-]*$`)

// sizeRE is a qemu-img size: a number of bytes or of K, M, G, T (binary
// units, as qemu-img reads them), optionally with + to grow by it.
var sizeRE = regexp.MustCompile(`^(\+?)([0-9]+)([KkMGT]?)$`)

// Validate checks the spec without running anything. Every problem is
// reported, each naming its field and index (`commands[2]: unknown
// virt-customize command "frobnicate"`); the errors are input errors
// (inputerr.Is), each a *FieldError.
func (s Spec) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	for i, p := range s.Packages {
		if !packageName.MatchString(p) {
			bad(fmt.Sprintf("packages[%d]", i), "%q is not a package name: expected letters, digits and + . _ : ~ = - only", p)
		}
	}
	if (len(s.Packages) > 0 || s.Update) && !s.Network {
		what := "packages"
		if len(s.Packages) == 0 {
			what = "update"
		}
		bad(what, "the package manager downloads packages, which needs network: true")
	}
	errs = append(errs, checkCommands("commands", s.Commands)...)
	errs = append(errs, checkCommands("postCommands", s.PostCommands)...)
	errs = append(errs, checkHostFiles(s)...)
	if s.Sysprep != nil {
		for i, op := range s.Sysprep.Operations {
			_, known := sysprepOperations[strings.TrimPrefix(op, "-")]
			if !known && !sysprepSpecial[op] {
				bad(fmt.Sprintf("sysprep.operations[%d]", i), "unknown operation %q: expected one of `virt-sysprep --list-operations`, \"defaults\", \"all\", or -NAME to remove one", op)
			}
		}
	}
	if s.Resize != "" {
		if _, _, err := parseSize(s.Resize); err != nil {
			bad("resize", "%v", err)
		}
	}
	return errors.Join(errs...)
}

// FieldError is a problem with one field of a spec, which Validate
// returns (joined) so that a caller reading the spec from a file can report
// each at the line of its field.
type FieldError struct {
	// Field is the field's path in the spec: "commands[2]",
	// "sysprep.operations[1]", "resize".
	Field string
	// Msg says what is wrong and what was expected.
	Msg string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// InputError reports that the spec, which the user wrote, is at fault.
func (e *FieldError) InputError() bool { return true }

func fieldErrorf(field string, i int, format string, args ...any) error {
	return &FieldError{Field: fmt.Sprintf("%s[%d]", field, i), Msg: fmt.Sprintf(format, args...)}
}

// checkCommands validates virt-customize lines of the field named field.
func checkCommands(field string, lines []string) []error {
	var errs []error
	for _, c := range commandLines(lines) {
		i, verb, arg, hasArg, continued := c.index, c.verb, c.arg, c.hasArg, c.continues
		if verb == "" || strings.HasPrefix(verb, "#") {
			continue
		}
		takesArg, known := commandArgs[strings.TrimPrefix(verb, "--")]
		switch {
		case !known:
			errs = append(errs, fieldErrorf(field, i, "unknown virt-customize command %q: expected one of the customization options of virt-customize(1) without \"--\", e.g. \"run-command CMD\" or \"write FILE:CONTENT\"", verb))
		case refusedCommands[strings.TrimPrefix(verb, "--")] != "":
			errs = append(errs, fieldErrorf(field, i, "%s is not allowed here: %s", verb, refusedCommands[strings.TrimPrefix(verb, "--")]))
		case takesArg && (!hasArg || strings.TrimSpace(arg) == "" && !continued):
			errs = append(errs, fieldErrorf(field, i, "%s needs an argument, as in %q", verb, verb+" ARG"))
		case !takesArg && hasArg && strings.TrimSpace(arg) != "":
			errs = append(errs, fieldErrorf(field, i, "%s takes no argument, got %q", verb, arg))
		}
	}
	return errs
}

// commandLine is one command of a commands file.
type commandLine struct {
	// index is the command's first line.
	index     int
	verb, arg string
	hasArg    bool
	// continues says the command goes on to the next line (a trailing \).
	continues bool
}

// commandLines returns the commands of lines: a line that continues the
// one before it (which ends in \) is part of that command, not one of its
// own.
func commandLines(lines []string) []commandLine {
	var out []commandLine
	continued := false
	for i, line := range lines {
		wasContinued := continued
		continued = strings.HasSuffix(line, `\`)
		if wasContinued {
			continue
		}
		verb, arg, hasArg := splitCommand(line)
		out = append(out, commandLine{index: i, verb: verb, arg: arg, hasArg: hasArg, continues: continued})
	}
	return out
}

// splitCommand splits a commands-file line into its command and argument,
// as virt-customize does: at the first space, after leading blanks.
func splitCommand(line string) (verb, arg string, hasArg bool) {
	line = strings.TrimLeft(line, " \t")
	line = strings.TrimSuffix(line, `\`)
	verb, arg, hasArg = strings.Cut(line, " ")
	return strings.TrimSpace(verb), arg, hasArg
}

// parseSize reads a Resize value: grow reports a leading +.
func parseSize(s string) (n int64, grow bool, err error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false, fmt.Errorf("%q is not a size: expected +N or N with an optional unit K, M, G or T, e.g. \"+2G\"", s)
	}
	n, err = strconv.ParseInt(m[2], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%q is not a size: %w", s, err)
	}
	shift := map[string]uint{"": 0, "k": 10, "K": 10, "M": 20, "G": 30, "T": 40}[m[3]]
	if n > (1<<62)>>shift {
		return 0, false, fmt.Errorf("%q is too large", s)
	}
	n <<= shift
	if n == 0 {
		return 0, false, fmt.Errorf("%q does not grow the disk: expected a size above zero", s)
	}
	return n, m[1] == "+", nil
}

// GuestExec lists the operations of the spec that run the guest's own
// programs, as "field[index]: command" (or "packages: install", "update:
// update"), in the order they run. They need a host of the disk's
// architecture; the other operations work on any host.
func (s Spec) GuestExec() []string {
	var ops []string
	if s.Update {
		ops = append(ops, "update: update")
	}
	if len(s.Packages) > 0 {
		ops = append(ops, "packages: install")
	}
	ops = append(ops, guestExecLines("commands", s.Commands)...)
	ops = append(ops, guestExecLines("postCommands", s.PostCommands)...)
	return ops
}

func guestExecLines(field string, lines []string) []string {
	var ops []string
	for _, c := range commandLines(lines) {
		if verb := strings.TrimPrefix(c.verb, "--"); guestExecCommands[verb] {
			ops = append(ops, fmt.Sprintf("%s[%d]: %s", field, c.index, verb))
		}
	}
	return ops
}

// sysprepEnabled reports whether virt-sysprep runs.
func (s Spec) sysprepEnabled() bool { return s.Sysprep != nil && s.Sysprep.Enabled }

// Digest is "sha256:" and the hex SHA-256 of the spec's canonical JSON
// encoding: the fields in a fixed order, empty lists and a disabled sysprep
// left out, so specs that mean the same thing (whatever their key order,
// layout or spelling of empty values in YAML) have the same digest. Images
// record it in a label, so an unchanged spec on an unchanged base is skipped.
// Command lines are hashed verbatim: any change to them is a change.
func (s Spec) Digest() string {
	c := s
	if !c.sysprepEnabled() {
		c.Sysprep = nil
	} else if len(c.Sysprep.Operations) == 0 {
		c.Sysprep = &Sysprep{Enabled: true}
	}
	if len(c.Packages) == 0 {
		c.Packages = nil
	}
	if len(c.Commands) == 0 {
		c.Commands = nil
	}
	if len(c.PostCommands) == 0 {
		c.PostCommands = nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		// A struct of strings and bools always encodes.
		panic(err)
	}
	sum := sha256.Sum256(append([]byte("kubectl-containerdisk customize v1\n"), b...))
	return "sha256:" + hex.EncodeToString(sum[:])
}

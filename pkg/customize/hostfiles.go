package customize

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/containerdisk/kubectl-containerdisk/pkg/inputerr"
)

// HostFile is a file or directory of the host that a command of a spec
// reads and puts into the guest: copy-in and upload sources, run and
// firstboot scripts, the key files of ssh-inject and the password files of
// root-password, password and sm-credentials.
type HostFile struct {
	// Field is the command's field and index: "commands[3]".
	Field string
	// Command is the virt-customize command, without "--".
	Command string
	// Path is the path as the command names it, relative to the spec's
	// directory.
	Path string
}

// HostFiles lists the host files the spec's commands read, in order.
func (s Spec) HostFiles() []HostFile {
	var out []HostFile
	for _, h := range s.hostFiles() {
		out = append(out, h.HostFile)
	}
	return out
}

// hostFile is a HostFile and whether its command goes on over more lines.
type hostFile struct {
	HostFile
	continued bool
}

func (s Spec) hostFiles() []hostFile {
	var out []hostFile
	for _, f := range []struct {
		name  string
		lines []string
	}{{"commands", s.Commands}, {"postCommands", s.PostCommands}} {
		for _, c := range commandLines(f.lines) {
			verb := strings.TrimPrefix(c.verb, "--")
			if p, ok := hostPath(verb, c.arg); ok {
				out = append(out, hostFile{HostFile{Field: fmt.Sprintf("%s[%d]", f.name, c.index), Command: verb, Path: p}, c.continues})
			}
		}
	}
	return out
}

// hostPath returns the host path the virt-customize command verb reads,
// given its argument, as virt-customize splits it: at the first colon for
// copy-in and upload, after "file:" in a key or password selector.
func hostPath(verb, arg string) (string, bool) {
	switch verb {
	case "copy-in", "upload":
		p, _, _ := strings.Cut(arg, ":")
		return p, true
	case "run", "firstboot":
		return arg, true
	case "ssh-inject":
		_, sel, ok := strings.Cut(arg, ":")
		if p, isFile := strings.CutPrefix(sel, "file:"); ok && isFile {
			return p, true
		}
	case "root-password":
		return passwordFile(arg)
	case "password":
		if _, sel, ok := strings.Cut(arg, ":"); ok {
			return passwordFile(sel)
		}
	case "sm-credentials":
		// user:USER:file:FILENAME
		if _, rest, ok := strings.Cut(arg, ":file:"); ok {
			return rest, true
		}
	}
	return "", false
}

// passwordFile returns the file of a password selector: file:FILENAME, or
// locked:file:FILENAME.
func passwordFile(sel string) (string, bool) {
	sel = strings.TrimPrefix(sel, "locked:")
	return strings.CutPrefix(sel, "file:")
}

// checkHostFiles refuses host paths that could read outside the spec's
// directory: a spec in a catalog someone else wrote must not be able to put
// the host's keys or password files into an image that gets published.
func checkHostFiles(s Spec) []error {
	var errs []error
	for _, h := range s.hostFiles() {
		msg := ""
		switch {
		case h.continued:
			msg = "reads a host file, so it must fit on one line: a continued line would hide part of its path"
		case strings.TrimSpace(h.Path) == "":
			msg = "names no host file"
		case path.IsAbs(h.Path) || filepath.IsAbs(h.Path) || filepath.VolumeName(h.Path) != "":
			msg = fmt.Sprintf("reads the host file %q by an absolute path: expected a path relative to the spec's directory, e.g. files/%s", h.Path, path.Base(h.Path))
		case escapes(h.Path):
			msg = fmt.Sprintf("reads the host file %q, outside the spec's directory: expected a path below it, without \"..\"", h.Path)
		}
		if msg != "" {
			errs = append(errs, &FieldError{Field: h.Field, Msg: h.Command + " " + msg})
		}
	}
	return errs
}

// escapes reports whether p has a ".." element, with either separator.
func escapes(p string) bool {
	for _, e := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		if e == ".." {
			return true
		}
	}
	return false
}

// InputsDigest is the digest of what the spec puts into a disk: Digest()
// for a spec that reads no host file, else a digest of Digest() and of the
// contents of every host file it reads below dir (a directory's names,
// modes, link targets and file contents), so that a changed file is a
// changed customization. Files are opened below dir only: a path or a
// symbolic link that leads out of dir is an error, as is a missing file.
// Empty dir is the working directory.
func (s Spec) InputsDigest(dir string) (string, error) {
	files := s.HostFiles()
	if len(files) == 0 {
		return s.Digest(), nil
	}
	if err := errors.Join(checkHostFiles(s)...); err != nil {
		return "", err
	}
	if dir == "" {
		dir = "."
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("opening the customize spec's directory: %w", err)
	}
	defer root.Close()
	h := sha256.New()
	fmt.Fprintf(h, "kubectl-containerdisk customize inputs v1\n%s\n", s.Digest())
	for _, f := range files {
		fmt.Fprintf(h, "%s %q\n", f.Field, f.Path)
		if err := hashTree(h, root, filepath.Clean(f.Path)); err != nil {
			return "", inputerr.Errorf("%s: %s reads the host file %q: %w; expected a file or directory below %s, reached without a link out of it", f.Field, f.Command, f.Path, err, dir)
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// hashTree writes name's kind, mode and contents to h, walking directories
// in name order. The top-level name may be a link within root; links below
// it are hashed as links, as copy-in's tar copies them.
func hashTree(h io.Writer, root *os.Root, name string) error {
	fi, err := root.Stat(name)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return hashFile(h, root, name, fi)
	}
	return fs.WalkDir(root.FS(), filepath.ToSlash(name), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, filepath.ToSlash(name)), "/")
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := root.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "L %q %q\n", rel, target)
		case d.IsDir():
			fmt.Fprintf(h, "D %q %o\n", rel, info.Mode().Perm())
		default:
			fmt.Fprintf(h, "F %q ", rel)
			return hashFile(h, root, p, info)
		}
		return nil
	})
}

func hashFile(h io.Writer, root *os.Root, name string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s)", name, fi.Mode().Type())
	}
	f, err := root.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	sum := sha256.New()
	n, err := io.Copy(sum, f)
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "%o %d %x\n", fi.Mode().Perm(), n, sum.Sum(nil))
	return nil
}

package pipeline

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/opencontainers/go-digest"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
)

// The grammars of the OCI distribution specification are pkg/target's
// (oras-go's): a repository name is path components of lowercase letters
// and digits joined by ".", "_", "__" or dashes, separated by "/"; a tag is
// at most 128 letters, digits, ".", "_" and "-", not starting with "." or
// "-".

// maxName bounds a repository name, as registries bound it.
const maxName = 255

// stampLen is the length of the "-YYMMDDhhmm" suffix push adds to a
// version to make its unique tag, which must still be a tag.
const stampLen = len("-0601021504")

// Expectations, as error messages state them.
const (
	expectName = `a repository name: lowercase letters and digits, joined by ".", "_", "__" or "-", path components separated by "/" (e.g. "fedora", "centos-stream", "my/ns/name"), at most 255 characters`
	expectTag  = `a tag: letters, digits, "_", "." and "-", not starting with "." or "-", at most 128 characters (e.g. "42", "9-stream", "42-1.1")`
)

var expectVersion = fmt.Sprintf(`a version that is a tag: letters, digits, "_", "." and "-", not starting with "." or "-", at most %d characters, so that VERSION-YYMMDDhhmm is a tag too (e.g. "42", "24.04")`, 128-stampLen)

// FieldError reports a field of a JSON line that would not make a valid
// repository name, path component, tag or digest. It is checked before
// anything is written, so that no line can name a place outside the
// target (such as "name":"../../x" below an oci: directory).
type FieldError struct {
	// Line is the line number on stdin; zero when the field was not read
	// from stdin.
	Line int
	// Field names the JSON field, e.g. "name" or "tags[1]".
	Field string
	// Value is what was given.
	Value string
	// Expected says what the field must be.
	Expected string
}

func (e *FieldError) Error() string {
	where := ""
	if e.Line > 0 {
		where = fmt.Sprintf("stdin line %d: ", e.Line)
	}
	return fmt.Sprintf("%s%q is %s: expected %s", where, e.Field, Quote(e.Value), e.Expected)
}

// InputError marks the error as the input's, so that a command exits 2.
func (e *FieldError) InputError() bool { return true }

// Quote returns s quoted as Go quotes strings, control characters and
// invalid UTF-8 escaped, cut after 80 characters: what the user gave,
// shown so that it cannot rewrite the terminal.
func Quote(s string) string {
	const max = 80
	if r := []rune(s); len(r) > max {
		return strconv.Quote(string(r[:max-3])) + fmt.Sprintf("... (%d characters)", len(r))
	}
	return strconv.Quote(s)
}

// Show returns s as it is when it prints as itself, else quoted as Quote
// does: names and references from input are shown with it, so that a
// control character never reaches the terminal raw.
func Show(s string) string {
	if q := strconv.Quote(s); q[1:len(q)-1] == s {
		return s
	}
	return Quote(s)
}

// ValidateName checks that name is a repository name (one or more path
// components): the form every name read from input must have before it is
// joined below a registry prefix or an oci: directory. It rules out "..",
// ".", a leading "/", backslashes and control characters.
func ValidateName(name string) error {
	if len(name) > maxName || target.ValidateRepository(name) != nil {
		return &FieldError{Field: "name", Value: name, Expected: expectName}
	}
	return nil
}

// ValidateTag checks that tag is a tag by the OCI distribution grammar.
func ValidateTag(tag string) error {
	if target.ValidateTag(tag) != nil {
		return &FieldError{Field: "tag", Value: tag, Expected: expectTag}
	}
	return nil
}

// ValidateVersion checks that version is a tag short enough that push can
// add its "-YYMMDDhhmm" unique tag to it.
func ValidateVersion(version string) error {
	if len(version) > 128-stampLen || target.ValidateTag(version) != nil {
		return &FieldError{Field: "version", Value: version, Expected: expectVersion}
	}
	return nil
}

// ValidateDigest checks that d is a digest ("sha256:" and 64 hex digits).
func ValidateDigest(d string) error {
	if _, err := digest.Parse(d); err != nil {
		return &FieldError{Field: "digest", Value: d, Expected: `a digest such as "sha256:" followed by 64 lowercase hex digits`}
	}
	return nil
}

// ValidateReference checks that ref is an image reference target.Parse
// reads. The error shows no password the reference carried.
func ValidateReference(ref string) error {
	_, err := target.Parse(ref)
	var ie *target.InvalidReferenceError
	if errors.As(err, &ie) {
		ie = ie.Redacted()
		return &FieldError{Field: "reference", Value: ie.Input, Expected: target.ExpectedReference + " (" + ie.Reason + ")"}
	}
	return err
}

// fields is the one check of the fields of a JSON line that become a path
// component, repository, tag or digest. Empty fields are left to the
// caller (some lines have no name or no digest).
type fields struct {
	line int
	err  *FieldError
}

func (f *fields) check(field, value string, validate func(string) error) {
	if value != "" {
		f.must(field, value, validate)
	}
}

// must checks value even when it is empty.
func (f *fields) must(field, value string, validate func(string) error) {
	if f.err != nil {
		return
	}
	if err := validate(value); err != nil {
		var fe *FieldError
		if !errors.As(err, &fe) {
			fe = &FieldError{Value: value, Expected: err.Error()}
		}
		fe.Line, fe.Field = f.line, field
		f.err = fe
	}
}

func (f *fields) tags(field string, tags []string) {
	for i, t := range tags {
		f.must(fmt.Sprintf("%s[%d]", field, i), t, ValidateTag)
	}
}

// Validate checks every field of the record that becomes a path component,
// repository, tag or digest: reference, name, version, tags, the tags of
// push, and the digests. line is its line number on stdin (zero when not from stdin).
// The error is a *FieldError.
func (r Record) Validate(line int) error {
	f := fields{line: line}
	f.check("reference", r.Reference, ValidateReference)
	f.check("name", r.Name, ValidateName)
	f.check("version", r.Version, ValidateVersion)
	f.tags("tags", r.Tags)
	if r.Push != nil {
		f.tags("push.tagged", r.Push.Tagged)
		f.tags("push.unchanged", r.Push.Unchanged)
	}
	f.check("digest", r.Digest, ValidateDigest)
	for i, img := range r.Images {
		f.check(fmt.Sprintf("images[%d].digest", i), img.Digest, ValidateDigest)
	}
	if f.err != nil {
		return f.err
	}
	return nil
}

// Validate checks the fields of the release line that become a path
// component, repository or tag: name, version and tags. line is its line
// number on stdin (zero when not from stdin). The error is a *FieldError.
func (r Release) Validate(line int) error {
	f := fields{line: line}
	f.check("name", r.Name, ValidateName)
	f.check("version", r.Version, ValidateVersion)
	f.tags("tags", r.Tags)
	if f.err != nil {
		return f.err
	}
	return nil
}

// ValidateGroup checks a catalog group the way Release.Validate checks a
// line, for groups that did not come from stdin (a catalog's upstream
// names its versions): name, version and every release's tags.
func ValidateGroup(g catalog.Group) error {
	f := fields{}
	f.must("name", g.Name, ValidateName)
	f.must("version", g.Version, ValidateVersion)
	for _, r := range g.Releases {
		f.tags("tags", r.Tags)
	}
	if f.err != nil {
		return f.err
	}
	return nil
}

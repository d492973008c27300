package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
)

// Release is the JSON line gather prints for one name/version/architecture:
// everything build needs to make its image.
type Release struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
	URL     string `json:"url,omitempty"`
	// Checksum is the upstream checksum of the file at URL,
	// "algorithm:hex"; Algorithm repeats its algorithm.
	Checksum    string           `json:"checksum,omitempty"`
	Algorithm   string           `json:"algorithm,omitempty"`
	Compression string           `json:"compression,omitempty"`
	Build       string           `json:"build,omitempty"`
	Tags        []string         `json:"tags,omitempty"`
	Stable      bool             `json:"stable"`
	Latest      bool             `json:"latest,omitempty"`
	Metadata    catalog.Metadata `json:"metadata"`
	// Error is why the release cannot be built.
	Error string `json:"error,omitempty"`
}

// FromRelease converts a catalog release to its JSON line.
func FromRelease(r catalog.Release) Release {
	out := Release{
		Name: r.Name, Version: r.Version, Arch: r.Arch, URL: r.URL,
		Compression: r.Compression, Build: r.Build, Tags: r.Tags,
		Stable: r.Stable, Latest: r.Latest, Metadata: r.Metadata,
	}
	if !r.Checksum.IsZero() {
		out.Checksum = r.Checksum.String()
		out.Algorithm = r.Checksum.Algorithm
	}
	if r.Err != nil {
		out.Error = r.Err.Error()
	}
	return out
}

// ToRelease converts a JSON line back to a catalog release.
func (r Release) ToRelease() (catalog.Release, error) {
	out := catalog.Release{
		Name: r.Name, Version: r.Version, Arch: r.Arch, URL: r.URL,
		Compression: r.Compression, Build: r.Build, Tags: r.Tags,
		Stable: r.Stable, Latest: r.Latest, Metadata: r.Metadata,
	}
	if r.Error != "" {
		out.Err = errors.New(r.Error)
		return out, nil
	}
	if r.Name == "" || r.Version == "" || r.Arch == "" || r.URL == "" {
		return out, errors.New(`expected "name", "version", "arch" and "url"`)
	}
	arch, err := containerdisk.NormalizeArch(r.Arch)
	if err != nil {
		return out, err
	}
	out.Arch = arch
	if r.Checksum == "" {
		return out, errors.New(`no "checksum": expected "sha256:HEX" or "sha512:HEX"`)
	}
	if out.Checksum, err = containerdisk.ParseChecksum(r.Checksum); err != nil {
		return out, err
	}
	switch r.Compression {
	case "", "gzip", "xz", "zstd":
	default:
		return out, fmt.Errorf("compression %q: expected gzip, xz, zstd or none", r.Compression)
	}
	return out, nil
}

// EncodeRelease writes one release on one line.
func (e *Encoder) EncodeRelease(r Release) error { return e.enc.Encode(r) }

// DecodeReleases reads the JSON lines gather prints and calls fn for each.
// A line that is not a release is an error naming its number. A release
// with a field that would not make a valid repository name or tag (see
// Release.Validate) is passed with that *FieldError in its Err, so that
// its group fails alone, before anything is written for it.
func DecodeReleases(r io.Reader, fn func(catalog.Release) error) error {
	return scanLines(r, func(n int, line string) error {
		var rel Release
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		err := dec.Decode(&rel)
		var cr catalog.Release
		if err == nil {
			cr, err = rel.ToRelease()
		}
		if err != nil {
			return &ReleaseDecodeError{DecodeError{Line: n, Text: line, Err: err}}
		}
		if err := rel.Validate(n); err != nil {
			cr.Err = err
		}
		return fn(cr)
	})
}

// ReleaseDecodeError reports a line of input that is not a release.
type ReleaseDecodeError struct{ DecodeError }

func (e *ReleaseDecodeError) Error() string {
	text := e.Text
	if len(text) > 80 {
		text = text[:77] + "..."
	}
	return fmt.Sprintf("stdin line %d: not a release (%v): %q; expected the JSON lines that 'kubectl containerdisk gather' prints", e.Line, e.Err, text)
}

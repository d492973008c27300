// Package pipeline defines the JSON lines that subcommands pass to each
// other on stdout and stdin, so that they chain in shell pipelines.
package pipeline

import (
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/readlimit"
	"slices"

	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Record describes one image, as a line of JSON.
type Record struct {
	// Reference is where the image is, with its tag when it has one
	// (host/repo:tag, or oci:DIR:tag).
	Reference string `json:"reference"`
	// Digest is the digest of the root manifest or index.
	Digest string `json:"digest"`
	// MediaType is the media type of the root.
	MediaType string `json:"mediaType,omitempty"`
	// Size is the size of the root in bytes.
	Size int64 `json:"size,omitempty"`
	// Name and Version identify the release, when known.
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
	// Tags are further tags to publish the image under, unique tags first.
	Tags []string `json:"tags,omitempty"`
	// Metadata describes a catalog image: its default user, instancetype
	// and preference are what verify boots it with.
	Metadata *catalog.Metadata `json:"metadata,omitempty"`
	// Latest says the image is also published as "latest", after its
	// moving tag.
	Latest bool `json:"latest,omitempty"`
	// Images lists the per-architecture images.
	Images []Image `json:"images,omitempty"`
	// Push is set by push.
	Push *Push `json:"push,omitempty"`
	// Verify is set by verify.
	Verify *Verify `json:"verify,omitempty"`
	// Error is set when the item failed; the other fields say what was
	// being worked on.
	Error string `json:"error,omitempty"`
}

// Image describes one architecture of a record.
type Image struct {
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
	// Checksum is the upstream checksum of the disk, "algorithm:hex".
	Checksum string `json:"checksum,omitempty"`
	// Format is the disk format, qcow2 or raw.
	Format string `json:"format,omitempty"`
	// LayerSize is the compressed size of the disk layer.
	LayerSize int64 `json:"layerSize,omitempty"`
}

// Push says what a push did.
type Push struct {
	// Status, for catalog entries, is pushed, up-to-date or would-push.
	Status        string   `json:"status,omitempty"`
	DryRun        bool     `json:"dryRun,omitempty"`
	Uploaded      int      `json:"uploaded"`
	UploadedBytes int64    `json:"uploadedBytes"`
	Mounted       int      `json:"mounted"`
	Existing      int      `json:"existing"`
	Tagged        []string `json:"tagged,omitempty"`
	Unchanged     []string `json:"unchanged,omitempty"`
	// Kept lists the unique tags that already named another image and
	// were left on it: a unique tag is never moved.
	Kept []string `json:"kept,omitempty"`
}

// Verify says whether an image booted and passed its checks on every
// architecture verified.
type Verify struct {
	Passed  bool           `json:"passed"`
	Results []VerifyResult `json:"results"`
}

// VerifyResult is the verification of one architecture.
type VerifyResult struct {
	Arch string `json:"arch"`
	// Mode is cluster or local.
	Mode string `json:"mode"`
	// Phase is how far the VM got: Created, Scheduled, Running, Ready,
	// Booted (local), Checked.
	Phase   string        `json:"phase"`
	Passed  bool          `json:"passed"`
	Checks  []VerifyCheck `json:"checks,omitempty"`
	Seconds float64       `json:"seconds"`
	Error   string        `json:"error,omitempty"`
	KeptVM  string        `json:"keptVM,omitempty"`
}

// VerifyCheck is one check of a verification.
type VerifyCheck struct {
	Name    string  `json:"name"`
	Passed  bool    `json:"passed"`
	Seconds float64 `json:"seconds"`
	Error   string  `json:"error,omitempty"`
}

// AllTags returns every tag a record says the image has or was given, in
// order (unique tags first, moving tags last), each once.
func (r Record) AllTags() []string {
	var out []string
	add := func(tags ...string) {
		for _, t := range tags {
			if t != "" && !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	add(r.Tags...)
	if r.Push != nil {
		add(r.Push.Tagged...)
		add(r.Push.Unchanged...)
	}
	if r.Version != "" {
		add(r.Version)
	}
	if r.Latest {
		add("latest")
	}
	return out
}

// Images describes the architectures of a build.
func Images(res containerdisk.Result) []Image {
	var out []Image
	for _, img := range res.Images {
		p := img.Platform.OS + "/" + img.Platform.Architecture
		if img.Platform.Variant != "" {
			p += "/" + img.Platform.Variant
		}
		out = append(out, Image{
			Platform:  p,
			Digest:    img.Manifest.Digest.String(),
			Checksum:  img.Checksum.String(),
			Format:    string(img.Disk.Format),
			LayerSize: img.Layer.Size,
		})
	}
	return out
}

// Encoder writes records as JSON lines.
type Encoder struct{ enc *json.Encoder }

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w io.Writer) *Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &Encoder{enc: enc}
}

// Encode writes one record on one line.
func (e *Encoder) Encode(r Record) error { return e.enc.Encode(r) }

// maxLine bounds a record line; an index of many platforms stays far below.
// A longer line is a DecodeError naming its number.
const maxLine = 4 << 20

// Decode reads JSON lines from r and calls fn for each record. Blank lines
// are skipped. A line that is not a record is an error naming its number.
// A record with a field that would not make a valid repository name, tag
// or digest (see Record.Validate) is passed to fn with its *FieldError,
// which names the line: the caller fails that record alone, before
// writing anything for it, and goes on with the others.
func Decode(r io.Reader, fn func(Record, error) error) error {
	return scanLines(r, func(n int, line string) error {
		var rec Record
		dec := json.NewDecoder(strings.NewReader(line))
		if err := dec.Decode(&rec); err != nil {
			return &DecodeError{Line: n, Text: line, Err: err}
		}
		if rec.Reference == "" && rec.Error == "" {
			return &DecodeError{Line: n, Text: line, Err: errors.New(`no "reference" field`)}
		}
		return fn(rec, rec.Validate(n))
	})
}

// scanLines calls fn with each non-blank line of r and its number.
func scanLines(r io.Reader, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return &DecodeError{Line: n + 1, Err: fmt.Errorf("longer than %s, the limit for one line", readlimit.Size(maxLine))}
	} else if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	return nil
}

// DecodeError reports a line of input that is not a record.
type DecodeError struct {
	Line int
	Text string
	Err  error
}

func (e *DecodeError) Error() string {
	text := e.Text
	if len(text) > 80 {
		text = text[:77] + "..."
	}
	return fmt.Sprintf("stdin line %d: not a JSON record (%v): %q; expected the JSON lines that 'kubectl containerdisk build -o json' prints", e.Line, e.Err, text)
}

// InputError marks the error as the input's, so that a command exits 2.
func (e *DecodeError) InputError() bool { return true }

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }

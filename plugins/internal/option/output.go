package option

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The output formats of the suite: one vocabulary for every -o.
const (
	// OutputText is for people: lines such as "REFERENCE DIGEST".
	OutputText = "text"
	// OutputTable is for people too, and names the text of a command
	// whose text is a table; -o text is taken for it.
	OutputTable = "table"
	// OutputJSON is JSON: the JSON lines the next command of a pipeline
	// reads, or one document.
	OutputJSON = "json"
	// OutputYAML is the same data as YAML.
	OutputYAML = "yaml"
)

// outputSpec is what -o takes on one command.
type outputSpec struct {
	// formats are the values -o takes, its default first.
	formats []string
	// note, when set, says what a format gives on this command.
	note string
}

// outputs is the -o of every command, by the name users type after
// "kubectl containerdisk", in one place so that the suite keeps one
// vocabulary. YAML is offered where the output is a report or a listing;
// the pipeline stages write JSON lines for the next command, and their text
// is one line per image.
var outputs = map[string]outputSpec{
	"gather":         {[]string{OutputJSON, OutputTable}, "json is JSON lines for build"},
	"build":          {[]string{OutputText, OutputJSON}, "text is a reference and digest per line, json JSON lines for push"},
	"push":           {[]string{OutputText, OutputJSON}, "text is a reference and digest per line, json JSON lines for verify"},
	"verify":         {[]string{OutputText, OutputJSON, OutputYAML}, "text is a line per image and architecture, json JSON lines for promote"},
	"promote":        {[]string{OutputText, OutputJSON}, "text is a reference and digest per line, json JSON lines"},
	"pipeline":       {[]string{OutputText, OutputJSON}, "text is a reference and digest per line, json JSON lines for verify"},
	"mirror":         {[]string{OutputText, OutputJSON}, "text is a reference and digest per line, json JSON lines"},
	"mirror import":  {[]string{OutputText, OutputJSON}, "text is a reference and digest per line, json JSON lines"},
	"mirror preload": {[]string{OutputText, OutputJSON}, "text is a reference and digest per line, json JSON lines"},
	"mirror ls":      {[]string{OutputTable, OutputJSON, OutputYAML}, ""},
	"mirror inspect": {[]string{OutputTable, OutputJSON, OutputYAML}, ""},
}

// Output holds -o and -q: what goes to stdout, and whether status goes to
// stderr.
type Output struct {
	// Format is the format -o chose, by its name in the command's list
	// (table when text was given for a table).
	Format string
	Quiet  bool

	spec outputSpec
}

// NewOutput returns the -o and -q of the command users type as
// "kubectl containerdisk COMMAND", with the formats outputs gives it.
func NewOutput(command string) Output {
	spec, ok := outputs[command]
	if !ok {
		panic(fmt.Sprintf("option: no -o declared for %q", command))
	}
	return Output{Format: spec.formats[0], spec: spec}
}

// ApplyFlags adds -o and -q. A value of -o that the command does not take
// is refused as the flags are read, with the same error on every command.
func (o *Output) ApplyFlags(fs *pflag.FlagSet) {
	if o.spec.formats == nil {
		panic("option: Output not made by NewOutput")
	}
	fs.VarP(&formatValue{p: &o.Format, formats: o.spec.formats}, "output", "o", outputUsage(o.spec))
	AddQuiet(fs, &o.Quiet)
}

// AddQuiet adds -q, bound to p, for a command that has no -o.
func AddQuiet(fs *pflag.FlagSet, p *bool) {
	fs.BoolVarP(p, "quiet", "q", false, "print no status or progress on stderr")
}

// outputUsage is the usage of -o: "output format: A, B or C", then the
// command's note.
func outputUsage(spec outputSpec) string {
	f := spec.formats
	list := f[len(f)-1]
	if len(f) > 1 {
		list = strings.Join(f[:len(f)-1], ", ") + " or " + list
	}
	if spec.note != "" {
		return "output format: " + list + "; " + spec.note
	}
	return "output format: " + list
}

// formatValue is the pflag.Value of -o.
type formatValue struct {
	p       *string
	formats []string
}

func (v *formatValue) String() string { return *v.p }

func (v *formatValue) Type() string { return "string" }

// Set takes a format of the command's list, or text for its table.
func (v *formatValue) Set(s string) error {
	switch {
	case slices.Contains(v.formats, s):
		*v.p = s
	case s == OutputText && slices.Contains(v.formats, OutputTable):
		*v.p = OutputTable
	default:
		// pflag puts the value and the flag's name first: invalid
		// argument "xml" for "-o, --output" flag: expected one of ...
		return fmt.Errorf("expected one of %s", strings.Join(v.formats, ", "))
	}
	return nil
}

// CompleteOutput completes -o with the formats the command takes.
func CompleteOutput(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var comps []cobra.Completion
	if f := cmd.Flags().Lookup("output"); f != nil {
		if v, ok := f.Value.(*formatValue); ok {
			comps = append(comps, v.formats...)
		}
	}
	return comps, cobra.ShellCompDirectiveNoFileComp
}

// JSON reports whether JSON lines were asked for.
func (o *Output) JSON() bool { return o.Format == OutputJSON }

// Status prints progress messages on stderr unless quiet. It is safe for
// concurrent use.
type Status struct {
	mu  sync.Mutex
	w   io.Writer
	off bool
}

// NewStatus returns a Status writing to w, silent when quiet.
func NewStatus(w io.Writer, quiet bool) *Status { return &Status{w: w, off: quiet} }

// Printf prints one status line.
func (s *Status) Printf(format string, args ...any) {
	if s.off {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.w, format+"\n", args...)
}

// Warnf prints one warning line, "Warning: " first, even when quiet:
// a warning says something the user must know, not how far the work got.
func (s *Status) Warnf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.w, "Warning: "+format+"\n", args...)
}

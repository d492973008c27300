package option

import (
	"fmt"
	"io"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
)

// Output formats.
const (
	OutputText = "text"
	OutputJSON = "json"
)

// Output holds -o and -q: what goes to stdout, and whether status goes to
// stderr.
type Output struct {
	Format string
	Quiet  bool
}

// ApplyFlags adds -o and -q.
func (o *Output) ApplyFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.Format, "output", "o", OutputText, "output format: text (reference and digest per line) or json (JSON lines for the next command)")
	fs.BoolVarP(&o.Quiet, "quiet", "q", false, "print no status or progress on stderr")
}

// Parse checks the output format.
func (o *Output) Parse(*cobra.Command) error {
	switch o.Format {
	case OutputText, OutputJSON:
		return nil
	}
	return cli.Usagef("unknown output format %q: expected text or json", o.Format)
}

// CompleteOutput completes -o with the formats Parse accepts.
func CompleteOutput(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return []cobra.Completion{OutputText, OutputJSON}, cobra.ShellCompDirectiveNoFileComp
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

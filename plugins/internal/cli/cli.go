// Package cli holds what every kubectl-containerdisk binary shares: the
// streams, the exit codes and the way errors turn into them.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/containerdisk/kubectl-containerdisk/pkg/inputerr"
)

// Exit codes shared by every subcommand.
const (
	// ExitOK means everything was done.
	ExitOK = 0
	// ExitFailed means some item failed; the others were still processed.
	ExitFailed = 1
	// ExitUsage means the command line or the input was wrong.
	ExitUsage = 2
	// ExitInterrupted means SIGINT or SIGTERM stopped the command, as a
	// shell reports a process killed by SIGINT.
	ExitInterrupted = 130
)

// Streams are the standard streams of a command.
type Streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// StdStreams returns the process's streams.
func StdStreams() Streams {
	return Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
}

// ErrOutIsTerminal reports whether status may be drawn as progress bars.
func (s Streams) ErrOutIsTerminal() bool {
	f, ok := s.ErrOut.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// InIsTerminal reports whether stdin is a terminal (and so carries no records).
func (s Streams) InIsTerminal() bool {
	f, ok := s.In.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Usagef returns an error in the command line or the input (exit code 2):
// an *inputerr.Error with a formatted message.
func Usagef(format string, args ...any) error {
	return inputerr.Errorf(format, args...)
}

// PartialError reports that some items failed while the others were done.
type PartialError struct {
	// Failed says what failed and why, one entry per item.
	Failed []string
	Total  int
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("%d of %d items failed:\n  %s", len(e.Failed), e.Total, strings.Join(e.Failed, "\n  "))
}

// ExitCode maps an error to the exit code the commands document: 2 for an
// error of the input (inputerr.Is: *inputerr.Error or any error marked by an
// InputError method, such as an invalid reference or a record that does not
// decode), 1 for any other.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case inputerr.Is(err):
		return ExitUsage
	}
	return ExitFailed
}

// DisplayName is how help names the command: "kubectl containerdisk build"
// for the binary kubectl-containerdisk-build, since kubectl runs plugins by
// that name.
func DisplayName(argv0 string) string {
	base := strings.TrimSuffix(filepath.Base(argv0), ".exe")
	if rest, ok := strings.CutPrefix(base, "kubectl-"); ok {
		return "kubectl " + strings.ReplaceAll(rest, "-", " ")
	}
	return base
}

// Prepare sets what every command shares: the display name, --version,
// silence about errors (Main prints them once) and usage errors for bad
// flags.
func Prepare(cmd *cobra.Command, name string, streams Streams) {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[cobra.CommandDisplayNameAnnotation] = name
	addVersion(cmd, name)
	cmd.SilenceErrors = true
	cmd.SilenceUsage = true
	cmd.SetIn(streams.In)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return Usagef("%w\nRun '%s --help' for usage", err, c.CommandPath())
	})
}

// Main runs the command built by newCmd with the process's arguments and
// streams, cancels it on SIGINT or SIGTERM, prints a returned error on
// stderr, and returns the exit code.
func Main(newCmd func(Streams) *cobra.Command) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, StdStreams(), DisplayName(os.Args[0]), os.Args[1:], newCmd)
}

// Run is Main for tests: it runs the command with the given arguments.
func Run(ctx context.Context, streams Streams, name string, args []string, newCmd func(Streams) *cobra.Command) int {
	if len(args) == 1 && args[0] == ReferenceArg {
		return WriteReference(streams, newCmd)
	}
	cmd := newCmd(streams)
	Prepare(cmd, name, streams)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// Everything that was complete stays; nothing half-done was
		// tagged.
		fmt.Fprintf(streams.ErrOut, "Error: interrupted: what was complete is in place, nothing unfinished was tagged; run the command again to finish\n")
		return ExitInterrupted
	}
	fmt.Fprintf(streams.ErrOut, "Error: %s\n", Explain(err))
	return ExitCode(err)
}

// ExactArgs is cobra.ExactArgs returning a usage error.
func ExactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return Usagef("%w\nRun '%s --help' for usage", err, cmd.CommandPath())
		}
		return nil
	}
}

// RangeArgs is cobra.RangeArgs returning a usage error.
func RangeArgs(min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.RangeArgs(min, max)(cmd, args); err != nil {
			return Usagef("%w\nRun '%s --help' for usage", err, cmd.CommandPath())
		}
		return nil
	}
}

// Version is the release, set at link time with
// -ldflags "-X github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli.Version=v1.2.3".
var Version = "dev"

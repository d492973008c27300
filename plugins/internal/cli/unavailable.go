package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// ErrUnavailable is returned by subcommands this release does not have yet.
var ErrUnavailable = errors.New("not available in this release")

// Unavailable returns a command that exists, so that kubectl and the
// umbrella find it, but says it cannot run yet.
func Unavailable(name, short string) *cobra.Command {
	return &cobra.Command{
		Use:                name,
		Short:              short,
		Long:               short + ".\n\nThis subcommand is not available in this release.",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
				return cmd.Help()
			}
			return &UsageError{Err: fmt.Errorf("%s: %w; available: gather, build, push, verify, promote, mirror", cmd.CommandPath(), ErrUnavailable)}
		},
	}
}

// Package gather is the "kubectl containerdisk gather" command.
package gather

import (
	"github.com/spf13/cobra"

	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
)

// NewCommand returns the gather command.
func NewCommand(streams cli.Streams) *cobra.Command {
	return cli.Unavailable("gather", "Find the latest upstream release of each curated distribution")
}

// Main runs the command as the process and returns its exit code.
func Main() int { return cli.Main(NewCommand) }

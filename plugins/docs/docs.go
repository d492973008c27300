// Package docs is the "kubectl containerdisk docs" command.
package docs

import (
	"github.com/spf13/cobra"

	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
)

// NewCommand returns the docs command.
func NewCommand(streams cli.Streams) *cobra.Command {
	return cli.Unavailable("docs", "Generate and publish each containerdisk's documentation")
}

// Main runs the command as the process and returns its exit code.
func Main() int { return cli.Main(NewCommand) }

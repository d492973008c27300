// Package mirror is the "kubectl containerdisk mirror" command.
package mirror

import (
	"github.com/spf13/cobra"

	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
)

// NewCommand returns the mirror command.
func NewCommand(streams cli.Streams) *cobra.Command {
	return cli.Unavailable("mirror", "Keep selected containerdisks in sync between registries and OCI layouts")
}

// Main runs the command as the process and returns its exit code.
func Main() int { return cli.Main(NewCommand) }

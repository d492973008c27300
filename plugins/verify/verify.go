// Package verify is the "kubectl containerdisk verify" command.
package verify

import (
	"github.com/spf13/cobra"

	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
)

// NewCommand returns the verify command.
func NewCommand(streams cli.Streams) *cobra.Command {
	cmd := cli.Unavailable("verify", "Boot containerdisks as KubeVirt VMs, on a cluster or under QEMU, and prove they work")
	cmd.AddCommand(NewPromoteCommand(streams))
	return cmd
}

// Main runs the command as the process and returns its exit code.
func Main() int { return cli.Main(NewCommand) }

// Command kubectl-containerdisk-gather is "kubectl containerdisk gather".
package main

import (
	"os"

	"github.com/containerdisk/kubectl-containerdisk/plugins/gather"
)

func main() { os.Exit(gather.Main()) }

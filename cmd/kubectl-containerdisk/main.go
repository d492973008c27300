// Command kubectl-containerdisk is the umbrella of the plugin suite: it
// hands "kubectl containerdisk SUB …" to kubectl-containerdisk-SUB.
package main

import (
	"os"

	"github.com/containerdisk/kubectl-containerdisk/plugins/dispatch"
)

func main() { os.Exit(dispatch.Main()) }

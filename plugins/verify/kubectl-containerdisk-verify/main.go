// Command kubectl-containerdisk-verify is "kubectl containerdisk verify".
package main

import (
	"os"

	"github.com/containerdisk/kubectl-containerdisk/plugins/verify"
)

func main() { os.Exit(verify.Main()) }

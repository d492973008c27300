// Command kubectl-containerdisk-mirror is "kubectl containerdisk mirror".
package main

import (
	"os"

	"github.com/containerdisk/kubectl-containerdisk/plugins/mirror"
)

func main() { os.Exit(mirror.Main()) }

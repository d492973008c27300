// Command kubectl-containerdisk-build is "kubectl containerdisk build".
package main

import (
	"os"

	"github.com/containerdisk/kubectl-containerdisk/plugins/build"
)

func main() { os.Exit(build.Main()) }

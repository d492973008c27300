// Command kubectl-containerdisk-push is "kubectl containerdisk push".
package main

import (
	"os"

	"github.com/containerdisk/kubectl-containerdisk/plugins/push"
)

func main() { os.Exit(push.Main()) }

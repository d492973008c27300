// Command kubectl-containerdisk-docs is "kubectl containerdisk docs".
package main

import (
	"os"

	"github.com/containerdisk/kubectl-containerdisk/plugins/docs"
)

func main() { os.Exit(docs.Main()) }

// Command kubectl-containerdisk-pipeline is "kubectl containerdisk pipeline".
package main

import (
	"os"

	"github.com/containerdisk/kubectl-containerdisk/plugins/pipeline"
)

func main() { os.Exit(pipeline.Main()) }

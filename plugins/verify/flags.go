package verify

import (
	_ "k8s.io/cli-runtime/pkg/genericclioptions" // being written
)

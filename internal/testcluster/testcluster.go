// Package testcluster runs a real kube-apiserver (envtest) with KubeVirt's
// VirtualMachine and VirtualMachineInstance CRDs for tests.
package testcluster

import (
	_ "sigs.k8s.io/controller-runtime/pkg/envtest" // being written
)

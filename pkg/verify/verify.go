// Package verify proves that containerdisks boot: as KubeVirt virtual
// machines on a cluster, and locally under QEMU.
package verify

import (
	_ "golang.org/x/crypto/ssh"            // being written
	_ "k8s.io/client-go/rest"              // being written
	_ "k8s.io/client-go/tools/portforward" // being written
	_ "kubevirt.io/api/core/v1"            // being written
	_ "kubevirt.io/client-go/kubecli"      // being written
	_ "kubevirt.io/client-go/kubevirt"     // being written
)

package customize_test

import (
	"fmt"

	"github.com/containerdisk/kubectl-containerdisk/pkg/customize"
)

// A spec is checked before anything runs; each problem names its field.
func ExampleSpec_Validate() {
	spec := customize.Spec{
		Commands: []string{"write /etc/motd:hello", "frobnicate now"},
		Sysprep:  &customize.Sysprep{Enabled: true, Operations: []string{"logfiles", "x"}},
	}
	fmt.Println(spec.Validate())
	// Output:
	// commands[1]: unknown virt-customize command "frobnicate": expected one of the customization options of virt-customize(1) without "--", e.g. "run-command CMD" or "write FILE:CONTENT"
	// sysprep.operations[1]: unknown operation "x": expected one of `virt-sysprep --list-operations`, "defaults", "all", or -NAME to remove one
}

// Only some operations run the guest's programs and so need a host of the
// disk's architecture; Run refuses them elsewhere.
func ExampleSpec_GuestExec() {
	spec := customize.Spec{
		Commands: []string{
			"write /etc/motd:hello",
			"run-command systemctl enable qemu-guest-agent",
			"firstboot-command growpart /dev/vda 1",
		},
		Sysprep: &customize.Sysprep{Enabled: true},
	}
	fmt.Println(spec.GuestExec())
	// Output:
	// [commands[1]: run-command]
}

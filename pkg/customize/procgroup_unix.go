//go:build unix

package customize

import (
	"os/exec"
	"syscall"
)

// ownProcessGroup starts cmd in a process group of its own and kills the
// whole group when its context ends: the libguestfs tools start QEMU, which
// would otherwise outlive them and keep the disk open.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}

// Package verify proves that containerdisks boot: as KubeVirt virtual
// machines on a cluster, and locally under QEMU.
package verify

import (
	"errors"
	"time"
)

// Image describes a containerdisk to verify, from the catalog's metadata
// when it is known.
type Image struct {
	// Reference is the image to boot ("quay.io/containerdisks/fedora:40").
	Reference string `json:"reference"`
	// Arches are the architectures the image is published for, as
	// kubernetes.io/arch names (amd64, arm64, s390x).
	Arches []string `json:"arches,omitempty"`
	// DefaultUser is the user cloud-init creates ("fedora", "ubuntu");
	// DefaultUser (the package's) when empty.
	DefaultUser string `json:"defaultUser,omitempty"`
	// Instancetype and Preference name the cluster-wide instancetype
	// ("u1.medium") and preference ("fedora") the image is meant to run
	// with; the options' memory is used when the cluster has no such
	// instancetype.
	Instancetype string `json:"instancetype,omitempty"`
	Preference   string `json:"preference,omitempty"`
	// EFI boots the image with UEFI firmware, without Secure Boot unless
	// SecureBoot is set too (and the architecture is not arm64, where
	// KubeVirt has no Secure Boot).
	EFI        bool `json:"efi,omitempty"`
	SecureBoot bool `json:"secureBoot,omitempty"`
	// GuestAgent says that the image runs qemu-guest-agent, so that a
	// check asks it what OS runs.
	GuestAgent bool `json:"guestAgent,omitempty"`
}

// Phase is how far a verification VM got.
type Phase string

// The phases of a verification VM, in order.
const (
	// PhaseCreated: the VirtualMachine exists.
	PhaseCreated Phase = "Created"
	// PhaseScheduled: its VMI was given a node.
	PhaseScheduled Phase = "Scheduled"
	// PhaseRunning: the guest was started.
	PhaseRunning Phase = "Running"
	// PhaseReady: KubeVirt reports the VM ready.
	PhaseReady Phase = "Ready"
	// PhaseChecked: every check passed.
	PhaseChecked Phase = "Checked"
)

// Check is one proof that a VM works.
type Check struct {
	// Name is what was checked: "ssh", "guest-agent", "boot".
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	// Detail is what the check learnt, such as the guest's OS name.
	Detail   string        `json:"detail,omitempty"`
	Duration time.Duration `json:"duration"`
	Error    string        `json:"error,omitempty"`
}

// Result is the verification of one image on one architecture.
type Result struct {
	Image string `json:"image"`
	Arch  string `json:"arch"`
	// Phase is the furthest phase the VM reached; empty if it was never
	// created.
	Phase    Phase         `json:"phase,omitempty"`
	Checks   []Check       `json:"checks,omitempty"`
	Duration time.Duration `json:"duration"`
	// Error says why the verification failed; empty if it passed.
	Error string `json:"error,omitempty"`
	// Err is Error as an error, for errors.Is.
	Err error `json:"-"`
	// VM is the namespace/name of the VM, when it was kept after a failure.
	VM string `json:"vm,omitempty"`
}

// Passed reports whether the image was verified.
func (r Result) Passed() bool { return r.Error == "" }

// Errors that Result.Err wraps.
var (
	// ErrUnschedulable: no node can run the VM (no node of the
	// architecture, or none with room).
	ErrUnschedulable = errors.New("unschedulable")
	// ErrTimeout: a step, or the whole verification, took too long.
	ErrTimeout = errors.New("timed out")
	// ErrVMFailed: KubeVirt reported that the VM cannot run (image pull
	// failure, crash loop, failed VMI).
	ErrVMFailed = errors.New("VM failed")
	// ErrCheckFailed: the VM ran but a check failed.
	ErrCheckFailed = errors.New("check failed")
)

package verify

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

func TestVMObject(t *testing.T) {
	fedora := Image{Reference: "quay.io/containerdisks/fedora:40", DefaultUser: "fedora"}
	with := func(f func(*Image)) Image { img := fedora; f(&img); return img }
	bootloader := func(secureBoot bool) *kubevirtv1.Firmware {
		return &kubevirtv1.Firmware{Bootloader: &kubevirtv1.Bootloader{EFI: &kubevirtv1.EFI{SecureBoot: &secureBoot}}}
	}
	tests := []struct {
		name         string
		spec         VMSpec
		instancetype *kubevirtv1.InstancetypeMatcher
		preference   *kubevirtv1.PreferenceMatcher
		memory       string // domain.memory.guest; "" for none
		firmware     *kubevirtv1.Firmware
		smm          bool
	}{
		{
			name:   "memory when no instancetype",
			spec:   VMSpec{Image: fedora, Arch: "amd64", Memory: "2Gi"},
			memory: "2Gi",
		},
		{
			name:         "instancetype and preference",
			spec:         VMSpec{Image: with(func(i *Image) { i.Instancetype, i.Preference = "u1.medium", "fedora" }), Arch: "amd64", Memory: "2Gi"},
			instancetype: &kubevirtv1.InstancetypeMatcher{Kind: "VirtualMachineClusterInstancetype", Name: "u1.medium"},
			preference:   &kubevirtv1.PreferenceMatcher{Kind: "VirtualMachineClusterPreference", Name: "fedora"},
		},
		{
			name:         "instancetype alone needs no memory",
			spec:         VMSpec{Image: with(func(i *Image) { i.Instancetype = "u1.small" }), Arch: "arm64"},
			instancetype: &kubevirtv1.InstancetypeMatcher{Kind: "VirtualMachineClusterInstancetype", Name: "u1.small"},
		},
		{
			name:       "preference with memory",
			spec:       VMSpec{Image: with(func(i *Image) { i.Preference = "ubuntu" }), Arch: "s390x", Memory: "1536Mi"},
			preference: &kubevirtv1.PreferenceMatcher{Kind: "VirtualMachineClusterPreference", Name: "ubuntu"},
			memory:     "1536Mi",
		},
		{
			name:     "EFI without Secure Boot",
			spec:     VMSpec{Image: with(func(i *Image) { i.EFI = true }), Arch: "arm64", Memory: "2Gi"},
			memory:   "2Gi",
			firmware: bootloader(false),
		},
		{
			name:     "EFI with Secure Boot",
			spec:     VMSpec{Image: with(func(i *Image) { i.EFI, i.SecureBoot = true, true }), Arch: "amd64", Memory: "2Gi"},
			memory:   "2Gi",
			firmware: bootloader(true),
			smm:      true,
		},
		{
			// KubeVirt rejects the VMI of an arm64 VM with Secure Boot.
			name:     "Secure Boot is UEFI alone on arm64",
			spec:     VMSpec{Image: with(func(i *Image) { i.EFI, i.SecureBoot = true, true }), Arch: "arm64", Memory: "2Gi"},
			memory:   "2Gi",
			firmware: bootloader(false),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Namespace, tt.spec.Name = "tests", "verify-fedora-40-x"
			tt.spec.UserData = "#cloud-config\n"
			tt.spec.Labels = map[string]string{LabelRun: "r1", "team": "a"}
			vm, err := NewVirtualMachine(tt.spec)
			if err != nil {
				t.Fatalf("NewVirtualMachine: %v", err)
			}
			if vm.Namespace != "tests" || vm.Name != "verify-fedora-40-x" || vm.Kind != "VirtualMachine" || vm.APIVersion != "kubevirt.io/v1" {
				t.Errorf("VM %s %s/%s", vm.GroupVersionKind(), vm.Namespace, vm.Name)
			}
			wantLabels := map[string]string{LabelManagedBy: ManagedBy, LabelArch: tt.spec.Arch, LabelRun: "r1", "team": "a"}
			if diff := cmp.Diff(wantLabels, vm.Labels); diff != "" {
				t.Errorf("VM labels (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantLabels, vm.Spec.Template.ObjectMeta.Labels); diff != "" {
				t.Errorf("VMI labels (-want +got):\n%s", diff)
			}
			if vm.Annotations[AnnotationImage] != fedora.Reference {
				t.Errorf("annotations %v do not name the image", vm.Annotations)
			}
			if vm.Spec.RunStrategy == nil || *vm.Spec.RunStrategy != kubevirtv1.RunStrategyAlways || vm.Spec.Running != nil {
				t.Errorf("run strategy %v, running %v; want Always", vm.Spec.RunStrategy, vm.Spec.Running)
			}
			spec := vm.Spec.Template.Spec
			if diff := cmp.Diff(map[string]string{corev1.LabelArchStable: tt.spec.Arch}, spec.NodeSelector); diff != "" {
				t.Errorf("node selector (-want +got):\n%s", diff)
			}
			if spec.Architecture != tt.spec.Arch {
				t.Errorf("architecture %q, want %q", spec.Architecture, tt.spec.Arch)
			}
			if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds != 0 {
				t.Errorf("termination grace period %v, want 0", spec.TerminationGracePeriodSeconds)
			}
			wantVolumes := []kubevirtv1.Volume{
				{Name: "containerdisk", VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: fedora.Reference, ImagePullPolicy: corev1.PullAlways}}},
				{Name: "cloudinitdisk", VolumeSource: kubevirtv1.VolumeSource{CloudInitNoCloud: &kubevirtv1.CloudInitNoCloudSource{UserData: "#cloud-config\n"}}},
			}
			if diff := cmp.Diff(wantVolumes, spec.Volumes); diff != "" {
				t.Errorf("volumes (-want +got):\n%s", diff)
			}
			for i, d := range spec.Domain.Devices.Disks {
				if d.Name != wantVolumes[i].Name || d.Disk == nil || d.Disk.Bus != kubevirtv1.DiskBusVirtio {
					t.Errorf("disk %d: %+v, want a virtio disk of volume %s", i, d, wantVolumes[i].Name)
				}
			}
			if diff := cmp.Diff(tt.instancetype, vm.Spec.Instancetype); diff != "" {
				t.Errorf("instancetype (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.preference, vm.Spec.Preference); diff != "" {
				t.Errorf("preference (-want +got):\n%s", diff)
			}
			var memory string
			if m := spec.Domain.Memory; m != nil && m.Guest != nil {
				memory = m.Guest.String()
			}
			if memory != tt.memory {
				t.Errorf("guest memory %q, want %q", memory, tt.memory)
			}
			if tt.instancetype != nil && (spec.Domain.Memory != nil || spec.Domain.CPU != nil || len(spec.Domain.Resources.Requests) > 0) {
				t.Error("the VM sets CPU or memory beside its instancetype, which KubeVirt rejects")
			}
			if diff := cmp.Diff(tt.firmware, spec.Domain.Firmware); diff != "" {
				t.Errorf("firmware (-want +got):\n%s", diff)
			}
			smm := spec.Domain.Features != nil && spec.Domain.Features.SMM != nil && *spec.Domain.Features.SMM.Enabled
			if smm != tt.smm {
				t.Errorf("SMM %v, want %v", smm, tt.smm)
			}
			// It is an object the API server takes.
			if _, err := json.Marshal(vm); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestVMObjectErrors(t *testing.T) {
	img := Image{Reference: "quay.io/containerdisks/fedora:40"}
	for _, tt := range []struct {
		spec VMSpec
		want string
	}{
		{VMSpec{Arch: "amd64", Memory: "2Gi"}, "no image reference"},
		{VMSpec{Image: img, Memory: "2Gi"}, "no architecture"},
		{VMSpec{Image: img, Arch: "amd64"}, "no instancetype and no memory size"},
		{VMSpec{Image: img, Arch: "amd64", Memory: "lots"}, `unknown memory size "lots": expected a positive quantity`},
		{VMSpec{Image: img, Arch: "amd64", Memory: "-1Gi"}, `unknown memory size "-1Gi"`},
	} {
		vm, err := NewVirtualMachine(tt.spec)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewVirtualMachine(%+v) = %v, %v; want an error saying %q", tt.spec, vm, err, tt.want)
		}
	}
}

func TestVMName(t *testing.T) {
	for _, tt := range []struct{ ref, arch, want string }{
		{"quay.io/containerdisks/fedora:40", "amd64", `^verify-fedora-40-amd64-[a-z0-9]{5}$`},
		{"quay.io/containerdisks/centos-stream:9@sha256:0123456789abcdef", "arm64", `^verify-centos-stream-9-arm64-[a-z0-9]{5}$`},
		{"localhost:5000/Ubuntu_Noble", "s390x", `^verify-ubuntu-noble-s390x-[a-z0-9]{5}$`},
		{"r.example/a-very-long-repository-name-that-goes-on-and-on:and-a-long-tag", "amd64", `^verify-a-very-long-repository-name-th-amd64-[a-z0-9]{5}$`},
		{"r.example/x@sha256:abc", "", `^verify-x-[a-z0-9]{5}$`},
	} {
		got := vmName(tt.ref, tt.arch)
		if !regexp.MustCompile(tt.want).MatchString(got) || len(got) > 63 {
			t.Errorf("vmName(%q, %q) = %q, want %s", tt.ref, tt.arch, got, tt.want)
		}
	}
	if a, b := vmName("r/x", "amd64"), vmName("r/x", "amd64"); a == b {
		t.Errorf("two VM names are both %q", a)
	}
}

func TestVMEvaluate(t *testing.T) {
	vm := func(status kubevirtv1.VirtualMachinePrintableStatus, ready bool) *kubevirtv1.VirtualMachine {
		return &kubevirtv1.VirtualMachine{Status: kubevirtv1.VirtualMachineStatus{PrintableStatus: status, Ready: ready}}
	}
	vmi := func(phase kubevirtv1.VirtualMachineInstancePhase, node string, conds ...kubevirtv1.VirtualMachineInstanceCondition) *kubevirtv1.VirtualMachineInstance {
		return &kubevirtv1.VirtualMachineInstance{Status: kubevirtv1.VirtualMachineInstanceStatus{Phase: phase, NodeName: node, Conditions: conds}}
	}
	unschedulable := kubevirtv1.VirtualMachineInstanceCondition{
		Type: "PodScheduled", Status: corev1.ConditionFalse, Reason: "Unschedulable",
		Message: "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
	}
	tests := []struct {
		name  string
		vm    *kubevirtv1.VirtualMachine
		vmi   *kubevirtv1.VirtualMachineInstance
		phase Phase
		err   error
	}{
		{"just created", vm("", false), nil, PhaseCreated, nil},
		{"VMI pending", vm(kubevirtv1.VirtualMachineStatusStarting, false), vmi(kubevirtv1.Pending, ""), PhaseCreated, nil},
		{"VMI scheduling on a node", vm(kubevirtv1.VirtualMachineStatusStarting, false), vmi(kubevirtv1.Scheduling, "node-1"), PhaseScheduled, nil},
		{"VMI scheduled", vm(kubevirtv1.VirtualMachineStatusStarting, false), vmi(kubevirtv1.Scheduled, "node-1"), PhaseScheduled, nil},
		{"VMI running", vm(kubevirtv1.VirtualMachineStatusRunning, false), vmi(kubevirtv1.Running, "node-1"), PhaseRunning, nil},
		{"VM ready", vm(kubevirtv1.VirtualMachineStatusRunning, true), vmi(kubevirtv1.Running, "node-1"), PhaseReady, nil},
		{"unschedulable VMI", vm(kubevirtv1.VirtualMachineStatusStarting, false), vmi(kubevirtv1.Scheduling, "", unschedulable), PhaseCreated, ErrUnschedulable},
		{"unschedulable VM", vm(kubevirtv1.VirtualMachineStatusUnschedulable, false), vmi(kubevirtv1.Scheduling, ""), PhaseCreated, ErrUnschedulable},
		{"image pull", vm(kubevirtv1.VirtualMachineStatusErrImagePull, false), vmi(kubevirtv1.Scheduled, "node-1"), PhaseScheduled, ErrVMFailed},
		{"image pull back-off", vm(kubevirtv1.VirtualMachineStatusImagePullBackOff, false), vmi(kubevirtv1.Scheduled, "node-1"), PhaseScheduled, ErrVMFailed},
		{"crash loop", vm(kubevirtv1.VirtualMachineStatusCrashLoopBackOff, false), nil, PhaseCreated, ErrVMFailed},
		{"VMI failed", vm(kubevirtv1.VirtualMachineStatusStarting, false), vmi(kubevirtv1.Failed, "node-1"), PhaseScheduled, ErrVMFailed},
		{"guest shut down", vm(kubevirtv1.VirtualMachineStatusStopped, false), vmi(kubevirtv1.Succeeded, "node-1"), PhaseScheduled, ErrVMFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			phase, err := evaluate(tt.vm, tt.vmi)
			if phase != tt.phase || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Errorf("evaluate = %s, %v; want %s, %v", phase, err, tt.phase, tt.err)
			}
		})
	}
	if got := describe(vm(kubevirtv1.VirtualMachineStatusStarting, false), vmi(kubevirtv1.Scheduling, "", unschedulable), ""); !strings.Contains(got, "VM status Starting") ||
		!strings.Contains(got, "VMI phase Scheduling") || !strings.Contains(got, unschedulable.Message) {
		t.Errorf("describe = %q, want the statuses and the scheduler's message", got)
	}
}

// The memory quantity survives as written: "1536Mi", not "1.5Gi".
func TestVMObjectMemoryQuantity(t *testing.T) {
	vm, err := NewVirtualMachine(VMSpec{Image: Image{Reference: "r/x"}, Arch: "amd64", Memory: "1536Mi"})
	if err != nil {
		t.Fatal(err)
	}
	if got := vm.Spec.Template.Spec.Domain.Memory.Guest; got.Cmp(resource.MustParse("1.5Gi")) != 0 {
		t.Errorf("memory %s, want 1.5Gi", got)
	}
}

package verify

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	kubevirtv1 "kubevirt.io/api/core/v1"
	instancetypev1beta1 "kubevirt.io/api/instancetype/v1beta1"

	"github.com/containerdisk/kubectl-containerdisk/internal/kvvalidate"
	"github.com/containerdisk/kubectl-containerdisk/internal/testcluster"
)

// admission runs KubeVirt's admission on each VM (reading instancetypes
// and preferences through kubeconfig, when given) and returns the causes
// it gives for rejecting each, by VM name, and its exit status.
func admission(t *testing.T, bin, kubeconfig string, vms ...*kubevirtv1.VirtualMachine) (map[string][]string, int) {
	t.Helper()
	var docs []kvvalidate.Doc
	for _, vm := range vms {
		j, err := json.Marshal(vm)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, kvvalidate.Doc{Name: vm.Name, Data: j})
	}
	return kvvalidate.Check(t, bin, kubeconfig, docs...)
}

// Instancetypes and preferences modelled on KubeVirt's
// common-instancetypes: the fedora preferences require 2Gi of memory,
// more than verify's default --memory.
const (
	testInstancetype   = "u1.medium"
	missingName        = "not-on-the-cluster"
	preferenceMemory   = "2Gi"
	instancetypeMemory = "4Gi"
	// cliMemory is the default of verify's --memory.
	cliMemory = "1Gi"
)

// testPreference returns the cluster preference an image of arch names.
func testPreference(arch string) string {
	if arch == "amd64" {
		return "fedora"
	}
	return "fedora." + arch
}

// addInstancetypes creates the cluster instancetype and the preferences
// of every architecture.
func addInstancetypes(t *testing.T, tc *testcluster.Cluster) {
	t.Helper()
	it := tc.KubeVirt().InstancetypeV1beta1()
	_, err := it.VirtualMachineClusterInstancetypes().Create(t.Context(), &instancetypev1beta1.VirtualMachineClusterInstancetype{
		ObjectMeta: metav1.ObjectMeta{Name: testInstancetype},
		Spec: instancetypev1beta1.VirtualMachineInstancetypeSpec{
			CPU:    instancetypev1beta1.CPUInstancetype{Guest: 1},
			Memory: instancetypev1beta1.MemoryInstancetype{Guest: resource.MustParse(instancetypeMemory)},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"amd64", "arm64", "s390x"} {
		spec := instancetypev1beta1.VirtualMachinePreferenceSpec{
			Devices: &instancetypev1beta1.DevicePreferences{
				PreferredDiskBus:        kubevirtv1.DiskBusVirtio,
				PreferredInterfaceModel: kubevirtv1.VirtIO,
				PreferredRng:            &kubevirtv1.Rng{},
			},
			Requirements: &instancetypev1beta1.PreferenceRequirements{
				CPU:    &instancetypev1beta1.CPUPreferenceRequirement{Guest: 1},
				Memory: &instancetypev1beta1.MemoryPreferenceRequirement{Guest: resource.MustParse(preferenceMemory)},
			},
		}
		switch arch {
		case "amd64":
			yes := true
			spec.Features = &instancetypev1beta1.FeaturePreferences{PreferredSmm: &kubevirtv1.FeatureState{}}
			spec.Firmware = &instancetypev1beta1.FirmwarePreferences{PreferredEfi: &kubevirtv1.EFI{SecureBoot: &yes}}
		case "arm64":
			no := false
			spec.PreferredArchitecture = &arch
			spec.Firmware = &instancetypev1beta1.FirmwarePreferences{PreferredEfi: &kubevirtv1.EFI{SecureBoot: &no}}
		default:
			spec.PreferredArchitecture = &arch
		}
		_, err := it.VirtualMachineClusterPreferences().Create(t.Context(), &instancetypev1beta1.VirtualMachineClusterPreference{
			ObjectMeta: metav1.ObjectMeta{Name: testPreference(arch)},
			Spec:       spec,
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestVMsPassKubeVirtAdmission makes every shape of VM that Cluster.Verify
// makes (each architecture; BIOS, EFI and Secure Boot; with the cluster's
// instancetype and preference, with either, with names the cluster does
// not have, or with --memory alone; with and without the guest agent check),
// as Verify makes them (the cloud-config with a fresh SSH key, the labels,
// the name), and runs them through KubeVirt's own admission: the VM
// webhooks, then the VMI webhooks for the VMI that virt-controller would
// make. Every one must pass without a cause, in a cluster that enables no
// feature gate.
func TestVMsPassKubeVirtAdmission(t *testing.T) {
	t.Parallel()
	bin := kvvalidate.Binary(t)
	tc := testcluster.Start(t)
	addInstancetypes(t, tc)
	// Verify looks up the instancetype and preference of each VM: many
	// requests, which the client's default rate limit would slow down.
	config := rest.CopyConfig(tc.Config)
	config.QPS = -1
	cluster, err := NewCluster(config)
	if err != nil {
		t.Fatal(err)
	}
	ns := tc.Namespace(t)

	type sizing struct {
		name                     string
		instancetype, preference func(arch string) string
		memory                   string // --memory
		guest                    string // the VM's memory; none when empty
	}
	none := func(string) string { return "" }
	named := func(name string) func(string) string { return func(string) string { return name } }
	sizings := []sizing{
		{name: "memory", instancetype: none, preference: none, memory: cliMemory, guest: cliMemory},
		{name: "memory-1536Mi", instancetype: none, preference: none, memory: "1536Mi", guest: "1536Mi"},
		{name: "instancetype-preference", instancetype: named(testInstancetype), preference: testPreference, memory: cliMemory},
		{name: "instancetype", instancetype: named(testInstancetype), preference: none, memory: cliMemory},
		// The preference requires more than --memory: Verify gives what it requires.
		{name: "preference-memory", instancetype: named(missingName), preference: testPreference, memory: cliMemory, guest: preferenceMemory},
		{name: "preference-memory-3Gi", instancetype: none, preference: testPreference, memory: "3Gi", guest: "3Gi"},
		{name: "missing-both", instancetype: named(missingName), preference: named(missingName), memory: cliMemory, guest: cliMemory},
	}
	type firmware struct {
		name            string
		efi, secureBoot bool
	}
	firmwares := []firmware{{name: "bios"}, {name: "efi", efi: true}, {name: "secureboot", efi: true, secureBoot: true}}

	var vms []*kubevirtv1.VirtualMachine
	shapes := map[string]string{} // VM name to shape
	for _, arch := range []string{"amd64", "arm64", "s390x"} {
		for _, fw := range firmwares {
			for _, sz := range sizings {
				for _, agent := range []bool{false, true} {
					shape := fmt.Sprintf("%s/%s/%s/guest-agent=%v", arch, fw.name, sz.name, agent)
					img := Image{
						Reference:    "quay.io/containerdisks/fedora:42",
						DefaultUser:  "fedora",
						Instancetype: sz.instancetype(arch),
						Preference:   sz.preference(arch),
						EFI:          fw.efi,
						SecureBoot:   fw.secureBoot,
						GuestAgent:   agent,
					}
					opts := ClusterOptions{Namespace: ns, Memory: sz.memory, Labels: map[string]string{"team": "a"}}.withDefaults()
					r := &run{c: cluster, img: img, arch: arch, opts: opts, res: &Result{}, namespace: ns}
					vm, _, _, err := r.newVM(t.Context())
					if err != nil {
						t.Fatalf("%s: %v", shape, err)
					}
					var guest string
					if m := vm.Spec.Template.Spec.Domain.Memory; m != nil && m.Guest != nil {
						guest = m.Guest.String()
					}
					if guest != sz.guest {
						t.Errorf("%s: the VM's memory is %q, want %q", shape, guest, sz.guest)
					}
					shapes[vm.Name] = shape
					vms = append(vms, vm)
				}
			}
		}
	}
	causes, code := admission(t, bin, tc.Kubeconfig(t), vms...)
	var rejected []string
	for name, cs := range causes {
		rejected = append(rejected, fmt.Sprintf("%s:\n\t%s", shapes[name], strings.Join(cs, "\n\t")))
	}
	slices.Sort(rejected)
	if code != 0 || len(rejected) > 0 {
		t.Errorf("KubeVirt rejects %d of %d VMs (exit status %d):\n%s", len(rejected), len(vms), code, strings.Join(rejected, "\n"))
	}
}

// TestKubeVirtAdmissionRejects proves that the validator the test above
// relies on does reject: a VM that KubeVirt's VM webhook refuses, and one
// whose VMI its VMI webhook would refuse.
func TestKubeVirtAdmissionRejects(t *testing.T) {
	t.Parallel()
	bin := kvvalidate.Binary(t)
	newVM := func(name, arch string) *kubevirtv1.VirtualMachine {
		vm, err := NewVirtualMachine(VMSpec{
			Image: Image{Reference: "quay.io/containerdisks/fedora:42"}, Arch: arch,
			Namespace: "default", Name: name, UserData: UserData{}.CloudConfig(), Memory: "1Gi",
		})
		if err != nil {
			t.Fatal(err)
		}
		return vm
	}
	noVolume := newVM("no-volume", "amd64")
	devices := &noVolume.Spec.Template.Spec.Domain.Devices
	devices.Disks = append(devices.Disks, kubevirtv1.Disk{Name: "data"})
	secureBoot := newVM("arm64-secure-boot", "arm64")
	yes := true
	secureBoot.Spec.Template.Spec.Domain.Firmware = &kubevirtv1.Firmware{Bootloader: &kubevirtv1.Bootloader{EFI: &kubevirtv1.EFI{SecureBoot: &yes}}}
	secureBoot.Spec.Template.Spec.Domain.Features = &kubevirtv1.Features{SMM: &kubevirtv1.FeatureState{Enabled: &yes}}

	causes, code := admission(t, bin, "", noVolume, secureBoot, newVM("valid", "amd64"))
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	want := map[string]string{
		"no-volume":         "spec.template.spec.domain.devices.disks[2].name: spec.template.spec.domain.devices.disks[2].Name 'data' not found.",
		"arm64-secure-boot": "VMI spec.domain.firmware.bootloader.efi.secureboot: UEFI secure boot is currently not supported on aarch64 Arch",
	}
	for name, w := range want {
		if !slices.Contains(causes[name], w) {
			t.Errorf("causes of %s: %q, want %q", name, causes[name], w)
		}
	}
	if len(causes["valid"]) > 0 {
		t.Errorf("causes of a valid VM: %q", causes["valid"])
	}
}

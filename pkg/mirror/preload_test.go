package mirror_test

import (
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"github.com/containerdisk/kubectl-containerdisk/internal/testcluster"
	"github.com/containerdisk/kubectl-containerdisk/pkg/mirror"
)

// TestMain stops the API server the package's tests share
// (testcluster.Shared).
func TestMain(m *testing.M) { testcluster.Main(m) }

// vmiSpec is a VMI spec booting from the given containerDisk images, plus a
// cloud-init volume.
func vmiSpec(images ...string) kubevirtv1.VirtualMachineInstanceSpec {
	spec := kubevirtv1.VirtualMachineInstanceSpec{}
	for i, image := range images {
		name := "disk" + string(rune('a'+i))
		spec.Domain.Devices.Disks = append(spec.Domain.Devices.Disks, kubevirtv1.Disk{Name: name})
		spec.Volumes = append(spec.Volumes, kubevirtv1.Volume{Name: name, VolumeSource: kubevirtv1.VolumeSource{
			ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: image},
		}})
	}
	spec.Volumes = append(spec.Volumes, kubevirtv1.Volume{Name: "cloudinit", VolumeSource: kubevirtv1.VolumeSource{
		CloudInitNoCloud: &kubevirtv1.CloudInitNoCloudSource{UserData: "#cloud-config\n"},
	}})
	return spec
}

func TestClusterImages(t *testing.T) {
	c := testcluster.Shared(t)
	ctx := t.Context()
	kv := c.KubeVirt().KubevirtV1()
	ns1, ns2 := c.Namespace(t), c.Namespace(t)

	// ns1: two VMs (one stopped, one sharing an image with the other) and
	// a VMI of its own; a VM with a kernel boot container and a DataVolume
	// template importing from a registry.
	vm := func(name string, spec kubevirtv1.VirtualMachineInstanceSpec) *kubevirtv1.VirtualMachine {
		return &kubevirtv1.VirtualMachine{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: kubevirtv1.VirtualMachineSpec{
				RunStrategy: pointer(kubevirtv1.RunStrategyHalted),
				Template:    &kubevirtv1.VirtualMachineInstanceTemplateSpec{Spec: spec},
			},
		}
	}
	kernel := vmiSpec()
	kernel.Domain.Firmware = &kubevirtv1.Firmware{KernelBoot: &kubevirtv1.KernelBoot{
		KernelArgs: "console=ttyS0",
		Container:  &kubevirtv1.KernelBootContainer{Image: "quay.io/kubevirt/alpine-ext-kernel-boot-demo:v1.7.0", KernelPath: "/boot/vmlinuz"},
	}}
	imported := vm("imported", vmiSpec())
	imported.Spec.DataVolumeTemplates = []kubevirtv1.DataVolumeTemplateSpec{{
		ObjectMeta: metav1.ObjectMeta{Name: "imported-root"},
		Spec: cdiv1.DataVolumeSpec{
			Source:  &cdiv1.DataVolumeSource{Registry: &cdiv1.DataVolumeSourceRegistry{URL: pointer("docker://quay.io/containerdisks/centos-stream:9")}},
			Storage: &cdiv1.StorageSpec{},
		},
	}, {
		ObjectMeta: metav1.ObjectMeta{Name: "blank"},
		Spec:       cdiv1.DataVolumeSpec{Source: &cdiv1.DataVolumeSource{Blank: &cdiv1.DataVolumeBlankImage{}}, Storage: &cdiv1.StorageSpec{}},
	}}
	for _, v := range []*kubevirtv1.VirtualMachine{
		vm("fedora", vmiSpec("quay.io/containerdisks/fedora:41")),
		vm("two-disks", vmiSpec("quay.io/containerdisks/fedora:41", "registry.local:5000/tools/virtio-win@sha256:"+sha("a"))),
		vm("kernel", kernel),
		imported,
	} {
		if _, err := kv.VirtualMachines(ns1).Create(ctx, v, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating VM %s: %v", v.Name, err)
		}
	}
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "ubuntu"},
		Spec:       vmiSpec("quay.io/containerdisks/ubuntu:24.04"),
	}
	if _, err := kv.VirtualMachineInstances(ns1).Create(ctx, vmi, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// ns2: a VMI only.
	vmi.Spec = vmiSpec("quay.io/containerdisks/debian:12")
	if _, err := kv.VirtualMachineInstances(ns2).Create(ctx, vmi, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	want1 := []string{
		"quay.io/containerdisks/centos-stream:9",
		"quay.io/containerdisks/fedora:41",
		"quay.io/containerdisks/ubuntu:24.04",
		"quay.io/kubevirt/alpine-ext-kernel-boot-demo:v1.7.0",
		"registry.local:5000/tools/virtio-win@sha256:" + sha("a"),
	}
	got, err := mirror.ClusterImages(ctx, c.KubeVirt(), ns1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want1) {
		t.Errorf("images in %s\n got %q\nwant %q", ns1, got, want1)
	}
	got, err = mirror.ClusterImages(ctx, c.KubeVirt(), ns2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"quay.io/containerdisks/debian:12"}; !slices.Equal(got, want) {
		t.Errorf("images in %s: %q, want %q", ns2, got, want)
	}
	// All namespaces: both, and perhaps what other tests made.
	got, err = mirror.ClusterImages(ctx, c.KubeVirt(), "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Errorf("images in all namespaces are not sorted and distinct: %q", got)
	}
	for _, image := range append(want1, "quay.io/containerdisks/debian:12") {
		if !slices.Contains(got, image) {
			t.Errorf("images in all namespaces lack %s: %q", image, got)
		}
	}
	// An empty namespace has none.
	if got, err := mirror.ClusterImages(ctx, c.KubeVirt(), c.Namespace(t)); err != nil || len(got) != 0 {
		t.Errorf("images in an empty namespace: %q, %v", got, err)
	}
}

func pointer[T any](v T) *T { return &v }

func sha(s string) string {
	return strings.Repeat(s, 64)
}

package docs

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	instancetypev1beta1 "kubevirt.io/api/instancetype/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/containerdisk/kubectl-containerdisk/internal/kvvalidate"
	"github.com/containerdisk/kubectl-containerdisk/internal/testcluster"
	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
)

// TestVirtualMachinePassesKubeVirtAdmission runs the example VM of each
// image's page through KubeVirt's own admission (hack/kvvalidate), on a
// cluster that has the image's instancetype and preference: users copy it
// as it is, so KubeVirt must accept it, with or without an instancetype.
func TestVirtualMachinePassesKubeVirtAdmission(t *testing.T) {
	bin := kvvalidate.Binary(t)
	tc := testcluster.Start(t)
	it := tc.KubeVirt().InstancetypeV1beta1()
	_, err := it.VirtualMachineClusterInstancetypes().Create(t.Context(), &instancetypev1beta1.VirtualMachineClusterInstancetype{
		ObjectMeta: metav1.ObjectMeta{Name: "u1.medium"},
		Spec: instancetypev1beta1.VirtualMachineInstancetypeSpec{
			CPU:    instancetypev1beta1.CPUInstancetype{Guest: 1},
			Memory: instancetypev1beta1.MemoryInstancetype{Guest: resource.MustParse("4Gi")},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fedora", "ubuntu"} {
		_, err := it.VirtualMachineClusterPreferences().Create(t.Context(), &instancetypev1beta1.VirtualMachineClusterPreference{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: instancetypev1beta1.VirtualMachinePreferenceSpec{
				Requirements: &instancetypev1beta1.PreferenceRequirements{
					Memory: &instancetypev1beta1.MemoryPreferenceRequirement{Guest: resource.MustParse("2Gi")},
				},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}

	page := func(name, arch string, md catalog.Metadata) kvvalidate.Doc {
		t.Helper()
		img := Images([]catalog.Release{{Name: name, Version: "1", Arch: arch, Stable: true, Latest: true, Metadata: md}})[0]
		data, err := VirtualMachine(img, Options{Registry: DefaultRegistry})
		if err != nil {
			t.Fatal(err)
		}
		return kvvalidate.Doc{Name: name, Data: data}
	}
	broken := page("broken", "amd64", catalog.Metadata{Instancetype: "u1.medium"})
	var vm map[string]any
	if err := yaml.Unmarshal(broken.Data, &vm); err != nil {
		t.Fatal(err)
	}
	devices := vm["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["domain"].(map[string]any)["devices"].(map[string]any)
	devices["disks"] = append(devices["disks"].([]any), map[string]any{"name": "data", "disk": map[string]any{"bus": "virtio"}})
	if broken.Data, err = yaml.Marshal(vm); err != nil {
		t.Fatal(err)
	}
	docs := []kvvalidate.Doc{
		// As the catalog's entries are: u1.medium and a preference of
		// their own, a default user and the default user-data.
		page("fedora", "amd64", catalog.Metadata{DefaultUser: "fedora", Instancetype: "u1.medium", Preference: "fedora",
			UserData: catalog.DefaultUserData("fedora"), EFI: true, GuestAgent: true}),
		page("ubuntu", "arm64", catalog.Metadata{DefaultUser: "ubuntu", Instancetype: "u1.medium", Preference: "ubuntu",
			UserData: catalog.DefaultUserData("ubuntu")}),
		page("plain", "amd64", catalog.Metadata{Instancetype: "u1.medium"}),
		// No instancetype: the example gives the memory.
		page("no-instancetype", "amd64", catalog.Metadata{Preference: "fedora"}),
		page("nothing", "s390x", catalog.Metadata{}),
		// A disk without a volume, which KubeVirt refuses: the test can fail.
		broken,
	}
	causes, code := kvvalidate.Check(t, bin, tc.Kubeconfig(t), docs...)
	if code != 1 {
		t.Errorf("exit status %d, want 1 (the broken example)", code)
	}
	for _, d := range docs[:len(docs)-1] {
		if len(causes[d.Name]) > 0 {
			t.Errorf("KubeVirt rejects the example VM of %s:\n\t%s\nthe manifest:\n%s", d.Name, strings.Join(causes[d.Name], "\n\t"), d.Data)
		}
	}
	if want := "Name 'data' not found"; len(causes["broken"]) != 1 || !strings.Contains(causes["broken"][0], want) {
		t.Errorf("causes of the broken example: %q, want one with %q; the manifest:\n%s", causes["broken"], want, broken.Data)
	}
}

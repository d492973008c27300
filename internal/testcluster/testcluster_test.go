package testcluster

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	kubevirtv1 "kubevirt.io/api/core/v1"
	instancetypev1beta1 "kubevirt.io/api/instancetype/v1beta1"
	"kubevirt.io/client-go/kubevirt"
)

func TestMain(m *testing.M) { Main(m) }

// newVM is a VM whose template asks for arch (none when empty), as the
// verify plugin makes them: a containerdisk volume, a node selector.
func newVM(name, arch string, running bool) *kubevirtv1.VirtualMachine {
	strategy := kubevirtv1.RunStrategyHalted
	if running {
		strategy = kubevirtv1.RunStrategyAlways
	}
	var selector map[string]string
	if arch != "" {
		selector = map[string]string{corev1.LabelArchStable: arch}
	}
	return &kubevirtv1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: kubevirtv1.VirtualMachineSpec{
			RunStrategy: &strategy,
			Template: &kubevirtv1.VirtualMachineInstanceTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: kubevirtv1.VirtualMachineInstanceSpec{
					NodeSelector: selector,
					Domain: kubevirtv1.DomainSpec{
						Devices: kubevirtv1.Devices{Disks: []kubevirtv1.Disk{{
							Name:       "containerdisk",
							DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}},
						}}},
					},
					Volumes: []kubevirtv1.Volume{{
						Name: "containerdisk",
						VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{
							Image: "registry.example/fedora:42",
						}},
					}},
				},
			},
		},
	}
}

func TestCRDsServeVirtualMachines(t *testing.T) {
	t.Parallel()
	c := Shared(t)
	ns := c.Namespace(t)
	vms := c.KubeVirt().KubevirtV1().VirtualMachines(ns)
	ctx := t.Context()

	want := newVM("fedora", "arm64", true)
	if _, err := vms.Create(ctx, want, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := vms.Get(ctx, "fedora", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want.Spec, got.Spec); diff != "" {
		t.Errorf("spec after a round trip (-created +read):\n%s", diff)
	}

	// The status subresource, which virt-controller writes.
	got.Status.PrintableStatus = kubevirtv1.VirtualMachineStatusProvisioning
	if _, err := vms.UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("updating the status: %v", err)
	}
	list, err := vms.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Status.PrintableStatus != kubevirtv1.VirtualMachineStatusProvisioning {
		t.Errorf("listed %+v, want the VM with printableStatus Provisioning", list.Items)
	}

	// The CRD's schema is KubeVirt's, which requires a template.
	bad := newVM("bad", "", false)
	bad.Spec.Template = nil
	if _, err := vms.Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("creating a VM without a template: %v, want Invalid", err)
	}
}

// The instancetypes and preferences that VMs refer to, cluster-wide and
// namespaced, are served too: KubeVirt's admission reads them.
func TestCRDsServeInstancetypes(t *testing.T) {
	t.Parallel()
	c := Shared(t)
	ns := c.Namespace(t)
	it := c.KubeVirt().InstancetypeV1beta1()
	ctx := t.Context()
	name := "instancetype-" + ns // cluster-wide: unique to this test
	_, err := it.VirtualMachineClusterInstancetypes().Create(ctx, &instancetypev1beta1.VirtualMachineClusterInstancetype{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: instancetypev1beta1.VirtualMachineInstancetypeSpec{
			CPU:    instancetypev1beta1.CPUInstancetype{Guest: 2},
			Memory: instancetypev1beta1.MemoryInstancetype{Guest: resource.MustParse("4Gi")},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = it.VirtualMachineClusterInstancetypes().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	got, err := it.VirtualMachineClusterInstancetypes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.CPU.Guest != 2 || got.Spec.Memory.Guest.String() != "4Gi" {
		t.Errorf("read back %+v, want 2 CPUs and 4Gi", got.Spec)
	}
	_, err = it.VirtualMachinePreferences(ns).Create(ctx, &instancetypev1beta1.VirtualMachinePreference{
		ObjectMeta: metav1.ObjectMeta{Name: "fedora"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := it.VirtualMachineClusterPreferences().List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("listing cluster preferences: %v", err)
	}
	if _, err := it.VirtualMachineInstancetypes(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("listing instancetypes: %v", err)
	}
}

func TestKubeconfig(t *testing.T) {
	t.Parallel()
	c := Shared(t)
	ns := c.Namespace(t)
	path := c.Kubeconfig(t)
	config, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubevirt.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.KubevirtV1().VirtualMachineInstances(ns).List(t.Context(), metav1.ListOptions{}); err != nil {
		t.Errorf("listing VMIs with %s: %v", path, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig file: %v, %v; want mode 0600", fi.Mode(), err)
	}
}

func TestAddNodes(t *testing.T) {
	c := Shared(t)
	names := c.AddNodes(t, "amd64", "arm64")
	for i, arch := range []string{"amd64", "arm64"} {
		node, err := c.Kubernetes().CoreV1().Nodes().Get(t.Context(), names[i], metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := node.Labels[corev1.LabelArchStable]; got != arch {
			t.Errorf("node %s has arch %q, want %q", node.Name, got, arch)
		}
		if got := node.Labels[corev1.LabelOSStable]; got != "linux" {
			t.Errorf("node %s has os %q, want linux", node.Name, got)
		}
		if !nodeReady(node) {
			t.Errorf("node %s is not Ready: %+v", node.Name, node.Status.Conditions)
		}
		if len(node.Spec.Taints) != 0 {
			t.Errorf("node %s has taints %+v, want none", node.Name, node.Spec.Taints)
		}
	}
}

func TestStartOwnServer(t *testing.T) {
	t.Parallel()
	began := time.Now()
	c := Start(t)
	t.Logf("started in %v", time.Since(began))
	if c.Config.Host == Shared(t).Config.Host {
		t.Errorf("Start returned the shared server %s", c.Config.Host)
	}
	crds, err := c.Kubernetes().Discovery().ServerResourcesForGroupVersion("kubevirt.io/v1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range crds.APIResources {
		names = append(names, r.Name)
	}
	for _, want := range []string{"virtualmachines", "virtualmachines/status", "virtualmachineinstances"} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("kubevirt.io/v1 serves %v, want %s among them", names, want)
		}
	}
}

func TestMissingBinariesSayWhatToRun(t *testing.T) {
	t.Setenv("KUBEBUILDER_ASSETS", t.TempDir())
	_, err := start()
	if err == nil {
		t.Fatal("started without binaries")
	}
	if !strings.Contains(err.Error(), "hack/kube-apiserver.sh") {
		t.Errorf("error %q does not name hack/kube-apiserver.sh", err)
	}
}

// The version in the cache path is the one the script builds.
func TestKubernetesVersionIsTheToolsModules(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "hack", "tools", "kube-apiserver", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[0] == "require" {
			fields = fields[1:]
		}
		if len(fields) >= 2 && fields[0] == "k8s.io/kubernetes" {
			got = fields[1]
		}
	}
	if got != KubernetesVersion {
		t.Errorf("hack/tools/kube-apiserver/go.mod requires k8s.io/kubernetes %q, KubernetesVersion is %q", got, KubernetesVersion)
	}
}

func TestNamePrefix(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"TestFoo", "testfoo-"},
		{"TestFoo/arm64_on_amd64", "testfoo-arm64-on-amd64-"},
		{"Test/" + strings.Repeat("x", 60), "test-" + strings.Repeat("x", 35) + "-"},
		{"/", "test-"},
	} {
		if got := namePrefix(tc.in); got != tc.want {
			t.Errorf("namePrefix(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// waitFor polls get until done says so, and fails the test with the last
// object read when it does not within timeout.
func waitFor[T any](t *testing.T, timeout time.Duration, what string, get func(context.Context) (T, error), done func(T) bool) T {
	t.Helper()
	var last T
	var lastErr error
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	err := wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		last, lastErr = get(ctx)
		return lastErr == nil && done(last), nil
	})
	if err != nil {
		t.Fatalf("waiting %v for %s: last read %+v (error %v)", timeout, what, last, lastErr)
	}
	return last
}

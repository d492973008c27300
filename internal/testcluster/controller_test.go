package testcluster

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// timeout bounds each wait for the controller, which takes milliseconds.
const timeout = 20 * time.Second

// started starts a controller with opts in a namespace of its own and
// returns the namespace.
func started(t *testing.T, c *Cluster, opts ControllerOptions) string {
	t.Helper()
	opts.Namespace = c.Namespace(t)
	StartController(t.Context(), t, c, opts)
	return opts.Namespace
}

func getVM(c *Cluster, ns, name string) func(context.Context) (*kubevirtv1.VirtualMachine, error) {
	return func(ctx context.Context) (*kubevirtv1.VirtualMachine, error) {
		return c.KubeVirt().KubevirtV1().VirtualMachines(ns).Get(ctx, name, metav1.GetOptions{})
	}
}

func getVMI(c *Cluster, ns, name string) func(context.Context) (*kubevirtv1.VirtualMachineInstance, error) {
	return func(ctx context.Context) (*kubevirtv1.VirtualMachineInstance, error) {
		return c.KubeVirt().KubevirtV1().VirtualMachineInstances(ns).Get(ctx, name, metav1.GetOptions{})
	}
}

func vmiCondition(vmi *kubevirtv1.VirtualMachineInstance, typ kubevirtv1.VirtualMachineInstanceConditionType) *kubevirtv1.VirtualMachineInstanceCondition {
	for i := range vmi.Status.Conditions {
		if vmi.Status.Conditions[i].Type == typ {
			return &vmi.Status.Conditions[i]
		}
	}
	return nil
}

func vmReady(vm *kubevirtv1.VirtualMachine) bool {
	return vm.Status.Ready && vm.Status.PrintableStatus == kubevirtv1.VirtualMachineStatusRunning
}

func TestControllerRunsVMToReady(t *testing.T) {
	c := Shared(t)
	nodes := c.AddNodes(t, "amd64")
	info := &kubevirtv1.VirtualMachineInstanceGuestOSInfo{Name: "Fedora Linux", ID: "fedora", VersionID: "42", KernelRelease: "6.14.0"}
	ns := started(t, c, ControllerOptions{GuestOSInfo: info})

	running := newVM("running-true", "", false)
	yes := true
	running.Spec.RunStrategy, running.Spec.Running = nil, &yes //nolint:staticcheck // running: true is what older manifests say
	for _, vm := range []*kubevirtv1.VirtualMachine{newVM("always", "amd64", true), running} {
		t.Run(vm.Name, func(t *testing.T) {
			created, err := c.KubeVirt().KubevirtV1().VirtualMachines(ns).Create(t.Context(), vm, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := waitFor(t, timeout, "the VM to be Ready", getVM(c, ns, vm.Name), vmReady)
			if !got.Status.Created || got.Status.RunStrategy != kubevirtv1.RunStrategyAlways {
				t.Errorf("VM status %+v, want created and runStrategy Always", got.Status)
			}

			vmi, err := getVMI(c, ns, vm.Name)(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if owner := metav1.GetControllerOf(vmi); owner == nil || owner.UID != created.UID || owner.Kind != "VirtualMachine" {
				t.Errorf("VMI controller %+v, want VirtualMachine %s (%s)", owner, vm.Name, created.UID)
			}
			if vmi.Labels["app"] != vm.Name || vmi.Spec.Volumes[0].ContainerDisk.Image != "registry.example/fedora:42" {
				t.Errorf("VMI labels %v, volumes %+v: not the VM's template", vmi.Labels, vmi.Spec.Volumes)
			}
			if vmi.Status.Phase != kubevirtv1.Running || vmi.Status.NodeName != nodes[0] {
				t.Errorf("VMI phase %s on node %q, want Running on %s", vmi.Status.Phase, vmi.Status.NodeName, nodes[0])
			}
			if cond := vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceReady); cond == nil || cond.Status != corev1.ConditionTrue {
				t.Errorf("VMI Ready condition %+v, want True", cond)
			}
			if cond := vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceAgentConnected); cond == nil || cond.Status != corev1.ConditionTrue {
				t.Errorf("VMI AgentConnected condition %+v, want True", cond)
			}
			if vmi.Status.GuestOSInfo != *info {
				t.Errorf("VMI guestOSInfo %+v, want %+v", vmi.Status.GuestOSInfo, *info)
			}
			var phases []kubevirtv1.VirtualMachineInstancePhase
			for _, p := range vmi.Status.PhaseTransitionTimestamps {
				phases = append(phases, p.Phase)
			}
			want := []kubevirtv1.VirtualMachineInstancePhase{kubevirtv1.Pending, kubevirtv1.Scheduling, kubevirtv1.Scheduled, kubevirtv1.Running}
			if !slices.Equal(phases, want) {
				t.Errorf("VMI went through phases %v, want %v", phases, want)
			}
		})
	}
}

func TestControllerSchedulesByArchitecture(t *testing.T) {
	c := Shared(t)
	nodes := c.AddNodes(t, "amd64", "arm64")
	nodeArch := map[string]string{nodes[0]: "amd64", nodes[1]: "arm64"}
	ns := started(t, c, ControllerOptions{})

	for _, tc := range []struct {
		name, selector, architecture string
		wantArch                     string // "": unschedulable
	}{
		{name: "amd64", selector: "amd64", wantArch: "amd64"},
		{name: "arm64", selector: "arm64", wantArch: "arm64"},
		{name: "spec-architecture", architecture: "arm64", wantArch: "arm64"},
		{name: "s390x", selector: "s390x"},
		{name: "conflicting", selector: "amd64", architecture: "arm64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vm := newVM(tc.name, tc.selector, true)
			vm.Spec.Template.Spec.Architecture = tc.architecture
			if _, err := c.KubeVirt().KubevirtV1().VirtualMachines(ns).Create(t.Context(), vm, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if tc.wantArch != "" {
				waitFor(t, timeout, "the VM to be Ready", getVM(c, ns, vm.Name), vmReady)
				vmi, err := getVMI(c, ns, vm.Name)(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if got := nodeArch[vmi.Status.NodeName]; got != tc.wantArch {
					t.Errorf("VMI runs on %q (arch %q), want a node of arch %s", vmi.Status.NodeName, got, tc.wantArch)
				}
				if vmi.Labels[kubevirtv1.NodeNameLabel] != vmi.Status.NodeName {
					t.Errorf("VMI label %s=%q, want %q", kubevirtv1.NodeNameLabel, vmi.Labels[kubevirtv1.NodeNameLabel], vmi.Status.NodeName)
				}
				return
			}
			waitFor(t, timeout, "the VM to be ErrorUnschedulable", getVM(c, ns, vm.Name), func(vm *kubevirtv1.VirtualMachine) bool {
				return vm.Status.PrintableStatus == kubevirtv1.VirtualMachineStatusUnschedulable
			})
			vmi, err := getVMI(c, ns, vm.Name)(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			cond := vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled))
			if vmi.Status.Phase != kubevirtv1.Scheduling || vmi.Status.NodeName != "" ||
				cond == nil || cond.Status != corev1.ConditionFalse || cond.Reason != corev1.PodReasonUnschedulable {
				t.Errorf("VMI phase %s, node %q, PodScheduled %+v; want Scheduling, no node, False Unschedulable",
					vmi.Status.Phase, vmi.Status.NodeName, cond)
			}
			t.Logf("PodScheduled message: %s", cond.Message)
		})
	}
}

// A node of the missing architecture that joins later takes the waiting VMI.
func TestControllerSchedulesWhenANodeJoins(t *testing.T) {
	c := Shared(t)
	c.AddNodes(t, "amd64")
	ns := started(t, c, ControllerOptions{})
	vm := newVM("waits", "s390x", true)
	if _, err := c.KubeVirt().KubevirtV1().VirtualMachines(ns).Create(t.Context(), vm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, timeout, "the VM to be ErrorUnschedulable", getVM(c, ns, vm.Name), func(vm *kubevirtv1.VirtualMachine) bool {
		return vm.Status.PrintableStatus == kubevirtv1.VirtualMachineStatusUnschedulable
	})
	node := c.AddNodes(t, "s390x")[0]
	waitFor(t, timeout, "the VM to be Ready", getVM(c, ns, vm.Name), vmReady)
	vmi, err := getVMI(c, ns, vm.Name)(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if vmi.Status.NodeName != node {
		t.Errorf("VMI runs on %q, want %s", vmi.Status.NodeName, node)
	}
	if cond := vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled)); cond == nil || cond.Status != corev1.ConditionTrue {
		t.Errorf("VMI PodScheduled %+v, want True", cond)
	}
}

// A tainted node takes only the VMIs that tolerate its taint.
func TestControllerHonoursTaints(t *testing.T) {
	c := Shared(t)
	node := c.AddNodes(t, "amd64")[0]
	taint := corev1.Taint{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}
	n, err := c.Kubernetes().CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.Taints = append(n.Spec.Taints, taint)
	if _, err := c.Kubernetes().CoreV1().Nodes().Update(t.Context(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ns := started(t, c, ControllerOptions{})
	vms := c.KubeVirt().KubevirtV1().VirtualMachines(ns)

	if _, err := vms.Create(t.Context(), newVM("intolerant", "amd64", true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tolerant := newVM("tolerant", "amd64", true)
	tolerant.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
	if _, err := vms.Create(t.Context(), tolerant, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, timeout, "the tolerant VM to be Ready", getVM(c, ns, "tolerant"), vmReady)
	got := waitFor(t, timeout, "the intolerant VM to be ErrorUnschedulable", getVMI(c, ns, "intolerant"), func(vmi *kubevirtv1.VirtualMachineInstance) bool {
		cond := vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled))
		return cond != nil && cond.Reason == corev1.PodReasonUnschedulable
	})
	want := "0/1 nodes are available: 1 node(s) were not Ready, were unschedulable or had untolerated taints."
	if cond := vmiCondition(got, kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled)); cond.Message != want {
		t.Errorf("PodScheduled message %q, want %q", cond.Message, want)
	}
}

func TestUnschedulableMessage(t *testing.T) {
	for _, tc := range []struct {
		nodes, matching int
		want            string
	}{
		{0, 0, "0/0 nodes are available."},
		{2, 0, "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."},
		{3, 1, "0/3 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 1 node(s) were not Ready, were unschedulable or had untolerated taints."},
	} {
		if got := unschedulableMessage(tc.nodes, tc.matching); got != tc.want {
			t.Errorf("unschedulableMessage(%d, %d) = %q, want %q", tc.nodes, tc.matching, got, tc.want)
		}
	}
}

func TestControllerNeverReady(t *testing.T) {
	c := Shared(t)
	c.AddNodes(t, "amd64")
	ns := started(t, c, ControllerOptions{NeverReady: true})
	vm := newVM("never", "amd64", true)
	if _, err := c.KubeVirt().KubevirtV1().VirtualMachines(ns).Create(t.Context(), vm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, timeout, "the VM to be Running", getVM(c, ns, vm.Name), func(vm *kubevirtv1.VirtualMachine) bool {
		return vm.Status.PrintableStatus == kubevirtv1.VirtualMachineStatusRunning
	})
	// It stays so: a caller waiting for Ready times out.
	time.Sleep(500 * time.Millisecond)
	got, err := getVM(c, ns, vm.Name)(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Ready {
		t.Errorf("VM status.ready is true with NeverReady")
	}
	vmi, err := getVMI(c, ns, vm.Name)(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cond := vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceReady); vmi.Status.Phase != kubevirtv1.Running || cond == nil || cond.Status != corev1.ConditionFalse {
		t.Errorf("VMI phase %s, Ready %+v; want Running, Ready False", vmi.Status.Phase, cond)
	}
}

func TestControllerPhaseDelay(t *testing.T) {
	c := Shared(t)
	c.AddNodes(t, "amd64")
	const delay = 300 * time.Millisecond
	ns := started(t, c, ControllerOptions{PhaseDelay: delay})
	vm := newVM("slow", "", true)
	began := time.Now()
	if _, err := c.KubeVirt().KubevirtV1().VirtualMachines(ns).Create(t.Context(), vm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Pending, then Scheduling and Scheduled, each for delay.
	vmi := waitFor(t, timeout, "the VMI to be Scheduling", getVMI(c, ns, vm.Name), func(vmi *kubevirtv1.VirtualMachineInstance) bool {
		return vmi.Status.Phase == kubevirtv1.Scheduling
	})
	if vmi.Status.NodeName != "" {
		t.Errorf("VMI in Scheduling has node %q", vmi.Status.NodeName)
	}
	waitFor(t, timeout, "the VM to be Ready", getVM(c, ns, vm.Name), vmReady)
	if took := time.Since(began); took < 3*delay {
		t.Errorf("VM Ready after %v, want at least 3×%v", took, delay)
	}
}

func TestControllerDeletesVMIOfDeletedVM(t *testing.T) {
	c := Shared(t)
	c.AddNodes(t, "amd64")
	ns := started(t, c, ControllerOptions{})
	vms := c.KubeVirt().KubevirtV1().VirtualMachines(ns)
	for _, name := range []string{"deleted", "stopped"} {
		if _, err := vms.Create(t.Context(), newVM(name, "", true), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, timeout, "the VM to be Ready", getVM(c, ns, name), vmReady)
	}

	if err := vms.Delete(t.Context(), "deleted", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Stopping: runStrategy Halted.
	vm, err := vms.Get(t.Context(), "stopped", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	halted := kubevirtv1.RunStrategyHalted
	vm.Spec.RunStrategy = &halted
	if _, err := vms.Update(t.Context(), vm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{"deleted", "stopped"} {
		waitFor(t, timeout, "VMI "+name+" to be deleted", func(ctx context.Context) (bool, error) {
			_, err := getVMI(c, ns, name)(ctx)
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			return false, err
		}, func(gone bool) bool { return gone })
	}
	got := waitFor(t, timeout, "the VM to be Stopped", getVM(c, ns, "stopped"), func(vm *kubevirtv1.VirtualMachine) bool {
		return vm.Status.PrintableStatus == kubevirtv1.VirtualMachineStatusStopped
	})
	if got.Status.Ready || got.Status.Created {
		t.Errorf("stopped VM status %+v, want neither ready nor created", got.Status)
	}
}

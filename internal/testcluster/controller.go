package testcluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// ControllerOptions say how the stand-in virt-controller of
// [StartController] behaves. The zero value, with a Namespace, moves each VMI
// to Running and Ready as fast as it can.
type ControllerOptions struct {
	// Namespace is the namespace whose VirtualMachines the controller
	// drives. Required.
	Namespace string
	// PhaseDelay is how long a VMI stays in each of the phases Pending,
	// Scheduling and Scheduled before it moves on, so that it is Running
	// 3×PhaseDelay after it was created.
	PhaseDelay time.Duration
	// NeverReady leaves Running VMIs with the condition Ready False (reason
	// ContainersNotReady), as when the guest never becomes ready, and so
	// their VMs with status.ready false: for tests of timeouts.
	NeverReady bool
	// GuestOSInfo, when set, is what Running VMIs report in
	// status.guestOSInfo, with the condition AgentConnected True, as when the
	// QEMU guest agent has connected.
	GuestOSInfo *kubevirtv1.VirtualMachineInstanceGuestOSInfo
}

// StartController starts a stand-in for KubeVirt's virt-controller and
// virt-handler, which envtest does not run, until ctx is done or the test
// ends. For each VirtualMachine in opts.Namespace that should run (running:
// true, or runStrategy Always, RerunOnFailure or Once) it creates the
// VirtualMachineInstance from the VM's template, owned by the VM, and moves it
// through the phases Pending, Scheduling, Scheduled and Running, updating the
// VM's status (created, ready, printableStatus, conditions) as it goes.
//
// A VMI is scheduled to a Ready, schedulable node whose taints it tolerates
// and whose labels match its spec.nodeSelector (kubernetes.io/arch among
// them) and, when it sets spec.architecture, whose kubernetes.io/arch is that
// architecture: the one with the fewest of the namespace's VMIs, then by
// name. When no node fits, the VMI stays in Scheduling with the condition
// PodScheduled False (reason Unschedulable, the scheduler's message) and its
// VM's printableStatus is ErrorUnschedulable, until a node that fits appears.
// Add nodes with [Cluster.AddNodes].
//
// envtest runs no garbage collector, so the controller itself deletes the VMI
// of a VM that is deleted or should no longer run.
func StartController(ctx context.Context, tb testing.TB, c *Cluster, opts ControllerOptions) {
	tb.Helper()
	if opts.Namespace == "" {
		tb.Fatal("testcluster.StartController: ControllerOptions.Namespace is empty")
	}
	ctx, cancel := context.WithCancel(ctx)
	ctl := &controller{
		c:       c,
		opts:    opts,
		tb:      tb,
		poke:    make(chan struct{}, 1),
		stepped: make(map[types.UID]time.Time),
	}
	var wg sync.WaitGroup
	ns := opts.Namespace
	for _, w := range []func(context.Context) (watch.Interface, error){
		func(ctx context.Context) (watch.Interface, error) {
			return c.kubevirt.KubevirtV1().VirtualMachines(ns).Watch(ctx, metav1.ListOptions{})
		},
		func(ctx context.Context) (watch.Interface, error) {
			return c.kubevirt.KubevirtV1().VirtualMachineInstances(ns).Watch(ctx, metav1.ListOptions{})
		},
		func(ctx context.Context) (watch.Interface, error) {
			return c.kube.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{})
		},
	} {
		wg.Go(func() { ctl.watch(ctx, w) })
	}
	wg.Go(func() { ctl.run(ctx) })
	// Stopped before the test ends, so that it never logs to a finished test.
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// Reasons and messages the controller sets, as KubeVirt and the scheduler
// word them.
const (
	reasonUnschedulable      = corev1.PodReasonUnschedulable
	reasonContainersNotReady = "ContainersNotReady"
	reasonVMINotExists       = "VMINotExists"
	// retryAfter is how soon a reconcile that failed (a conflict, mostly)
	// runs again.
	retryAfter = 100 * time.Millisecond
)

// controller is the state of one StartController.
type controller struct {
	c    *Cluster
	opts ControllerOptions
	tb   testing.TB
	// poke asks for a reconcile; watches send to it when anything changes.
	poke chan struct{}
	// stepped holds when each VMI last changed phase, for PhaseDelay:
	// timestamps in the API have whole seconds only.
	stepped map[types.UID]time.Time
}

// watch pokes the controller on every event of the watches start opens,
// reopening them when they end, until ctx is done.
func (ctl *controller) watch(ctx context.Context, start func(context.Context) (watch.Interface, error)) {
	for ctx.Err() == nil {
		w, err := start(ctx)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(retryAfter):
			}
			continue
		}
		// Anything may have changed while no watch was open.
		ctl.wake()
	events:
		for {
			select {
			case <-ctx.Done():
				break events
			case _, ok := <-w.ResultChan():
				if !ok {
					break events
				}
				ctl.wake()
			}
		}
		w.Stop()
	}
}

func (ctl *controller) wake() {
	select {
	case ctl.poke <- struct{}{}:
	default:
	}
}

// run reconciles whenever poked or when a delayed step falls due.
func (ctl *controller) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ctl.poke:
		case <-timer.C:
		}
		next, errs := ctl.reconcile(ctx)
		if ctx.Err() != nil {
			return
		}
		for _, err := range errs {
			// A conflict or a race with a deletion is the normal lot of a
			// controller: the next try sees the newer object.
			if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) && !apierrors.IsAlreadyExists(err) {
				ctl.tb.Logf("testcluster controller (namespace %s): %v", ctl.opts.Namespace, err)
			}
		}
		if len(errs) > 0 {
			next = retryAfter
		}
		timer.Stop()
		if next > 0 {
			timer.Reset(next)
		}
	}
}

// reconcile brings every VM and VMI of the namespace one step closer to what
// it should be, and returns how soon a delayed step falls due (0: none) and
// what failed.
func (ctl *controller) reconcile(ctx context.Context) (time.Duration, []error) {
	ns := ctl.opts.Namespace
	kv := ctl.c.kubevirt.KubevirtV1()
	vms, err := kv.VirtualMachines(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, []error{err}
	}
	vmis, err := kv.VirtualMachineInstances(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, []error{err}
	}
	nodes, err := ctl.c.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, []error{err}
	}

	vmByUID := make(map[types.UID]*kubevirtv1.VirtualMachine)
	for i := range vms.Items {
		vmByUID[vms.Items[i].UID] = &vms.Items[i]
	}
	vmiByName := make(map[string]*kubevirtv1.VirtualMachineInstance)
	load := make(map[string]int) // VMIs per node
	seen := make(map[types.UID]bool)
	var errs []error
	addErr := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for i := range vmis.Items {
		vmi := &vmis.Items[i]
		seen[vmi.UID] = true
		if vmi.Status.NodeName != "" {
			load[vmi.Status.NodeName]++
		}
		owner := metav1.GetControllerOf(vmi)
		if owner == nil || owner.Kind != "VirtualMachine" {
			continue // not a VM's: left alone, as virt-controller would drive it as a bare VMI
		}
		if vm, ok := vmByUID[owner.UID]; !ok || vm.DeletionTimestamp != nil {
			addErr(ctl.deleteVMI(ctx, vmi))
			continue
		}
		vmiByName[vmi.Name] = vmi
	}
	for uid := range ctl.stepped {
		if !seen[uid] {
			delete(ctl.stepped, uid)
		}
	}

	var next time.Duration
	for i := range vms.Items {
		vm := &vms.Items[i]
		if vm.DeletionTimestamp != nil {
			continue
		}
		strategy, err := vm.RunStrategy()
		if err != nil {
			addErr(fmt.Errorf("VirtualMachine %s: %w", vm.Name, err))
			continue
		}
		vmi := vmiByName[vm.Name]
		switch {
		case shouldRun(strategy) && vmi == nil:
			vmi, err = ctl.createVMI(ctx, vm)
		case !shouldRun(strategy) && vmi != nil:
			err = ctl.deleteVMI(ctx, vmi)
			vmi = nil
		case vmi != nil && vmi.DeletionTimestamp == nil:
			var due time.Duration
			due, err = ctl.step(ctx, vmi, nodes.Items, load)
			if due > 0 && (next == 0 || due < next) {
				next = due
			}
		}
		if err != nil {
			addErr(err)
			continue
		}
		addErr(ctl.updateVMStatus(ctx, vm, strategy, vmi))
	}
	return next, errs
}

// shouldRun tells whether a VM with the run strategy has a VMI.
func shouldRun(s kubevirtv1.VirtualMachineRunStrategy) bool {
	switch s {
	case kubevirtv1.RunStrategyAlways, kubevirtv1.RunStrategyRerunOnFailure, kubevirtv1.RunStrategyOnce:
		return true
	}
	return false
}

// createVMI creates the VMI of vm from its template, as virt-controller does.
func (ctl *controller) createVMI(ctx context.Context, vm *kubevirtv1.VirtualMachine) (*kubevirtv1.VirtualMachineInstance, error) {
	if vm.Spec.Template == nil {
		return nil, fmt.Errorf("VirtualMachine %s has no spec.template", vm.Name)
	}
	tmpl := vm.Spec.Template.DeepCopy()
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{
			Name:        vm.Name,
			Namespace:   vm.Namespace,
			Labels:      tmpl.ObjectMeta.Labels,
			Annotations: tmpl.ObjectMeta.Annotations,
			OwnerReferences: []metav1.OwnerReference{
				*metav1.NewControllerRef(vm, kubevirtv1.VirtualMachineGroupVersionKind),
			},
		},
		Spec: tmpl.Spec,
	}
	created, err := ctl.c.kubevirt.KubevirtV1().VirtualMachineInstances(vm.Namespace).Create(ctx, vmi, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating VirtualMachineInstance %s: %w", vm.Name, err)
	}
	return created, nil
}

func (ctl *controller) deleteVMI(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) error {
	err := ctl.c.kubevirt.KubevirtV1().VirtualMachineInstances(vmi.Namespace).Delete(ctx, vmi.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &vmi.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting VirtualMachineInstance %s: %w", vmi.Name, err)
	}
	return nil
}

// step moves vmi to its next phase once PhaseDelay has passed since the
// last, and returns how long until then when it has not.
func (ctl *controller) step(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, nodes []corev1.Node, load map[string]int) (time.Duration, error) {
	phase := vmi.Status.Phase
	if phase == kubevirtv1.Running || phase == kubevirtv1.Succeeded || phase == kubevirtv1.Failed {
		return 0, nil
	}
	if phase != kubevirtv1.VmPhaseUnset {
		last, ok := ctl.stepped[vmi.UID]
		if !ok {
			last = vmi.CreationTimestamp.Time
		}
		if wait := ctl.opts.PhaseDelay - time.Since(last); wait > 0 {
			return wait, nil
		}
	}

	now := metav1.Now()
	st := &vmi.Status
	switch phase {
	case kubevirtv1.VmPhaseUnset:
		st.Phase = kubevirtv1.Pending
		setVMICondition(st, kubevirtv1.VirtualMachineInstanceReady, corev1.ConditionFalse, kubevirtv1.PodNotExistsReason, "virt-launcher pod has not yet been scheduled", now)
	case kubevirtv1.Pending:
		st.Phase = kubevirtv1.Scheduling
		setVMICondition(st, kubevirtv1.VirtualMachineInstanceReady, corev1.ConditionFalse, kubevirtv1.GuestNotRunningReason, "Guest VM is not reported as running", now)
	case kubevirtv1.Scheduling:
		node, matching := pickNode(vmi, nodes, load)
		if node == "" {
			msg := unschedulableMessage(len(nodes), matching)
			if !setVMICondition(st, kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled), corev1.ConditionFalse, reasonUnschedulable, msg, now) {
				return 0, nil // already said; a node event pokes the controller
			}
			return 0, ctl.updateVMI(ctx, vmi, false)
		}
		load[node]++
		st.Phase = kubevirtv1.Scheduled
		st.NodeName = node
		if vmi.Labels == nil {
			vmi.Labels = make(map[string]string)
		}
		vmi.Labels[kubevirtv1.NodeNameLabel] = node
		setVMICondition(st, kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled), corev1.ConditionTrue, "", "", now)
	case kubevirtv1.Scheduled:
		st.Phase = kubevirtv1.Running
		if ctl.opts.NeverReady {
			setVMICondition(st, kubevirtv1.VirtualMachineInstanceReady, corev1.ConditionFalse, reasonContainersNotReady, "containers with unready status: [compute]", now)
		} else {
			setVMICondition(st, kubevirtv1.VirtualMachineInstanceReady, corev1.ConditionTrue, "", "", now)
		}
		if info := ctl.opts.GuestOSInfo; info != nil {
			st.GuestOSInfo = *info
			setVMICondition(st, kubevirtv1.VirtualMachineInstanceAgentConnected, corev1.ConditionTrue, "", "", now)
		}
	default:
		return 0, nil
	}
	st.PhaseTransitionTimestamps = append(st.PhaseTransitionTimestamps, kubevirtv1.VirtualMachineInstancePhaseTransitionTimestamp{
		Phase: st.Phase, PhaseTransitionTimestamp: now,
	})
	return 0, ctl.updateVMI(ctx, vmi, true)
}

// updateVMI writes vmi, status included: KubeVirt's VMI CRD has no status
// subresource.
func (ctl *controller) updateVMI(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, stepped bool) error {
	_, err := ctl.c.kubevirt.KubevirtV1().VirtualMachineInstances(vmi.Namespace).Update(ctx, vmi, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("moving VirtualMachineInstance %s to %s: %w", vmi.Name, vmi.Status.Phase, err)
	}
	if stepped {
		ctl.stepped[vmi.UID] = time.Now()
	}
	return nil
}

// pickNode returns the Ready, schedulable node that vmi tolerates and that
// has the lowest load (then name), or "" and how many nodes matched vmi's
// selector (none of them fit) when none fits.
func pickNode(vmi *kubevirtv1.VirtualMachineInstance, nodes []corev1.Node, load map[string]int) (string, int) {
	selector := make(map[string]string, len(vmi.Spec.NodeSelector)+1)
	for k, v := range vmi.Spec.NodeSelector {
		selector[k] = v
	}
	// virt-controller puts the VMI's architecture in the launcher pod's
	// node selector.
	if arch := vmi.Spec.Architecture; arch != "" {
		if sel, ok := selector[corev1.LabelArchStable]; ok && sel != arch {
			return "", 0
		}
		selector[corev1.LabelArchStable] = arch
	}
	var fit []corev1.Node
	matching := 0
	for _, n := range nodes {
		if !matches(n.Labels, selector) {
			continue
		}
		matching++
		if n.DeletionTimestamp == nil && !n.Spec.Unschedulable && nodeReady(&n) && tolerates(vmi.Spec.Tolerations, n.Spec.Taints) {
			fit = append(fit, n)
		}
	}
	if len(fit) == 0 {
		return "", matching
	}
	best := slices.MinFunc(fit, func(a, b corev1.Node) int {
		if d := load[a.Name] - load[b.Name]; d != 0 {
			return d
		}
		return strings.Compare(a.Name, b.Name)
	})
	return best.Name, matching
}

// unschedulableMessage says why no node fits, in the scheduler's words.
func unschedulableMessage(nodes, matching int) string {
	var why []string
	if n := nodes - matching; n > 0 {
		why = append(why, fmt.Sprintf("%d node(s) didn't match Pod's node affinity/selector", n))
	}
	if matching > 0 {
		why = append(why, fmt.Sprintf("%d node(s) were not Ready, were unschedulable or had untolerated taints", matching))
	}
	msg := fmt.Sprintf("0/%d nodes are available", nodes)
	if len(why) > 0 {
		msg += ": " + strings.Join(why, ", ")
	}
	return msg + "."
}

// tolerates tells whether tolerations let a pod onto a node with taints, as
// the scheduler sees it: every NoSchedule or NoExecute taint tolerated.
func tolerates(tolerations []corev1.Toleration, taints []corev1.Taint) bool {
	for i := range taints {
		taint := &taints[i]
		if taint.Effect == corev1.TaintEffectPreferNoSchedule {
			continue
		}
		if !slices.ContainsFunc(tolerations, func(t corev1.Toleration) bool { return t.ToleratesTaint(taint) }) {
			return false
		}
	}
	return true
}

func matches(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// setVMICondition sets a condition of st, keeping its transition time when
// its status stays, and reports whether anything changed.
func setVMICondition(st *kubevirtv1.VirtualMachineInstanceStatus, typ kubevirtv1.VirtualMachineInstanceConditionType, status corev1.ConditionStatus, reason, msg string, now metav1.Time) bool {
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != typ {
			continue
		}
		if c.Status == status && c.Reason == reason && c.Message == msg {
			return false
		}
		if c.Status != status {
			c.LastTransitionTime = now
		}
		c.Status, c.Reason, c.Message, c.LastProbeTime = status, reason, msg, now
		return true
	}
	st.Conditions = append(st.Conditions, kubevirtv1.VirtualMachineInstanceCondition{
		Type: typ, Status: status, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now,
	})
	return true
}

// updateVMStatus sets vm's status from its VMI (nil when it has none), as
// virt-controller does, when it differs.
func (ctl *controller) updateVMStatus(ctx context.Context, vm *kubevirtv1.VirtualMachine, strategy kubevirtv1.VirtualMachineRunStrategy, vmi *kubevirtv1.VirtualMachineInstance) error {
	want := kubevirtv1.VirtualMachineStatus{RunStrategy: strategy}
	// The VMI conditions a VM carries.
	var conds []kubevirtv1.VirtualMachineInstanceCondition
	switch {
	case vmi == nil && shouldRun(strategy):
		want.PrintableStatus = kubevirtv1.VirtualMachineStatusStarting
	case vmi == nil:
		want.PrintableStatus = kubevirtv1.VirtualMachineStatusStopped
	default:
		want.Created = true
		want.PrintableStatus = kubevirtv1.VirtualMachineStatusStarting
		for _, c := range vmi.Status.Conditions {
			switch c.Type {
			case kubevirtv1.VirtualMachineInstanceReady:
				want.Ready = c.Status == corev1.ConditionTrue
				conds = append(conds, c)
			case kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled):
				if c.Status == corev1.ConditionFalse {
					conds = append(conds, c)
					if c.Reason == reasonUnschedulable {
						want.PrintableStatus = kubevirtv1.VirtualMachineStatusUnschedulable
					}
				}
			}
		}
		if vmi.Status.Phase == kubevirtv1.Running {
			want.PrintableStatus = kubevirtv1.VirtualMachineStatusRunning
		}
	}
	if vmi == nil {
		conds = []kubevirtv1.VirtualMachineInstanceCondition{{
			Type: kubevirtv1.VirtualMachineInstanceReady, Status: corev1.ConditionFalse,
			Reason: reasonVMINotExists, Message: "VMI does not exist",
		}}
	}

	now := metav1.Now()
	for _, c := range conds {
		want.Conditions = append(want.Conditions, vmCondition(vm.Status.Conditions, c, now))
	}
	st := vm.Status
	if st.Created == want.Created && st.Ready == want.Ready && st.PrintableStatus == want.PrintableStatus &&
		st.RunStrategy == want.RunStrategy && sameVMConditions(st.Conditions, want.Conditions) {
		return nil
	}
	vm.Status.Created, vm.Status.Ready = want.Created, want.Ready
	vm.Status.PrintableStatus, vm.Status.RunStrategy = want.PrintableStatus, want.RunStrategy
	vm.Status.Conditions = want.Conditions
	if _, err := ctl.c.kubevirt.KubevirtV1().VirtualMachines(vm.Namespace).UpdateStatus(ctx, vm, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating the status of VirtualMachine %s: %w", vm.Name, err)
	}
	return nil
}

// vmCondition is the VM condition copied from the VMI condition c, keeping
// the transition time of the VM's current condition of that type when its
// status is the same.
func vmCondition(current []kubevirtv1.VirtualMachineCondition, c kubevirtv1.VirtualMachineInstanceCondition, now metav1.Time) kubevirtv1.VirtualMachineCondition {
	out := kubevirtv1.VirtualMachineCondition{
		Type:               kubevirtv1.VirtualMachineConditionType(c.Type),
		Status:             c.Status,
		Reason:             c.Reason,
		Message:            c.Message,
		LastProbeTime:      c.LastProbeTime,
		LastTransitionTime: now,
	}
	for _, cur := range current {
		if cur.Type == out.Type && cur.Status == out.Status {
			out.LastTransitionTime = cur.LastTransitionTime
		}
	}
	return out
}

// sameVMConditions compares conditions without their times.
func sameVMConditions(a, b []kubevirtv1.VirtualMachineCondition) bool {
	return slices.EqualFunc(a, b, func(x, y kubevirtv1.VirtualMachineCondition) bool {
		return x.Type == y.Type && x.Status == y.Status && x.Reason == y.Reason && x.Message == y.Message
	})
}

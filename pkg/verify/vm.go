package verify

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/containerdisk/kubectl-containerdisk/pkg/inputerr"
	"github.com/containerdisk/kubectl-containerdisk/pkg/internal/backoff"
)

// Labels and annotations set on every verification VM.
const (
	// LabelManagedBy marks the VMs this tool creates, so that leftovers
	// can be found with "kubectl get vm -l app.kubernetes.io/managed-by=kubectl-containerdisk".
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is LabelManagedBy's value.
	ManagedBy = "kubectl-containerdisk"
	// LabelRun identifies one verification: its value is unique per VM
	// unless the options name a run.
	LabelRun = "containerdisk.io/verify-run"
	// LabelArch is the architecture being verified.
	LabelArch = "containerdisk.io/verify-arch"
	// AnnotationImage is the containerdisk reference being verified.
	AnnotationImage = "containerdisk.io/verify-image"
)

// Kinds of the instancetype.kubevirt.io objects a VM refers to.
const (
	clusterInstancetypeKind = "VirtualMachineClusterInstancetype"
	clusterPreferenceKind   = "VirtualMachineClusterPreference"
)

// Names of the VM's disks and volumes.
const (
	containerDiskName = "containerdisk"
	cloudInitDiskName = "cloudinitdisk"
)

// VMSpec is what a verification VirtualMachine is built from.
type VMSpec struct {
	// Image is the containerdisk. Its Instancetype and Preference are
	// referred to as cluster-wide objects: clear them when the cluster
	// has none of that name.
	Image Image
	// Arch is the kubernetes.io/arch of the nodes the VM must run on.
	Arch string
	// Namespace and Name name the VM.
	Namespace, Name string
	// UserData is the cloud-init NoCloud user-data.
	UserData string
	// Memory is the guest memory ("2Gi") when there is no instancetype.
	Memory string
	// Labels are added to the VM and its VMI.
	Labels map[string]string
}

// NewVirtualMachine returns the VirtualMachine that verifies s.Image on
// s.Arch: always running, booting the containerdisk (pulled every time, so
// that a re-pushed tag is what gets verified) with a NoCloud seed, on a node
// of that architecture, stopped without a grace period when deleted.
func NewVirtualMachine(s VMSpec) (*kubevirtv1.VirtualMachine, error) {
	if s.Image.Reference == "" {
		return nil, fmt.Errorf("building a VM: no image reference")
	}
	if s.Arch == "" {
		return nil, fmt.Errorf("building a VM for %s: no architecture", s.Image.Reference)
	}
	labels := map[string]string{LabelManagedBy: ManagedBy, LabelArch: s.Arch}
	for k, v := range s.Labels {
		labels[k] = v
	}
	runStrategy := kubevirtv1.RunStrategyAlways
	var noGracePeriod int64
	vm := &kubevirtv1.VirtualMachine{
		TypeMeta: metav1.TypeMeta{APIVersion: kubevirtv1.GroupVersion.String(), Kind: "VirtualMachine"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   s.Namespace,
			Name:        s.Name,
			Labels:      labels,
			Annotations: map[string]string{AnnotationImage: s.Image.Reference},
		},
		Spec: kubevirtv1.VirtualMachineSpec{
			RunStrategy: &runStrategy,
			Template: &kubevirtv1.VirtualMachineInstanceTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: kubevirtv1.VirtualMachineInstanceSpec{
					Architecture:                  s.Arch,
					NodeSelector:                  map[string]string{corev1.LabelArchStable: s.Arch},
					TerminationGracePeriodSeconds: &noGracePeriod,
					Domain: kubevirtv1.DomainSpec{
						Devices: kubevirtv1.Devices{
							Disks: []kubevirtv1.Disk{
								{Name: containerDiskName, DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}}},
								{Name: cloudInitDiskName, DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}}},
							},
						},
					},
					Volumes: []kubevirtv1.Volume{
						{Name: containerDiskName, VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{
							Image:           s.Image.Reference,
							ImagePullPolicy: corev1.PullAlways,
						}}},
						{Name: cloudInitDiskName, VolumeSource: kubevirtv1.VolumeSource{CloudInitNoCloud: &kubevirtv1.CloudInitNoCloudSource{
							UserData: s.UserData,
						}}},
					},
				},
			},
		},
	}
	spec := &vm.Spec.Template.Spec
	if s.Image.Instancetype != "" {
		// The instancetype sets CPU and memory; KubeVirt rejects a VM that
		// sets them as well.
		vm.Spec.Instancetype = &kubevirtv1.InstancetypeMatcher{Kind: clusterInstancetypeKind, Name: s.Image.Instancetype}
	} else {
		if s.Memory == "" {
			return nil, fmt.Errorf("building a VM for %s: no instancetype and no memory size", s.Image.Reference)
		}
		memory, err := resource.ParseQuantity(s.Memory)
		if err != nil || memory.Sign() <= 0 {
			return nil, &inputerr.Error{Input: s.Memory, What: "unknown memory size", Expected: "a positive quantity such as 2Gi or 1536Mi"}
		}
		spec.Domain.Memory = &kubevirtv1.Memory{Guest: &memory}
	}
	if s.Image.Preference != "" {
		vm.Spec.Preference = &kubevirtv1.PreferenceMatcher{Kind: clusterPreferenceKind, Name: s.Image.Preference}
	}
	if s.Image.EFI || s.Image.SecureBoot {
		secureBoot := secureBoot(s.Image, s.Arch)
		spec.Domain.Firmware = &kubevirtv1.Firmware{Bootloader: &kubevirtv1.Bootloader{EFI: &kubevirtv1.EFI{SecureBoot: &secureBoot}}}
		if secureBoot {
			// Secure Boot needs System Management Mode.
			enabled := true
			spec.Domain.Features = &kubevirtv1.Features{SMM: &kubevirtv1.FeatureState{Enabled: &enabled}}
		}
	}
	return vm, nil
}

// secureBoot reports whether the VM that verifies img on arch boots with
// Secure Boot: when img asks for it, except on arm64, where KubeVirt (as
// of v1.8) rejects the VMI of a VM that does; such an image is verified
// there with UEFI alone, as KubeVirt boots arm64 guests by default.
func secureBoot(img Image, arch string) bool {
	return img.SecureBoot && arch != "arm64"
}

// vmName returns a new VM name that tells what is verified:
// "verify-fedora-40-amd64-x7k2p" for quay.io/containerdisks/fedora:40.
func vmName(reference, arch string) string {
	base := reference[strings.LastIndex(reference, "/")+1:]
	base, _, _ = strings.Cut(base, "@")
	base = dnsLabel(strings.ReplaceAll(base, ":", "-"))
	if len(base) > 30 {
		base = strings.TrimRight(base[:30], "-")
	}
	parts := []string{"verify"}
	for _, p := range []string{base, dnsLabel(arch), randomSuffix(5)} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "-")
}

// dnsLabel lowercases s and turns every run of characters not allowed in a
// DNS label into one dash.
func dnsLabel(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(b.String(), "-")
}

// randomSuffix returns n random lowercase letters and digits.
func randomSuffix(n int) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789" // as Kubernetes' generateName: no vowels, no words
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// vmEvent is a change to the VM or its VMI seen by a watch.
type vmEvent struct {
	// obj is a *VirtualMachine or a *VirtualMachineInstance.
	obj runtime.Object
	// deleted: obj (maybe an empty one of its type) is gone.
	deleted bool
	// err is a failed list or watch; final when it gives up.
	err   error
	final bool
}

// follower lists and watches one kind of object.
type follower struct {
	kind  string
	empty func() runtime.Object
	list  func(context.Context, metav1.ListOptions) (runtime.Object, error)
	watch func(context.Context, metav1.ListOptions) (watch.Interface, error)
}

// follow sends every version of the object named name to out until ctx
// ends or an error is final. It lists before each watch, so that a watch
// that ends (as API servers end them) loses nothing.
func follow(ctx context.Context, name string, f follower, out chan<- vmEvent) {
	send := func(ev vmEvent) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	failures := 0
	failed := func(verb string, err error) bool {
		final := ctx.Err() == nil && (apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) ||
			apierrors.IsNotFound(err) || apierrors.IsBadRequest(err) || apierrors.IsMethodNotSupported(err))
		err = fmt.Errorf("%s %s %s: %w", verb, f.kind, name, err)
		if !send(vmEvent{err: err, final: final}) || final {
			return false
		}
		failures++
		return backoff.Sleep(ctx, checkBackoff.Delay(failures)) == nil
	}
	for ctx.Err() == nil {
		list, err := f.list(ctx, metav1.ListOptions{FieldSelector: selector})
		if err != nil {
			if !failed("listing", err) {
				return
			}
			continue
		}
		items, err := meta.ExtractList(list)
		listMeta, lerr := meta.ListAccessor(list)
		if err = errors.Join(err, lerr); err != nil {
			send(vmEvent{err: fmt.Errorf("reading the list of %s: %w", f.kind, err), final: true})
			return
		}
		if len(items) == 0 && !send(vmEvent{obj: f.empty(), deleted: true}) {
			return
		}
		for _, item := range items {
			if !send(vmEvent{obj: item}) {
				return
			}
		}
		w, err := f.watch(ctx, metav1.ListOptions{
			FieldSelector:   selector,
			ResourceVersion: listMeta.GetResourceVersion(),
		})
		if err != nil {
			if !failed("watching", err) {
				return
			}
			continue
		}
		failures = 0
		opened := time.Now()
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				break // and list again: the resource version may be too old
			}
			if ev.Type == watch.Bookmark {
				continue
			}
			if !send(vmEvent{obj: ev.Object, deleted: ev.Type == watch.Deleted}) {
				w.Stop()
				return
			}
		}
		w.Stop()
		if time.Since(opened) < checkBackoff.Initial { // a server that ends every watch at once
			backoff.Sleep(ctx, checkBackoff.Initial) //nolint:errcheck // the loop checks ctx
		}
	}
}

// waitReady watches the VM and its VMI until KubeVirt reports the VM
// ready, telling of each phase reached, and fails as soon as KubeVirt says
// that the VM cannot run.
func (r *run) waitReady(ctx context.Context, created *kubevirtv1.VirtualMachine) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	kv := r.c.kubevirt.KubevirtV1()
	vms, vmis := kv.VirtualMachines(r.namespace), kv.VirtualMachineInstances(r.namespace)
	events := make(chan vmEvent)
	go follow(ctx, r.name, follower{
		kind:  "VM",
		empty: func() runtime.Object { return &kubevirtv1.VirtualMachine{} },
		list:  func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return vms.List(ctx, o) },
		watch: vms.Watch,
	}, events)
	go follow(ctx, r.name, follower{
		kind:  "VMI",
		empty: func() runtime.Object { return &kubevirtv1.VirtualMachineInstance{} },
		list:  func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return vmis.List(ctx, o) },
		watch: vmis.Watch,
	}, events)

	vm, vmi := created, (*kubevirtv1.VirtualMachineInstance)(nil)
	var watchErr error
	for {
		select {
		case <-ctx.Done():
			err := fmt.Errorf("waiting for VM %s/%s to become ready: %w (it reached phase %s%s)",
				r.namespace, r.name, context.Cause(ctx), r.res.Phase, describe(vm, vmi, r.podMessage(ctx, vmi)))
			if watchErr != nil {
				err = fmt.Errorf("%w; %w", err, watchErr)
			}
			return err
		case ev := <-events:
			switch o := ev.obj.(type) {
			case nil:
				if ev.final {
					return fmt.Errorf("waiting for VM %s/%s to become ready: %w", r.namespace, r.name, ev.err)
				}
				watchErr = ev.err
				continue
			case *kubevirtv1.VirtualMachine:
				if ev.deleted {
					return fmt.Errorf("waiting for VM %s/%s to become ready: it was deleted, by someone else (it reached phase %s)",
						r.namespace, r.name, r.res.Phase)
				}
				vm = o
			case *kubevirtv1.VirtualMachineInstance:
				if ev.deleted {
					vmi = nil
				} else {
					vmi = o
				}
			}
			watchErr = nil
			phase, err := evaluate(vm, vmi)
			r.advance(phase, vmi)
			if err != nil {
				return fmt.Errorf("VM %s/%s: %w (it reached phase %s%s)", r.namespace, r.name, err,
					r.res.Phase, describe(vm, vmi, r.podMessage(ctx, vmi)))
			}
			if phase == PhaseReady {
				return nil
			}
		}
	}
}

// advance records and tells of a phase further than the one reached.
func (r *run) advance(phase Phase, vmi *kubevirtv1.VirtualMachineInstance) {
	order := []Phase{"", PhaseCreated, PhaseScheduled, PhaseRunning, PhaseReady, PhaseChecked}
	for _, p := range order[slices.Index(order, r.res.Phase)+1 : slices.Index(order, phase)+1] {
		r.res.Phase = p
		switch p {
		case PhaseScheduled:
			r.logf("VMI scheduled on node %s", vmi.Status.NodeName)
		case PhaseRunning:
			r.logf("VMI running")
		case PhaseReady:
			r.logf("VM ready")
		}
	}
}

// Printable statuses that mean that the VM will not start by itself.
var failedStatuses = map[kubevirtv1.VirtualMachinePrintableStatus]string{
	kubevirtv1.VirtualMachineStatusErrImagePull:     "pulling the image failed",
	kubevirtv1.VirtualMachineStatusImagePullBackOff: "pulling the image failed",
	kubevirtv1.VirtualMachineStatusCrashLoopBackOff: "the VM keeps crashing",
	kubevirtv1.VirtualMachineStatusPvcNotFound:      "a volume is missing",
	kubevirtv1.VirtualMachineStatusDataVolumeError:  "a volume failed",
	kubevirtv1.VirtualMachineStatusUnschedulable:    "no node can run it",
}

// evaluate returns the phase a VM and its VMI (nil if none) reached, and
// an error if KubeVirt says that the VM cannot run.
func evaluate(vm *kubevirtv1.VirtualMachine, vmi *kubevirtv1.VirtualMachineInstance) (Phase, error) {
	phase := PhaseCreated
	if vmi != nil {
		switch {
		case vmi.Status.Phase == kubevirtv1.Running:
			phase = PhaseRunning
		case vmi.Status.Phase == kubevirtv1.Scheduled || vmi.Status.NodeName != "":
			phase = PhaseScheduled
		}
	}
	if vm.Status.Ready {
		phase = PhaseReady
	}
	if vmi != nil {
		for _, c := range vmi.Status.Conditions {
			if c.Type == kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled) &&
				c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return phase, fmt.Errorf("%w: no node can run it", ErrUnschedulable)
			}
		}
		switch vmi.Status.Phase {
		case kubevirtv1.Failed:
			return phase, fmt.Errorf("%w: its VMI failed", ErrVMFailed)
		case kubevirtv1.Succeeded:
			return phase, fmt.Errorf("%w: the guest shut down", ErrVMFailed)
		}
	}
	status := vm.Status.PrintableStatus
	if why, ok := failedStatuses[status]; ok {
		if status == kubevirtv1.VirtualMachineStatusUnschedulable {
			return phase, fmt.Errorf("%w: %s", ErrUnschedulable, why)
		}
		return phase, fmt.Errorf("%w: %s", ErrVMFailed, why)
	}
	return phase, nil
}

// describe tells the state of a VM and its VMI for an error message,
// beginning with "; ", or returns "".
func describe(vm *kubevirtv1.VirtualMachine, vmi *kubevirtv1.VirtualMachineInstance, podMessage string) string {
	var parts []string
	if vm != nil && vm.Status.PrintableStatus != "" {
		parts = append(parts, "VM status "+string(vm.Status.PrintableStatus))
	}
	if vmi != nil && vmi.Status.Phase != "" {
		parts = append(parts, "VMI phase "+string(vmi.Status.Phase))
	}
	message := podMessage
	if message == "" {
		message = conditionMessage(vm, vmi)
	}
	if message != "" {
		parts = append(parts, message)
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, "; ")
}

// conditionMessage returns the message of the first condition that says
// why the VM is not ready.
func conditionMessage(vm *kubevirtv1.VirtualMachine, vmi *kubevirtv1.VirtualMachineInstance) string {
	if vmi != nil {
		for _, c := range vmi.Status.Conditions {
			if c.Status == corev1.ConditionFalse && c.Message != "" &&
				(c.Type == kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled) ||
					c.Type == kubevirtv1.VirtualMachineInstanceSynchronized) {
				return c.Message
			}
		}
	}
	if vm != nil {
		for _, c := range vm.Status.Conditions {
			if c.Type == kubevirtv1.VirtualMachineFailure && c.Status == corev1.ConditionTrue && c.Message != "" {
				return c.Message
			}
		}
		for _, c := range vm.Status.Conditions {
			if c.Type == kubevirtv1.VirtualMachineReady && c.Status == corev1.ConditionFalse && c.Message != "" {
				return c.Message
			}
		}
	}
	return ""
}

// podMessage returns what the VMI's virt-launcher pod says of a container
// that cannot start ("manifest unknown", "no matching manifest for
// linux/arm64"), or "". It is best effort: a user may not read pods.
func (r *run) podMessage(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) string {
	if vmi == nil || vmi.UID == "" {
		return ""
	}
	// Called once ctx is done too: the message is what the error needs.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	pods, err := r.c.core.CoreV1().Pods(r.namespace).List(ctx, metav1.ListOptions{
		LabelSelector: kubevirtv1.CreatedByLabel + "=" + string(vmi.UID),
	})
	if err != nil {
		return ""
	}
	for _, pod := range pods.Items {
		for _, cs := range slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses) {
			if w := cs.State.Waiting; w != nil && w.Message != "" && w.Reason != "ContainerCreating" && w.Reason != "PodInitializing" {
				return fmt.Sprintf("container %s: %s: %s", cs.Name, w.Reason, w.Message)
			}
		}
	}
	return ""
}

package verify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/kubevirt"
	kvcorev1 "kubevirt.io/client-go/kubevirt/typed/core/v1"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/internal/backoff"
)

// ClusterOptions are the options of Cluster.Verify.
type ClusterOptions struct {
	// Namespace is where the VMs are created; "default" when empty.
	Namespace string
	// Timeout bounds the whole verification of one image on one
	// architecture, cleanup excepted.
	Timeout time.Duration
	// StepTimeout bounds each step within Timeout: becoming ready (which
	// includes pulling the image), and each check.
	StepTimeout time.Duration
	// Memory is the guest memory when the image names no instancetype,
	// or the cluster does not have it; the memory the image's preference
	// requires when that is more, as KubeVirt rejects a VM with less.
	Memory string
	// KeepOnFailure keeps a VM that failed (not one interrupted by the
	// caller's context) for inspection: Result.VM names it.
	KeepOnFailure bool
	// Labels are added to the VM; a LabelRun here names the run, so that
	// the VMs of several architectures share it.
	Labels map[string]string
	// Log, when set, is told of the progress. Verify calls it from one
	// goroutine, but parallel Verify calls may share it.
	Log func(format string, args ...any)

	// SkipSSH leaves the SSH login out, for images without sshd or
	// clusters that do not allow port-forward: the VM must still become
	// ready, and its guest agent answer when it has one.
	SkipSSH bool

	// DialVMI connects to a port of a VMI; Cluster.DialVMI (KubeVirt's
	// port-forward) when nil.
	DialVMI func(ctx context.Context, namespace, name string, port int) (net.Conn, error)
	// GuestOSInfo asks a VMI's guest agent what runs in the guest; the
	// package's GuestOSInfo through the cluster when nil.
	GuestOSInfo func(ctx context.Context, namespace, name string) (*kubevirtv1.VirtualMachineInstanceGuestAgentInfo, error)
}

// DefaultClusterOptions returns the options Verify uses for the fields
// left zero.
func DefaultClusterOptions() ClusterOptions {
	return ClusterOptions{
		Namespace:   "default",
		Timeout:     15 * time.Minute,
		StepTimeout: 10 * time.Minute,
		Memory:      "2Gi",
	}
}

func (o ClusterOptions) withDefaults() ClusterOptions {
	d := DefaultClusterOptions()
	if o.Namespace == "" {
		o.Namespace = d.Namespace
	}
	if o.Timeout <= 0 {
		o.Timeout = d.Timeout
	}
	if o.StepTimeout <= 0 {
		o.StepTimeout = d.StepTimeout
	}
	if o.Memory == "" {
		o.Memory = d.Memory
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	return o
}

// cleanupTimeout bounds the deletion of a VM, which runs even after the
// caller's context is done.
const cleanupTimeout = 30 * time.Second

// Retries of the checks, which fail until the guest has booted.
var (
	// checkBackoff is the wait before a check's next attempt: 1 s,
	// doubled up to 10 s.
	checkBackoff = backoff.Policy{Initial: time.Second, Max: 10 * time.Second}
	// attemptTimeout bounds one connection and login.
	attemptTimeout = time.Minute
)

// Cluster verifies containerdisks by booting them as KubeVirt
// VirtualMachines. It is safe for concurrent use.
type Cluster struct {
	config   *rest.Config
	kubevirt kubevirt.Interface
	core     kubernetes.Interface
}

// NewCluster returns a Cluster that talks to the API server of cfg.
// It makes no request.
func NewCluster(cfg *rest.Config) (*Cluster, error) {
	if cfg == nil {
		return nil, errors.New("connecting to the cluster: no configuration (is KUBECONFIG set?)")
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = ManagedBy + "-verify"
	}
	kv, err := kubevirt.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to the cluster at %q: %w", cfg.Host, err)
	}
	core, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to the cluster at %q: %w", cfg.Host, err)
	}
	return &Cluster{config: cfg, kubevirt: kv, core: core}, nil
}

// Arches returns the architectures (kubernetes.io/arch) of the nodes a
// verification VM can run on: Ready, not cordoned, without NoSchedule or
// NoExecute taints, and not marked unschedulable by KubeVirt.
func (c *Cluster) Arches(ctx context.Context) ([]string, error) {
	nodes, err := c.core.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing the nodes of %s: %w", c.config.Host, err)
	}
	var arches []string
	for _, n := range nodes.Items {
		if arch := n.Labels[corev1.LabelArchStable]; arch != "" && schedulable(&n) {
			arches = append(arches, arch)
		}
	}
	slices.Sort(arches)
	return slices.Compact(arches), nil
}

func schedulable(n *corev1.Node) bool {
	if n.Spec.Unschedulable {
		return false
	}
	// virt-handler labels its nodes; a node it has not labelled may still
	// be one of a cluster that runs VMs some other way.
	if v, ok := n.Labels[kubevirtv1.NodeSchedulable]; ok && v != "true" {
		return false
	}
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return false
		}
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// DialVMI connects to a TCP port of a VMI through KubeVirt's port-forward
// subresource, as "virtctl port-forward" does.
func (c *Cluster) DialVMI(ctx context.Context, namespace, name string, port int) (net.Conn, error) {
	type dialed struct {
		stream kvcorev1.StreamInterface
		err    error
	}
	ch := make(chan dialed, 1)
	go func() {
		// KubeVirt's helper takes no context: it runs on its own, and its
		// stream is closed if it comes too late.
		s, err := kvcorev1.AsyncSubresourceHelper(c.config, "virtualmachineinstances", namespace, name,
			fmt.Sprintf("portforward/%d/tcp", port), url.Values{})
		ch <- dialed{s, err}
	}()
	select {
	case d := <-ch:
		if d.err != nil {
			return nil, fmt.Errorf("port-forwarding to port %d of VMI %s/%s: %w", port, namespace, name, d.err)
		}
		return streamConn(d.stream), nil
	case <-ctx.Done():
		go func() {
			if d := <-ch; d.err == nil {
				streamConn(d.stream).Close()
			}
		}()
		return nil, fmt.Errorf("port-forwarding to port %d of VMI %s/%s: %w", port, namespace, name, context.Cause(ctx))
	}
}

// streamConn adapts a KubeVirt stream to a net.Conn. The stream's own
// AsConn never releases the request behind it; Stream does once its input
// ends, which closing the returned conn causes.
func streamConn(s kvcorev1.StreamInterface) net.Conn {
	local, remote := net.Pipe()
	go func() {
		_ = s.Stream(kvcorev1.StreamOptions{In: remote, Out: remote})
		remote.Close()
	}()
	return local
}

// Verify boots img on a node of arch as a VirtualMachine and proves that
// it works: it becomes ready, its guest agent answers (when img.GuestAgent)
// and its default user logs in over SSH with a key given through
// cloud-init. The VM is deleted at the end, whatever happened (even when ctx
// is cancelled), unless it failed and opts.KeepOnFailure is set.
func (c *Cluster) Verify(ctx context.Context, img Image, arch string, opts ClusterOptions) (res Result) {
	start := time.Now()
	opts = opts.withDefaults()
	res = Result{Image: img.Reference, Arch: arch}
	r := &run{c: c, img: img, arch: arch, opts: opts, res: &res, namespace: opts.Namespace}
	defer func() {
		res.Duration = time.Since(start)
		if res.Err != nil {
			res.Error = res.Err.Error()
		}
	}()

	vctx, cancel := context.WithTimeoutCause(ctx, opts.Timeout,
		fmt.Errorf("%w: the verification took longer than %s", ErrTimeout, opts.Timeout))
	defer cancel()
	err := r.verify(vctx)
	if r.name == "" || !r.mayExist {
		res.Err = err
		return res
	}
	if err != nil && opts.KeepOnFailure && ctx.Err() == nil {
		res.VM = r.namespace + "/" + r.name
		r.logf("kept VM %s after the failure", res.VM)
		res.Err = fmt.Errorf("%w; VM %s kept: see its console with \"virtctl console %s -n %s\"; delete it with \"kubectl delete vm %s -n %s\"",
			err, res.VM, r.name, r.namespace, r.name, r.namespace)
		return res
	}
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer ccancel()
	if derr := r.delete(cctx); derr != nil {
		err = errors.Join(err, derr)
	}
	res.Err = err
	return res
}

// run is one verification.
type run struct {
	c    *Cluster
	img  Image
	arch string
	opts ClusterOptions
	res  *Result

	namespace, name string
	// mayExist is set once the VM may have been created.
	mayExist bool
}

func (r *run) logf(format string, args ...any) {
	r.opts.Log("%s %s: "+format, append([]any{r.img.Reference, r.arch}, args...)...)
}

// step returns the context of one step, bounded by StepTimeout.
func (r *run) step(ctx context.Context, what string) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, r.opts.StepTimeout,
		fmt.Errorf("%w: %s took longer than %s", ErrTimeout, what, r.opts.StepTimeout))
}

func (r *run) verify(ctx context.Context) error {
	if r.img.Reference == "" {
		return errors.New("verifying: no image reference given")
	}
	arch, err := containerdisk.NormalizeArch(r.arch)
	if err != nil {
		return err
	}
	r.arch, r.res.Arch = arch, arch

	prepCtx, cancel := r.step(ctx, "preparing the VM")
	defer cancel()
	if err := r.checkArch(prepCtx); err != nil {
		return err
	}
	vm, user, key, err := r.newVM(prepCtx)
	if err != nil {
		return err
	}
	name := vm.Name

	r.name = name
	r.mayExist = true
	created, err := r.c.kubevirt.KubevirtV1().VirtualMachines(r.namespace).Create(prepCtx, vm, metav1.CreateOptions{})
	if err != nil {
		// An answer from the API server means that nothing was created,
		// unless it is that the server ran out of time; anything else
		// (a broken connection, our own deadline) may hide a VM that was.
		var status apierrors.APIStatus
		r.mayExist = !errors.As(err, &status) || apierrors.IsTimeout(err) ||
			apierrors.IsServerTimeout(err) || apierrors.IsInternalError(err)
		return fmt.Errorf("creating VM %s/%s: %w%s", r.namespace, name, ctxErr(prepCtx, err), createHint(err))
	}
	cancel()
	r.res.Phase = PhaseCreated
	r.logf("created VM %s/%s", r.namespace, name)

	readyCtx, cancel := r.step(ctx, "becoming ready")
	defer cancel()
	if err := r.waitReady(readyCtx, created); err != nil {
		return err
	}

	type check struct {
		name string
		run  func(context.Context) (string, error)
	}
	var checks []check
	if r.img.GuestAgent {
		checks = append(checks, check{"guest-agent", r.checkGuestAgent})
	}
	if !r.opts.SkipSSH {
		checks = append(checks, check{"ssh", func(ctx context.Context) (string, error) { return r.checkSSH(ctx, user, key) }})
	}
	var errs []error
	for _, c := range checks {
		if ctx.Err() != nil {
			// Interrupted or out of time: the other checks cannot run.
			errs = append(errs, context.Cause(ctx))
			break
		}
		errs = append(errs, r.check(ctx, c.name, c.run))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.res.Phase = PhaseChecked
	return nil
}

// newVM returns the VM that verifies r.img on r.arch with the cluster's
// instancetype and preference (when it has them), the user it logs in as
// and the key it lets in.
func (r *run) newVM(ctx context.Context) (*kubevirtv1.VirtualMachine, string, ssh.Signer, error) {
	img, memory, err := r.resolveInstancetype(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	if img.SecureBoot && !secureBoot(img, r.arch) {
		r.logf("KubeVirt has no Secure Boot on %s: booting with UEFI without it", r.arch)
	}
	key, authorized, err := NewKey()
	if err != nil {
		return nil, "", nil, err
	}
	user := r.img.DefaultUser
	if user == "" {
		user = DefaultUser
	}
	labels := map[string]string{LabelRun: randomSuffix(10)}
	for k, v := range r.opts.Labels {
		labels[k] = v
	}
	vm, err := NewVirtualMachine(VMSpec{
		Image:     img,
		Arch:      r.arch,
		Namespace: r.namespace,
		Name:      vmName(r.img.Reference, r.arch),
		UserData:  UserData{User: user, AuthorizedKeys: []string{authorized}}.CloudConfig(),
		Memory:    memory,
		Labels:    labels,
	})
	if err != nil {
		return nil, "", nil, err
	}
	return vm, user, key, nil
}

// ctxErr prefers the cause of ctx's end to err, which then only says
// "context deadline exceeded".
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

func createHint(err error) string {
	switch {
	case apierrors.IsNotFound(err):
		return " (the cluster does not serve kubevirt.io/v1 VirtualMachines: is KubeVirt installed?)"
	case apierrors.IsForbidden(err):
		return " (try another namespace with -n, or ask for the right to create VirtualMachines)"
	}
	return ""
}

// checkArch fails fast when no node can run the VM. A user who may not
// list nodes is let through: the wait notices an unschedulable VM too.
func (r *run) checkArch(ctx context.Context) error {
	arches, err := r.c.Arches(ctx)
	switch {
	case apierrors.IsForbidden(err):
		r.logf("cannot list nodes to check for %s ones, going ahead", r.arch)
		return nil
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("%w (%v)", context.Cause(ctx), err)
	case err != nil:
		var status apierrors.APIStatus
		if !errors.As(err, &status) {
			return fmt.Errorf("%w (is the cluster up? try \"kubectl cluster-info\")", err)
		}
		return err
	case !slices.Contains(arches, r.arch):
		have := "none"
		if len(arches) > 0 {
			have = strings.Join(arches, ", ")
		}
		return fmt.Errorf("%w: no Ready, schedulable node has architecture %s (the cluster's have: %s)", ErrUnschedulable, r.arch, have)
	}
	return nil
}

// resolveInstancetype drops the image's instancetype and preference when
// the cluster does not have them, and returns the guest memory of a VM
// without an instancetype: opts.Memory, or the memory the preference
// requires when that is more, as KubeVirt rejects a VM with less.
func (r *run) resolveInstancetype(ctx context.Context) (Image, string, error) {
	img := r.img
	memory := r.opts.Memory
	it := r.c.kubevirt.InstancetypeV1beta1()
	if img.Instancetype != "" {
		_, err := it.VirtualMachineClusterInstancetypes().Get(ctx, img.Instancetype, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			r.logf("the cluster has no VirtualMachineClusterInstancetype %s: using %s of memory", img.Instancetype, memory)
			img.Instancetype = ""
		case err != nil && !apierrors.IsForbidden(err):
			return img, "", fmt.Errorf("looking up VirtualMachineClusterInstancetype %s: %w", img.Instancetype, ctxErr(ctx, err))
		}
	}
	if img.Preference != "" {
		pref, err := it.VirtualMachineClusterPreferences().Get(ctx, img.Preference, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			r.logf("the cluster has no VirtualMachineClusterPreference %s: going without", img.Preference)
			img.Preference = ""
		case err != nil && !apierrors.IsForbidden(err):
			return img, "", fmt.Errorf("looking up VirtualMachineClusterPreference %s: %w", img.Preference, ctxErr(ctx, err))
		case err == nil && img.Instancetype == "":
			if req := pref.Spec.Requirements; req != nil && req.Memory != nil {
				// A memory that does not parse is NewVirtualMachine's to refuse.
				if m, err := resource.ParseQuantity(memory); err == nil && m.Cmp(req.Memory.Guest) < 0 {
					r.logf("VirtualMachineClusterPreference %s requires %s of memory: using that rather than %s",
						img.Preference, req.Memory.Guest.String(), memory)
					memory = req.Memory.Guest.String()
				}
			}
		}
	}
	return img, memory, nil
}

// check runs one check within its step timeout and records it.
func (r *run) check(ctx context.Context, name string, f func(context.Context) (string, error)) error {
	ctx, cancel := r.step(ctx, "the "+name+" check")
	defer cancel()
	start := time.Now()
	detail, err := f(ctx)
	c := Check{Name: name, Passed: err == nil, Detail: detail, Duration: time.Since(start)}
	if err != nil {
		c.Error = err.Error()
		r.logf("%s check failed: %v", name, err)
		err = fmt.Errorf("%w: %s: %w", ErrCheckFailed, name, err)
	} else {
		r.logf("%s check passed: %s", name, detail)
	}
	r.res.Checks = append(r.res.Checks, c)
	return err
}

func (r *run) checkGuestAgent(ctx context.Context) (string, error) {
	get := r.opts.GuestOSInfo
	if get == nil {
		client := r.c.kubevirt.KubevirtV1().RESTClient()
		get = func(ctx context.Context, namespace, name string) (*kubevirtv1.VirtualMachineInstanceGuestAgentInfo, error) {
			return GuestOSInfo(ctx, client, namespace, name)
		}
	}
	var detail string
	err := retry(ctx, func(ctx context.Context) (bool, error) {
		info, err := get(ctx, r.namespace, r.name)
		if err != nil {
			// The agent connects some time after the VM is ready.
			final := apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err)
			return final, err
		}
		if detail = guestOSName(info); detail == "" {
			return false, fmt.Errorf("the guest agent of VMI %s/%s reports no OS", r.namespace, r.name)
		}
		return true, nil
	})
	return detail, err
}

func (r *run) checkSSH(ctx context.Context, user string, key ssh.Signer) (string, error) {
	dial := r.opts.DialVMI
	if dial == nil {
		dial = r.c.DialVMI
	}
	var detail string
	err := retry(ctx, func(ctx context.Context) (bool, error) {
		// sshd starts, and cloud-init installs the key, some time after
		// the VM is ready: every failure is worth another try.
		ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
		defer cancel()
		conn, err := dial(ctx, r.namespace, r.name, 22)
		if err != nil {
			return false, err
		}
		out, err := CheckSSH(ctx, conn, user, key, SSHCommand)
		if err != nil {
			return false, err
		}
		if detail = osRelease(out); detail == "" {
			return false, fmt.Errorf("%q as %q printed no OS name: %q", SSHCommand, user, out)
		}
		return true, nil
	})
	return detail, err
}

// retry calls f until it succeeds, says its error is final, or ctx ends;
// then the error says why it stopped and what the last attempt said.
func retry(ctx context.Context, f func(context.Context) (final bool, err error)) error {
	for attempt := 1; ; attempt++ {
		final, err := f(ctx)
		if err == nil {
			return nil
		}
		if final {
			return err
		}
		if ctx.Err() != nil {
			return gaveUp(ctx, attempt, err)
		}
		if backoff.Sleep(ctx, checkBackoff.Delay(attempt)) != nil {
			return gaveUp(ctx, attempt, err)
		}
	}
}

// gaveUp says why retry stopped, and what the last attempt said.
func gaveUp(ctx context.Context, attempts int, last error) error {
	cause := context.Cause(ctx)
	if errors.Is(last, cause) {
		return fmt.Errorf("%w (attempt %d)", last, attempts)
	}
	return fmt.Errorf("%w after %d attempts; the last said: %w", cause, attempts, last)
}

// delete deletes the VM and its VMI. Deleting the VMI too stops the guest
// at once, and leaves nothing behind on clusters without a garbage
// collector.
func (r *run) delete(ctx context.Context) error {
	background := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &background}
	kv := r.c.kubevirt.KubevirtV1()
	err := kv.VirtualMachines(r.namespace).Delete(ctx, r.name, opts)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting VM %s/%s: %w; delete it with \"kubectl delete vm %s -n %s\"",
			r.namespace, r.name, err, r.name, r.namespace)
	}
	if err == nil {
		r.logf("deleted VM %s/%s", r.namespace, r.name)
	}
	err = kv.VirtualMachineInstances(r.namespace).Delete(ctx, r.name, opts)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting VMI %s/%s: %w; delete it with \"kubectl delete vmi %s -n %s\"",
			r.namespace, r.name, err, r.name, r.namespace)
	}
	return nil
}

package verify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/kubevirt"
	kvcorev1 "kubevirt.io/client-go/kubevirt/typed/core/v1"

	"github.com/containerdisk/kubectl-containerdisk/internal/testcluster"
)

var fedoraGuestOS = kubevirtv1.VirtualMachineInstanceGuestOSInfo{
	Name: "Fedora Linux", Version: "40 (Cloud Edition)", ID: "fedora", PrettyName: "Fedora Linux 40 (Cloud Edition)",
}

// guests stands in for what KubeVirt's port-forward and guest agent reach
// on a test cluster, whose VMIs boot nothing: a guest that, like
// cloud-init, lets in the user and the keys of its VMI's NoCloud user-data.
type guests struct {
	t  *testing.T
	kv kubevirt.Interface
	// refuse makes every connection fail, as when sshd never starts.
	refuse bool

	mu     sync.Mutex
	dialed map[string]*kubevirtv1.VirtualMachineInstance // by namespace/name
}

func newGuests(t *testing.T, tc *testcluster.Cluster) *guests {
	return &guests{t: t, kv: tc.KubeVirt(), dialed: map[string]*kubevirtv1.VirtualMachineInstance{}}
}

// DialVMI connects to the SSH server of a running VMI.
func (g *guests) DialVMI(ctx context.Context, namespace, name string, port int) (net.Conn, error) {
	vmi, err := g.kv.KubevirtV1().VirtualMachineInstances(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if vmi.Status.Phase != kubevirtv1.Running {
		return nil, fmt.Errorf("VMI %s/%s is %s, not Running", namespace, name, vmi.Status.Phase)
	}
	if g.refuse || port != 22 {
		return nil, fmt.Errorf("dial tcp 10.0.2.2:%d: connect: connection refused", port)
	}
	var userData string
	for _, v := range vmi.Spec.Volumes {
		if v.CloudInitNoCloud != nil {
			userData = v.CloudInitNoCloud.UserData
		}
	}
	var cc struct {
		User string   `yaml:"user"`
		Keys []string `yaml:"ssh_authorized_keys"`
	}
	if err := yaml.Unmarshal([]byte(userData), &cc); err != nil {
		return nil, fmt.Errorf("the guest's cloud-init: %w", err)
	}
	var keys []ssh.PublicKey
	for _, k := range cc.Keys {
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k))
		if err != nil {
			return nil, fmt.Errorf("the guest's cloud-init: %w", err)
		}
		keys = append(keys, key)
	}
	g.mu.Lock()
	g.dialed[namespace+"/"+name] = vmi
	g.mu.Unlock()
	// A loopback connection, not a net.Pipe: both SSH ends write their
	// version first, which a pipe without buffers deadlocks.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	var d net.Dialer
	local, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	remote, err := ln.Accept()
	if err != nil {
		local.Close()
		return nil, err
	}
	go newSSHServer(g.t, cc.User, keys...).serve(remote)
	return local, nil
}

// GuestOSInfo answers as virt-api does, from what the stand-in controller
// put in the VMI's status.
func (g *guests) GuestOSInfo(ctx context.Context, namespace, name string) (*kubevirtv1.VirtualMachineInstanceGuestAgentInfo, error) {
	vmi, err := g.kv.KubevirtV1().VirtualMachineInstances(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	for _, c := range vmi.Status.Conditions {
		if c.Type == kubevirtv1.VirtualMachineInstanceAgentConnected && c.Status == corev1.ConditionTrue {
			return &kubevirtv1.VirtualMachineInstanceGuestAgentInfo{GAVersion: "8.2.2", OS: vmi.Status.GuestOSInfo}, nil
		}
	}
	return nil, apierrors.NewConflict(schema.GroupResource{Group: "subresources.kubevirt.io", Resource: "virtualmachineinstances"},
		name, errors.New("VMI does not have guest agent connected"))
}

func (g *guests) vmi(namespace, name string) *kubevirtv1.VirtualMachineInstance {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dialed[namespace+"/"+name]
}

// logLines collects what Verify logs.
type logLines struct {
	mu    sync.Mutex
	lines []string
	// on is called with each line.
	on func(string)
}

func (l *logLines) log(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	if l.on != nil {
		l.on(line)
	}
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// vmNameFrom finds the VM's name in the log.
func (l *logLines) vmName(t *testing.T) string {
	t.Helper()
	for _, line := range strings.Split(l.String(), "\n") {
		if _, after, ok := strings.Cut(line, "created VM "); ok {
			_, name, _ := strings.Cut(after, "/")
			return name
		}
	}
	t.Fatalf("the log names no VM created:\n%s", l)
	return ""
}

// assertGone fails the test unless the VM and its VMI are gone.
func assertGone(t *testing.T, tc *testcluster.Cluster, namespace, name string) {
	t.Helper()
	kv := tc.KubeVirt().KubevirtV1()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, vmErr := kv.VirtualMachines(namespace).Get(context.Background(), name, metav1.GetOptions{})
		_, vmiErr := kv.VirtualMachineInstances(namespace).Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(vmErr) && apierrors.IsNotFound(vmiErr) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("VM %s/%s is still there (VM: %v; VMI: %v)", namespace, name, vmErr, vmiErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertNoVMs fails the test if the namespace has any VM of this tool's.
func assertNoVMs(t *testing.T, tc *testcluster.Cluster, namespace string) {
	t.Helper()
	vms, err := tc.KubeVirt().KubevirtV1().VirtualMachines(namespace).List(context.Background(),
		metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + ManagedBy})
	if err != nil {
		t.Fatal(err)
	}
	if len(vms.Items) > 0 {
		t.Errorf("namespace %s has VM %s", namespace, vms.Items[0].Name)
	}
}

func errorSays(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one saying %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

var fedora40 = Image{Reference: "quay.io/containerdisks/fedora:40", DefaultUser: "fedora", GuestAgent: true,
	Instancetype: "u1.medium", Preference: "fedora"}

// TestCluster verifies images on a real API server whose VMs a stand-in
// virt-controller drives, with stand-in guests behind port 22 and the
// guest agent.
func TestCluster(t *testing.T) {
	tc := testcluster.Start(t)
	nodes := tc.AddNodes(t, "amd64", "arm64")
	cluster, err := NewCluster(tc.Config)
	if err != nil {
		t.Fatal(err)
	}
	warmUp(t, tc)

	t.Run("Arches", func(t *testing.T) {
		arches, err := cluster.Arches(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(arches, []string{"amd64", "arm64"}) {
			t.Errorf("Arches = %q, want amd64 and arm64", arches)
		}
	})

	t.Run("Passes", func(t *testing.T) {
		t.Parallel()
		ns := tc.Namespace(t)
		testcluster.StartController(t.Context(), t, tc, testcluster.ControllerOptions{
			Namespace: ns, PhaseDelay: 100 * time.Millisecond, GuestOSInfo: &fedoraGuestOS,
		})
		g := newGuests(t, tc)
		var log logLines
		res := cluster.Verify(t.Context(), fedora40, "amd64", ClusterOptions{
			Namespace: ns, Timeout: time.Minute, Log: log.log,
			DialVMI: g.DialVMI, GuestOSInfo: g.GuestOSInfo,
		})
		if !res.Passed() || res.Err != nil {
			t.Fatalf("Verify failed: %s\nlog:\n%s", res.Error, &log)
		}
		if res.Phase != PhaseChecked || res.Image != fedora40.Reference || res.Arch != "amd64" || res.VM != "" || res.Duration <= 0 {
			t.Errorf("result %+v", res)
		}
		var checks []string
		for _, c := range res.Checks {
			checks = append(checks, fmt.Sprintf("%s %v %s", c.Name, c.Passed, c.Detail))
		}
		want := []string{"guest-agent true Fedora Linux 40 (Cloud Edition)", "ssh true Fedora Linux 40 (Cloud Edition)"}
		if !slices.Equal(checks, want) {
			t.Errorf("checks %q, want %q", checks, want)
		}
		name := log.vmName(t)
		for _, w := range []string{
			"no VirtualMachineClusterInstancetype u1.medium: using 2Gi of memory",
			"VMI scheduled on node " + nodes[0], "VMI running", "VM ready",
			"guest-agent check passed", "ssh check passed", "deleted VM " + ns + "/" + name,
		} {
			if !strings.Contains(log.String(), w) {
				t.Errorf("the log does not say %q:\n%s", w, &log)
			}
		}
		vmi := g.vmi(ns, name)
		if vmi == nil {
			t.Fatal("Verify never connected to the guest")
		}
		if m := vmi.Spec.Domain.Memory; m == nil || m.Guest.String() != "2Gi" {
			t.Errorf("the VMI's memory is %v, want 2Gi as the cluster has no instancetypes", m)
		}
		assertGone(t, tc, ns, name)
	})

	t.Run("TwoArches", func(t *testing.T) {
		t.Parallel()
		ns := tc.Namespace(t)
		testcluster.StartController(t.Context(), t, tc, testcluster.ControllerOptions{Namespace: ns})
		g := newGuests(t, tc)
		arches, err := cluster.Arches(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		results := make([]Result, len(arches))
		logs := make([]logLines, len(arches))
		var wg sync.WaitGroup
		for i, arch := range arches {
			wg.Go(func() {
				results[i] = cluster.Verify(t.Context(), Image{Reference: "quay.io/containerdisks/ubuntu:24.04", DefaultUser: "ubuntu"}, arch,
					ClusterOptions{Namespace: ns, Timeout: time.Minute, Log: logs[i].log, DialVMI: g.DialVMI, Labels: map[string]string{LabelRun: "two-arches"}})
			})
		}
		wg.Wait()
		for i, arch := range arches {
			if !results[i].Passed() {
				t.Errorf("%s: %s\nlog:\n%s", arch, results[i].Error, &logs[i])
				continue
			}
			name := logs[i].vmName(t)
			vmi := g.vmi(ns, name)
			if sel := vmi.Spec.NodeSelector[corev1.LabelArchStable]; sel != arch || vmi.Spec.Architecture != arch {
				t.Errorf("%s: VM %s has node selector %q and architecture %q", arch, name, sel, vmi.Spec.Architecture)
			}
			if vmi.Status.NodeName != nodes[i] {
				t.Errorf("%s: VM %s ran on node %s, want %s", arch, name, vmi.Status.NodeName, nodes[i])
			}
			if vmi.Labels[LabelRun] != "two-arches" || vmi.Labels[LabelArch] != arch {
				t.Errorf("%s: VMI labels %v", arch, vmi.Labels)
			}
			assertGone(t, tc, ns, name)
		}
	})

	for _, tt := range []struct {
		name       string
		controller testcluster.ControllerOptions
		opts       ClusterOptions
		want       []string
	}{
		{
			name:       "NeverReady",
			controller: testcluster.ControllerOptions{NeverReady: true},
			opts:       ClusterOptions{StepTimeout: 2 * time.Second},
			want: []string{"waiting for VM", "to become ready: timed out: becoming ready took longer than 2s",
				"reached phase Running", "VM status Running", "containers with unready status"},
		},
		{
			name:       "SlowWithinTimeout",
			controller: testcluster.ControllerOptions{PhaseDelay: 2 * time.Second},
			opts:       ClusterOptions{Timeout: 5 * time.Second},
			want:       []string{"timed out: the verification took longer than 5s", "reached phase Scheduled"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ns := tc.Namespace(t)
			tt.controller.Namespace = ns
			testcluster.StartController(t.Context(), t, tc, tt.controller)
			g := newGuests(t, tc)
			var log logLines
			tt.opts.Namespace, tt.opts.Log, tt.opts.DialVMI = ns, log.log, g.DialVMI
			start := time.Now()
			res := cluster.Verify(t.Context(), fedora40, "arm64", tt.opts)
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Verify took %s", d)
			}
			if !errors.Is(res.Err, ErrTimeout) {
				t.Errorf("error %v, want a timeout", res.Err)
			}
			t.Logf("error: %v", res.Err)
			errorSays(t, res.Err, tt.want...)
			if res.Error != res.Err.Error() || res.VM != "" {
				t.Errorf("result %+v", res)
			}
			assertGone(t, tc, ns, log.vmName(t))
		})
	}

	t.Run("Interrupted", func(t *testing.T) {
		t.Parallel()
		ns := tc.Namespace(t)
		testcluster.StartController(t.Context(), t, tc, testcluster.ControllerOptions{Namespace: ns, PhaseDelay: 300 * time.Millisecond})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		// Ctrl-C once the VM has a node.
		log := logLines{on: func(line string) {
			if strings.Contains(line, "VMI scheduled") {
				cancel()
			}
		}}
		res := cluster.Verify(ctx, fedora40, "amd64", ClusterOptions{Namespace: ns, Log: log.log, KeepOnFailure: true})
		if !errors.Is(res.Err, context.Canceled) || res.Phase != PhaseScheduled {
			t.Errorf("Verify = phase %s, error %v; want phase Scheduled, context canceled", res.Phase, res.Err)
		}
		if res.VM != "" {
			t.Errorf("an interrupted verification kept VM %s", res.VM)
		}
		assertGone(t, tc, ns, log.vmName(t))
	})

	t.Run("KeepOnFailure", func(t *testing.T) {
		t.Parallel()
		ns := tc.Namespace(t)
		testcluster.StartController(t.Context(), t, tc, testcluster.ControllerOptions{Namespace: ns, NeverReady: true})
		var log logLines
		res := cluster.Verify(t.Context(), fedora40, "amd64", ClusterOptions{Namespace: ns, Log: log.log, StepTimeout: time.Second, KeepOnFailure: true})
		name := log.vmName(t)
		if res.VM != ns+"/"+name {
			t.Errorf("Result.VM = %q, want %s/%s", res.VM, ns, name)
		}
		t.Logf("error: %v", res.Err)
		errorSays(t, res.Err, "timed out", fmt.Sprintf(`"virtctl console %s -n %s"`, name, ns), fmt.Sprintf(`"kubectl delete vm %s -n %s"`, name, ns))
		if _, err := tc.KubeVirt().KubevirtV1().VirtualMachines(ns).Get(t.Context(), name, metav1.GetOptions{}); err != nil {
			t.Errorf("the VM was not kept: %v", err)
		}
		if err := tc.KubeVirt().KubevirtV1().VirtualMachines(ns).Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		assertGone(t, tc, ns, name)
	})

	t.Run("ChecksFail", func(t *testing.T) {
		t.Parallel()
		ns := tc.Namespace(t)
		// The agent never connects and sshd never answers.
		testcluster.StartController(t.Context(), t, tc, testcluster.ControllerOptions{Namespace: ns})
		g := newGuests(t, tc)
		g.refuse = true
		var log logLines
		res := cluster.Verify(t.Context(), fedora40, "amd64", ClusterOptions{Namespace: ns, Log: log.log, StepTimeout: 2 * time.Second,
			DialVMI: g.DialVMI, GuestOSInfo: g.GuestOSInfo})
		if !errors.Is(res.Err, ErrCheckFailed) || !errors.Is(res.Err, ErrTimeout) || res.Phase != PhaseReady {
			t.Errorf("Verify = phase %s, error %v; want phase Ready, a check that timed out", res.Phase, res.Err)
		}
		t.Logf("error: %v", res.Err)
		errorSays(t, res.Err, "guest-agent: timed out: the guest-agent check took longer than 2s", "guest agent connected",
			"ssh: timed out: the ssh check took longer than 2s", "connection refused")
		if len(res.Checks) != 2 || res.Checks[0].Passed || res.Checks[1].Passed || res.Checks[1].Error == "" {
			t.Errorf("checks %+v, want two failed", res.Checks)
		}
		assertGone(t, tc, ns, log.vmName(t))
	})

	t.Run("NoNodeOfArch", func(t *testing.T) {
		t.Parallel()
		ns := tc.Namespace(t)
		testcluster.StartController(t.Context(), t, tc, testcluster.ControllerOptions{Namespace: ns})
		start := time.Now()
		res := cluster.Verify(t.Context(), fedora40, "s390x", ClusterOptions{Namespace: ns})
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Verify took %s to find no s390x node", d)
		}
		if !errors.Is(res.Err, ErrUnschedulable) || res.Phase != "" {
			t.Errorf("Verify = phase %q, error %v; want no phase, unschedulable", res.Phase, res.Err)
		}
		t.Logf("error: %v", res.Err)
		errorSays(t, res.Err, "no Ready, schedulable node has architecture s390x", "amd64, arm64")
		assertNoVMs(t, tc, ns)
	})

	// A user who may create VMs but not list nodes finds out from KubeVirt
	// that no node fits.
	t.Run("NoNodeOfArchUnlistable", func(t *testing.T) {
		t.Parallel()
		ns := tc.Namespace(t)
		testcluster.StartController(t.Context(), t, tc, testcluster.ControllerOptions{Namespace: ns})
		cluster := restrictedCluster(t, tc, ns)
		if _, err := cluster.Arches(t.Context()); !apierrors.IsForbidden(err) {
			t.Fatalf("Arches as a restricted user: %v, want forbidden", err)
		}
		var log logLines
		start := time.Now()
		res := cluster.Verify(t.Context(), fedora40, "s390x", ClusterOptions{Namespace: ns, Log: log.log})
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Verify took %s to find no s390x node", d)
		}
		if !errors.Is(res.Err, ErrUnschedulable) {
			t.Errorf("error %v, want unschedulable", res.Err)
		}
		t.Logf("error: %v", res.Err)
		errorSays(t, res.Err, "no node can run it", "VMI phase Scheduling", "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector")
		if !strings.Contains(log.String(), "cannot list nodes") {
			t.Errorf("the log does not say that nodes could not be listed:\n%s", &log)
		}
		assertGone(t, tc, ns, log.vmName(t))
	})
}

// warmUp creates and deletes a VM: the API server makes the first create
// after a CRD is Established wait, which would skew the timings of tests.
func warmUp(t *testing.T, tc *testcluster.Cluster) {
	t.Helper()
	vm, err := NewVirtualMachine(VMSpec{Image: fedora40, Arch: "amd64", Namespace: tc.Namespace(t), Name: "warm-up", Memory: "1Gi"})
	if err != nil {
		t.Fatal(err)
	}
	vms := tc.KubeVirt().KubevirtV1().VirtualMachines(vm.Namespace)
	if _, err := vms.Create(t.Context(), vm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := vms.Delete(t.Context(), vm.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// restrictedCluster returns a Cluster that acts as a user who may use VMs
// in namespace and nothing else.
func restrictedCluster(t *testing.T, tc *testcluster.Cluster, namespace string) *Cluster {
	t.Helper()
	rbac := tc.Kubernetes().RbacV1()
	role, err := rbac.Roles(namespace).Create(t.Context(), &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "vm-user"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"kubevirt.io"}, Resources: []string{"virtualmachines", "virtualmachineinstances"}, Verbs: []string{"*"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.RoleBindings(namespace).Create(t.Context(), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "vm-user"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "vm-user"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(tc.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "vm-user"}
	c, err := NewCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClusterUnreachable: without a cluster, errors say so at once.
func TestClusterUnreachable(t *testing.T) {
	if _, err := NewCluster(nil); err == nil || !strings.Contains(err.Error(), "no configuration") {
		t.Errorf("NewCluster(nil) = %v, want an error saying there is no configuration", err)
	}
	if _, err := NewCluster(&rest.Config{Host: "http://[::1"}); err == nil || !strings.Contains(err.Error(), `"http://[::1"`) {
		t.Errorf("NewCluster with a broken host = %v, want an error naming it", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	cluster, err := NewCluster(&rest.Config{Host: host})
	if err != nil {
		t.Fatalf("NewCluster: %v", err)
	}
	if _, err := cluster.Arches(t.Context()); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Arches = %v, want connection refused", err)
	}
	start := time.Now()
	res := cluster.Verify(t.Context(), fedora40, "x86_64", ClusterOptions{})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Verify took %s", d)
	}
	t.Logf("error: %v", res.Err)
	errorSays(t, res.Err, "listing the nodes of "+host, "connection refused")
	if res.Phase != "" || res.Passed() || res.Arch != "amd64" {
		t.Errorf("result %+v", res)
	}

	for _, tt := range []struct {
		img  Image
		arch string
		want string
	}{
		{Image{}, "amd64", "no image reference"},
		{fedora40, "", `unknown architecture ""`},
		{fedora40, "ppc64le", `unknown architecture "ppc64le": expected one of amd64, arm64, s390x`},
	} {
		res := cluster.Verify(t.Context(), tt.img, tt.arch, ClusterOptions{})
		errorSays(t, res.Err, tt.want)
	}
}

// TestClusterDialVMI logs in over KubeVirt's port-forward protocol (a
// websocket of binary messages) to a stand-in for virt-api that forwards
// to an SSH server, and checks that closing the connection ends the
// websocket.
func TestClusterDialVMI(t *testing.T) {
	key, _, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	sshd := startSSHServer(t, "fedora", key.PublicKey())
	ended := make(chan struct{}, 1)
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /apis/subresources.kubevirt.io/v1/namespaces/tests/virtualmachineinstances/fedora/portforward/22/tcp",
		func(w http.ResponseWriter, r *http.Request) {
			ws, err := kvcorev1.NewUpgrader().Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer ws.Close()
			guest, err := net.Dial("tcp", sshd.addr)
			if err != nil {
				return
			}
			defer guest.Close()
			done := make(chan struct{}, 2)
			go func() { kvcorev1.CopyTo(ws, guest); done <- struct{}{} }()
			go func() { kvcorev1.CopyFrom(guest, ws); done <- struct{}{} }()
			<-done
			ended <- struct{}{}
		})
	mux.HandleFunc("GET /apis/subresources.kubevirt.io/v1/namespaces/tests/virtualmachineinstances/slow/portforward/22/tcp",
		func(w http.ResponseWriter, r *http.Request) { <-release })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, apierrors.NewNotFound(schema.GroupResource{Group: "kubevirt.io", Resource: "virtualmachineinstances"}, "gone"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	cluster, err := NewCluster(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("SSH", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		conn, err := cluster.DialVMI(ctx, "tests", "fedora", 22)
		if err != nil {
			t.Fatalf("DialVMI: %v", err)
		}
		out, err := CheckSSH(ctx, conn, "fedora", key, SSHCommand)
		if err != nil || osRelease(out) != "Fedora Linux 40 (Cloud Edition)" {
			t.Fatalf("CheckSSH through port-forward = %q, %v", out, err)
		}
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Error("the websocket is still open after the connection was closed")
		}
	})

	t.Run("NoSuchVMI", func(t *testing.T) {
		_, err := cluster.DialVMI(t.Context(), "tests", "gone", 22)
		errorSays(t, err, "port-forwarding to port 22 of VMI tests/gone", `"gone" not found`)
	})

	t.Run("Cancelled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := cluster.DialVMI(ctx, "tests", "slow", 22)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Errorf("DialVMI to a server that never answers = %v after %s, want the deadline", err, time.Since(start))
		}
	})
}

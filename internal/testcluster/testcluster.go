// Package testcluster runs a real kube-apiserver (envtest, with etcd) that
// serves KubeVirt's VirtualMachine and VirtualMachineInstance CRDs and those
// of the instancetypes and preferences, for tests, and a stand-in for
// virt-controller that moves VMs to Running (see [StartController]).
//
// The binaries come from KUBEBUILDER_ASSETS or from the cache directory that
// hack/kube-apiserver.sh fills:
//
//	export KUBEBUILDER_ASSETS=$(hack/kube-apiserver.sh)
//
// The CRDs in testdata/kubevirt-crds.yaml are made by virt-operator's own code
// (hack/crdgen); regenerate them with go generate, or by hand:
//
//	cd hack/crdgen && go run . > ../../internal/testcluster/testdata/kubevirt-crds.yaml
package testcluster

//go:generate sh -c "cd ../../hack/crdgen && go run . > ../../internal/testcluster/testdata/kubevirt-crds.yaml"

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/kubevirt"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// KubernetesVersion is the version of the kube-apiserver the tests run,
// which hack/kube-apiserver.sh builds (it reads it from
// hack/tools/kube-apiserver/go.mod) into a cache directory named after it.
const KubernetesVersion = "v1.33.13"

// buildScript is what makes the binaries, named in errors about them.
const buildScript = "hack/kube-apiserver.sh"

//go:embed testdata/kubevirt-crds.yaml
var crdsYAML []byte

// Cluster is a running kube-apiserver and its etcd.
type Cluster struct {
	// Config reaches the API server as an administrator (group
	// system:masters).
	Config *rest.Config

	env        *envtest.Environment
	work       string // etcd's data, certificates, wrappers
	kubeconfig []byte
	kube       kubernetes.Interface
	kubevirt   kubevirt.Interface
}

// Start starts an API server of the test's own with KubeVirt's CRDs
// installed and Established, and stops it when the test ends. It fails the
// test, saying what to run, when the binaries are missing. It takes several
// seconds: tests that can share a server use [Shared] instead.
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := start()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := c.stop(); err != nil {
			tb.Errorf("stopping the test API server: %v", err)
		}
	})
	return c
}

// shared is the cluster Shared starts once per test binary and Main stops.
var shared struct {
	main    bool
	once    sync.Once
	cluster *Cluster
	err     error
}

// Main runs the tests of a package that uses [Shared], then stops the shared
// API server and exits. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testcluster.Main(m) }
func Main(m *testing.M) {
	shared.main = true
	code := m.Run()
	if c := shared.cluster; c != nil {
		if err := c.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testcluster: stopping the shared API server: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// Shared returns the API server that the tests of one test binary share,
// starting it on first use; [Main] stops it after the last test. Tests that
// share it keep to their own [Cluster.Namespace]. Nodes are cluster-wide: a
// test that adds nodes ([Cluster.AddNodes]) must not run in parallel with
// another test that depends on the set of nodes.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	if !shared.main {
		tb.Fatal("testcluster.Shared needs testcluster.Main to stop the server after the tests; " +
			"add: func TestMain(m *testing.M) { testcluster.Main(m) }")
	}
	shared.once.Do(func() { shared.cluster, shared.err = start() })
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.cluster
}

// AssetsDir is the directory holding the kube-apiserver and etcd binaries:
// $KUBEBUILDER_ASSETS if set, else the directory hack/kube-apiserver.sh
// fills ($KUBE_ASSETS_DIR, or a directory for [KubernetesVersion] in the user's
// cache directory).
func AssetsDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	if dir := os.Getenv("KUBE_ASSETS_DIR"); dir != "" {
		return dir, nil
	}
	// The same directory as the script's, which does not follow Go's
	// os.UserCacheDir on macOS.
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("finding the kube-apiserver binaries: %w; set KUBEBUILDER_ASSETS=$(%s)", err, buildScript)
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "kubectl-containerdisk", "kube-assets", KubernetesVersion), nil
}

// binaries returns the paths of kube-apiserver and etcd, or an error saying
// how to get them.
func binaries() (apiserver, etcd string, err error) {
	dir, err := AssetsDir()
	if err != nil {
		return "", "", err
	}
	apiserver = filepath.Join(dir, "kube-apiserver")
	etcd = filepath.Join(dir, "etcd")
	for _, p := range []string{apiserver, etcd} {
		if _, err := os.Stat(p); err != nil {
			return "", "", fmt.Errorf("the test API server needs %s, which is missing (%w); "+
				"build kube-apiserver %s and link etcd with: export KUBEBUILDER_ASSETS=$(%s)",
				p, err, KubernetesVersion, buildScript)
		}
	}
	return apiserver, etcd, nil
}

// crds decodes the embedded CRDs.
func crds() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var out []*apiextensionsv1.CustomResourceDefinition
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(crdsYAML), 4096)
	for {
		crd := new(apiextensionsv1.CustomResourceDefinition)
		err := dec.Decode(crd)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("decoding testdata/kubevirt-crds.yaml: %w", err)
		}
		if crd.Name != "" {
			out = append(out, crd)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("testdata/kubevirt-crds.yaml holds no CRD; regenerate it with go generate")
	}
	return out, nil
}

// start starts a cluster; on error nothing is left running.
func start() (_ *Cluster, err error) {
	apiserverPath, etcdPath, err := binaries()
	if err != nil {
		return nil, err
	}
	defs, err := crds()
	if err != nil {
		return nil, err
	}
	sweepWorkDirs()
	work, err := os.MkdirTemp("", fmt.Sprintf("%s%d-*", workDirPrefix, os.Getpid()))
	if err != nil {
		return nil, err
	}
	apiserverPath, etcdPath, err = dieWithParent(work, apiserverPath, etcdPath)
	if err != nil {
		os.RemoveAll(work)
		return nil, err
	}
	// The servers' output, kept to explain a failed start.
	out := &tailBuffer{max: 16 << 10}
	useExisting := false
	env := &envtest.Environment{
		ControlPlane: envtest.ControlPlane{
			APIServer: &envtest.APIServer{
				Path: apiserverPath, CertDir: filepath.Join(work, "certs"), Out: out, Err: out,
			},
			Etcd: &envtest.Etcd{
				Path: etcdPath, DataDir: filepath.Join(work, "etcd"), Out: out, Err: out,
			},
		},
		CRDs: defs,
		// Never a cluster named by USE_EXISTING_CLUSTER or a kubeconfig.
		UseExistingCluster:       &useExisting,
		ControlPlaneStartTimeout: time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	for _, dir := range []string{env.ControlPlane.APIServer.CertDir, env.ControlPlane.Etcd.DataDir} {
		if err := os.Mkdir(dir, 0o700); err != nil {
			os.RemoveAll(work)
			return nil, err
		}
	}
	c := &Cluster{env: env, work: work}
	config, err := env.Start()
	// Whatever got started stops with c, from here on.
	defer func() {
		if err != nil {
			err = errors.Join(err, c.stop())
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("starting the test API server (%s, %s): %w\n%s", apiserverPath, etcdPath, err, out.String())
	}
	c.Config = config
	c.kubeconfig = env.KubeConfig
	if c.kube, err = kubernetes.NewForConfig(config); err != nil {
		return nil, err
	}
	if c.kubevirt, err = kubevirt.NewForConfig(config); err != nil {
		return nil, err
	}
	if err := waitEstablished(config, defs); err != nil {
		return nil, err
	}
	if err := c.warmUp(); err != nil {
		return nil, err
	}
	return c, nil
}

// warmUp makes a dry-run create of each kind: the first create of a kind
// after its CRD is Established waits about two seconds in the API server,
// which the start pays here rather than a test with a deadline.
func (c *Cluster) warmUp() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv := c.kubevirt.KubevirtV1()
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	meta := metav1.ObjectMeta{Name: "warm-up", Namespace: metav1.NamespaceDefault}
	// Concurrently: each kind waits on its own.
	errs := make([]error, 2)
	var wg sync.WaitGroup
	wg.Go(func() {
		_, errs[0] = kv.VirtualMachines(meta.Namespace).Create(ctx, &kubevirtv1.VirtualMachine{
			ObjectMeta: meta,
			Spec:       kubevirtv1.VirtualMachineSpec{Template: &kubevirtv1.VirtualMachineInstanceTemplateSpec{}},
		}, dryRun)
	})
	wg.Go(func() {
		_, errs[1] = kv.VirtualMachineInstances(meta.Namespace).Create(ctx, &kubevirtv1.VirtualMachineInstance{ObjectMeta: meta}, dryRun)
	})
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("warming up the test API server: %w", err)
	}
	return nil
}

// workDirPrefix starts the name of the temporary directory of each cluster,
// followed by the process ID of the test binary that started it.
const workDirPrefix = "testcluster-"

// sweepWorkDirs removes the directories of clusters whose test binary is
// gone: one that panicked or timed out never ran its cleanup.
func sweepWorkDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), workDirPrefix+"*-*"))
	for _, dir := range dirs {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(dir), workDirPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(dir)
		}
	}
}

// dieWithParent returns commands that run the given binaries so that the
// kernel kills them when the test binary dies, through wrapper scripts
// written into dir/bin that exec setpriv --pdeathsig (util-linux). envtest
// stops its servers in the test's cleanup, which a test binary that panics
// or times out never runs: without this, etcd and kube-apiserver would
// outlive it. (Strictly, the signal comes when the thread that started them
// ends, which in Go happens only to a thread locked by LockOSThread.)
// Without setpriv the binaries run as they are.
func dieWithParent(dir string, binaries ...string) (apiserver, etcd string, err error) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		return binaries[0], binaries[1], nil
	}
	dir = filepath.Join(dir, "bin")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", "", err
	}
	var out []string
	for _, bin := range binaries {
		wrapper := filepath.Join(dir, filepath.Base(bin))
		script := fmt.Sprintf("#!/bin/sh\nexec %s --pdeathsig KILL -- %s \"$@\"\n", shellQuote(setpriv), shellQuote(bin))
		if err := os.WriteFile(wrapper, []byte(script), 0o700); err != nil {
			return "", "", err
		}
		out = append(out, wrapper)
	}
	return out[0], out[1], nil
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// waitEstablished waits until the API server says each CRD is Established,
// beyond envtest's wait for the resources to be in discovery.
func waitEstablished(config *rest.Config, defs []*apiextensionsv1.CustomResourceDefinition) error {
	scheme := runtime.NewScheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return err
	}
	cl, err := client.New(config, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, def := range defs {
		var crd apiextensionsv1.CustomResourceDefinition
		err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			if err := cl.Get(ctx, client.ObjectKey{Name: def.Name}, &crd); err != nil {
				return false, nil //nolint:nilerr // try again until the deadline
			}
			for _, cond := range crd.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("waiting for CRD %s to be Established (conditions %v): %w", def.Name, crd.Status.Conditions, err)
		}
	}
	return nil
}

// stop stops the API server and etcd and removes their files.
func (c *Cluster) stop() error {
	err := c.env.Stop()
	return errors.Join(err, os.RemoveAll(c.work))
}

// Kubernetes returns a clientset for the cluster's built-in APIs.
func (c *Cluster) Kubernetes() kubernetes.Interface { return c.kube }

// KubeVirt returns KubeVirt's generated clientset for the cluster.
func (c *Cluster) KubeVirt() kubevirt.Interface { return c.kubevirt }

// Kubeconfig writes a kubeconfig file with the administrator's credentials
// (a client certificate) into a directory of the test's and returns its
// path, for tests that run kubectl or a plugin.
func (c *Cluster) Kubeconfig(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, c.kubeconfig, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// Namespace creates a namespace for the test, named after it, and deletes it
// when the test ends. envtest runs no namespace controller, so what the test
// created stays in the deleted (Terminating) namespace until the server
// stops; nothing else sees it.
func (c *Cluster) Namespace(tb testing.TB) string {
	tb.Helper()
	ns, err := c.kube.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: namePrefix(tb.Name())},
	}, metav1.CreateOptions{})
	if err != nil {
		tb.Fatalf("creating a namespace: %v", err)
	}
	tb.Cleanup(func() {
		err := c.kube.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			tb.Errorf("deleting namespace %s: %v", ns.Name, err)
		}
	})
	return ns.Name
}

var notDNSLabel = regexp.MustCompile(`[^a-z0-9]+`)

// namePrefix turns a test name into the start of a DNS label, for
// GenerateName (which adds five characters).
func namePrefix(testName string) string {
	p := strings.Trim(notDNSLabel.ReplaceAllString(strings.ToLower(testName), "-"), "-")
	if len(p) > 40 {
		p = strings.TrimRight(p[:40], "-")
	}
	if p == "" {
		p = "test"
	}
	return p + "-"
}

// AddNodes creates one Ready, untainted Linux node for each architecture
// given (amd64, arm64, s390x, ... as in the label kubernetes.io/arch) and
// deletes them when the test ends. It returns their names, in the order of arches.
// No kubelet runs: the nodes exist for code that reads them and for the
// scheduling of [StartController].
func (c *Cluster) AddNodes(tb testing.TB, arches ...string) []string {
	tb.Helper()
	ctx := context.Background()
	nodes := c.kube.CoreV1().Nodes()
	names := make([]string, 0, len(arches))
	for _, arch := range arches {
		name := "node-" + arch + "-" + utilrand.String(5)
		node, err := nodes.Create(ctx, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: name,
				Labels: map[string]string{
					corev1.LabelArchStable:    arch,
					corev1.LabelOSStable:      "linux",
					corev1.LabelHostname:      name,
					"kubevirt.io/schedulable": "true",
				},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			tb.Fatalf("creating node %s: %v", name, err)
		}
		tb.Cleanup(func() {
			err := nodes.Delete(context.Background(), name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				tb.Errorf("deleting node %s: %v", name, err)
			}
		})
		now := metav1.Now()
		node.Status = corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{
				Type:               corev1.NodeReady,
				Status:             corev1.ConditionTrue,
				Reason:             "KubeletReady",
				Message:            "kubelet is posting ready status",
				LastHeartbeatTime:  now,
				LastTransitionTime: now,
			}},
			NodeInfo: corev1.NodeSystemInfo{Architecture: arch, OperatingSystem: "linux"},
		}
		node, err = nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
		if err != nil {
			tb.Fatalf("making node %s Ready: %v", name, err)
		}
		// The API server taints a new node node.kubernetes.io/not-ready; the
		// node lifecycle controller, which envtest does not run, lifts the
		// taint once the node is Ready.
		node.Spec.Taints = slices.DeleteFunc(node.Spec.Taints, func(t corev1.Taint) bool {
			return t.Key == corev1.TaintNodeNotReady
		})
		if _, err := nodes.Update(ctx, node, metav1.UpdateOptions{}); err != nil {
			tb.Fatalf("lifting the not-ready taint of node %s: %v", name, err)
		}
		names = append(names, name)
	}
	return names
}

// tailBuffer keeps the last max bytes written to it, from several
// goroutines.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

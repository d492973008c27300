package verify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/containerdisk/kubectl-containerdisk/internal/testcluster"
	"github.com/containerdisk/kubectl-containerdisk/internal/testdisk"
	"github.com/containerdisk/kubectl-containerdisk/internal/testregistry"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/verify"
)

// image pushes an index of the given architectures to the registry.
func image(t *testing.T, reg *testregistry.Registry, repo string, arches ...string) string {
	t.Helper()
	var disks []containerdisk.Disk
	for i, a := range arches {
		p := filepath.Join(t.TempDir(), a+".qcow2")
		if err := testdisk.WriteQCOW2(p, 1<<20, uint64(i+10), false); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, containerdisk.Disk{Architecture: a, Path: p})
	}
	r, err := remote.NewRepository(reg.Host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	r.PlainHTTP = true
	res, err := containerdisk.Build(context.Background(), r, disks, containerdisk.Options{Created: time.Unix(0, 0), TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Tag(context.Background(), res.Root, "1"); err != nil {
		t.Fatal(err)
	}
	return reg.Host + "/" + repo + ":1"
}

func runVerify(ctx context.Context, t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Run(ctx, cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, "kubectl containerdisk verify", args, verify.NewCommand)
	return code, out.String(), errOut.String()
}

// noVMs checks that verify left no VirtualMachine behind.
func noVMs(t *testing.T, tc *testcluster.Cluster, ns string) {
	t.Helper()
	vms, err := tc.KubeVirt().KubevirtV1().VirtualMachines(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(vms.Items) != 0 {
		t.Errorf("%d VMs left in %s, want none", len(vms.Items), ns)
	}
}

// verify on a real API server with KubeVirt's CRDs and a stand-in
// virt-controller: the architectures both the image and the nodes have are
// verified, each VM is deleted, and failures are reported per
// architecture. The SSH check needs KubeVirt's port-forward, which the
// stand-in does not serve; pkg/verify tests it against a real SSH server.
func TestVerifyOnCluster(t *testing.T) {
	tc := testcluster.Shared(t)
	reg := testregistry.New(t)
	kubeconfig := tc.Kubeconfig(t)
	tc.AddNodes(t, "amd64", "s390x")
	img := image(t, reg, "containerdisks/two", "amd64", "arm64")

	t.Run("passes on the architectures both have", func(t *testing.T) {
		ns := tc.Namespace(t)
		testcluster.StartController(t.Context(), t, tc, testcluster.ControllerOptions{Namespace: ns})
		code, out, errOut := runVerify(t.Context(), t, "--kubeconfig", kubeconfig, "-n", ns, "--ssh=false", "-o", "json", img)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
		if !strings.Contains(errOut, "Skipping "+img+" arm64: the cluster has no arm64 node") {
			t.Errorf("stderr %q does not say why arm64 was skipped", errOut)
		}
		var rec pipeline.Record
		if err := json.Unmarshal([]byte(out), &rec); err != nil {
			t.Fatalf("%v: %q", err, out)
		}
		if rec.Verify == nil || !rec.Verify.Passed || len(rec.Verify.Results) != 1 || rec.Verify.Results[0].Arch != "amd64" || rec.Verify.Results[0].Phase != "Checked" {
			t.Errorf("verify = %+v", rec.Verify)
		}
		noVMs(t, tc, ns)
	})

	t.Run("a VM that never becomes ready fails in time and is deleted", func(t *testing.T) {
		ns := tc.Namespace(t)
		testcluster.StartController(t.Context(), t, tc, testcluster.ControllerOptions{Namespace: ns, NeverReady: true})
		start := time.Now()
		code, out, errOut := runVerify(t.Context(), t, "--kubeconfig", kubeconfig, "-n", ns, "--ssh=false", "--timeout", "3s", img)
		if code != 1 || time.Since(start) > 30*time.Second {
			t.Fatalf("exit %d after %v, want 1 soon\n%s", code, time.Since(start), errOut)
		}
		if !strings.Contains(out, img+" amd64 cluster Running") || !strings.Contains(errOut, "1 of 1 items failed") {
			t.Errorf("stdout %q, stderr %q: want the phase reached and the failure", out, errOut)
		}
		noVMs(t, tc, ns)
	})

	t.Run("an interrupted run deletes its VM", func(t *testing.T) {
		ns := tc.Namespace(t)
		testcluster.StartController(t.Context(), t, tc, testcluster.ControllerOptions{Namespace: ns, NeverReady: true})
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(2*time.Second, cancel)
		code, _, errOut := runVerify(ctx, t, "--kubeconfig", kubeconfig, "-n", ns, "--ssh=false", "--timeout", "5m", "--keep-on-failure", img)
		if code != cli.ExitInterrupted {
			t.Fatalf("exit %d, want %d\n%s", code, cli.ExitInterrupted, errOut)
		}
		noVMs(t, tc, ns)
	})

	t.Run("an image without an architecture of the cluster", func(t *testing.T) {
		arm := image(t, reg, "containerdisks/arm", "arm64")
		code, _, errOut := runVerify(t.Context(), t, "--kubeconfig", kubeconfig, arm)
		if code != 2 || !strings.Contains(errOut, "nothing to verify") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
}

func TestVerifyClusterErrors(t *testing.T) {
	dir := t.TempDir()
	unreachable := filepath.Join(dir, "unreachable.yaml")
	os.WriteFile(unreachable, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600)
	garbage := filepath.Join(dir, "garbage.yaml")
	os.WriteFile(garbage, []byte("{not yaml"), 0o600)
	reg := testregistry.New(t)
	img := image(t, reg, "containerdisks/one", "amd64")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--kubeconfig", unreachable}, 1, "reading the cluster's nodes at https://127.0.0.1:1"},
		{[]string{"--kubeconfig", garbage}, 2, "reading the kubeconfig"},
		{[]string{"--kubeconfig", filepath.Join(dir, "missing.yaml")}, 2, "expected a cluster to verify on (--kubeconfig, --context), or --local"},
		{[]string{"--local", "--arch", "sparc"}, 2, "unknown architecture"},
		{[]string{"--local", "-o", "xml"}, 2, `invalid argument "xml" for "-o, --output" flag: expected one of text, json, yaml`},
	} {
		code, _, errOut := runVerify(t.Context(), t, append(tc.args, img)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("verify %q: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}

package fanout_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/containerdisk/kubectl-containerdisk/internal/testcluster"
	"github.com/containerdisk/kubectl-containerdisk/internal/testjobs"
	"github.com/containerdisk/kubectl-containerdisk/pkg/fanout"
)

func TestMain(m *testing.M) { testcluster.Main(m) }

func spec(ns string) fanout.Spec {
	return fanout.Spec{
		Namespace: ns, Run: "abcde", Image: "example.test/build:1",
		Catalog:      map[string]string{"0-tiny.yaml": "entries: []\n"},
		BackoffLimit: 1, TTL: 10 * time.Minute,
	}
}

var tasks = []fanout.Task{
	{Name: "fedora", Version: "42", Arch: "amd64", Args: []string{"build", "--focus", "fedora:42", "--arch", "amd64"}},
	{Name: "centos-stream", Version: "10.0_beta+x", Arch: "s390x", Args: []string{"build"}},
}

// TestRender: one Job per task, named after it, with the node selector of
// its architecture, labels naming what it builds, and the ConfigMap
// mounted; names and labels stay valid whatever the version.
func TestRender(t *testing.T) {
	objs := fanout.Render(spec("ns1"), tasks)
	if objs.ConfigMap == nil || objs.ConfigMap.Name != "containerdisk-catalog-abcde" || objs.ConfigMap.Data["0-tiny.yaml"] == "" {
		t.Fatalf("ConfigMap %+v", objs.ConfigMap)
	}
	if len(objs.Jobs) != 2 {
		t.Fatalf("%d Jobs, want 2", len(objs.Jobs))
	}
	j := objs.Jobs[0]
	if j.Name != "containerdisk-fedora-42-amd64-abcde" || j.Namespace != "ns1" {
		t.Errorf("Job name %s/%s", j.Namespace, j.Name)
	}
	pod := j.Spec.Template.Spec
	if pod.NodeSelector[corev1.LabelArchStable] != "amd64" || pod.RestartPolicy != corev1.RestartPolicyNever ||
		*j.Spec.TTLSecondsAfterFinished != 600 || *j.Spec.BackoffLimit != 1 || pod.Containers[0].Image != "example.test/build:1" {
		t.Errorf("Job spec %+v", j.Spec)
	}
	if strings.Join(pod.Containers[0].Command, " ") != "build --focus fedora:42 --arch amd64" {
		t.Errorf("command %q", pod.Containers[0].Command)
	}
	if c := pod.Containers[0]; c.TerminationMessagePath != fanout.TerminationLog || c.TerminationMessagePolicy != corev1.TerminationMessageReadFile {
		t.Errorf("termination message %s, policy %s; want %s, File", c.TerminationMessagePath, c.TerminationMessagePolicy, fanout.TerminationLog)
	}
	mounted := false
	for _, m := range pod.Containers[0].VolumeMounts {
		mounted = mounted || m.MountPath == fanout.CatalogDir
	}
	if !mounted {
		t.Errorf("the catalog is not mounted at %s: %+v", fanout.CatalogDir, pod.Containers[0].VolumeMounts)
	}
	odd := objs.Jobs[1]
	if len(odd.Name) > 63 || strings.ContainsAny(odd.Name, "._+") || !strings.HasPrefix(odd.Name, "containerdisk-centos-stream-10-0-beta-x-s390x-abcde-") {
		t.Errorf("Job name %q: want a DNS label naming the task", odd.Name)
	}
	if odd.Labels[fanout.LabelVersion] != "10.0_beta_x" || odd.Annotations[fanout.LabelVersion] != "10.0_beta+x" {
		t.Errorf("labels %v, annotations %v", odd.Labels, odd.Annotations)
	}
}

// TestWriteYAML: the objects as documents that apply as they are,
// without server-side fields.
func TestWriteYAML(t *testing.T) {
	s := spec("")
	s.Run = ""
	var out bytes.Buffer
	if err := fanout.WriteYAML(&out, fanout.Render(s, tasks[:1])); err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(out.String(), "---\n")
	if len(docs) != 2 || !strings.Contains(docs[0], "kind: ConfigMap") || !strings.Contains(docs[1], "kind: Job") {
		t.Fatalf("documents:\n%s", out.String())
	}
	for _, bad := range []string{"creationTimestamp", "status:", "namespace:"} {
		if strings.Contains(out.String(), bad) {
			t.Errorf("YAML has %q:\n%s", bad, out.String())
		}
	}
	var job map[string]any
	if err := yaml.Unmarshal([]byte(docs[1]), &job); err != nil {
		t.Fatal(err)
	}
	if job["metadata"].(map[string]any)["name"] != "containerdisk-fedora-42-amd64" {
		t.Errorf("Job %v", job["metadata"])
	}
}

// TestRunStrict: the objects are created with strict field validation: a
// field the API server does not know (hostnameOverride is newer than the
// test server) fails the run instead of being dropped, and nothing stays.
func TestRunStrict(t *testing.T) {
	c := testcluster.Shared(t)
	ns := c.Namespace(t)
	objs := fanout.Render(spec(ns), tasks[:1])
	name := "x"
	objs.Jobs[0].Spec.Template.Spec.HostnameOverride = &name
	r := &fanout.Runner{Kube: client(t, c), Timeout: time.Second}
	_, err := r.Run(t.Context(), objs)
	if err == nil || !strings.Contains(err.Error(), `unknown field "spec.template.spec.hostnameOverride"`) {
		t.Fatalf("Run = %v, want the strict validation's unknown field", err)
	}
	checkNothingLeft(t, c, ns)
}

// TestRunTimeout: a Job no node runs fails at the timeout, with a message
// naming its architecture, and is deleted.
func TestRunTimeout(t *testing.T) {
	c := testcluster.Shared(t)
	ns := c.Namespace(t)
	r := &fanout.Runner{Kube: client(t, c), Timeout: 500 * time.Millisecond}
	res, err := r.Run(t.Context(), fanout.Render(spec(ns), tasks))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("results %v", res)
	}
	for name, r := range res {
		if r.Succeeded || r.Err == nil || !strings.Contains(r.Err.Error(), "no node of architecture") {
			t.Errorf("%s: %+v", name, r)
		}
	}
	if e := res["containerdisk-fedora-42-amd64-abcde"].Err; e == nil || !strings.Contains(e.Error(), "kubernetes.io/arch=amd64") {
		t.Errorf("error %v does not name the node selector", e)
	}
	checkNothingLeft(t, c, ns)
}

// TestRunCancel: a run cancelled while its Jobs wait deletes them.
func TestRunCancel(t *testing.T) {
	c := testcluster.Shared(t)
	ns := c.Namespace(t)
	ctx, cancel := context.WithCancel(t.Context())
	r := &fanout.Runner{Kube: client(t, c), Timeout: time.Minute, OnEvent: func(e fanout.Event) {
		if e.Kind == fanout.EventCreated && e.Job.Name == "containerdisk-fedora-42-amd64-abcde" {
			cancel()
		}
	}}
	_, err := r.Run(ctx, fanout.Render(spec(ns), tasks))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	checkNothingLeft(t, c, ns)
}

// TestRunMessage: the result of a succeeded Job has the termination
// message of its pod's container, what its command wrote to
// TerminationLog; a Job that succeeded without a succeeded pod of its own
// to read it from (the pod is gone) has an error saying so.
func TestRunMessage(t *testing.T) {
	c := testcluster.Shared(t)
	ns := c.Namespace(t)
	c.AddNodes(t, "amd64")
	bin := t.TempDir()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sh, filepath.Join(bin, "sh")); err != nil {
		t.Fatal(err)
	}
	testjobs.Start(t.Context(), t, c.Kubernetes(), testjobs.Options{Namespace: ns, BinDir: bin, PodDone: func(j *batchv1.Job, pod *corev1.Pod) {
		if j.Labels[fanout.LabelName] == "gone" {
			zero := int64(0)
			if err := c.Kubernetes().CoreV1().Pods(ns).Delete(t.Context(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
				t.Error(err)
			}
		}
	}})
	write := []string{"sh", "-c", `printf '%s' "$1" >"$0"`, fanout.TerminationLog, "built sha256:1"}
	objs := fanout.Render(spec(ns), []fanout.Task{
		{Name: "said", Version: "1", Arch: "amd64", Args: write},
		{Name: "gone", Version: "1", Arch: "amd64", Args: write},
	})
	r := &fanout.Runner{Kube: client(t, c), Timeout: time.Minute}
	res, err := r.Run(t.Context(), objs)
	if err != nil {
		t.Fatal(err)
	}
	if got := res[objs.Jobs[0].Name]; !got.Succeeded || got.Err != nil || got.Message != "built sha256:1" {
		t.Errorf("%s: %+v, want succeeded with the message %q", objs.Jobs[0].Name, got, "built sha256:1")
	}
	got := res[objs.Jobs[1].Name]
	if !got.Succeeded || got.Message != "" || got.Err == nil || !strings.Contains(got.Err.Error(), "succeeded, but none of its 0 pods is a succeeded pod of it") {
		t.Errorf("%s: %+v, want succeeded with an error saying it has no pod", objs.Jobs[1].Name, got)
	}
	checkNothingLeft(t, c, ns)
}

// client is the cluster's client for a Runner.
func client(t *testing.T, c *testcluster.Cluster) kubernetes.Interface {
	t.Helper()
	kube, err := fanout.NewClient(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	return kube
}

func checkNothingLeft(t *testing.T, c *testcluster.Cluster, ns string) {
	t.Helper()
	jobs, err := c.Kubernetes().BatchV1().Jobs(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cms, err := c.Kubernetes().CoreV1().ConfigMaps(ns).List(t.Context(), metav1.ListOptions{LabelSelector: fanout.LabelManagedBy})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items)+len(cms.Items) > 0 {
		t.Errorf("%d Jobs and %d ConfigMaps left", len(jobs.Items), len(cms.Items))
	}
}

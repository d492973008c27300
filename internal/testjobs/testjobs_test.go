package testjobs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/containerdisk/kubectl-containerdisk/internal/testcluster"
	"github.com/containerdisk/kubectl-containerdisk/internal/testjobs"
)

func TestMain(m *testing.M) { testcluster.Main(m) }

func job(name, arch string, backoff int32, command ...string) *batchv1.Job {
	command[0] = "/usr/bin/" + command[0]
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{
			BackoffLimit: &backoff,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				NodeSelector:  map[string]string{corev1.LabelArchStable: arch},
				Containers:    []corev1.Container{{Name: "c", Image: "i", Command: command}},
			}},
		},
	}
}

// writeMessage is a shell script that writes 5000 bytes ending in "END"
// to the file given as its first argument.
const writeMessage = `head -c 4997 /dev/zero | tr '\0' x >"$0" && printf END >>"$0"`

// TestRunner: a Job whose node selector matches a node runs as pods of
// its own, each a local process, and ends Complete or, after its retries,
// Failed, through the status subresource; a Job no node matches stays
// pending. Each pod is the job controller's: the Job's labels, owned by
// the Job, on the node; its status is the kubelet's: the exit code, and
// the end of what the process wrote to the file at terminationMessagePath
// (defaulted by the API server to /dev/termination-log).
func TestRunner(t *testing.T) {
	c := testcluster.Shared(t)
	ns := c.Namespace(t)
	c.AddNodes(t, "amd64")
	bin := t.TempDir()
	for _, p := range []string{"true", "false", "sh"} {
		path, err := exec.LookPath(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(path, filepath.Join(bin, p)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	done := map[string]int{}
	r := testjobs.Start(t.Context(), t, c.Kubernetes(), testjobs.Options{Namespace: ns, BinDir: bin, PodDone: func(j *batchv1.Job, pod *corev1.Pod) {
		mu.Lock()
		defer mu.Unlock()
		done[j.Name]++
	}})
	jobs := c.Kubernetes().BatchV1().Jobs(ns)
	for _, j := range []*batchv1.Job{job("ok", "amd64", 0, "sh", "-c", writeMessage, "/dev/termination-log"), job("bad", "amd64", 2, "false"), job("pending", "s390x", 0, "true")} {
		if _, err := jobs.Create(t.Context(), j, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	condition := func(name string) (*batchv1.Job, batchv1.JobConditionType) {
		j, err := jobs.Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range j.Status.Conditions {
			if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
				return j, c.Type
			}
		}
		return j, ""
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, ok := condition("ok")
		_, bad := condition("bad")
		if ok != "" && bad != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Jobs not finished: ok %q, bad %q", ok, bad)
		}
	}
	if j, c := condition("ok"); c != batchv1.JobComplete || j.Status.Succeeded != 1 || j.Status.CompletionTime == nil {
		t.Errorf("ok: %s, %+v", c, j.Status)
	}
	if j, c := condition("bad"); c != batchv1.JobFailed || j.Status.Failed != 3 || j.Status.Succeeded != 0 {
		t.Errorf("bad: %s, %+v, want Failed after 3 attempts", c, j.Status)
	}
	if j, c := condition("pending"); c != "" || j.Status.StartTime != nil {
		t.Errorf("pending: %s, %+v, want no status", c, j.Status)
	}
	if r.Started() != 2 || len(r.Jobs()) != 3 {
		t.Errorf("started %d of %d Jobs seen, want 2 of 3", r.Started(), len(r.Jobs()))
	}

	nodes, err := c.Kubernetes().CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		job      string
		pods     int
		phase    corev1.PodPhase
		exitCode int32
	}{{"ok", 1, corev1.PodSucceeded, 0}, {"bad", 3, corev1.PodFailed, 1}, {"pending", 0, "", 0}} {
		j, _ := condition(tc.job)
		sel, err := metav1.LabelSelectorAsSelector(j.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		pods, err := c.Kubernetes().CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) != tc.pods {
			t.Errorf("Job %s: %d pods, want %d", tc.job, len(pods.Items), tc.pods)
		}
		for _, p := range pods.Items {
			owner := metav1.GetControllerOf(&p)
			if owner == nil || owner.UID != j.UID || owner.Kind != "Job" || p.Labels[batchv1.JobNameLabel] != tc.job || p.Spec.NodeName != nodes.Items[0].Name {
				t.Errorf("pod %s: controller %+v, labels %v, node %q", p.Name, owner, p.Labels, p.Spec.NodeName)
			}
			if p.Status.Phase != tc.phase || len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Terminated == nil {
				t.Fatalf("pod %s: status %+v", p.Name, p.Status)
			}
			term := p.Status.ContainerStatuses[0].State.Terminated
			if term.ExitCode != tc.exitCode {
				t.Errorf("pod %s: exit code %d, want %d", p.Name, term.ExitCode, tc.exitCode)
			}
			if tc.job == "ok" && (len(term.Message) != testjobs.MaxMessage || !strings.HasSuffix(term.Message, "xxEND")) {
				t.Errorf("pod %s: message of %d bytes ending %q, want the last %d bytes of the file", p.Name, len(term.Message), term.Message[max(0, len(term.Message)-5):], testjobs.MaxMessage)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if done["ok"] != 1 || done["bad"] != 3 || len(done) != 2 {
		t.Errorf("PodDone calls by Job: %v, want ok 1, bad 3", done)
	}
}

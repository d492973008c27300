package testjobs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/containerdisk/kubectl-containerdisk/internal/testcluster"
	"github.com/containerdisk/kubectl-containerdisk/internal/testjobs"
)

func TestMain(m *testing.M) { testcluster.Main(m) }

func job(name, arch, program string, backoff int32) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{
			BackoffLimit: &backoff,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				NodeSelector:  map[string]string{corev1.LabelArchStable: arch},
				Containers:    []corev1.Container{{Name: "c", Image: "i", Command: []string{"/usr/bin/" + program}}},
			}},
		},
	}
}

// TestRunner: a Job whose node selector matches a node runs as a local
// process and ends Complete or, after its retries, Failed, through the
// status subresource; a Job no node matches stays pending.
func TestRunner(t *testing.T) {
	c := testcluster.Shared(t)
	ns := c.Namespace(t)
	c.AddNodes(t, "amd64")
	bin := t.TempDir()
	for _, p := range []string{"true", "false"} {
		path, err := exec.LookPath(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(path, filepath.Join(bin, p)); err != nil {
			t.Fatal(err)
		}
	}
	r := testjobs.Start(t.Context(), t, c.Kubernetes(), testjobs.Options{Namespace: ns, BinDir: bin})
	jobs := c.Kubernetes().BatchV1().Jobs(ns)
	for _, j := range []*batchv1.Job{job("ok", "amd64", "true", 0), job("bad", "amd64", "false", 2), job("pending", "s390x", "true", 0)} {
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
}

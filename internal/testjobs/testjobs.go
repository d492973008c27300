// Package testjobs is a stand-in, for tests, for the parts of Kubernetes
// that run a Job and that envtest does not run: the job controller, the
// scheduler and the kubelet. It watches the Jobs of a namespace on a real
// API server (internal/testcluster) and runs each Job whose nodeSelector
// matches one of the cluster's nodes as a local process, then writes the
// Job's status as the job controller does. A Job that no node matches
// stays pending, as it does in a cluster without such a node.
package testjobs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Options configure Start.
type Options struct {
	// Namespace whose Jobs are run. Required.
	Namespace string
	// BinDir holds the programs a container's command names: the first
	// word of the command is looked up there by its base name.
	BinDir string
	// Env is added to the environment of every process.
	Env []string
}

// Runner is a started stand-in.
type Runner struct {
	kube kubernetes.Interface
	opts Options
	tb   testing.TB

	started atomic.Int32
	mu      sync.Mutex
	seen    map[types.UID]bool // recorded in jobs
	claimed map[types.UID]bool // run
	jobs    []*batchv1.Job
}

// Start runs the stand-in until ctx is done or the test ends.
func Start(ctx context.Context, tb testing.TB, kube kubernetes.Interface, opts Options) *Runner {
	tb.Helper()
	if opts.Namespace == "" || opts.BinDir == "" {
		tb.Fatal("testjobs.Start: Namespace and BinDir are required")
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &Runner{kube: kube, opts: opts, tb: tb, seen: map[types.UID]bool{}, claimed: map[types.UID]bool{}}
	var wg sync.WaitGroup
	wg.Go(func() { r.loop(ctx, &wg) })
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return r
}

// Started returns how many Jobs the runner has started to run.
func (r *Runner) Started() int { return int(r.started.Load()) }

// Jobs returns every Job the runner has seen, as it first saw it.
func (r *Runner) Jobs() []*batchv1.Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*batchv1.Job(nil), r.jobs...)
}

// loop polls the namespace's Jobs and the nodes: a watch would do too, but
// a poll also notices a node that joins.
func (r *Runner) loop(ctx context.Context, wg *sync.WaitGroup) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		jobs, err := r.kube.BatchV1().Jobs(r.opts.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			continue
		}
		nodes, err := r.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			continue
		}
		for i := range jobs.Items {
			j := &jobs.Items[i]
			r.mu.Lock()
			if !r.seen[j.UID] {
				r.seen[j.UID] = true
				r.jobs = append(r.jobs, j.DeepCopy())
			}
			claim := !r.claimed[j.UID] && fits(j, nodes.Items)
			if claim {
				r.claimed[j.UID] = true
			}
			r.mu.Unlock()
			if !claim {
				continue
			}
			r.started.Add(1)
			wg.Go(func() { r.run(ctx, j) })
		}
	}
}

// fits reports whether a Ready node has every label of the Job's
// nodeSelector.
func fits(j *batchv1.Job, nodes []corev1.Node) bool {
	for _, n := range nodes {
		ok := true
		for k, v := range j.Spec.Template.Spec.NodeSelector {
			if n.Labels[k] != v {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// run runs the Job's container up to backoffLimit+1 times and writes
// its status.
func (r *Runner) run(ctx context.Context, j *batchv1.Job) {
	start := metav1.Now()
	if !r.setStatus(ctx, j, func(st *batchv1.JobStatus) {
		st.StartTime = &start
		st.Active = 1
	}) {
		return
	}
	attempts := 1
	if b := j.Spec.BackoffLimit; b != nil {
		attempts += int(*b)
	}
	var failed int32
	var err error
	for range attempts {
		if err = r.runContainer(ctx, j); err == nil || ctx.Err() != nil {
			break
		}
		failed++
		r.tb.Logf("testjobs: Job %s: %v", j.Name, err)
	}
	if ctx.Err() != nil {
		return
	}
	now := metav1.Now()
	r.setStatus(ctx, j, func(st *batchv1.JobStatus) {
		st.Active = 0
		st.Failed = failed
		if err == nil {
			st.Succeeded = 1
			st.CompletionTime = &now
			st.Conditions = append(st.Conditions,
				batchv1.JobCondition{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached, Message: "Reached expected number of succeeded pods", LastProbeTime: now, LastTransitionTime: now},
				batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached, Message: "Reached expected number of succeeded pods", LastProbeTime: now, LastTransitionTime: now})
			return
		}
		st.Conditions = append(st.Conditions,
			batchv1.JobCondition{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded, Message: "Job has reached the specified backoff limit", LastProbeTime: now, LastTransitionTime: now},
			batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded, Message: "Job has reached the specified backoff limit", LastProbeTime: now, LastTransitionTime: now})
	})
}

// setStatus changes the Job's status through the status subresource,
// again on a conflict; false when the Job is gone.
func (r *Runner) setStatus(ctx context.Context, j *batchv1.Job, change func(*batchv1.JobStatus)) bool {
	jobs := r.kube.BatchV1().Jobs(j.Namespace)
	for ctx.Err() == nil {
		cur, err := jobs.Get(ctx, j.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		change(&cur.Status)
		if _, err = jobs.UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err == nil {
			return true
		}
		r.tb.Logf("testjobs: status of Job %s: %v", j.Name, err)
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// runContainer runs the Job's one container as a local process: its
// command's program from BinDir, its volumes as directories of their own
// (a ConfigMap's keys written as files, an emptyDir empty), each argument
// that names a path below a mount rewritten to that directory.
func (r *Runner) runContainer(ctx context.Context, j *batchv1.Job) error {
	pod := j.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		return fmt.Errorf("%d containers: the stand-in runs one", len(pod.Containers))
	}
	c := pod.Containers[0]
	if len(c.Command) == 0 {
		return fmt.Errorf("container %s has no command", c.Name)
	}
	root, err := os.MkdirTemp("", "testjobs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	dirs := map[string]string{}
	for _, m := range c.VolumeMounts {
		dir := filepath.Join(root, m.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for _, v := range pod.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			cm, err := r.kube.CoreV1().ConfigMaps(j.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
			for k, data := range cm.Data {
				if err := os.WriteFile(filepath.Join(dir, k), []byte(data), 0o644); err != nil {
					return err
				}
			}
		}
		dirs[m.MountPath] = dir
	}
	args := make([]string, len(c.Command)+len(c.Args))
	for i, a := range append(append([]string(nil), c.Command...), c.Args...) {
		for mount, dir := range dirs {
			if a == mount || strings.HasPrefix(a, mount+"/") {
				a = dir + strings.TrimPrefix(a, mount)
			}
		}
		args[i] = a
	}
	cmd := exec.CommandContext(ctx, filepath.Join(r.opts.BinDir, filepath.Base(args[0])), args[1:]...)
	cmd.Env = append(os.Environ(), r.opts.Env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(c.Command, " "), err, out.Bytes())
	}
	return nil
}

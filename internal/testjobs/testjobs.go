// Package testjobs is a stand-in, for tests, for the parts of Kubernetes
// that run a Job and that envtest does not run: the job controller, the
// scheduler and the kubelet. It watches the Jobs of a namespace on a real
// API server (internal/testcluster) and, for each Job whose nodeSelector
// matches one of the cluster's nodes, creates a pod as the job controller
// does (the Job's template, its labels and a controller reference to the
// Job, bound to that node), runs its container as a local process, writes
// the pod's status as the kubelet does (phase, exit code, termination
// message), and then the Job's status as the job controller does. A Job
// that no node matches stays pending, as it does in a cluster without such
// a node.
//
// The process runs on the host, not in the container's image: its program
// is looked up in BinDir, and the paths the kubelet would mount (volumes,
// the termination message file) are directories and files of its own, each
// argument that names such a path rewritten to it.
package testjobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
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
	// PodDone, when set, is called after each pod's container has ended
	// and the pod's status is written, before the Job's status is: what
	// else happens in a cluster meanwhile, such as another run pushing to
	// the registry the container pushed to.
	PodDone func(j *batchv1.Job, pod *corev1.Pod)
}

// MaxMessage is how much of the termination message file the kubelet
// keeps: its last 4096 bytes (MaxContainerTerminationMessageLength).
const MaxMessage = 4096

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
			node := fits(j, nodes.Items)
			claim := !r.claimed[j.UID] && node != ""
			if claim {
				r.claimed[j.UID] = true
			}
			r.mu.Unlock()
			if !claim {
				continue
			}
			r.started.Add(1)
			wg.Go(func() { r.run(ctx, j, node) })
		}
	}
}

// fits returns the first node that has every label of the Job's
// nodeSelector, or "".
func fits(j *batchv1.Job, nodes []corev1.Node) string {
	for _, n := range nodes {
		ok := true
		for k, v := range j.Spec.Template.Spec.NodeSelector {
			if n.Labels[k] != v {
				ok = false
			}
		}
		if ok {
			return n.Name
		}
	}
	return ""
}

// run runs a pod of the Job on node up to backoffLimit+1 times, until one
// succeeds, and writes the Job's status.
func (r *Runner) run(ctx context.Context, j *batchv1.Job, node string) {
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
		if err = r.runPod(ctx, j, node); err == nil || ctx.Err() != nil {
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

// runPod creates a pod of the Job on node, as the job controller and the
// scheduler do, runs its container, writes the pod's status as the kubelet
// does, and tells PodDone. The error is why the pod failed.
func (r *Runner) runPod(ctx context.Context, j *batchv1.Job, node string) error {
	pods := r.kube.CoreV1().Pods(j.Namespace)
	isController := true
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: j.Name + "-",
			Namespace:    j.Namespace,
			// The template's labels, which the API server completed with
			// the Job's selector (batch.kubernetes.io/controller-uid…).
			Labels:      maps.Clone(j.Spec.Template.Labels),
			Annotations: maps.Clone(j.Spec.Template.Annotations),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "batch/v1", Kind: "Job", Name: j.Name, UID: j.UID,
				Controller: &isController, BlockOwnerDeletion: &isController,
			}},
		},
		Spec: *j.Spec.Template.Spec.DeepCopy(),
	}
	pod.Spec.NodeName = node
	pod, err := pods.Create(ctx, pod, metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict})
	if err != nil {
		return fmt.Errorf("creating its pod: %w", err)
	}
	start := metav1.Now()
	state, runErr := r.runContainer(ctx, j, pod)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	state.StartedAt, state.FinishedAt = start, metav1.Now()
	phase := corev1.PodSucceeded
	if state.ExitCode != 0 {
		phase = corev1.PodFailed
	}
	c := pod.Spec.Containers[0]
	for ctx.Err() == nil {
		pod.Status = corev1.PodStatus{
			Phase:     phase,
			StartTime: &start,
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: c.Name, Image: c.Image, ImageID: c.Image,
				State: corev1.ContainerState{Terminated: &state},
			}},
		}
		updated, err := pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		if err == nil {
			pod = updated
			break
		}
		r.tb.Logf("testjobs: status of pod %s: %v", pod.Name, err)
		time.Sleep(20 * time.Millisecond)
		if pod, err = pods.Get(ctx, pod.Name, metav1.GetOptions{}); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if r.opts.PodDone != nil {
		r.opts.PodDone(j, pod)
	}
	return runErr
}

// runContainer runs the pod's one container as a local process: its
// command's program from BinDir, its volumes as directories of their own
// (a ConfigMap's keys written as files, an emptyDir empty), its
// terminationMessagePath as a file of its own, each argument that names
// one of these paths, or a path below a mount, rewritten to it. It returns
// the container's terminated state as the kubelet reads it: the exit code
// and the termination message, the last MaxMessage bytes of that file;
// the error is why the container failed, with its output.
func (r *Runner) runContainer(ctx context.Context, j *batchv1.Job, pod *corev1.Pod) (corev1.ContainerStateTerminated, error) {
	cannotRun := func(err error) (corev1.ContainerStateTerminated, error) {
		return corev1.ContainerStateTerminated{ExitCode: 128, Reason: "ContainerCannotRun", Message: err.Error()}, err
	}
	if len(pod.Spec.Containers) != 1 {
		return cannotRun(fmt.Errorf("%d containers: the stand-in runs one", len(pod.Spec.Containers)))
	}
	c := pod.Spec.Containers[0]
	if len(c.Command) == 0 {
		return cannotRun(fmt.Errorf("container %s has no command", c.Name))
	}
	root, err := os.MkdirTemp("", "testjobs-")
	if err != nil {
		return cannotRun(err)
	}
	defer os.RemoveAll(root)
	dirs := map[string]string{}
	for _, m := range c.VolumeMounts {
		dir := filepath.Join(root, m.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return cannotRun(err)
		}
		for _, v := range pod.Spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			cm, err := r.kube.CoreV1().ConfigMaps(j.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				return cannotRun(fmt.Errorf("volume %s: %w", v.Name, err))
			}
			for k, data := range cm.Data {
				if err := os.WriteFile(filepath.Join(dir, k), []byte(data), 0o644); err != nil {
					return cannotRun(err)
				}
			}
		}
		dirs[m.MountPath] = dir
	}
	// The kubelet mounts an empty file at terminationMessagePath (which
	// the API server defaults to /dev/termination-log).
	messageFile := filepath.Join(root, "termination-log")
	if err := os.WriteFile(messageFile, nil, 0o666); err != nil {
		return cannotRun(err)
	}
	args := make([]string, len(c.Command)+len(c.Args))
	for i, a := range append(append([]string(nil), c.Command...), c.Args...) {
		for mount, dir := range dirs {
			if a == mount || strings.HasPrefix(a, mount+"/") {
				a = dir + strings.TrimPrefix(a, mount)
			}
		}
		if c.TerminationMessagePath != "" && a == c.TerminationMessagePath {
			a = messageFile
		}
		args[i] = a
	}
	cmd := exec.CommandContext(ctx, filepath.Join(r.opts.BinDir, filepath.Base(args[0])), args[1:]...)
	cmd.Env = append(os.Environ(), r.opts.Env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	var exit *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exit) {
		return cannotRun(fmt.Errorf("%s: %v", strings.Join(c.Command, " "), runErr))
	}
	// The policy FallbackToLogsOnError, which would take the end of the
	// output when the file is empty, is not stood in for: the file only.
	state := corev1.ContainerStateTerminated{Reason: "Completed"}
	if state.Message, err = tail(messageFile, MaxMessage); err != nil {
		state.Message = fmt.Sprintf("Error on reading termination log %s: %v", messageFile, err)
	}
	if runErr != nil {
		state.ExitCode, state.Reason = int32(exit.ExitCode()), "Error"
		return state, fmt.Errorf("%s: %v\n%s", strings.Join(c.Command, " "), runErr, out.Bytes())
	}
	return state, nil
}

// tail reads the last max bytes of a file, as the kubelet reads a
// termination message.
func tail(path string, limit int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if fi.Size() > limit {
		if _, err := f.Seek(-limit, io.SeekEnd); err != nil {
			return "", err
		}
	}
	data, err := io.ReadAll(f)
	return string(data), err
}

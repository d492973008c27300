// Package fanout runs the builds of a catalog as Kubernetes Jobs, one per
// entry and architecture, each on a node of its architecture
// (nodeSelector kubernetes.io/arch), and waits for them: the catalog file
// goes to the Jobs in a ConfigMap, so that what a Job does is its command
// line alone. Render makes the objects (for --print, and for Run); Run
// creates them with strict field validation, watches the Jobs until each
// has finished or the time is up, reads what the container of each
// succeeded Job said in its termination message (TerminationLog), and
// deletes them.
package fanout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// Labels on every object Render makes; each Job also has LabelName,
// LabelVersion and LabelArch, and the same values, unchanged, as
// annotations of those names.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelRun       = "containerdisk.io/run"
	LabelName      = "containerdisk.io/name"
	LabelVersion   = "containerdisk.io/version"
	LabelArch      = "containerdisk.io/arch"
	// ManagedBy is the value of LabelManagedBy.
	ManagedBy = "kubectl-containerdisk"
)

// Paths inside the Jobs' container.
const (
	// CatalogDir is where the ConfigMap's catalog files are mounted.
	CatalogDir = "/etc/containerdisk/catalog"
	// RegistryDir is where the registry credentials Secret is mounted.
	RegistryDir = "/etc/containerdisk/registry"
	// WorkDir is an emptyDir for downloads and layers.
	WorkDir = "/var/lib/containerdisk"
	// TerminationLog is the container's terminationMessagePath: what its
	// command writes there (policy File) is the termination message of
	// its pod's status, which is how a Job tells what it made.
	TerminationLog = corev1.TerminationMessagePathDefault
)

// Task is one Job: the build of one architecture of one name:version.
type Task struct {
	Name, Version, Arch string
	// Args is the container's command line.
	Args []string
}

// Spec is what every Job of a run shares.
type Spec struct {
	// Namespace of the Jobs and the ConfigMap.
	Namespace string
	// Run names the run: it is in the objects' names and their LabelRun
	// label. Empty for objects that are applied as they are (--print).
	Run string
	// Image is the container image, which has the suite's binaries on
	// its PATH.
	Image string
	// Catalog are the catalog files by key (a file name), mounted at
	// CatalogDir/KEY; no ConfigMap when empty.
	Catalog map[string]string
	// RegistrySecret, when set, is a Secret of type
	// kubernetes.io/dockerconfigjson mounted at RegistryDir.
	RegistrySecret string
	// ServiceAccount runs the Jobs' pods; the namespace's default when
	// empty.
	ServiceAccount string
	// BackoffLimit is how many times a failed pod is retried.
	BackoffLimit int32
	// TTL is how long a finished Job stays before Kubernetes deletes it.
	TTL time.Duration
}

// Objects are what Render makes.
type Objects struct {
	// ConfigMap holds the catalog files; nil when there are none.
	ConfigMap *corev1.ConfigMap
	Jobs      []*batchv1.Job
}

// Render makes the ConfigMap and one Job per task. Names are
// "containerdisk-NAME-VERSION-ARCH" (and the run), cut to fit with a hash
// of what was cut.
func Render(spec Spec, tasks []Task) Objects {
	var out Objects
	common := map[string]string{LabelManagedBy: ManagedBy}
	if spec.Run != "" {
		common[LabelRun] = spec.Run
	}
	volumes := []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	mounts := []corev1.VolumeMount{{Name: "work", MountPath: WorkDir}}
	if len(spec.Catalog) > 0 {
		out.ConfigMap = &corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Name: objectName("containerdisk-catalog", spec.Run), Namespace: spec.Namespace, Labels: copyMap(common)},
			Data:       spec.Catalog,
		}
		volumes = append(volumes, corev1.Volume{Name: "catalog", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: out.ConfigMap.Name},
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "catalog", MountPath: CatalogDir, ReadOnly: true})
	}
	if spec.RegistrySecret != "" {
		volumes = append(volumes, corev1.Volume{Name: "registry", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: spec.RegistrySecret}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "registry", MountPath: RegistryDir, ReadOnly: true})
	}
	ttl := int32(spec.TTL / time.Second)
	backoff := spec.BackoffLimit
	for _, t := range tasks {
		l := copyMap(common)
		l[LabelName] = labelValue(t.Name)
		l[LabelVersion] = labelValue(t.Version)
		l[LabelArch] = labelValue(t.Arch)
		job := &batchv1.Job{
			TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
			ObjectMeta: metav1.ObjectMeta{
				Name:        objectName("containerdisk-"+t.Name+"-"+t.Version+"-"+t.Arch, spec.Run),
				Namespace:   spec.Namespace,
				Labels:      l,
				Annotations: map[string]string{LabelName: t.Name, LabelVersion: t.Version, LabelArch: t.Arch},
			},
			Spec: batchv1.JobSpec{
				BackoffLimit:            &backoff,
				TTLSecondsAfterFinished: &ttl,
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: copyMap(l)},
					Spec: corev1.PodSpec{
						RestartPolicy:      corev1.RestartPolicyNever,
						ServiceAccountName: spec.ServiceAccount,
						NodeSelector:       map[string]string{corev1.LabelArchStable: t.Arch},
						Containers: []corev1.Container{{
							Name:         "build",
							Image:        spec.Image,
							Command:      t.Args,
							VolumeMounts: mounts,
							// The defaults, set so that the YAML shows
							// where a Job's result is.
							TerminationMessagePath:   TerminationLog,
							TerminationMessagePolicy: corev1.TerminationMessageReadFile,
						}},
						Volumes: volumes,
					},
				},
			},
		}
		out.Jobs = append(out.Jobs, job)
	}
	return out
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// objectName is base and run as a DNS label: lower case, other characters
// as "-", at most 63 characters, the cut part replaced by a hash so that
// names stay unique.
func objectName(base, run string) string {
	name := base
	if run != "" {
		name += "-" + run
	}
	clean := strings.Trim(notDNS.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if clean == name && len(clean) <= 63 {
		return clean
	}
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:])[:8]
	if len(clean) > 54 {
		clean = strings.TrimRight(clean[:54], "-")
	}
	return clean + "-" + h
}

var notLabel = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// labelValue is s as a label value; the annotation keeps s itself.
func labelValue(s string) string {
	v := notLabel.ReplaceAllString(s, "_")
	if len(v) > 63 {
		v = v[:63]
	}
	return strings.Trim(v, "._-")
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Result is how one Job ended.
type Result struct {
	Job string
	// Succeeded says the Job completed; otherwise Err says why not.
	Succeeded bool
	// Message is the termination message of the container of the Job's
	// succeeded pod: what its command wrote to TerminationLog (the
	// kubelet keeps the last 4096 bytes). It is the container's word,
	// for the caller to check. When it could not be read, Succeeded is
	// true and Err says why.
	Message string
	Err     error
}

// EventKind says what happened to a Job.
type EventKind string

// Kinds of Event.
const (
	EventCreated   EventKind = "created"
	EventSucceeded EventKind = "succeeded"
	EventFailed    EventKind = "failed"
	EventDeleted   EventKind = "deleted"
)

// Event tells of a Job, for progress on stderr.
type Event struct {
	Kind EventKind
	Job  *batchv1.Job
	Err  error
}

// NewClient returns a client for Runner that sends JSON: the typed
// clients send protobuf by default, which drops a field the API server
// does not know before strict field validation could refuse it.
func NewClient(cfg *rest.Config) (kubernetes.Interface, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = runtime.ContentTypeJSON
	cfg.AcceptContentTypes = runtime.ContentTypeJSON
	return kubernetes.NewForConfig(cfg)
}

// Runner runs Objects in a cluster.
type Runner struct {
	// Kube is the client, made by NewClient.
	Kube kubernetes.Interface
	// Timeout bounds the wait for the Jobs; a Job not finished by then
	// fails with a message naming its architecture.
	Timeout time.Duration
	// OnEvent, when set, is told of each Job as it goes.
	OnEvent func(Event)
}

// CreateOptions are the options every object is created with: strict
// field validation, so that a field the API server does not know fails
// the run instead of being dropped.
var CreateOptions = metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict}

// Run creates the ConfigMap and the Jobs, waits for every Job to finish
// or for Timeout, and deletes them all (propagation Background, so their
// pods go too), also when ctx is cancelled: the deletion then runs with a
// context of its own, bounded. It returns each Job's result by name; the
// error is for a run that could not create its objects or was cancelled.
func (r *Runner) Run(ctx context.Context, objs Objects) (map[string]Result, error) {
	if len(objs.Jobs) == 0 {
		return map[string]Result{}, nil
	}
	ns := objs.Jobs[0].Namespace
	defer r.cleanup(objs)
	if objs.ConfigMap != nil {
		if _, err := r.Kube.CoreV1().ConfigMaps(ns).Create(ctx, objs.ConfigMap, CreateOptions); err != nil {
			return nil, fmt.Errorf("creating ConfigMap %s/%s: %w", ns, objs.ConfigMap.Name, err)
		}
	}
	for _, j := range objs.Jobs {
		created, err := r.Kube.BatchV1().Jobs(ns).Create(ctx, j, CreateOptions)
		if err != nil {
			return nil, fmt.Errorf("creating Job %s/%s: %w", ns, j.Name, err)
		}
		r.emit(Event{Kind: EventCreated, Job: created})
	}
	return r.wait(ctx, objs)
}

func (r *Runner) emit(e Event) {
	if r.OnEvent != nil {
		r.OnEvent(e)
	}
}

// wait watches the Jobs until each has finished, ctx is done or Timeout
// has passed.
func (r *Runner) wait(ctx context.Context, objs Objects) (map[string]Result, error) {
	ns := objs.Jobs[0].Namespace
	wanted := map[string]*batchv1.Job{}
	for _, j := range objs.Jobs {
		wanted[j.Name] = j
	}
	results := map[string]Result{}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = time.Hour
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	sel := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy, LabelRun: objs.Jobs[0].Labels[LabelRun]}).String()
	see := func(j *batchv1.Job) {
		if _, ok := wanted[j.Name]; !ok {
			return
		}
		if _, done := results[j.Name]; done {
			return
		}
		if res, done := finished(j); done {
			if res.Succeeded {
				res.Message, res.Err = r.message(ctx, j)
			}
			results[j.Name] = res
			kind := EventSucceeded
			if !res.Succeeded {
				kind = EventFailed
			}
			r.emit(Event{Kind: kind, Job: j, Err: res.Err})
		}
	}
	for len(results) < len(wanted) {
		// A list, then a watch from its resourceVersion: nothing that
		// happened between two watches is missed.
		list, err := r.Kube.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			if ctx.Err() != nil {
				return results, ctx.Err()
			}
			return results, fmt.Errorf("listing Jobs in %s: %w", ns, err)
		}
		for i := range list.Items {
			see(&list.Items[i])
		}
		if len(results) == len(wanted) {
			break
		}
		w, err := r.Kube.BatchV1().Jobs(ns).Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: list.ResourceVersion})
		if err != nil {
			if ctx.Err() != nil {
				return results, ctx.Err()
			}
			return results, fmt.Errorf("watching Jobs in %s: %w", ns, err)
		}
		timedOut := false
	events:
		for len(results) < len(wanted) {
			select {
			case <-ctx.Done():
				w.Stop()
				return results, ctx.Err()
			case <-deadline.C:
				timedOut = true
				break events
			case ev, ok := <-w.ResultChan():
				if !ok {
					break events
				}
				if j, isJob := ev.Object.(*batchv1.Job); isJob && ev.Type != watch.Deleted {
					see(j)
				}
			}
		}
		w.Stop()
		if timedOut {
			break
		}
	}
	names := make([]string, 0, len(wanted))
	for n := range wanted {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, done := results[n]; done {
			continue
		}
		j := wanted[n]
		err := fmt.Errorf("Job %s/%s did not finish within %s: no node of architecture %s ran it (nodeSelector %s=%s), or its build was still running",
			ns, n, timeout, j.Spec.Template.Spec.NodeSelector[corev1.LabelArchStable], corev1.LabelArchStable, j.Spec.Template.Spec.NodeSelector[corev1.LabelArchStable])
		results[n] = Result{Job: n, Err: err}
		r.emit(Event{Kind: EventFailed, Job: j, Err: err})
	}
	return results, nil
}

// finished reads a Job's conditions: Complete, or Failed with its reason
// and message.
func finished(j *batchv1.Job) (Result, bool) {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return Result{Job: j.Name, Succeeded: true}, true
		case batchv1.JobFailed:
			return Result{Job: j.Name, Err: fmt.Errorf("Job %s/%s failed: %s: %s (kubectl logs -n %s job/%s)", j.Namespace, j.Name, c.Reason, c.Message, j.Namespace, j.Name)}, true
		}
	}
	return Result{}, false
}

// message reads the termination message of the container of the
// succeeded Job j's succeeded pod: one that the Job's selector selects,
// that j controls (ownerReferences), in phase Succeeded, whose container
// ended with exit code 0.
func (r *Runner) message(ctx context.Context, j *batchv1.Job) (string, error) {
	sel, err := metav1.LabelSelectorAsSelector(j.Spec.Selector)
	if err != nil || sel.Empty() {
		return "", fmt.Errorf("Job %s/%s has no selector of its pods (%v)", j.Namespace, j.Name, err)
	}
	pods, err := r.Kube.CoreV1().Pods(j.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return "", fmt.Errorf("listing the pods of Job %s/%s, for the termination message of its build: %w", j.Namespace, j.Name, err)
	}
	if len(j.Spec.Template.Spec.Containers) == 0 {
		return "", fmt.Errorf("Job %s/%s has no container", j.Namespace, j.Name)
	}
	name := j.Spec.Template.Spec.Containers[0].Name
	for _, p := range pods.Items {
		if owner := metav1.GetControllerOf(&p); owner == nil || owner.UID != j.UID || p.Status.Phase != corev1.PodSucceeded {
			continue
		}
		for _, c := range p.Status.ContainerStatuses {
			if t := c.State.Terminated; c.Name == name && t != nil && t.ExitCode == 0 {
				return t.Message, nil
			}
		}
	}
	return "", fmt.Errorf("Job %s/%s succeeded, but none of its %d pods is a succeeded pod of it whose container %s ended with exit code 0: its termination message is gone (was the pod deleted?)", j.Namespace, j.Name, len(pods.Items), name)
}

// cleanupTimeout bounds the deletions after the run, which go on after
// its context was cancelled.
const cleanupTimeout = 15 * time.Second

// cleanup deletes the Jobs and the ConfigMap, with a context of its own.
func (r *Runner) cleanup(objs Objects) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	background := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &background}
	for _, j := range objs.Jobs {
		err := r.Kube.BatchV1().Jobs(j.Namespace).Delete(ctx, j.Name, opts)
		switch {
		case err == nil:
			r.emit(Event{Kind: EventDeleted, Job: j})
		case !apierrors.IsNotFound(err):
			r.emit(Event{Kind: EventDeleted, Job: j, Err: err})
		}
	}
	if cm := objs.ConfigMap; cm != nil {
		err := r.Kube.CoreV1().ConfigMaps(cm.Namespace).Delete(ctx, cm.Name, opts)
		if err != nil && !apierrors.IsNotFound(err) {
			r.emit(Event{Kind: EventDeleted, Err: fmt.Errorf("deleting ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)})
		}
	}
}

// WriteYAML writes the objects as YAML documents, the ConfigMap first,
// without the fields only a server fills in (creationTimestamp, status),
// so that the documents apply as they are.
func WriteYAML(w io.Writer, objs Objects) error {
	var docs []any
	if objs.ConfigMap != nil {
		docs = append(docs, objs.ConfigMap)
	}
	for _, j := range objs.Jobs {
		docs = append(docs, j)
	}
	for i, d := range docs {
		b, err := json.Marshal(d)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		prune(m)
		y, err := yaml.Marshal(m)
		if err != nil {
			return err
		}
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := w.Write(y); err != nil {
			return err
		}
	}
	return nil
}

// prune drops creationTimestamp: null, status and empty objects, at any
// depth.
func prune(m map[string]any) {
	delete(m, "status")
	for k, v := range m {
		switch v := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			prune(v)
			if len(v) == 0 && k != "emptyDir" {
				delete(m, k)
			}
		case []any:
			for _, e := range v {
				if em, ok := e.(map[string]any); ok {
					prune(em)
				}
			}
		}
	}
}

package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/containerdisk/kubectl-containerdisk/internal/testcluster"
	"github.com/containerdisk/kubectl-containerdisk/internal/testjobs"
	"github.com/containerdisk/kubectl-containerdisk/internal/testregistry"
	"github.com/containerdisk/kubectl-containerdisk/internal/testupstream"
	"github.com/containerdisk/kubectl-containerdisk/pkg/fanout"
	pl "github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/plugins/build"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/pipeline"
)

// TestMain runs the test binary as the suite's build when the stand-in
// Job runner starts it under that name, as a Job's container would run the
// real binary; otherwise it runs the tests, with one API server for all.
func TestMain(m *testing.M) {
	os.Setenv("OTEL_TRACES_EXPORTER", "none")
	if filepath.Base(os.Args[0]) == pipeline.BuildCommand {
		code := build.Main()
		if code == 0 {
			code = forgeMessage()
		}
		os.Exit(code)
	}
	os.Unsetenv("SOURCE_DATE_EPOCH")
	testcluster.Main(m)
}

// forgeEnv, set to "NAME:VERSION/ARCH=TEXT" in the environment of the
// build TestMain runs, makes the build of that release write TEXT to its
// --termination-log after it pushed: a Job whose word is not what it did.
const forgeEnv = "TEST_FORGE_TERMINATION_MESSAGE"

// forgeMessage overwrites the termination log as forgeEnv says.
func forgeMessage() int {
	which, text, ok := strings.Cut(os.Getenv(forgeEnv), "=")
	if !ok {
		return 0
	}
	var focus, arch, path string
	for i, a := range os.Args[:len(os.Args)-1] {
		switch a {
		case "--focus":
			focus = os.Args[i+1]
		case "--arch":
			arch = os.Args[i+1]
		case "--termination-log":
			path = os.Args[i+1]
		}
	}
	if focus+"/"+arch != which {
		return 0
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// binDir is a directory holding the suite's build, as a container image
// would: a link to this test binary, which TestMain runs as build.
func binDir(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(self, filepath.Join(dir, pipeline.BuildCommand)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// catalogFile is an entry a catalog file adds, which only a Job given the
// file can build: tiny, two versions, two architectures each.
const catalogFile = `entries:
- name: tiny
  base: https://tiny.example.com
  versions: ["1.0", "2.0"]
  arches: [amd64, arm64]
  url: "{{.Base}}/{{.Version}}/tiny-{{.Arch}}.qcow2"
  checksum: {file: "{{.Base}}/{{.Version}}/SHA256SUMS"}
  tags: ["{{.Version}}-tiny"]
  metadata:
    description: A tiny test disk.
    defaultUser: tiny
    preference: tiny.pref
`

// publishTiny writes tiny's disks of version, one per architecture, and
// their SHA256SUMS on the site, each disk with a modification time of
// its own, so that the creation time of an image built from them depends
// on which disks a build sees.
func publishTiny(t *testing.T, site *testupstream.Site, version string) {
	t.Helper()
	var sums strings.Builder
	for i, arch := range []string{"amd64", "arm64"} {
		name := "tiny-" + arch + ".qcow2"
		sum, _, err := site.WriteDisk("tiny/"+version+"/"+name, "tiny/"+version+"/"+arch)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&sums, "%s  %s\n", sum, name)
		mtime := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
		if err := os.Chtimes(filepath.Join(site.Dir, "tiny", version, name), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := site.WriteFile("tiny/"+version+"/SHA256SUMS", []byte(sums.String())); err != nil {
		t.Fatal(err)
	}
}

// newestDisk is the modification time of the newest disk publishTiny
// writes.
const newestDisk = "2024-05-01T13:00:00Z"

// world is an upstream with tiny 1.0 and 2.0, a registry, and the catalog
// file that names tiny.
type world struct {
	site    *testupstream.Site
	reg     *testregistry.Registry
	catalog string
}

func newWorld(t *testing.T) world {
	t.Helper()
	site := testupstream.Serve(t)
	publishTiny(t, site, "1.0")
	publishTiny(t, site, "2.0")
	path := filepath.Join(t.TempDir(), "tiny.yaml")
	if err := os.WriteFile(path, []byte(catalogFile), 0o644); err != nil {
		t.Fatal(err)
	}
	return world{site: site, reg: testregistry.New(t), catalog: path}
}

// flags are the catalog flags every command of a test is given.
func (w world) flags() []string {
	return []string{"--catalog", w.catalog, "--mirror", "tiny=" + w.site.URL() + "/tiny", "--retries", "0"}
}

// run runs a command of the suite in-process and returns its exit code,
// stdout and stderr.
func run(ctx context.Context, name string, newCmd func(cli.Streams) *cobra.Command, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := cli.Run(ctx, cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, "kubectl containerdisk "+name, args, newCmd)
	return code, out.String(), errOut.String()
}

// records decodes JSON lines by name:version.
func records(t *testing.T, out string) map[string]pl.Record {
	t.Helper()
	recs := map[string]pl.Record{}
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var r pl.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("not a record: %q: %v", line, err)
		}
		recs[r.Name+":"+r.Version] = r
	}
	return recs
}

// jobsLeft lists the Jobs and ConfigMaps of the pipeline left in ns.
func jobsLeft(t *testing.T, c *testcluster.Cluster, ns string) []string {
	t.Helper()
	sel := metav1.ListOptions{LabelSelector: fanout.LabelManagedBy + "=" + fanout.ManagedBy}
	jobs, err := c.Kubernetes().BatchV1().Jobs(ns).List(t.Context(), sel)
	if err != nil {
		t.Fatal(err)
	}
	cms, err := c.Kubernetes().CoreV1().ConfigMaps(ns).List(t.Context(), sel)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, j := range jobs.Items {
		left = append(left, "job/"+j.Name)
	}
	for _, cm := range cms.Items {
		left = append(left, "configmap/"+cm.Name)
	}
	return left
}

// TestInCluster: two entries of two architectures each run as four Jobs
// on nodes of both architectures; the Job of one architecture of one entry
// fails (its upstream answers 500), which fails that entry only, while the
// other is published, with the very index one build of both architectures
// makes. A second run, once upstream is healed, builds only what failed:
// the other architecture comes from staging, the other entry is up to
// date.
func TestInCluster(t *testing.T) {
	c := testcluster.Shared(t)
	ns := c.Namespace(t)
	c.AddNodes(t, "amd64", "arm64")
	w := newWorld(t)
	runner := testjobs.Start(t.Context(), t, c.Kubernetes(), testjobs.Options{Namespace: ns, BinDir: binDir(t)})
	w.site.Fail("tiny/2.0/tiny-arm64.qcow2", 500, 1000)

	// --created, the date of the newest disk, which is what a build of
	// both architectures takes, spares the HEAD requests that would
	// otherwise read it, and that the fault above would fail before any
	// Job runs.
	args := append(w.flags(), "--created", newestDisk, "--in-cluster", "--kubeconfig", c.Kubeconfig(t), "-n", ns, "--focus", "tiny",
		"--image", "registry.example.com/kubectl-containerdisk:test", "--backoff-limit", "0", "--timeout", "2m",
		"--staging", w.reg.Host+"/staging", "--to", w.reg.Host+"/containerdisks", "-o", "json")
	start := time.Now()
	code, out, errOut := run(t.Context(), "pipeline", pipeline.NewCommand, args...)
	elapsed := time.Since(start)
	if code != cli.ExitFailed {
		t.Fatalf("exit %d, want 1 (one entry failed); stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	t.Logf("first run: %d Jobs, %s to the published index\n%s", runner.Started(), elapsed, errOut)
	recs := records(t, out)
	ok, bad := recs["tiny:1.0"], recs["tiny:2.0"]
	if ok.Error != "" || ok.Push == nil || ok.Push.Status != "pushed" || len(ok.Images) != 2 {
		t.Errorf("tiny:1.0: %+v, want pushed with two images", ok)
	}
	if !strings.Contains(bad.Error, "arm64") || !strings.Contains(bad.Error, "BackoffLimitExceeded") || bad.Digest != "" {
		t.Errorf("tiny:2.0: error %q, digest %q; want a failure of its arm64 Job and nothing published", bad.Error, bad.Digest)
	}
	if !strings.Contains(errOut, "1 of 2 items failed") {
		t.Errorf("stderr does not report the failed entry:\n%s", errOut)
	}
	if runner.Started() != 4 {
		t.Errorf("%d Jobs ran, want 4 (2 entries × 2 architectures)", runner.Started())
	}
	checkJobs(t, runner.Jobs(), ns)
	if left := jobsLeft(t, c, ns); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}

	// The index of Jobs built apart is the one of a build of both
	// architectures in one process, which takes the newest disk's date.
	code, bout, berr := run(t.Context(), "build", build.NewCommand, append(w.flags(), "--focus", "tiny:1.0", "--cache-dir", t.TempDir(), w.reg.Host+"/one")...)
	if code != 0 {
		t.Fatalf("build: exit %d\n%s", code, berr)
	}
	if want := w.reg.Host + "/one/tiny:1.0 " + ok.Digest + "\n"; bout != want {
		t.Errorf("one build of both architectures made\n%s, the Jobs built apart\n%s", bout, want)
	}

	// Again, upstream healed: one Job, for tiny 2.0 arm64 only.
	w.site.Heal()
	runner2Before := runner.Started()
	start = time.Now()
	code, out, errOut = run(t.Context(), "pipeline", pipeline.NewCommand, args...)
	t.Logf("second run: %d Job, %s to the published index", runner.Started()-runner2Before, time.Since(start))
	if code != 0 {
		t.Fatalf("second run: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if n := runner.Started() - runner2Before; n != 1 {
		t.Errorf("second run ran %d Jobs, want 1 (tiny 2.0 arm64)", n)
	}
	last := runner.Jobs()[len(runner.Jobs())-1]
	if last.Labels[fanout.LabelArch] != "arm64" || last.Labels[fanout.LabelVersion] != "2.0" {
		t.Errorf("second run's Job is %v, want tiny 2.0 arm64", last.Labels)
	}
	recs = records(t, out)
	if r := recs["tiny:1.0"]; r.Push == nil || r.Push.Status != "up-to-date" || r.Digest != ok.Digest {
		t.Errorf("tiny:1.0 again: %+v, want up to date at %s", r, ok.Digest)
	}
	if r := recs["tiny:2.0"]; r.Error != "" || r.Push == nil || r.Push.Status != "pushed" || !slices.Contains(r.Tags, "latest") {
		t.Errorf("tiny:2.0 again: %+v, want pushed as latest", r)
	}
	if !strings.Contains(errOut, "Reusing "+w.reg.Host+"/staging/amd64/tiny:2.0") {
		t.Errorf("second run does not say it reuses tiny 2.0 amd64:\n%s", errOut)
	}
	if left := jobsLeft(t, c, ns); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// checkJobs checks the Jobs as created: one node selector each, the
// catalog file from the ConfigMap, a TTL, no retries, labels that name
// what they build.
func checkJobs(t *testing.T, jobs []*batchv1.Job, ns string) {
	t.Helper()
	var seen []string
	for _, j := range jobs {
		pod := j.Spec.Template.Spec
		arch := pod.NodeSelector[corev1.LabelArchStable]
		key := j.Labels[fanout.LabelName] + ":" + j.Labels[fanout.LabelVersion] + "/" + j.Labels[fanout.LabelArch]
		seen = append(seen, key)
		if arch != j.Labels[fanout.LabelArch] || len(pod.NodeSelector) != 1 {
			t.Errorf("Job %s: nodeSelector %v, labels %v", j.Name, pod.NodeSelector, j.Labels)
		}
		if j.Spec.TTLSecondsAfterFinished == nil || *j.Spec.TTLSecondsAfterFinished != 3600 || *j.Spec.BackoffLimit != 0 {
			t.Errorf("Job %s: ttl %v, backoffLimit %v", j.Name, j.Spec.TTLSecondsAfterFinished, j.Spec.BackoffLimit)
		}
		cmd := strings.Join(pod.Containers[0].Command, " ")
		want := fmt.Sprintf("%s --focus %s:%s --arch %s --created ", pipeline.BuildCommand, j.Labels[fanout.LabelName], j.Labels[fanout.LabelVersion], arch)
		if !strings.HasPrefix(cmd, want) || !strings.Contains(cmd, " --catalog "+fanout.CatalogDir+"/0-tiny.yaml ") || !strings.HasSuffix(cmd, "/staging/"+arch) {
			t.Errorf("Job %s runs\n%s\nwant %s... --catalog %s/0-tiny.yaml ... STAGING/%s", j.Name, cmd, want, fanout.CatalogDir, arch)
		}
		if pod.Containers[0].Image != "registry.example.com/kubectl-containerdisk:test" || j.Namespace != ns {
			t.Errorf("Job %s/%s: image %s", j.Namespace, j.Name, pod.Containers[0].Image)
		}
	}
	slices.Sort(seen)
	if want := []string{"tiny:1.0/amd64", "tiny:1.0/arm64", "tiny:2.0/amd64", "tiny:2.0/arm64"}; !slices.Equal(seen, want) {
		t.Errorf("Jobs for %v, want %v", seen, want)
	}
}

// TestInClusterNoNode: with nodes of one architecture only, the Job of
// the other is never run: its entry fails at --timeout, saying which
// architecture no node has; and a run interrupted while it waits (Ctrl-C)
// deletes its Jobs and ConfigMap.
func TestInClusterNoNode(t *testing.T) {
	c := testcluster.Shared(t)
	ns := c.Namespace(t)
	c.AddNodes(t, "amd64")
	w := newWorld(t)
	runner := testjobs.Start(t.Context(), t, c.Kubernetes(), testjobs.Options{Namespace: ns, BinDir: binDir(t)})
	args := append(w.flags(), "--in-cluster", "--kubeconfig", c.Kubeconfig(t), "-n", ns,
		"--image", "registry.example.com/kubectl-containerdisk:test",
		"--staging", w.reg.Host+"/staging", "--to", w.reg.Host+"/containerdisks", "-o", "json")

	code, out, errOut := run(t.Context(), "pipeline", pipeline.NewCommand, append(args, "--focus", "tiny:1.0", "--timeout", "3s")...)
	if code != cli.ExitFailed {
		t.Fatalf("exit %d, want 1; stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	rec := records(t, out)["tiny:1.0"]
	if !strings.Contains(rec.Error, "arm64: Job ") || !strings.Contains(rec.Error, "no node of architecture arm64") || rec.Digest != "" {
		t.Errorf("tiny:1.0: error %q, digest %q; want the arm64 Job's timeout and nothing published", rec.Error, rec.Digest)
	}
	if runner.Started() != 1 {
		t.Errorf("%d Jobs ran, want 1 (amd64)", runner.Started())
	}
	if left := jobsLeft(t, c, ns); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int)
	go func() {
		code, _, _ := run(ctx, "pipeline", pipeline.NewCommand, append(args, "--focus", "tiny:2.0")...)
		done <- code
	}()
	for deadline := time.Now().Add(time.Minute); len(jobsLeft(t, c, ns)) < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("the Jobs of tiny 2.0 and their ConfigMap were not created: %v", jobsLeft(t, c, ns))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != cli.ExitInterrupted {
		t.Errorf("interrupted run: exit %d, want %d", code, cli.ExitInterrupted)
	}
	if left := jobsLeft(t, c, ns); len(left) > 0 {
		t.Errorf("left behind after Ctrl-C: %v", left)
	}
}

// TestInClusterByDigest: the index is assembled from the digests the Jobs
// report in their pods' termination messages, not from the staging tags.
// Right after the Job of tiny 1.0 arm64 pushed, and before its Job is
// complete, another build (another run, say) pushes another image of the
// same release (uncompressed) to the same staging tag: the index published
// is still the one of what the Job built, the one a build of both
// architectures in one process makes. The build of tiny 2.0 arm64
// succeeds but says something else than what it pushed: that entry alone
// fails, with an error naming the Job and what was expected.
func TestInClusterByDigest(t *testing.T) {
	c := testcluster.Shared(t)
	ns := c.Namespace(t)
	c.AddNodes(t, "amd64", "arm64")
	w := newWorld(t)
	bin := binDir(t)
	staging := w.reg.Host + "/staging"
	var moved atomic.Int32
	testjobs.Start(t.Context(), t, c.Kubernetes(), testjobs.Options{
		Namespace: ns, BinDir: bin,
		Env: []string{forgeEnv + "=tiny:2.0/arm64=not a record"},
		PodDone: func(j *batchv1.Job, pod *corev1.Pod) {
			if j.Labels[fanout.LabelVersion] != "1.0" || j.Labels[fanout.LabelArch] != "arm64" || pod.Status.Phase != corev1.PodSucceeded {
				return
			}
			other := exec.Command(filepath.Join(bin, pipeline.BuildCommand), append(w.flags(), "--focus", "tiny:1.0", "--arch", "arm64",
				"--created", newestDisk, "--compression", "none", "--cache-dir", t.TempDir(), staging+"/arm64")...)
			if out, err := other.CombinedOutput(); err != nil {
				t.Errorf("pushing another image to the staging tag: %v\n%s", err, out)
				return
			}
			moved.Add(1)
		},
	})

	args := append(w.flags(), "--created", newestDisk, "--in-cluster", "--kubeconfig", c.Kubeconfig(t), "-n", ns, "--focus", "tiny",
		"--image", "registry.example.com/kubectl-containerdisk:test", "--backoff-limit", "0", "--timeout", "2m",
		"--staging", staging, "--to", w.reg.Host+"/containerdisks", "-o", "json")
	code, out, errOut := run(t.Context(), "pipeline", pipeline.NewCommand, args...)
	if code != cli.ExitFailed {
		t.Errorf("exit %d, want 1 (one entry failed); stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if moved.Load() != 1 {
		t.Fatalf("the staging tag of tiny 1.0 arm64 was moved %d times, want once", moved.Load())
	}
	recs := records(t, out)
	ok, bad := recs["tiny:1.0"], recs["tiny:2.0"]
	if ok.Error != "" || ok.Push == nil || ok.Push.Status != "pushed" || len(ok.Images) != 2 {
		t.Fatalf("tiny:1.0: %+v, want pushed with two images", ok)
	}
	code, bout, berr := run(t.Context(), "build", build.NewCommand, append(w.flags(), "--focus", "tiny:1.0", "--cache-dir", t.TempDir(), w.reg.Host+"/one")...)
	if code != 0 {
		t.Fatalf("build: exit %d\n%s", code, berr)
	}
	if want := w.reg.Host + "/one/tiny:1.0 " + ok.Digest + "\n"; bout != want {
		t.Errorf("one build of both architectures made\n%s, the Jobs, their staging tag moved, made\n%s", bout, want)
	}
	ref, err := target.Parse(staging + "/arm64/tiny:1.0")
	if err != nil {
		t.Fatal(err)
	}
	src, err := target.OpenSource(t.Context(), ref, target.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tagged, err := src.Resolve(t.Context(), "1.0")
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range ok.Images {
		if strings.HasPrefix(img.Platform, "linux/arm64") && img.Digest == tagged.Digest.String() {
			t.Errorf("the index has %s, which the staging tag names now, not what the Job built", img.Digest)
		}
	}

	t.Logf("tiny:2.0: %s", bad.Error)
	for _, want := range []string{"arm64: Job " + ns + "/containerdisk-tiny-2-0-arm64-", "succeeded, but its termination message does not say what it pushed",
		`not a JSON record`, `"not a record"`, staging + "/arm64/tiny:2.0"} {
		if !strings.Contains(bad.Error, want) {
			t.Errorf("tiny:2.0: error %q\nwant it to say %q", bad.Error, want)
		}
	}
	if bad.Digest != "" || strings.Contains(bad.Error, "amd64") {
		t.Errorf("tiny:2.0: error %q, digest %q; want a failure of its arm64 Job alone and nothing published", bad.Error, bad.Digest)
	}
	if left := jobsLeft(t, c, ns); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

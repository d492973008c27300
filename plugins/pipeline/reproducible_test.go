package pipeline_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/fanout"
	pl "github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/pkg/publish"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/plugins/build"
	"github.com/containerdisk/kubectl-containerdisk/plugins/gather"
	"github.com/containerdisk/kubectl-containerdisk/plugins/pipeline"
)

// TestSeparateBuildsMakeOneIndex: the Jobs pipeline --print writes, each
// run as a process of its own with a download cache of its own (as on
// separate machines), push each architecture to staging; the index
// assembled from their digests is the index one build of both
// architectures in one process makes, digest for digest. The disks'
// dates differ, so this holds only because every Job is given the same
// --created, which pipeline reads from upstream with HEAD requests:
// builds without it are refused an index.
func TestSeparateBuildsMakeOneIndex(t *testing.T) {
	w := newWorld(t)
	staging := w.reg.Host + "/staging"
	code, out, errOut := run(t.Context(), "pipeline", pipeline.NewCommand, append(w.flags(), "--print", "--focus", "tiny:1.0",
		"--image", "registry.example.com/kubectl-containerdisk:test", "--staging", staging)...)
	if code != 0 {
		t.Fatalf("pipeline --print: exit %d\n%s", code, errOut)
	}
	cm, jobs := decodePrint(t, out)
	if len(jobs) != 2 {
		t.Fatalf("%d Jobs, want 2", len(jobs))
	}
	bin := binDir(t)
	for _, j := range jobs {
		args := strings.Join(j.Spec.Template.Spec.Containers[0].Command, " ")
		if !strings.Contains(args, " --created "+newestDisk+" ") {
			t.Errorf("Job %s: %s\nwant --created %s, the newest disk's Last-Modified", j.Name, args, newestDisk)
		}
		runJob(t, bin, cm, j)
	}

	// One process, both architectures, and no --created: the newest
	// disk's date.
	code, bout, berr := run(t.Context(), "build", build.NewCommand, append(w.flags(), "--focus", "tiny:1.0", "--cache-dir", t.TempDir(), w.reg.Host+"/one")...)
	if code != 0 {
		t.Fatalf("build: exit %d\n%s", code, berr)
	}
	one := strings.Fields(bout)[1]

	created, err := time.Parse(time.RFC3339, newestDisk)
	if err != nil {
		t.Fatal(err)
	}
	res := assemble(t, w, staging, w.reg.Host+"/assembled", created)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.Record.Digest != one {
		t.Errorf("the index assembled from separate builds is %s, one build of both architectures made %s", res.Record.Digest, one)
	}

	// Built apart without --created, each image takes its own disk's
	// date: no index is made of them.
	for _, arch := range []string{"amd64", "arm64"} {
		code, _, berr := run(t.Context(), "build", build.NewCommand, append(w.flags(), "--focus", "tiny:1.0", "--arch", arch, "--cache-dir", t.TempDir(), w.reg.Host+"/undated/"+arch)...)
		if code != 0 {
			t.Fatalf("build --arch %s: exit %d\n%s", arch, code, berr)
		}
	}
	res = assemble(t, w, w.reg.Host+"/undated", w.reg.Host+"/assembled2", time.Time{})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "expected one creation time") {
		t.Errorf("assembling images of different dates: %v, want a refusal", res.Err)
	}
}

// decodePrint reads the ConfigMap and the Jobs of pipeline --print.
func decodePrint(t *testing.T, out string) (*corev1.ConfigMap, []*batchv1.Job) {
	t.Helper()
	var cm *corev1.ConfigMap
	var jobs []*batchv1.Job
	for doc := range strings.SplitSeq(out, "---\n") {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.Kind {
		case "ConfigMap":
			cm = &corev1.ConfigMap{}
			if err := yaml.UnmarshalStrict([]byte(doc), cm); err != nil {
				t.Fatal(err)
			}
		case "Job":
			j := &batchv1.Job{}
			if err := yaml.UnmarshalStrict([]byte(doc), j); err != nil {
				t.Fatal(err)
			}
			jobs = append(jobs, j)
		default:
			t.Fatalf("a %q in the output:\n%s", meta.Kind, doc)
		}
	}
	if cm == nil {
		t.Fatalf("no ConfigMap in\n%s", out)
	}
	return cm, jobs
}

// runJob runs a Job's command as a process of its own, its ConfigMap's
// files, its work directory and its termination message file as local
// ones.
func runJob(t *testing.T, bin string, cm *corev1.ConfigMap, j *batchv1.Job) {
	t.Helper()
	catalogDir, work := t.TempDir(), t.TempDir()
	message := filepath.Join(t.TempDir(), "termination-log")
	for k, v := range cm.Data {
		if err := os.WriteFile(filepath.Join(catalogDir, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	command := j.Spec.Template.Spec.Containers[0].Command
	args := make([]string, len(command)-1)
	for i, a := range command[1:] {
		if a == fanout.TerminationLog {
			a = message
		}
		a = strings.Replace(a, fanout.CatalogDir, catalogDir, 1)
		args[i] = strings.Replace(a, fanout.WorkDir, work, 1)
	}
	cmd := exec.Command(filepath.Join(bin, filepath.Base(command[0])), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("Job %s: %v\n%s", j.Name, err, out)
	}
}

// assemble publishes tiny 1.0 from the architectures in staging to dst,
// as pipeline --in-cluster does once its Jobs are done.
func assemble(t *testing.T, w world, staging, dst string, created time.Time) publish.Outcome {
	t.Helper()
	ctx := context.Background()
	code, out, errOut := run(ctx, "gather", gather.NewCommand, append(w.flags(), "--focus", "tiny:1.0")...)
	if code != 0 {
		t.Fatalf("gather: exit %d\n%s", code, errOut)
	}
	var rels []catalog.Release
	if err := pl.DecodeReleases(strings.NewReader(out), func(r catalog.Release) error {
		rels = append(rels, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stagingRef, err := target.Parse(staging)
	if err != nil {
		t.Fatal(err)
	}
	var staged []publish.Staged
	for _, r := range rels {
		ref := stagingRef.Join(r.Arch).Join("tiny").WithReference("1.0")
		src, err := target.OpenSource(ctx, ref, target.RemoteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		img, err := publish.ReadStaged(ctx, src, "1.0")
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		staged = append(staged, publish.Staged{Release: r, Source: src, Image: img})
	}
	groups := catalog.GroupReleases(rels)
	dstRef, err := target.Parse(dst)
	if err != nil {
		t.Fatal(err)
	}
	ref := dstRef.Join("tiny").WithReference("1.0")
	to, err := target.Open(ctx, ref, target.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := &publish.Assembly{Options: containerdisk.Options{Created: created}, Now: time.Now()}
	return a.Publish(ctx, groups[0], staged, ref, to)
}

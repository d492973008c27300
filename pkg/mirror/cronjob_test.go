package mirror_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/containerdisk/kubectl-containerdisk/internal/testcluster"
	"github.com/containerdisk/kubectl-containerdisk/pkg/mirror"
)

const syncYAML = `version: 1
schedule: "30 3 * * *"
units:
- source: quay.io/containerdisks
  target: registry.local:5000/containerdisks
  images:
  - repository: fedora
    tags: ["41"]
`

// decodeStream decodes a YAML stream strictly (unknown fields are errors)
// with the Kubernetes API types.
func decodeStream(t *testing.T, b []byte) []runtime.Object {
	t.Helper()
	codecs := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict)
	dec := codecs.UniversalDeserializer()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out []runtime.Object
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("decoding\n%s\n: %v", doc, err)
		}
		out = append(out, obj)
	}
}

func TestCronJobYAML(t *testing.T) {
	opts := mirror.CronJobOptions{
		Namespace: "mirror",
		Image:     "ghcr.io/containerdisk/kubectl-containerdisk:v1.0.0",
		Schedule:  "30 3 * * *",
		TimeZone:  "Europe/Berlin",
		Secret:    "registry-credentials",
		Config:    []byte(syncYAML),
		Args:      []string{"-q"},
	}
	b, err := mirror.CronJobYAML(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, noise := range []string{"creationTimestamp", "status:", "null"} {
		if bytes.Contains(b, []byte(noise)) {
			t.Errorf("the YAML has %q:\n%s", noise, b)
		}
	}
	objs := decodeStream(t, b)
	if len(objs) != 2 {
		t.Fatalf("%d objects, want a ConfigMap and a CronJob:\n%s", len(objs), b)
	}
	cm, ok := objs[0].(*corev1.ConfigMap)
	if !ok {
		t.Fatalf("first object is a %T, want a ConfigMap", objs[0])
	}
	cj, ok := objs[1].(*batchv1.CronJob)
	if !ok {
		t.Fatalf("second object is a %T, want a CronJob", objs[1])
	}
	if cm.Name != "containerdisk-mirror" || cm.Namespace != "mirror" || cm.Data["sync.yaml"] != syncYAML {
		t.Errorf("ConfigMap %s/%s data %q", cm.Namespace, cm.Name, cm.Data)
	}
	// The YAML holds what CronJob returns.
	want := mirror.CronJob(opts)
	if diff := cmp.Diff(want, cj); diff != "" {
		t.Errorf("decoded CronJob differs from CronJob (-want +got):\n%s", diff)
	}

	spec := cj.Spec
	if spec.Schedule != "30 3 * * *" || spec.ConcurrencyPolicy != batchv1.ForbidConcurrent || *spec.TimeZone != "Europe/Berlin" {
		t.Errorf("schedule %q, concurrency %q, time zone %v", spec.Schedule, spec.ConcurrencyPolicy, spec.TimeZone)
	}
	pod := spec.JobTemplate.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image != opts.Image || !cmp.Equal(c.Args, []string{"mirror", "-f", "/config/sync.yaml", "-q"}) {
		t.Errorf("container image %q args %q", c.Image, c.Args)
	}
	if !cmp.Equal(c.Env, []corev1.EnvVar{{Name: "DOCKER_CONFIG", Value: "/config/docker"}}) {
		t.Errorf("env %v", c.Env)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	cfg := volumes[mounts["/config/sync.yaml"].Name]
	if cfg.ConfigMap == nil || cfg.ConfigMap.Name != cm.Name || mounts["/config/sync.yaml"].SubPath != "sync.yaml" {
		t.Errorf("/config/sync.yaml comes from %+v", cfg)
	}
	creds := volumes[mounts["/config/docker"].Name]
	if creds.Secret == nil || creds.Secret.SecretName != "registry-credentials" ||
		!cmp.Equal(creds.Secret.Items, []corev1.KeyToPath{{Key: ".dockerconfigjson", Path: "config.json"}}) {
		t.Errorf("/config/docker comes from %+v", creds)
	}
	if got := *pod.TerminationGracePeriodSeconds; got != int64(mirror.DefaultCronJobGracePeriod/time.Second) {
		t.Errorf("grace period %ds", got)
	}

	// Without a Secret: no credentials mounted, no DOCKER_CONFIG.
	opts.Secret = ""
	bare := mirror.CronJob(opts).Spec.JobTemplate.Spec.Template.Spec
	if len(bare.Containers[0].Env) != 0 || len(bare.Volumes) != 2 {
		t.Errorf("without a Secret: env %v, volumes %v", bare.Containers[0].Env, bare.Volumes)
	}
}

func TestCronJobOptionsValidate(t *testing.T) {
	good := mirror.CronJobOptions{Image: "example.com/kcd:v1", Schedule: "@daily", Config: []byte(syncYAML)}
	tests := []struct {
		name   string
		change func(*mirror.CronJobOptions)
		want   string
	}{
		{"no image", func(o *mirror.CronJobOptions) { o.Image = "" }, "no image"},
		{"no schedule", func(o *mirror.CronJobOptions) { o.Schedule = "" }, "no schedule"},
		{"bad schedule", func(o *mirror.CronJobOptions) { o.Schedule = "0 25 * * *" }, `cron schedule "0 25 * * *": end of range (25) above maximum (23)`},
		{"bad name", func(o *mirror.CronJobOptions) { o.Name = "Mirror_1" }, `CronJob name "Mirror_1"`},
		{"long name", func(o *mirror.CronJobOptions) { o.Name = strings.Repeat("m", 53) }, "expected at most 52"},
		{"bad secret", func(o *mirror.CronJobOptions) { o.Secret = "a/b" }, `Secret name "a/b"`},
		{"no config", func(o *mirror.CronJobOptions) { o.Config = []byte(" \n") }, "the configuration is empty"},
		{"config not parsed", func(o *mirror.CronJobOptions) { o.Config = []byte("units: 3\n") }, "sync.yaml:1: units: expected a list of units"},
	}
	if _, err := mirror.CronJobYAML(good); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.change(&o)
			_, err := mirror.CronJobYAML(o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CronJobYAML = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// TestCronJobAccepted creates the objects of CronJobYAML's YAML on a real
// API server, which validates them (and defaults them) as it would for
// kubectl apply.
func TestCronJobAccepted(t *testing.T) {
	c := testcluster.Shared(t)
	ns := c.Namespace(t)
	ctx := t.Context()
	for _, opts := range []mirror.CronJobOptions{
		{Namespace: ns, Image: "ghcr.io/containerdisk/kubectl-containerdisk:v1", Schedule: "30 3 * * *", TimeZone: "Etc/UTC", Secret: "creds", Config: []byte(syncYAML)},
		{Name: "hourly", Namespace: ns, Image: "registry.local/kcd@sha256:" + strings.Repeat("a", 64), Schedule: "@hourly", Config: []byte(syncYAML), GracePeriod: time.Hour},
		// Schedules that ParseCron once refused or read otherwise.
		{Name: "question-mark", Namespace: ns, Image: "x", Schedule: "0 0 ? * 1", Config: []byte(syncYAML)},
		{Name: "either-day", Namespace: ns, Image: "x", Schedule: "0 0 */2 * 1", Config: []byte(syncYAML)},
		{Name: "every", Namespace: ns, Image: "x", Schedule: "@every 6h", Config: []byte(syncYAML)},
	} {
		b, err := mirror.CronJobYAML(opts)
		if err != nil {
			t.Fatal(err)
		}
		strict := metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict}
		for _, obj := range decodeStream(t, b) {
			switch obj := obj.(type) {
			case *corev1.ConfigMap:
				if _, err := c.Kubernetes().CoreV1().ConfigMaps(ns).Create(ctx, obj, strict); err != nil {
					t.Fatalf("creating the ConfigMap: %v", err)
				}
			case *batchv1.CronJob:
				got, err := c.Kubernetes().BatchV1().CronJobs(ns).Create(ctx, obj, strict)
				if err != nil {
					t.Fatalf("creating the CronJob: %v\n%s", err, b)
				}
				if got.Spec.Schedule != opts.Schedule || got.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image != opts.Image {
					t.Errorf("the server holds %+v", got.Spec)
				}
			default:
				t.Fatalf("unexpected %T", obj)
			}
		}
	}

	// What the API server itself rejects, Validate rejects first: a sample.
	for _, schedule := range []string{"61 * * * *", "CRON_TZ=UTC 0 3 * * *"} {
		if _, err := mirror.ParseCron(schedule); err == nil {
			t.Errorf("ParseCron accepted %q", schedule)
		}
		bad := mirror.CronJob(mirror.CronJobOptions{Namespace: ns, Image: "x", Schedule: schedule})
		_, err := c.Kubernetes().BatchV1().CronJobs(ns).Create(ctx, bad, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			t.Errorf("the API server accepted the schedule %q", schedule)
		}
	}
}

// TestCronJobRefusesCredentials checks that a configuration with a unit's
// credentials makes no manifest: it would carry the password in a ConfigMap.
func TestCronJobRefusesCredentials(t *testing.T) {
	const secret = "pa55-s3cret"
	native := strings.Replace(syncYAML, "  images:", "  credentials: {username: robot, password: "+secret+"}\n  images:", 1)
	skopeo := "quay.io/containerdisks:\n  images: {fedora: [\"41\"]}\n\nregistry.local:5000:\n  images: {x: []}\n  credentials:\n    username: robot\n    password: " + secret + "\n"
	for _, tt := range []struct{ name, config, want string }{
		{"native", native, "mirror.yaml:4: units[0].credentials: the credentials for quay.io/containerdisks would be written in plain text into the ConfigMap: expected none in a CronJob's configuration; keep them in a Secret of type kubernetes.io/dockerconfigjson that the CronJob mounts"},
		{"skopeo", skopeo, "mirror.yaml:4: registry.local:5000.credentials: the credentials for registry.local:5000 would be written"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := mirror.CronJobYAML(mirror.CronJobOptions{Image: "example.com/kcd:v1", Schedule: "@daily", Config: []byte(tt.config), ConfigName: "mirror.yaml", Secret: "creds"})
			if out != nil || !errors.Is(err, mirror.ErrInlineCredentials) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CronJobYAML = %q, %v; want no manifest and an error saying %q", out, err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

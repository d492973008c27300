package mirror

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// Where the mirror's pod finds its configuration and credentials.
const (
	// CronJobConfigKey is the ConfigMap key holding the configuration file.
	CronJobConfigKey = "sync.yaml"
	// CronJobConfigPath is where the configuration file is mounted.
	CronJobConfigPath = "/config/" + CronJobConfigKey
	// CronJobDockerConfigDir is where the credentials are mounted, as
	// config.json, and what DOCKER_CONFIG names.
	CronJobDockerConfigDir = "/config/docker"
	// DefaultCronJobName names the CronJob and its ConfigMap by default.
	DefaultCronJobName = "containerdisk-mirror"
	// DefaultCronJobGracePeriod is the pod's default termination grace
	// period: time for the copy under way to finish after SIGTERM.
	DefaultCronJobGracePeriod = 5 * time.Minute
)

// CronJobOptions configures [CronJob] and [CronJobYAML].
type CronJobOptions struct {
	// Name names the CronJob; DefaultCronJobName when empty.
	Name string
	// Namespace is the namespace of the objects; empty leaves it to the
	// client that creates them (kubectl apply -n).
	Namespace string
	// Image is the container image whose entrypoint is
	// kubectl-containerdisk, which the pod runs as
	// "mirror -f /config/sync.yaml". Required.
	Image string
	// Schedule is the cron schedule, five fields or a descriptor such as
	// @daily or @every 6h, as the CronJob reads it (see ParseCron).
	// Required.
	Schedule string
	// TimeZone is the IANA time zone of Schedule, such as "Europe/Berlin";
	// the kube-controller-manager's (mostly UTC) when empty.
	TimeZone string
	// ConfigMap names the ConfigMap holding the configuration under the
	// key sync.yaml; Name when empty.
	ConfigMap string
	// Config is the configuration file, the content of the ConfigMap that
	// CronJobYAML writes. It may not hold credentials (see CronJobYAML).
	Config []byte
	// ConfigName names the configuration file in messages; sync.yaml when
	// empty.
	ConfigName string
	// Secret names a Secret of type kubernetes.io/dockerconfigjson whose
	// .dockerconfigjson holds the registry credentials, as made by
	// "kubectl create secret docker-registry" or
	// "kubectl create secret generic NAME --type=kubernetes.io/dockerconfigjson
	// --from-file=.dockerconfigjson=$HOME/.docker/config.json". Empty: no
	// credentials.
	Secret string
	// Args are added to the command line after "mirror -f /config/sync.yaml".
	Args []string
	// GracePeriod is how long the pod has after SIGTERM before it is killed;
	// DefaultCronJobGracePeriod when zero.
	GracePeriod time.Duration
}

func (o CronJobOptions) name() string      { return cmp.Or(o.Name, DefaultCronJobName) }
func (o CronJobOptions) configMap() string { return cmp.Or(o.ConfigMap, o.name()) }

// Validate checks what the API server would reject or what would fail
// only when the job runs.
func (o CronJobOptions) Validate() error {
	var errs []error
	if o.Image == "" {
		errs = append(errs, errors.New("no image: expected the image of kubectl-containerdisk to run, such as ghcr.io/containerdisk/kubectl-containerdisk:v1"))
	}
	if o.Schedule == "" {
		errs = append(errs, errors.New(`no schedule: expected a cron schedule such as "30 3 * * *", from the configuration or a flag`))
	} else if _, err := ParseCron(o.Schedule); err != nil {
		errs = append(errs, err)
	}
	for _, n := range []struct{ what, name string }{
		{"CronJob name", o.name()}, {"ConfigMap name", o.configMap()}, {"Secret name", o.Secret}, {"namespace", o.Namespace},
	} {
		if n.name == "" {
			continue
		}
		if msgs := validation.IsDNS1123Subdomain(n.name); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("%s %q: %s", n.what, n.name, msgs[0]))
		}
	}
	// The controller names each Job after the CronJob plus 11 characters,
	// and a Job's name is a pod label value.
	if len(o.name()) > 52 {
		errs = append(errs, fmt.Errorf("CronJob name %q is %d characters: expected at most 52", o.name(), len(o.name())))
	}
	if o.GracePeriod < 0 {
		errs = append(errs, fmt.Errorf("grace period %s is negative", o.GracePeriod))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("making the mirror CronJob: %w", err)
	}
	return nil
}

// cronJobLabels are the labels of every object, and of the pods.
func (o CronJobOptions) labels() map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":      "kubectl-containerdisk",
		"app.kubernetes.io/component": "mirror",
		"app.kubernetes.io/instance":  o.name(),
	}
}

// CronJob returns a CronJob that runs the mirror on the schedule, one run
// at a time (concurrencyPolicy Forbid): a pod runs Image with the
// arguments "mirror -f /config/sync.yaml", the file mounted from the
// ConfigMap, and, with a Secret, the credentials mounted as
// /config/docker/config.json with DOCKER_CONFIG=/config/docker. The pod
// meets the "restricted" Pod Security Standard: it runs as user 65532 with
// a read-only root file system and an empty /tmp. It has GracePeriod to
// finish the copy under way after SIGTERM, and is not restarted in place
// (restartPolicy Never; the Job tries twice more). Call Validate first.
func CronJob(opts CronJobOptions) *batchv1.CronJob {
	labels := opts.labels()
	grace := int64(cmp.Or(opts.GracePeriod, DefaultCronJobGracePeriod) / time.Second)
	container := corev1.Container{
		Name:  "mirror",
		Image: opts.Image,
		Args:  append([]string{"mirror", "-f", CronJobConfigPath}, opts.Args...),
		VolumeMounts: []corev1.VolumeMount{
			{Name: "config", MountPath: CronJobConfigPath, SubPath: CronJobConfigKey, ReadOnly: true},
			{Name: "tmp", MountPath: "/tmp"},
		},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: pointerTo(false),
			ReadOnlyRootFilesystem:   pointerTo(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	volumes := []corev1.Volume{
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: opts.configMap()},
			Items:                []corev1.KeyToPath{{Key: CronJobConfigKey, Path: CronJobConfigKey}},
		}}},
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	if opts.Secret != "" {
		container.Env = []corev1.EnvVar{{Name: "DOCKER_CONFIG", Value: CronJobDockerConfigDir}}
		container.VolumeMounts = append(container.VolumeMounts, corev1.VolumeMount{Name: "docker-config", MountPath: CronJobDockerConfigDir, ReadOnly: true})
		volumes = append(volumes, corev1.Volume{Name: "docker-config", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: opts.Secret,
			Items:      []corev1.KeyToPath{{Key: corev1.DockerConfigJsonKey, Path: "config.json"}},
		}}})
	}
	cj := &batchv1.CronJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: batchv1.SchemeGroupVersion.String(), Kind: "CronJob"},
		ObjectMeta: metav1.ObjectMeta{Name: opts.name(), Namespace: opts.Namespace, Labels: labels},
		Spec: batchv1.CronJobSpec{
			Schedule:          opts.Schedule,
			ConcurrencyPolicy: batchv1.ForbidConcurrent,
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: batchv1.JobSpec{
					BackoffLimit: pointerTo[int32](2),
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: labels},
						Spec: corev1.PodSpec{
							RestartPolicy:                 corev1.RestartPolicyNever,
							TerminationGracePeriodSeconds: &grace,
							SecurityContext: &corev1.PodSecurityContext{
								RunAsNonRoot:   pointerTo(true),
								RunAsUser:      pointerTo[int64](65532),
								RunAsGroup:     pointerTo[int64](65532),
								SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
							},
							Containers: []corev1.Container{container},
							Volumes:    volumes,
						},
					},
				},
			},
		},
	}
	if opts.TimeZone != "" {
		cj.Spec.TimeZone = pointerTo(opts.TimeZone)
	}
	return cj
}

// ConfigMap returns the ConfigMap holding opts.Config under the key
// sync.yaml, for the CronJob.
func ConfigMap(opts CronJobOptions) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: opts.configMap(), Namespace: opts.Namespace, Labels: opts.labels()},
		Data:       map[string]string{CronJobConfigKey: string(opts.Config)},
	}
}

// ErrInlineCredentials is wrapped by the error about a configuration whose
// units hold credentials, which a manifest would carry in plain text.
var ErrInlineCredentials = errors.New("credentials in the configuration")

// CronJobYAML returns the ConfigMap and the CronJob as a YAML stream for
// "kubectl apply -f -", the ConfigMap first. The Secret it names is
// referred to, not written: credentials do not belong in a manifest. So a
// configuration with credentials (a unit's credentials: key) is refused,
// with a *ConfigError for each such unit wrapping ErrInlineCredentials:
// a ConfigMap is not a Secret, and whatever is printed ends up in terminals,
// logs and version control. The credentials belong in the Secret
// (opts.Secret) instead. A configuration that does not parse is refused
// too, as the pod would refuse it.
func CronJobYAML(opts CronJobOptions) ([]byte, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(opts.Config)) == 0 {
		return nil, errors.New("making the mirror CronJob: the configuration is empty; expected the content of a mirror configuration file")
	}
	if err := checkCronJobConfig(cmp.Or(opts.ConfigName, CronJobConfigKey), opts.Config); err != nil {
		return nil, fmt.Errorf("making the mirror CronJob: %w", err)
	}
	var out bytes.Buffer
	for i, obj := range []any{ConfigMap(opts), CronJob(opts)} {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("making the mirror CronJob: %w", err)
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		if b, err = cleanYAML(b); err != nil {
			return nil, fmt.Errorf("making the mirror CronJob: %w", err)
		}
		out.Write(b)
	}
	return out.Bytes(), nil
}

// checkCronJobConfig parses the configuration a CronJob is to carry, its
// target allowed to come from the command line, and refuses credentials in
// it.
func checkCronJobConfig(name string, data []byte) error {
	c, err := parseConfig(newParser(name, true), data)
	if err != nil {
		return err
	}
	var errs []error
	for i, u := range c.Units {
		if u.Credentials == nil {
			continue
		}
		key := fmt.Sprintf("units[%d]", i)
		if c.Format == FormatSkopeo {
			key = u.Source
		}
		errs = append(errs, &ConfigError{File: name, Line: u.Line, Key: key + ".credentials",
			Msg: fmt.Sprintf("the credentials for %s would be written in plain text into the ConfigMap: expected none in a CronJob's configuration; keep them in a Secret of type %s that the CronJob mounts", u.Source, corev1.SecretTypeDockerConfigJson),
			Err: ErrInlineCredentials})
	}
	return errors.Join(errs...)
}

// cleanYAML drops what marshalling a new object writes and the API server
// ignores: "creationTimestamp: null" and "status: {}".
func cleanYAML(b []byte) ([]byte, error) {
	var obj map[string]any
	if err := yaml.Unmarshal(b, &obj); err != nil {
		return nil, err
	}
	if s, ok := obj["status"].(map[string]any); ok && len(s) == 0 {
		delete(obj, "status")
	}
	dropNulls(obj)
	return yaml.Marshal(obj)
}

// dropNulls deletes the keys whose value is null, at every depth.
func dropNulls(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if e == nil {
				delete(v, k)
			} else {
				dropNulls(e)
			}
		}
	case []any:
		for _, e := range v {
			dropNulls(e)
		}
	}
}

func pointerTo[T any](v T) *T { return &v }

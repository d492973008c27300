// Package pipeline is the "kubectl containerdisk pipeline" command: it runs
// the catalog's builds as Kubernetes Jobs, one per entry and architecture
// on a node of that architecture, and publishes each entry's multi-arch
// index from what the Jobs staged.
package pipeline

import (
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/fanout"
	"github.com/containerdisk/kubectl-containerdisk/pkg/publish"
	"github.com/containerdisk/kubectl-containerdisk/pkg/readlimit"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/option"
)

// BuildCommand is the program each Job runs: the suite's build, which the
// image given with --image must have on its PATH.
const BuildCommand = "kubectl-containerdisk-build"

type pipelineOptions struct {
	option.Remote
	option.Output
	option.Catalog
	kube *genericclioptions.ConfigFlags

	inCluster      bool
	print          bool
	image          string
	staging        string
	to             string
	timeout        time.Duration
	backoffLimit   int32
	ttl            time.Duration
	registrySecret string
	serviceAccount string
	created        string
	format         string
	compression    string

	// passed are the flags given that the Jobs' builds take too, as
	// they were given.
	passed []string
	now    time.Time
}

// NewCommand returns the pipeline command.
func NewCommand(streams cli.Streams) *cobra.Command {
	opts := pipelineOptions{Output: option.NewOutput("pipeline"), kube: genericclioptions.NewConfigFlags(true)}
	cmd := &cobra.Command{
		Use:   "pipeline (--in-cluster | --print) --image IMAGE --staging PREFIX [--to PREFIX] [flags]",
		Short: "Build the catalog as Kubernetes Jobs, one per architecture, and publish the indexes",
		Long: `Build the selected catalog entries on a Kubernetes cluster, each
architecture on a node of its own architecture, and publish each entry's
multi-arch index.

For each name:version and architecture, a batch/v1 Job with the node selector
kubernetes.io/arch=ARCH runs the suite's own build of that one architecture,

  ` + BuildCommand + ` --focus NAME:VERSION --arch ARCH --created TIME ... -o json PREFIX/ARCH

which downloads, checks and builds it, pushes it to the staging
repository PREFIX/ARCH/NAME:VERSION, and writes what it pushed, with its
digest, to its termination message (--termination-log
` + fanout.TerminationLog + `). --image is the container image the Jobs
run: it must have ` + BuildCommand + ` on its PATH (the release archives'
binaries in any base image will do). The --catalog files go to the Jobs in a
ConfigMap; everything else a Job needs is on its command line, made from
the same flags: nothing is set per Job by hand. --created (default: the
newest Last-Modified date of the entry's upstream files, read with HEAD
requests) is given to every architecture, so that images built apart are
the very images one build of every architecture makes.

With --in-cluster (the current kubectl context, or --kubeconfig, --context,
-n), pipeline first compares --to with upstream, as push does, and leaves
what is up to date alone; an architecture already in staging with the
upstream checksum (from an earlier, partly failed run) is not built again.
It creates the ConfigMap and the Jobs (strict field validation), waits for
them (--timeout), and reads the digest each succeeded Job pushed from its
pod's termination message (so it lists pods). For each entry whose
architectures are all staged, it reads the images by those digests, not by
the staging tags, which another run may have moved since, makes the index
exactly as one build of all of them makes it, and copies the images and the
index to --to/NAME with push's tags, the moving ones last. A failed Job
fails its entry only, and so does a Job that succeeded without a
termination message naming a digest in its staging repository; a Job that
no node of its architecture runs fails its entry at --timeout. The Jobs and the
ConfigMap are deleted at the end, and on Ctrl-C; a finished Job that stays
(the command was killed) is removed by Kubernetes after --ttl.

With --print, nothing is created: the ConfigMap and the Jobs are written on
stdout as YAML, for GitOps. Applied as they are, they fill staging; a later
'pipeline --in-cluster' publishes from it without building again.

Exit status: 0 all published or up to date, 1 some failed, 2 usage or input
error, 130 interrupted.`,
		Example: `  # The Jobs for Fedora, as YAML
  kubectl containerdisk pipeline --print --focus 'fedora:*' \
      --image ghcr.io/example/kubectl-containerdisk:v1 --staging registry.example.com/staging

  # Build on the cluster, publish, then verify and promote
  kubectl containerdisk pipeline --in-cluster -n builds --focus 'fedora:*' \
      --image ghcr.io/example/kubectl-containerdisk:v1 --registry-secret push-creds \
      --staging registry.example.com/staging --to registry.example.com/candidates -o json | \
    kubectl containerdisk verify -o json | \
    kubectl containerdisk promote --to registry.example.com/containerdisks --dry-run=false`,
		Args: cli.ExactArgs(0),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.Remote.Parse(cmd); err != nil {
				return err
			}
			if err := opts.Catalog.Parse(cmd); err != nil {
				return err
			}
			return opts.validate(cmd)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.now = time.Now()
			if opts.print {
				return runPrint(cmd.Context(), streams, &opts)
			}
			return runInCluster(cmd.Context(), streams, &opts)
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&opts.inCluster, "in-cluster", false, "run the builds as Jobs on the cluster and publish to --to")
	fs.BoolVar(&opts.print, "print", false, "write the ConfigMap and the Jobs as YAML on stdout, and create nothing")
	fs.StringVar(&opts.image, "image", "", "container image of the Jobs, with "+BuildCommand+" on its PATH (required)")
	fs.StringVar(&opts.staging, "staging", "", "registry prefix the Jobs push each architecture to, as PREFIX/ARCH/NAME:VERSION (required)")
	fs.StringVar(&opts.to, "to", "", "with --in-cluster: registry prefix each entry's index goes to, as PREFIX/NAME with push's tags")
	fs.DurationVar(&opts.timeout, "timeout", time.Hour, "with --in-cluster: how long to wait for the Jobs; one not finished by then fails its entry")
	fs.Int32Var(&opts.backoffLimit, "backoff-limit", 2, "retries of a Job's failed pod")
	fs.DurationVar(&opts.ttl, "ttl", time.Hour, "how long Kubernetes keeps a finished Job that was not deleted (ttlSecondsAfterFinished)")
	fs.StringVar(&opts.registrySecret, "registry-secret", "", "Secret of type kubernetes.io/dockerconfigjson the Jobs push to staging with")
	fs.StringVar(&opts.serviceAccount, "service-account", "", "service account of the Jobs' pods (default: the namespace's)")
	fs.StringVar(&opts.created, "created", "", "creation time of every image, RFC 3339 or Unix seconds (default $SOURCE_DATE_EPOCH, else the newest upstream Last-Modified date of each entry)")
	fs.StringVar(&opts.format, "format", string(containerdisk.FormatOCI), "manifest format, oci or docker")
	fs.StringVar(&opts.compression, "compression", string(containerdisk.CompressionGzip), "layer compression, gzip, zstd or none")
	opts.Remote.ApplyFlags(fs)
	opts.Output.ApplyFlags(fs)
	opts.Catalog.ApplyFlags(fs)
	opts.kube.AddFlags(fs)
	cmd.RegisterFlagCompletionFunc("focus", option.CompleteFocus)   //nolint:errcheck // the flag exists
	cmd.RegisterFlagCompletionFunc("output", option.CompleteOutput) //nolint:errcheck // the flag exists
	return cmd
}

// validate checks the flags that the others do not.
func (o *pipelineOptions) validate(cmd *cobra.Command) error {
	switch {
	case o.inCluster == o.print:
		return cli.Usagef("expected one of --in-cluster (run the Jobs and publish) or --print (write them as YAML)")
	case o.image == "":
		return cli.Usagef("--image is required: the container image of the Jobs, with %s on its PATH, e.g. --image ghcr.io/example/kubectl-containerdisk:v1", BuildCommand)
	case o.staging == "":
		return cli.Usagef("--staging is required: the registry prefix the Jobs push each architecture to, e.g. --staging registry.example.com/staging")
	case o.inCluster && o.to == "":
		return cli.Usagef("--in-cluster needs --to: the registry prefix the indexes are published to, e.g. --to registry.example.com/containerdisks")
	case o.timeout <= 0:
		return cli.Usagef("--timeout %v: expected a positive duration such as 30m", o.timeout)
	case o.backoffLimit < 0:
		return cli.Usagef("--backoff-limit %d: expected 0 or more", o.backoffLimit)
	case o.ttl < 0:
		return cli.Usagef("--ttl %v: expected a duration such as 1h", o.ttl)
	}
	for _, p := range []struct{ flag, value string }{{"--staging", o.staging}, {"--to", o.to}} {
		if p.value == "" {
			continue
		}
		ref, err := target.Parse(p.value)
		if err != nil {
			return err
		}
		if ref.Kind != target.KindRegistry || ref.Reference != "" {
			return cli.Usagef("%s %q: expected a registry prefix such as registry.example.com/containerdisks, without a tag: the Jobs and this command must both reach it", p.flag, p.value)
		}
	}
	if _, err := containerdisk.ParseFormat(o.format); err != nil {
		return err
	}
	if _, err := containerdisk.ParseCompression(o.compression); err != nil {
		return err
	}
	if _, err := option.ParseCreated(o.created); err != nil {
		return err
	}
	// The flags the builds take as they are: the Jobs reach upstream and
	// the registry as this command does.
	for _, name := range []string{"plain-http", "insecure", "retries", "upstream-timeout", "stall-timeout"} {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
			o.passed = append(o.passed, "--"+name+"="+f.Value.String())
		}
	}
	for _, m := range o.Catalog.Mirrors {
		o.passed = append(o.passed, "--mirror", m)
	}
	return nil
}

// buildOptions are the image options the Jobs build with, Created aside.
func (o *pipelineOptions) buildOptions() containerdisk.Options {
	f, _ := containerdisk.ParseFormat(o.format)
	c, _ := containerdisk.ParseCompression(o.compression)
	return containerdisk.Options{Format: f, Compression: c}
}

// plan is the selected catalog, gathered: its groups and the creation
// time of each.
type plan struct {
	groups  []catalog.Group
	created map[string]time.Time
	// errs are why a group cannot be built, by key.
	errs    map[string]error
	catalog map[string]string
	keys    []string // ConfigMap keys of --catalog, in order
	builder *publish.Builder
}

// gather reads the catalog and upstream, and the creation time of each
// group that can be built.
func gather(ctx context.Context, opts *pipelineOptions, status *option.Status) (*plan, error) {
	client := opts.Catalog.Client(status.Printf)
	c, err := opts.Catalog.Catalog(client)
	if err != nil {
		return nil, err
	}
	rels, err := c.Gather(ctx, opts.Catalog.Selection())
	if err != nil {
		return nil, err
	}
	created, _ := option.ParseCreated(opts.created)
	bopts := opts.buildOptions()
	bopts.Created = created
	p := &plan{
		groups:  catalog.GroupReleases(rels),
		created: map[string]time.Time{},
		errs:    map[string]error{},
		catalog: map[string]string{},
		builder: &publish.Builder{Client: client, Options: bopts},
	}
	for i, path := range opts.Catalog.Files {
		data, err := readlimit.ReadFile(ctx, path, readlimit.Config, "a catalog file")
		if err != nil {
			return nil, cli.Usagef("--catalog: %w", err)
		}
		key := configMapKey(i, path)
		p.catalog[key] = string(data)
		p.keys = append(p.keys, key)
	}
	// A HEAD request per release, a few at once: the catalog has dozens.
	var mu sync.Mutex
	var eg errgroup.Group
	eg.SetLimit(8)
	for _, g := range p.groups {
		if err := g.Err(); err != nil {
			p.errs[g.Key()] = err
			continue
		}
		eg.Go(func() error {
			t, err := p.builder.Created(ctx, g)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				p.errs[g.Key()] = err
			} else {
				p.created[g.Key()] = t
			}
			return nil
		})
	}
	eg.Wait() //nolint:errcheck // the calls return no error
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return p, nil
}

var notKey = regexp.MustCompile(`[^-._a-zA-Z0-9]+`)

// configMapKey is the i-th catalog file's key in the ConfigMap: its file
// name, numbered so that two files of one name stay apart.
func configMapKey(i int, path string) string {
	return strconv.Itoa(i) + "-" + notKey.ReplaceAllString(filepath.Base(path), "_")
}

// task is the Job of one release: the build of that architecture alone.
func (o *pipelineOptions) task(p *plan, r catalog.Release) fanout.Task {
	staging, _ := target.Parse(o.staging)
	args := []string{BuildCommand,
		"--focus", r.Key(),
		"--arch", r.Arch,
		"--created", p.created[r.Key()].UTC().Format(time.RFC3339),
		"--format", o.format,
		"--compression", o.compression,
		"--cache-dir", fanout.WorkDir + "/cache",
		"--temp-dir", fanout.WorkDir,
		"--termination-log", fanout.TerminationLog,
	}
	for _, k := range p.keys {
		args = append(args, "--catalog", fanout.CatalogDir+"/"+k)
	}
	if o.registrySecret != "" {
		args = append(args, "--registry-config", fanout.RegistryDir+"/.dockerconfigjson")
	}
	args = append(args, o.passed...)
	args = append(args, "-o", "json", staging.Join(r.Arch).String())
	return fanout.Task{Name: r.Name, Version: r.Version, Arch: r.Arch, Args: args}
}

// spec is what every Job shares.
func (o *pipelineOptions) spec(p *plan, namespace, run string) fanout.Spec {
	return fanout.Spec{
		Namespace:      namespace,
		Run:            run,
		Image:          o.image,
		Catalog:        p.catalog,
		RegistrySecret: o.registrySecret,
		ServiceAccount: o.serviceAccount,
		BackoffLimit:   o.backoffLimit,
		TTL:            o.ttl,
	}
}

// Main runs the command as the process and returns its exit code.
func Main() int { return cli.Main(NewCommand) }

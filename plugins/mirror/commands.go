package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"sigs.k8s.io/yaml"

	"github.com/containerdisk/kubectl-containerdisk/pkg/mirror"
	"github.com/containerdisk/kubectl-containerdisk/pkg/readlimit"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/option"
	kubevirt "kubevirt.io/client-go/kubevirt"
)

// Main runs the command as the process and returns its exit code.
func Main() int { return cli.Main(NewCommand) }

// runScheduled runs once at every tick of s, skipping a tick while the last
// run is still going. The first SIGINT or SIGTERM lets the copies under way
// finish, starts no new one, and returns.
func runScheduled(ctx context.Context, s mirror.Schedule, once func(ctx context.Context) error, status *option.Status) error {
	return mirror.Run(ctx, s, once, mirror.RunOptions{Immediately: true, Log: status.Printf})
}

type cronJobFlags struct {
	name, namespace, image, secret string
}

func (c *cronJobFlags) apply(fs *pflag.FlagSet) {
	fs.StringVar(&c.name, "cronjob-name", "containerdisk-mirror", "with --print-cronjob: name of the CronJob and its ConfigMap")
	fs.StringVar(&c.namespace, "cronjob-namespace", "", "with --print-cronjob: namespace of the objects")
	fs.StringVar(&c.image, "image", "", "with --print-cronjob: container image holding kubectl-containerdisk-mirror")
	fs.StringVar(&c.secret, "registry-secret", "", "with --print-cronjob: Secret of type kubernetes.io/dockerconfigjson holding the registry credentials (kubectl create secret docker-registry)")
}

func printCronJob(streams cli.Streams, opts *mirrorOptions, cfg *mirror.Config, data []byte) error {
	if opts.cronJob.image == "" {
		return cli.Usagef("--print-cronjob needs --image: the container image that runs kubectl-containerdisk-mirror")
	}
	schedule := opts.schedule
	if schedule == "" {
		schedule = cfg.Schedule
	}
	if schedule == "" {
		return cli.Usagef("--print-cronjob needs a schedule: --schedule '0 3 * * *' or schedule: in the configuration")
	}
	if _, err := mirror.ParseCron(schedule); err != nil {
		return cli.Usagef("--schedule: %v", err)
	}
	out, err := mirror.CronJobYAML(mirror.CronJobOptions{
		Name:       opts.cronJob.name,
		Namespace:  opts.cronJob.namespace,
		Image:      opts.cronJob.image,
		Schedule:   schedule,
		Config:     data,
		ConfigName: opts.file,
		Secret:     opts.cronJob.secret,
		Args:       cronArgs(opts),
	})
	if errors.Is(err, mirror.ErrInlineCredentials) {
		// The hint names the hosts, never the username or password.
		var create []string
		for _, u := range cfg.Units {
			host, _, _ := strings.Cut(u.Source, "/")
			c := "    kubectl create secret docker-registry NAME --docker-server=" + host + " --docker-username=USER --docker-password=PASSWORD"
			if u.Credentials != nil && !slices.Contains(create, c) {
				create = append(create, c)
			}
		}
		return cli.Usagef("%v\n  hint: remove credentials: from %s and keep them in a Secret that the CronJob mounts:\n%s\n"+
			"  then add --registry-secret NAME (one Secret holds several registries: --from-file=.dockerconfigjson=config.json --type=kubernetes.io/dockerconfigjson)",
			err, opts.file, strings.Join(create, "\n"))
	}
	if err != nil {
		return err
	}
	_, err = streams.Out.Write(out)
	return err
}

// cronArgs are the flags the CronJob's mirror runs with besides -f.
func cronArgs(opts *mirrorOptions) []string {
	var args []string
	if opts.to != "" {
		args = append(args, "--to", opts.to)
	}
	if opts.scoped {
		args = append(args, "--scoped")
	}
	for _, p := range opts.platforms {
		args = append(args, "--platform", p)
	}
	if opts.platformMode != "" {
		args = append(args, "--platform-mode", opts.platformMode)
	}
	if opts.chunk > 0 {
		args = append(args, "--chunk-size", opts.chunkSize)
	}
	if opts.StallTimeout != target.DefaultStallTimeout {
		args = append(args, "--stall-timeout", opts.StallTimeout.String())
	}
	return args
}

type lsOptions struct {
	option.Remote
	option.Output
}

func (o *lsOptions) apply(cmd *cobra.Command) {
	o.Output.ApplyFlags(cmd.Flags())
	o.Remote.ApplyFlags(cmd.Flags())
	cmd.RegisterFlagCompletionFunc("output", option.CompleteOutput) //nolint:errcheck // the flag exists
}

func (o *lsOptions) parse(cmd *cobra.Command, streams cli.Streams) error {
	o.Remote.Log = option.NewStatus(streams.ErrOut, o.Quiet).Printf
	return o.Remote.Parse(cmd)
}

func printData(streams cli.Streams, format string, v any, table func(*tabwriter.Writer)) error {
	switch format {
	case option.OutputJSON:
		enc := json.NewEncoder(streams.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case option.OutputYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = streams.Out.Write(b)
		return err
	}
	tw := tabwriter.NewWriter(streams.Out, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func newLsCommand(streams cli.Streams) *cobra.Command {
	opts := lsOptions{Output: option.NewOutput("mirror ls")}
	cmd := &cobra.Command{
		Use:   "ls REGISTRY|REPOSITORY",
		Short: "List a registry's repositories, or a repository's tags",
		Long: `List the repositories of a registry (its catalog API, page by page), or the
tags of a repository.`,
		Example: `  kubectl containerdisk mirror ls quay.io
  kubectl containerdisk mirror ls quay.io/containerdisks/fedora -o json`,
		Args:    cli.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error { return opts.parse(cmd, streams) },
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			arg := args[0]
			if !strings.Contains(arg, "/") {
				reg, err := remote.NewRegistry(arg)
				if err != nil {
					return cli.Usagef("registry %q: %v", arg, err)
				}
				repo, err := target.OpenRepository(target.Reference{Kind: target.KindRegistry, Registry: arg, Repository: "x"}, opts.Remote.Options())
				if err != nil {
					return err
				}
				reg.Client, reg.PlainHTTP = repo.Client, repo.PlainHTTP
				var repos []string
				if err := mirror.Repositories(ctx, reg, func(rs []string) error { repos = append(repos, rs...); return nil }); err != nil {
					return fmt.Errorf("listing the repositories of %s: %w", arg, err)
				}
				return printData(streams, opts.Format, map[string]any{"registry": arg, "repositories": repos}, func(tw *tabwriter.Writer) {
					for _, r := range repos {
						fmt.Fprintln(tw, r)
					}
				})
			}
			ref, err := target.Parse(arg)
			if err != nil {
				return err
			}
			repo, err := target.OpenRepository(ref, opts.Remote.Options())
			if err != nil {
				return err
			}
			var tags []string
			if err := mirror.Tags(ctx, repo, func(ts []string) error { tags = append(tags, ts...); return nil }); err != nil {
				return fmt.Errorf("listing the tags of %s: %w", ref.Repo(), err)
			}
			return printData(streams, opts.Format, map[string]any{"repository": ref.Repo(), "tags": tags}, func(tw *tabwriter.Writer) {
				for _, t := range tags {
					fmt.Fprintln(tw, t)
				}
			})
		},
	}
	opts.apply(cmd)
	return cmd
}

func newInspectCommand(streams cli.Streams) *cobra.Command {
	opts := lsOptions{Output: option.NewOutput("mirror inspect")}
	cmd := &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show an image's platforms with their digests and sizes",
		Long: `Show an image's platforms with their digests and sizes. IMAGE is a
registry reference, an OCI layout or an OCI archive, as mirror names what it
writes there: oci:DIR:NAME:TAG, oci-archive:FILE:NAME:TAG.`,
		Example: `  kubectl containerdisk mirror inspect quay.io/containerdisks/fedora:42
  kubectl containerdisk mirror inspect oci-archive:containerdisks.tar:fedora:42`,
		Args:    cli.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error { return opts.parse(cmd, streams) },
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ref, err := target.Parse(args[0])
			if err != nil {
				return err
			}
			if ref.Reference == "" {
				return cli.Usagef("image %q has no tag or digest: expected IMAGE:TAG or IMAGE@DIGEST", args[0])
			}
			src, err := target.OpenSource(ctx, ref, opts.Remote.Options())
			if err != nil {
				return err
			}
			if c, ok := src.(io.Closer); ok {
				// An archive holds its file open.
				defer c.Close()
			}
			info, err := mirror.Inspect(ctx, src, ref.Reference)
			if err != nil {
				return fmt.Errorf("inspecting %s: %w", ref, err)
			}
			return printData(streams, opts.Format, info, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", ref, info.Digest, info.MediaType, info.TotalSize)
				fmt.Fprintln(tw, "PLATFORM\tDIGEST\tSIZE")
				for _, p := range info.Platforms {
					name := "-"
					if p.Platform != nil {
						name = p.Platform.OS + "/" + p.Platform.Architecture
						if p.Platform.Variant != "" {
							name += "/" + p.Platform.Variant
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\n", name, p.Digest, p.Size)
				}
			})
		},
	}
	opts.apply(cmd)
	return cmd
}

func newImportCommand(streams cli.Streams) *cobra.Command {
	opts := mirrorOptions{Output: option.NewOutput("mirror import")}
	cmd := &cobra.Command{
		Use:   "import ARCHIVE|oci:DIR --to PREFIX",
		Short: "Copy every image of an OCI archive or layout into a registry",
		Long: `Copy every image an OCI archive (or layout directory) holds, as written by
mirror to oci-archive:FILE or oci:DIR, into a registry below PREFIX, each
NAME:TAG to PREFIX/NAME:TAG, with its digests unchanged. What the registry
has is skipped. As mirror, import writes unless --dry-run.`,
		Example: `  kubectl containerdisk mirror import containerdisks.tar --to registry.airgap:5000/containerdisks`,
		Args:    cli.ExactArgs(1),
		PreRunE: func(cmd *cobra.Command, args []string) error {
			return opts.parseCopyFlags(cmd, "PREFIX")
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			src := args[0]
			if !strings.HasPrefix(src, target.LayoutPrefix) && !strings.HasPrefix(src, target.ArchivePrefix) {
				src = target.ArchivePrefix + src
			}
			cfg, err := importConfig(cmd.Context(), src, opts.to)
			if err != nil {
				return err
			}
			status := option.NewStatus(streams.ErrOut, opts.Quiet)
			return syncOnce(cmd.Context(), nil, streams, &opts, cfg, status)
		},
	}
	opts.applyCopyFlags(cmd, "registry prefix to import below")
	return cmd
}

// importConfig makes a configuration copying every NAME:TAG of a layout or
// archive below prefix.
func importConfig(ctx context.Context, src, prefix string) (*mirror.Config, error) {
	at, err := target.ParsePrefix(src)
	if err != nil {
		return nil, err
	}
	store, err := target.OpenSource(ctx, at, target.RemoteOptions{})
	if err != nil {
		return nil, err
	}
	if c, ok := store.(io.Closer); ok {
		defer c.Close()
	}
	var refs []string
	if lister, ok := store.(registry.TagLister); ok {
		err = mirror.Tags(ctx, lister, func(rs []string) error { refs = append(refs, rs...); return nil })
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", src, err)
	}
	var names []string
	byName := map[string][]string{}
	for _, r := range refs {
		i := strings.LastIndexByte(r, ':')
		if i < 0 {
			continue
		}
		n := r[:i]
		if _, seen := byName[n]; !seen {
			names = append(names, n)
			byName[n] = target.ImageTags(refs, n)
		}
	}
	if len(names) == 0 {
		return nil, cli.Usagef("%s holds no NAME:TAG image: expected an archive or layout that mirror wrote", src)
	}
	u := mirror.Unit{Source: src, Target: prefix}
	for _, n := range names {
		u.Images = append(u.Images, mirror.ImageSpec{Repository: n, Tags: byName[n]})
	}
	return &mirror.Config{Units: []mirror.Unit{u}}, nil
}

func newPreloadCommand(streams cli.Streams) *cobra.Command {
	opts := mirrorOptions{Output: option.NewOutput("mirror preload")}
	kube := genericclioptions.NewConfigFlags(true)
	var file string
	var fromCluster, allNamespaces bool
	cmd := &cobra.Command{
		Use:   "preload [IMAGE...] --to REGISTRY/PREFIX",
		Short: "Copy into a local registry the images that are missing there",
		Long: `Copy images into a local registry, only those it lacks: images given as
arguments, listed in a file (-f, one per line), or with --from-cluster every
containerDisk image the VirtualMachines and VirtualMachineInstances of the
cluster use (cli-runtime flags; -n or --all-namespaces). Each goes to
PREFIX/PATH:TAG, PATH being its repository path. As mirror, preload writes
unless --dry-run.`,
		Example: `  kubectl containerdisk mirror preload --from-cluster --all-namespaces --to registry.local:5000/preload`,
		Args:    cobra.ArbitraryArgs,
		PreRunE: func(cmd *cobra.Command, args []string) error {
			return opts.parseCopyFlags(cmd, "REGISTRY/PREFIX")
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			images := append([]string{}, args...)
			if file != "" {
				data, err := readlimit.ReadFile(ctx, file, readlimit.Config, "a list of images")
				if err != nil {
					return cli.Usagef("-f: %w", err)
				}
				for _, l := range strings.Split(string(data), "\n") {
					if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
						images = append(images, l)
					}
				}
			}
			if fromCluster {
				cfg, err := kube.ToRESTConfig()
				if err != nil {
					return cli.Usagef("reading the kubeconfig: %v", err)
				}
				kv, err := kubevirt.NewForConfig(cfg)
				if err != nil {
					return err
				}
				ns := ""
				if !allNamespaces {
					if ns, _, err = kube.ToRawKubeConfigLoader().Namespace(); err != nil {
						return err
					}
				}
				used, err := mirror.ClusterImages(ctx, kv, ns)
				if err != nil {
					return fmt.Errorf("listing the containerDisk images of the cluster at %s: %w", cfg.Host, err)
				}
				images = append(images, used...)
			}
			if len(images) == 0 {
				return cli.Usagef("no image: expected IMAGE arguments, -f FILE or --from-cluster")
			}
			cfg, err := preloadConfig(images, opts.to)
			if err != nil {
				return err
			}
			status := option.NewStatus(streams.ErrOut, opts.Quiet)
			return syncOnce(ctx, nil, streams, &opts, cfg, status)
		},
	}
	fs := cmd.Flags()
	kube.AddFlags(fs)
	fs.StringVarP(&file, "file", "f", "", "file listing images, one per line")
	fs.BoolVar(&fromCluster, "from-cluster", false, "every containerDisk image the cluster's VMs and VMIs use")
	fs.BoolVarP(&allNamespaces, "all-namespaces", "A", false, "with --from-cluster: every namespace")
	opts.applyCopyFlags(cmd, "local registry prefix to copy into")
	return cmd
}

// preloadConfig makes one unit per source registry and repository
// directory, so that each image keeps its repository path below prefix.
func preloadConfig(images []string, prefix string) (*mirror.Config, error) {
	units := map[string]*mirror.Unit{}
	var order []string
	for _, img := range images {
		ref, err := target.Parse(img)
		if err != nil {
			return nil, err
		}
		if ref.Kind != target.KindRegistry || !ref.IsTag() {
			return nil, cli.Usagef("image %q: expected a registry reference with a tag", img)
		}
		dir, base := path.Split(ref.Repository)
		dir = strings.TrimSuffix(dir, "/")
		key := ref.Registry + "/" + dir
		u, ok := units[key]
		if !ok {
			u = &mirror.Unit{Source: strings.TrimSuffix(key, "/"), Target: strings.TrimSuffix(prefix+"/"+dir, "/")}
			units[key] = u
			order = append(order, key)
		}
		u.Images = append(u.Images, mirror.ImageSpec{Repository: base, Tags: []string{ref.Reference}})
	}
	cfg := &mirror.Config{}
	for _, k := range order {
		cfg.Units = append(cfg.Units, *units[k])
	}
	return cfg, nil
}

// applyCopyFlags adds the flags import and preload share with mirror.
func (o *mirrorOptions) applyCopyFlags(cmd *cobra.Command, to string) {
	fs := cmd.Flags()
	fs.StringVar(&o.to, "to", "", to)
	option.AddDryRun(fs, &o.dryRun, option.Syncs, "the plan (what would be copied, how many bytes, what is up to date)")
	fs.IntVar(&o.workers, "workers", 4, "images copied at once")
	fs.IntVar(&o.maxConcurrency, "max-concurrency", 8, "requests at once per registry host")
	fs.IntVar(&o.retries, "retries", 5, "retries of a request that failed with 429, 5xx or a reset")
	o.Remote.ApplyFlags(fs)
	o.Output.ApplyFlags(fs)
	cmd.RegisterFlagCompletionFunc("output", option.CompleteOutput) //nolint:errcheck // the flag exists
}

func (o *mirrorOptions) parseCopyFlags(cmd *cobra.Command, to string) error {
	if o.to == "" {
		return cli.Usagef("no destination: expected --to %s", to)
	}
	return o.Remote.Parse(cmd)
}

// Package verify is the "kubectl containerdisk verify" command: it boots
// containerdisks as KubeVirt virtual machines on a cluster, or under QEMU
// without one, and proves that they work. Its binary also runs promote.
package verify

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/pkg/verify"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/option"
)

type verifyOptions struct {
	option.Remote
	option.Output
	kube *genericclioptions.ConfigFlags

	local         bool
	arches        []string
	workers       int
	timeout       time.Duration
	keepOnFailure bool
	memory        string
	defaultUser   string
	instancetype  string
	preference    string
	efi           bool
	guestAgent    bool
	ssh           bool
	qemuMemory    string
	console       bool
}

// NewCommand returns the verify command, with promote below it.
func NewCommand(streams cli.Streams) *cobra.Command {
	opts := verifyOptions{Output: option.NewOutput("verify"), kube: genericclioptions.NewConfigFlags(true)}
	cmd := &cobra.Command{
		Use:   "verify [flags] [IMAGE...]",
		Short: "Boot containerdisks as KubeVirt VMs, on a cluster or under QEMU, and prove they work",
		Long: `Boot each containerdisk and prove that it works.

On a cluster (the current kubectl context, or --kubeconfig/--context/-n):
for each image and each architecture that both the image and the cluster's
nodes have, create a KubeVirt VirtualMachine from the containerdisk (virtio
disk, cloud-init NoCloud user-data with a freshly generated SSH key, the
image's instancetype and preference when the cluster has them, a node
selector for the architecture), wait until it is ready, then check that the
guest agent answers (--guest-agent) and that an SSH login through
port-forward runs a command. The VM is always deleted, also on failure,
timeout and Ctrl-C, unless --keep-on-failure keeps a failed one.

With --local, no cluster is needed: the disk is pulled from the registry or
OCI layout, booted under QEMU (KVM when /dev/kvm is usable, else software
emulation; amd64, and arm64 with UEFI) with a NoCloud seed, and passes when
the user-data's marker appears on the serial console in time.

IMAGEs are registry references (host/repo:tag or @digest), OCI layouts
(oci:DIR:tag) or OCI archives (oci-archive:FILE:tag); in a layout or archive
that mirror wrote, the tag is NAME:TAG (oci:DIR:fedora:42). Without IMAGE, the JSON lines of 'kubectl containerdisk push
-o json' (or build -o json) are read from stdin: each image is verified by
digest, with the default user, instancetype and preference its catalog entry
records, and with -o json the lines go on to 'kubectl containerdisk promote'.

Exit status: 0 all passed, 1 some failed, 2 usage error, 130 interrupted.`,
		Example: `  # Verify an image on the current cluster, on every architecture both have
  kubectl containerdisk verify quay.io/containerdisks/fedora:42 --default-user fedora

  # Without a cluster, under QEMU
  kubectl containerdisk verify --local oci:./containerdisks/fedora:42

  # Publish to staging, verify, promote what passed
  kubectl containerdisk push --focus '*:*' --to staging.example.com/containerdisks --dry-run=false -o json |
    kubectl containerdisk verify -o json |
    kubectl containerdisk promote --to quay.io/containerdisks --dry-run=false`,
		Args: cobra.ArbitraryArgs,
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.Remote.Parse(cmd); err != nil {
				return err
			}
			if opts.workers < 1 {
				return cli.Usagef("--workers %d: expected at least 1", opts.workers)
			}
			for i, a := range opts.arches {
				n, err := containerdisk.NormalizeArch(a)
				if err != nil {
					return err
				}
				opts.arches[i] = n
			}
			if len(args) == 0 && streams.InIsTerminal() {
				return cli.Usagef("no IMAGE and stdin is a terminal: expected IMAGE arguments, or the JSON lines of 'kubectl containerdisk push -o json' on stdin")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd.Context(), streams, &opts, args)
		},
	}
	fs := cmd.Flags()
	opts.kube.AddFlags(fs)
	fs.BoolVar(&opts.local, "local", false, "boot under QEMU on this machine instead of on a cluster")
	fs.StringArrayVar(&opts.arches, "arch", nil, "verify only these architectures (amd64, arm64, s390x); repeatable")
	fs.IntVar(&opts.workers, "workers", 2, "verifications run at once")
	fs.DurationVar(&opts.timeout, "timeout", 10*time.Minute, "time limit of each image's verification on one architecture")
	fs.BoolVar(&opts.keepOnFailure, "keep-on-failure", false, "keep a VM that failed, for debugging, and say how to reach its console")
	fs.StringVar(&opts.memory, "memory", "1Gi", "guest memory when the image's instancetype is not on the cluster (at least what its preference requires)")
	fs.StringVar(&opts.defaultUser, "default-user", "", "user to log in as, for IMAGE arguments (from the catalog metadata for records on stdin)")
	fs.StringVar(&opts.instancetype, "instancetype", "", "cluster instancetype for IMAGE arguments")
	fs.StringVar(&opts.preference, "preference", "", "cluster preference for IMAGE arguments")
	fs.BoolVar(&opts.efi, "efi", false, "boot IMAGE arguments with UEFI")
	fs.BoolVar(&opts.guestAgent, "guest-agent", false, "IMAGE arguments run qemu-guest-agent: check that it answers")
	fs.BoolVar(&opts.ssh, "ssh", true, "check an SSH login through port-forward; --ssh=false for images without sshd, or clusters that do not allow port-forward")
	fs.StringVar(&opts.qemuMemory, "qemu-memory", "", "guest memory under --local, in QEMU's -m syntax (default 1024)")
	fs.BoolVar(&opts.console, "console", false, "with --local, copy each guest's serial console to stderr")
	opts.Output.ApplyFlags(fs)
	opts.Remote.ApplyFlags(fs)
	cmd.RegisterFlagCompletionFunc("output", option.CompleteOutput) //nolint:errcheck // the flag exists
	cmd.AddCommand(NewPromoteCommand(streams))
	return cmd
}

// subject is one image to verify and what is known of it.
type subject struct {
	rec    pipeline.Record
	ref    target.Reference
	img    verify.Image
	arches []string // the image's architectures
}

// job is one verification: an image on one architecture.
type job struct {
	subject int
	arch    string
}

func runVerify(ctx context.Context, streams cli.Streams, opts *verifyOptions, args []string) error {
	// client-go logs through klog, e.g. when a request is cancelled on
	// Ctrl-C; stderr is for this command's status.
	klog.SetOutput(io.Discard)
	klog.LogToStderr(false)
	status := option.NewStatus(streams.ErrOut, opts.Quiet)
	subjects, err := readSubjects(ctx, streams, opts, args)
	if err != nil {
		return err
	}
	var cluster *verify.Cluster
	var clusterArches []string
	if !opts.local {
		cfg, err := opts.kube.ToRESTConfig()
		if err != nil {
			return cli.Usagef("reading the kubeconfig: %v; expected a cluster to verify on (--kubeconfig, --context), or --local to boot under QEMU", err)
		}
		if cluster, err = verify.NewCluster(cfg); err != nil {
			return err
		}
		if clusterArches, err = cluster.Arches(ctx); err != nil {
			return fmt.Errorf("reading the cluster's nodes at %s: %w", cfg.Host, err)
		}
		if len(clusterArches) == 0 {
			return fmt.Errorf("the cluster at %s has no ready, schedulable node", cfg.Host)
		}
	}

	// Every architecture that the image, the cluster (or QEMU here) and
	// --arch allow.
	var jobs []job
	results := make([][]pipeline.VerifyResult, len(subjects))
	for i, s := range subjects {
		for _, a := range s.arches {
			switch {
			case len(opts.arches) > 0 && !slices.Contains(opts.arches, a):
			case opts.local && a != "amd64" && a != "arm64":
				status.Printf("Skipping %s %s: --local boots amd64 and arm64", s.ref, a)
			case !opts.local && !slices.Contains(clusterArches, a):
				status.Printf("Skipping %s %s: the cluster has no %s node", s.ref, a, a)
			default:
				jobs = append(jobs, job{subject: i, arch: a})
			}
		}
	}
	if len(jobs) == 0 {
		return cli.Usagef("nothing to verify: no image has an architecture that %s and --arch allow", map[bool]string{true: "--local", false: "the cluster's nodes"}[opts.local])
	}

	var mu sync.Mutex
	option.Parallel(ctx, len(jobs), opts.workers, func(i int) {
		j := jobs[i]
		s := subjects[j.subject]
		var r pipeline.VerifyResult
		if opts.local {
			r = verifyLocal(ctx, streams, opts, status, s, j.arch)
		} else {
			r = verifyCluster(ctx, cluster, opts, status, s, j.arch)
		}
		if r.Passed {
			status.Printf("Passed %s %s in %.1fs", s.ref, j.arch, r.Seconds)
		} else {
			status.Printf("Failed %s %s: %s", s.ref, j.arch, r.Error)
		}
		mu.Lock()
		results[j.subject] = append(results[j.subject], r)
		mu.Unlock()
	})
	if err := ctx.Err(); err != nil {
		return err
	}

	var failed []string
	var out []pipeline.Record
	for i, s := range subjects {
		rs := results[i]
		sort.Slice(rs, func(a, b int) bool { return archOrder(rs[a].Arch) < archOrder(rs[b].Arch) })
		v := &pipeline.Verify{Passed: len(rs) > 0, Results: rs}
		for _, r := range rs {
			if !r.Passed {
				v.Passed = false
				failed = append(failed, fmt.Sprintf("%s %s: %s", s.ref, r.Arch, r.Error))
			}
		}
		rec := s.rec
		rec.Verify = v
		out = append(out, rec)
	}
	if err := printResults(streams.Out, opts.Format, out); err != nil {
		return err
	}
	if len(failed) > 0 {
		return &cli.PartialError{Failed: failed, Total: len(jobs)}
	}
	return nil
}

func archOrder(a string) int {
	if i := slices.Index(containerdisk.Architectures, a); i >= 0 {
		return i
	}
	return len(containerdisk.Architectures)
}

// readSubjects reads the images from the arguments or stdin and learns
// their architectures from their index.
func readSubjects(ctx context.Context, streams cli.Streams, opts *verifyOptions, args []string) ([]subject, error) {
	var recs []pipeline.Record
	if len(args) > 0 {
		for _, a := range args {
			recs = append(recs, pipeline.Record{Reference: a})
		}
	} else {
		err := pipeline.Decode(streams.In, func(r pipeline.Record, invalid error) error {
			if r.Error != "" {
				return nil
			}
			if invalid != nil {
				// Its fields would make no valid reference or
				// digest: an input error, before any VM starts.
				return invalid
			}
			recs = append(recs, r)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			return nil, cli.Usagef("no images on stdin: expected the JSON lines of 'kubectl containerdisk push -o json'")
		}
	}
	var subjects []subject
	for _, rec := range recs {
		ref, err := target.Parse(rec.Reference)
		if err != nil {
			return nil, err
		}
		if rec.Digest != "" {
			// Exactly what was pushed, whatever the tag says by now.
			ref = ref.WithReference(rec.Digest)
		}
		if ref.Reference == "" {
			return nil, cli.Usagef("image %q has no tag or digest: expected IMAGE:TAG or IMAGE@DIGEST", rec.Reference)
		}
		s := subject{rec: rec, ref: ref, img: verify.Image{
			Reference:    ref.String(),
			DefaultUser:  opts.defaultUser,
			Instancetype: opts.instancetype,
			Preference:   opts.preference,
			EFI:          opts.efi,
			GuestAgent:   opts.guestAgent,
		}}
		if m := rec.Metadata; m != nil {
			s.img.DefaultUser = m.DefaultUser
			s.img.Instancetype = m.Instancetype
			s.img.Preference = m.Preference
			s.img.EFI = m.EFI
			s.img.GuestAgent = m.GuestAgent
		}
		if s.arches, err = imageArches(ctx, ref, opts); err != nil {
			return nil, err
		}
		s.img.Arches = s.arches
		subjects = append(subjects, s)
	}
	return subjects, nil
}

// imageArches reads the architectures of an image: its index's platforms,
// or its one config's.
func imageArches(ctx context.Context, ref target.Reference, opts *verifyOptions) ([]string, error) {
	src, err := target.OpenSource(ctx, ref, opts.Remote.Options())
	if err != nil {
		return nil, err
	}
	if c, ok := src.(io.Closer); ok {
		// An archive holds its file open.
		defer c.Close()
	}
	root, err := src.Resolve(ctx, ref.Reference)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", ref, err)
	}
	platforms, err := verify.Platforms(ctx, src, root)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	return platforms, nil
}

func verifyCluster(ctx context.Context, c *verify.Cluster, opts *verifyOptions, status *option.Status, s subject, arch string) pipeline.VerifyResult {
	copts := verify.DefaultClusterOptions()
	ns, _, err := opts.kube.ToRawKubeConfigLoader().Namespace()
	if err == nil && ns != "" {
		copts.Namespace = ns
	}
	copts.Timeout = opts.timeout
	copts.Memory = opts.memory
	copts.KeepOnFailure = opts.keepOnFailure
	copts.SkipSSH = !opts.ssh
	copts.Log = func(format string, args ...any) {
		status.Printf("%s %s: %s", s.ref, arch, fmt.Sprintf(format, args...))
	}
	res := c.Verify(ctx, s.img, arch, copts)
	out := pipeline.VerifyResult{
		Arch: arch, Mode: "cluster", Phase: string(res.Phase), Passed: res.Error == "",
		Seconds: res.Duration.Seconds(), Error: res.Error, KeptVM: res.VM,
	}
	for _, c := range res.Checks {
		out.Checks = append(out.Checks, pipeline.VerifyCheck{Name: c.Name, Passed: c.Passed, Seconds: c.Duration.Seconds(), Error: c.Error})
	}
	return out
}

func verifyLocal(ctx context.Context, streams cli.Streams, opts *verifyOptions, status *option.Status, s subject, arch string) pipeline.VerifyResult {
	start := time.Now()
	out := pipeline.VerifyResult{Arch: arch, Mode: "local"}
	fail := func(err error) pipeline.VerifyResult {
		out.Error = err.Error()
		out.Seconds = time.Since(start).Seconds()
		return out
	}
	dir, err := os.MkdirTemp("", "containerdisk-verify-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	src, err := target.OpenSource(ctx, s.ref, opts.Remote.Options())
	if err != nil {
		return fail(err)
	}
	if c, ok := src.(io.Closer); ok {
		defer c.Close()
	}
	root, err := src.Resolve(ctx, s.ref.Reference)
	if err != nil {
		return fail(fmt.Errorf("resolving %s: %w", s.ref, err))
	}
	status.Printf("Pulling %s %s", s.ref, arch)
	disk, err := verify.ExtractDisk(ctx, src, root, arch, dir)
	if err != nil {
		return fail(err)
	}
	out.Phase = "Pulled"
	var console io.Writer
	if opts.console {
		console = streams.ErrOut
	}
	// The user-data a cluster VM gets: the default user with a fresh key,
	// and the marker printed on the consoles.
	_, authorized, err := verify.NewKey()
	if err != nil {
		return fail(err)
	}
	userData := verify.UserData{User: s.img.DefaultUser, AuthorizedKeys: []string{authorized}, Marker: verify.Marker}
	status.Printf("Booting %s %s under QEMU", s.ref, arch)
	res, err := verify.BootLocal(ctx, verify.LocalOptions{
		Disk:     disk,
		Arch:     arch,
		UserData: []byte(userData.CloudConfig()),
		Marker:   verify.Marker,
		Timeout:  opts.timeout,
		Memory:   opts.qemuMemory,
		Console:  console,
	})
	check := pipeline.VerifyCheck{Name: "boot", Passed: res.Passed, Seconds: res.BootTime.Seconds()}
	if err != nil {
		check.Error = err.Error()
		out.Checks = append(out.Checks, check)
		return fail(err)
	}
	out.Checks = append(out.Checks, check)
	out.Phase = "Booted"
	out.Passed = res.Passed
	out.Seconds = time.Since(start).Seconds()
	if !res.Passed {
		out.Error = "the marker did not appear on the console"
	}
	return out
}

func printResults(w io.Writer, format string, recs []pipeline.Record) error {
	switch format {
	case "json":
		enc := pipeline.NewEncoder(w)
		for _, r := range recs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	case "yaml":
		for _, r := range recs {
			b, err := yaml.Marshal(r)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "---\n%s", b); err != nil {
				return err
			}
		}
		return nil
	}
	for _, r := range recs {
		for _, v := range r.Verify.Results {
			state := "passed"
			if !v.Passed {
				state = "failed: " + firstLine(v.Error)
			}
			var checks []string
			for _, c := range v.Checks {
				checks = append(checks, c.Name)
			}
			fmt.Fprintf(w, "%s %s %s %s (%.1fs) %s\n", r.Reference, v.Arch, v.Mode, v.Phase, v.Seconds, strings.TrimSpace(state+" "+strings.Join(checks, ",")))
		}
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// Main runs the command as the process and returns its exit code.
func Main() int { return cli.Main(NewCommand) }

package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/klog/v2"
	"oras.land/oras-go/v2/errdef"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/fanout"
	"github.com/containerdisk/kubectl-containerdisk/pkg/inputerr"
	pl "github.com/containerdisk/kubectl-containerdisk/pkg/pipeline"
	"github.com/containerdisk/kubectl-containerdisk/pkg/publish"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/pkg/transfer"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/option"
)

// runPrint writes the ConfigMap and the Jobs as YAML.
func runPrint(ctx context.Context, streams cli.Streams, opts *pipelineOptions) error {
	status := option.NewStatus(streams.ErrOut, opts.Quiet)
	p, err := gather(ctx, opts, status)
	if err != nil {
		return err
	}
	var tasks []fanout.Task
	var failed []string
	for _, g := range p.groups {
		if err := buildable(p, g); err != nil {
			failed = append(failed, pl.Show(g.Key())+": "+err.Error())
			status.Printf("Failed %s: %s", pl.Show(g.Key()), cli.Explain(err))
			continue
		}
		for _, r := range g.Releases {
			tasks = append(tasks, opts.task(p, r))
		}
	}
	if err := fanout.WriteYAML(streams.Out, fanout.Render(opts.spec(p, *opts.kube.Namespace, ""), tasks)); err != nil {
		return err
	}
	if len(failed) > 0 {
		return &cli.PartialError{Failed: failed, Total: len(p.groups)}
	}
	if len(p.groups) == 0 {
		status.Printf("nothing to build: no catalog entry matches %s", strings.Join(opts.Catalog.Selection().Focus, ", "))
	}
	return nil
}

// buildable is why g cannot be built, or nil.
func buildable(p *plan, g catalog.Group) error {
	if err := p.errs[g.Key()]; err != nil {
		return err
	}
	// Only the catalog file travels to the Jobs, in a ConfigMap: a spec
	// that reads host files would fail in every Job.
	for _, r := range g.Releases {
		if r.Customize == nil {
			continue
		}
		if files := r.Customize.HostFiles(); len(files) > 0 {
			f := files[0]
			return inputerr.Errorf("customize %s: %s reads the host file %q, which the Jobs do not have (only the catalog file reaches them): put small files in with write, or build this entry with build --catalog", f.Field, f.Command, f.Path)
		}
	}
	return pl.ValidateGroup(g)
}

// entry is one name:version of an in-cluster run.
type entry struct {
	g   catalog.Group
	ref target.Reference
	// staged are the architectures in staging; jobs the index in the
	// run's Jobs of each architecture still to build.
	staged []publish.Staged
	jobs   map[string]int
	done   *publish.Outcome
}

// runInCluster builds what changed as Jobs and publishes it.
func runInCluster(ctx context.Context, streams cli.Streams, opts *pipelineOptions) error {
	// client-go logs to stderr on its own (throttling, watch restarts);
	// stderr is for this command's status.
	klog.SetOutput(io.Discard)
	klog.LogToStderr(false)
	status := option.NewStatus(streams.ErrOut, opts.Quiet)
	opts.Remote.Log = status.Printf
	cfg, err := opts.kube.ToRESTConfig()
	if err != nil {
		return cli.Usagef("reading the kubeconfig: %v; expected a cluster to run the Jobs on (--kubeconfig, --context), or --print to write them as YAML", err)
	}
	kube, err := fanout.NewClient(cfg)
	if err != nil {
		return err
	}
	ns, _, err := opts.kube.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return cli.Usagef("reading the namespace from the kubeconfig: %v", err)
	}
	p, err := gather(ctx, opts, status)
	if err != nil {
		return err
	}
	staging, _ := target.Parse(opts.staging)
	to, _ := target.Parse(opts.to)
	remote := opts.Remote.Options()

	entries := make([]*entry, len(p.groups))
	var tasks []fanout.Task
	for i, g := range p.groups {
		e := &entry{g: g, ref: to.Join(g.Name).WithReference(g.Version), jobs: map[string]int{}}
		entries[i] = e
		if err := buildable(p, g); err != nil {
			e.fail(err)
			continue
		}
		src, err := target.OpenSource(ctx, e.ref, remote)
		if err != nil {
			e.fail(err)
			continue
		}
		published, err := publish.ReadPublished(ctx, src, g.Version)
		if err != nil {
			e.fail(err)
			continue
		}
		if published.UpToDate(g) {
			status.Printf("%s is up to date", e.ref)
			rec := pl.Record{Name: g.Name, Version: g.Version, Latest: g.Latest(), Reference: e.ref.String(), Digest: published.Root.Digest.String(),
				Metadata: &g.Releases[0].Metadata, Push: &pl.Push{Status: publish.StatusUpToDate}}
			e.done = &publish.Outcome{Status: publish.StatusUpToDate, Record: rec}
			continue
		}
		bopts := opts.buildOptions()
		bopts.Created = p.created[g.Key()]
		for _, r := range g.Releases {
			sref := publish.StagingRef(staging, r)
			s, err := target.OpenSource(ctx, sref, remote)
			if err == nil {
				var img publish.Staged
				img.Release, img.Source = r, s
				img.Image, err = publish.ReadStaged(ctx, s, r.Version)
				if err == nil && publish.Reusable(img.Image, r, bopts) {
					status.Printf("Reusing %s %s: it has %s", sref, img.Image.Manifest.Digest, r.Checksum)
					e.staged = append(e.staged, img)
					continue
				}
			}
			if err != nil && !errors.Is(err, errdef.ErrNotFound) {
				status.Printf("Building %s again: %v", sref, err)
			}
			e.jobs[r.Arch] = len(tasks)
			tasks = append(tasks, opts.task(p, r))
		}
	}

	start := time.Now()
	objs := fanout.Render(opts.spec(p, ns, strings.ToLower(utilrand.String(5))), tasks)
	runner := &fanout.Runner{Kube: kube, Timeout: opts.timeout, OnEvent: func(ev fanout.Event) { showEvent(status, ev) }}
	results, err := runner.Run(ctx, objs)
	if err != nil {
		return err
	}
	if len(objs.Jobs) > 0 {
		status.Printf("%d Jobs finished in %s", len(objs.Jobs), time.Since(start).Round(time.Millisecond))
	}

	for _, e := range entries {
		if e.done != nil {
			continue
		}
		if err := e.collect(ctx, objs, results, staging, remote); err != nil {
			e.fail(err)
			continue
		}
		e.publish(ctx, opts, p, staging, remote, status)
	}
	return report(streams, opts, status, entries)
}

func (e *entry) fail(err error) {
	rec := pl.Record{Name: e.g.Name, Version: e.g.Version, Latest: e.g.Latest(), Reference: e.ref.String(), Error: err.Error()}
	e.done = &publish.Outcome{Status: publish.StatusFailed, Record: rec, Err: err}
}

// collect reads the architectures the Jobs built, or says why one was not.
// Each is read by the digest its Job's termination message gives, not by
// its staging tag, which another run may have moved since.
func (e *entry) collect(ctx context.Context, objs fanout.Objects, results map[string]fanout.Result, staging target.Reference, remote target.RemoteOptions) error {
	var errs []error
	for _, r := range e.g.Releases {
		k, ok := e.jobs[r.Arch]
		if !ok {
			continue
		}
		job := objs.Jobs[k].Namespace + "/" + objs.Jobs[k].Name
		res := results[objs.Jobs[k].Name]
		if !res.Succeeded || res.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.Arch, res.Err))
			continue
		}
		sref, err := publish.StagedDigest(res.Message, staging, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: Job %s succeeded, but its termination message does not say what it pushed: %w; expected the JSON line of %s --termination-log %s naming %s and the digest pushed there",
				r.Arch, job, err, BuildCommand, fanout.TerminationLog, publish.StagingRef(staging, r)))
			continue
		}
		s, err := target.OpenSource(ctx, sref, remote)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		img, err := publish.ReadStaged(ctx, s, sref.Reference)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: Job %s succeeded, but reading %s: %w", r.Arch, job, sref, err))
			continue
		}
		e.staged = append(e.staged, publish.Staged{Release: r, Source: s, Image: img})
	}
	return errors.Join(errs...)
}

// publish assembles the entry's index and copies it to --to.
func (e *entry) publish(ctx context.Context, opts *pipelineOptions, p *plan, staging target.Reference, remote target.RemoteOptions, status *option.Status) {
	dst, err := target.Open(ctx, e.ref, remote)
	if err != nil {
		e.fail(err)
		return
	}
	bopts := opts.buildOptions()
	bopts.Created = p.created[e.g.Key()]
	a := &publish.Assembly{
		Options: bopts,
		Now:     opts.now,
		OnEvent: func(ev transfer.Event) { option.WarnKept(status, e.ref.WithReference(""), ev) },
	}
	if staging.Registry == e.ref.Registry {
		for _, r := range e.g.Releases {
			a.MountFrom = append(a.MountFrom, publish.StagingRef(staging, r).Repository)
		}
	}
	o := a.Publish(ctx, e.g, e.staged, e.ref, dst)
	if o.Err == nil {
		status.Printf("Published %s %s as %s", e.ref, o.Record.Digest, strings.Join(o.Record.Tags, ", "))
	}
	e.done = &o
}

// report prints a record or a line per entry and returns the partial
// failure.
func report(streams cli.Streams, opts *pipelineOptions, status *option.Status, entries []*entry) error {
	enc := pl.NewEncoder(streams.Out)
	var failed []string
	counts := map[string]int{}
	for _, e := range entries {
		o := e.done
		counts[o.Status]++
		if o.Err != nil {
			failed = append(failed, pl.Show(e.g.Key())+": "+o.Err.Error())
			status.Printf("Failed %s: %s", pl.Show(e.g.Key()), cli.Explain(o.Err))
		}
		switch {
		case opts.JSON():
			if err := enc.Encode(o.Record); err != nil {
				return err
			}
		case o.Status == publish.StatusPushed:
			fmt.Fprintf(streams.Out, "%s %s\n", o.Record.Reference, o.Record.Digest)
		case o.Status == publish.StatusUpToDate:
			fmt.Fprintf(streams.Out, "%s up to date\n", o.Record.Reference)
		}
	}
	status.Printf("Summary: %d published, %d up to date, %d failed", counts[publish.StatusPushed], counts[publish.StatusUpToDate], counts[publish.StatusFailed])
	if len(failed) > 0 {
		return &cli.PartialError{Failed: failed, Total: len(entries)}
	}
	if len(entries) == 0 {
		status.Printf("nothing to publish: no catalog entry matches %s", strings.Join(opts.Catalog.Selection().Focus, ", "))
	}
	return nil
}

// showEvent tells on stderr how the Jobs go.
func showEvent(status *option.Status, ev fanout.Event) {
	name := ""
	if ev.Job != nil {
		name = ev.Job.Namespace + "/" + ev.Job.Name
	}
	switch {
	case ev.Kind == fanout.EventCreated:
		status.Printf("Created Job %s", name)
	case ev.Kind == fanout.EventSucceeded:
		status.Printf("Job %s succeeded", name)
	case ev.Kind == fanout.EventFailed:
		status.Printf("%v", ev.Err)
	case ev.Kind == fanout.EventDeleted && ev.Err != nil:
		status.Warnf("deleting %s: %v", name, ev.Err)
	}
}

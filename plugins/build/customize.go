package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/customize"
	"github.com/containerdisk/kubectl-containerdisk/pkg/publish"
	"github.com/containerdisk/kubectl-containerdisk/pkg/readlimit"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/option"
)

// loadSpec reads --customize, before anything else is read or written.
func (o *buildOptions) loadSpec(ctx context.Context) error {
	if o.customizeFile == "" {
		return nil
	}
	data, err := readlimit.ReadFile(ctx, o.customizeFile, readlimit.Config, "a customize spec")
	if err != nil {
		return cli.Usagef("--customize: %w", err)
	}
	spec, err := customize.ParseFile(o.customizeFile, data)
	if err != nil {
		return cli.Usagef("customize %w", err)
	}
	o.spec = &spec
	return nil
}

// customizeReleases gives every release the --customize spec. A release
// that has a spec of its own (its catalog file's customize: block) is
// refused: two specs for one disk would leave open which one the image
// records.
func (o *buildOptions) customizeReleases(rels []catalog.Release) error {
	if o.spec == nil {
		return nil
	}
	sum, err := o.spec.InputsDigest(filepath.Dir(o.customizeFile))
	if err != nil {
		return fmt.Errorf("--customize %s: %w", o.customizeFile, err)
	}
	for i := range rels {
		if rels[i].Customize != nil {
			return cli.Usagef("--customize for %s, which its catalog file customizes already: drop --customize, or the entry's customize: block", rels[i].Key())
		}
		rels[i].Customize = o.spec
		rels[i].CustomizeDir = filepath.Dir(o.customizeFile)
		rels[i].CustomizeSum = sum
	}
	return nil
}

// customizeDisks applies the --customize spec to copies of the --disk
// files in work and returns the disks to build. Each base file is checked
// against its --checksum first, and the image records that checksum (of
// the base) with the spec's digest. Architectures this host cannot
// customize are refused before any file is read.
func (o *buildOptions) customizeDisks(ctx context.Context, status *option.Status, disks []containerdisk.Disk, work string) ([]containerdisk.Disk, error) {
	for _, d := range disks {
		if err := o.spec.CheckArch(d.Architecture); err != nil {
			return nil, fmt.Errorf("%s %s: customize: %w", d.Path, d.Architecture, err)
		}
	}
	out := make([]containerdisk.Disk, len(disks))
	errs := make([]error, len(disks))
	var wg sync.WaitGroup
	for i, d := range disks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = o.customizeDisk(ctx, status, d, filepath.Join(work, d.Architecture))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func (o *buildOptions) customizeDisk(ctx context.Context, status *option.Status, d containerdisk.Disk, work string) (containerdisk.Disk, error) {
	sum, err := containerdisk.VerifyChecksum(ctx, d)
	if err != nil {
		return d, err
	}
	if err := os.Mkdir(work, 0o700); err != nil {
		return d, fmt.Errorf("customizing: %w", err)
	}
	res, err := customize.Run(ctx, customize.Request{
		Base:    d.Path,
		Arch:    d.Architecture,
		Spec:    *o.spec,
		WorkDir: work,
		Dir:     filepath.Dir(o.customizeFile),
		Log:     option.CustomizeDiskLog(status, d.Path, d.Architecture),
	})
	if err != nil {
		return d, fmt.Errorf("%s %s: %w", d.Path, d.Architecture, err)
	}
	// The creation time defaults to the disk's modification time: the
	// base's, so that it does not depend on when this ran.
	if fi, err := os.Stat(d.Path); err == nil {
		if err := os.Chtimes(res.Path, fi.ModTime(), fi.ModTime()); err != nil {
			return d, fmt.Errorf("customizing: %w", err)
		}
	}
	if d.Name == "" {
		d.Name = publish.CustomizedName(filepath.Base(d.Path))
	}
	d.Path = res.Path
	d.Checksum = sum
	d.Verified = true
	d.Customize = res.SpecDigest
	return d, nil
}

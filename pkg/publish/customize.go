package publish

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerdisk/kubectl-containerdisk/pkg/catalog"
	"github.com/containerdisk/kubectl-containerdisk/pkg/customize"
)

// customize returns the customized disk of r made from base, its cached
// download: from the cache when a run with the same base checksum, spec
// and architecture made it before, else made now with the libguestfs
// tools on a copy (base is only read) and cached. The cache is
// CacheDir/customized/ALGORITHM-HEX/SPECHEX-ARCH.qcow2, next to the
// downloads, so a rebuild with the same inputs starts no appliance.
func (b *Builder) customize(ctx context.Context, r catalog.Release, base string) (string, error) {
	digest := r.CustomizeDigest()
	dir := filepath.Join(b.CacheDir, "customized", r.Checksum.Algorithm+"-"+r.Checksum.Hex)
	cached := filepath.Join(dir, strings.TrimPrefix(digest, "sha256:")+"-"+r.Arch+".qcow2")
	log := func(line string) {
		if b.Log != nil {
			b.Log(r, line)
		}
	}
	if _, err := os.Stat(cached); err == nil {
		log("customize: using the cached result " + cached)
		return cached, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("customizing: %w", err)
	}
	work, err := os.MkdirTemp(dir, ".work-")
	if err != nil {
		return "", fmt.Errorf("customizing: %w", err)
	}
	defer os.RemoveAll(work)
	res, err := customize.Run(ctx, customize.Request{
		Base:    base,
		Arch:    r.Arch,
		Spec:    *r.Customize,
		WorkDir: work,
		Dir:     r.CustomizeDir,
		Timeout: b.CustomizeTimeout,
		Log:     log,
	})
	if err != nil {
		return "", err
	}
	// The image's creation time comes from the disk's modification
	// time: the base's, so that it does not depend on when this ran.
	if fi, err := os.Stat(base); err == nil {
		if err := os.Chtimes(res.Path, fi.ModTime(), fi.ModTime()); err != nil {
			return "", fmt.Errorf("customizing: %w", err)
		}
	}
	// A rename is atomic: another process sharing the cache sees the
	// whole result or none.
	if err := os.Rename(res.Path, cached); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("caching the customized disk: %w", err)
	}
	return cached, nil
}

// CustomizedName is the name under disk/ of a customized disk, always
// qcow2: the upstream name with a raw or qcow2 extension replaced.
func CustomizedName(name string) string {
	switch ext := filepath.Ext(name); ext {
	case ".raw", ".img", ".qcow2":
		name = strings.TrimSuffix(name, ext)
	}
	return name + ".qcow2"
}

// Command ggcr-build is the reference contender of bench/build-push.sh: it
// builds and pushes a containerdisk the way kubevirt/containerdisks does,
// with go-containerregistry: tarball.LayerFromOpener over an opener that
// streams the uncompressed tar of disk/ and disk/<file> (uid/gid 107), the
// layer appended to empty.Image, the config set, and remote.Write.
//
// It is kept faithful to that approach on purpose: the default compression
// of LayerFromOpener, no precomputed digests, no tuning. It prints the
// pushed digest on stdout.
//
//	ggcr-build DISK HOST/REPO:TAG
package main

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// qemuID is the uid and gid KubeVirt's launcher reads the disk as.
const qemuID = 107

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: ggcr-build DISK HOST/REPO:TAG")
		os.Exit(2)
	}
	if err := run(context.Background(), os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, diskPath, dst string) error {
	// The registry is on loopback and speaks plain HTTP.
	ref, err := name.ParseReference(dst, name.Insecure)
	if err != nil {
		return fmt.Errorf("parsing %q: %w", dst, err)
	}
	layer, err := tarball.LayerFromOpener(diskTarOpener(diskPath))
	if err != nil {
		return fmt.Errorf("creating layer from %s: %w", diskPath, err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return fmt.Errorf("appending layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	cf.OS = "linux"
	cf.Architecture = "amd64"
	cf.Config = v1.Config{
		Labels:     map[string]string{"shasum": "unknown"},
		Env:        []string{"INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.medium"},
		Entrypoint: []string{"no-entrypoint"},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return fmt.Errorf("setting config: %w", err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Println(d)
	return nil
}

// diskTarOpener returns an opener that streams, through a pipe, the
// uncompressed tar of disk/ and disk/<file>. go-containerregistry calls it
// once per pass over the layer (digest, diff ID, upload), so the disk is
// read and tarred again each time, as in kubevirt/containerdisks.
func diskTarOpener(path string) tarball.Opener {
	modTime := time.Now()
	return func() (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		pr, pw := io.Pipe()
		go func() {
			defer f.Close()
			pw.CloseWithError(writeDiskTar(pw, f, fi, modTime))
		}()
		return pr, nil
	}
}

func writeDiskTar(w io.Writer, f io.Reader, fi os.FileInfo, modTime time.Time) error {
	tw := tar.NewWriter(w)
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "disk/", Mode: 0o555, Uid: qemuID, Gid: qemuID,
			Uname: "qemu", Gname: "qemu", ModTime: modTime},
		{Typeflag: tar.TypeReg, Name: "disk/" + filepath.Base(fi.Name()), Mode: 0o444, Size: fi.Size(),
			Uid: qemuID, Gid: qemuID, Uname: "qemu", Gname: "qemu", ModTime: fi.ModTime()},
	}
	if err := tw.WriteHeader(hdrs[0]); err != nil {
		return err
	}
	if err := tw.WriteHeader(hdrs[1]); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("writing %s into the tar: %w", fi.Name(), err)
	}
	return tw.Close()
}

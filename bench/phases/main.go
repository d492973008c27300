// Command phases times the phases of "kubectl containerdisk build" straight
// to a registry, through the same library calls the command makes: packing
// the layer into a temporary file (containerdisk.MakeLayers), then uploading
// it with the config and manifest (Layers.Push) and tagging. It prints wall
// and CPU seconds per phase on stderr and can write a CPU profile, to find
// what limits bench/build-push.sh's ours-* figures.
//
//	phases [-compression gzip|zstd|none] [-temp-dir DIR] [-cpuprofile FILE] DISK HOST/REPO:TAG
//	phases -stream DISK HOST/REPO:TAG
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/pkg/containerdisk"
	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
)

func main() {
	compression := flag.String("compression", "gzip", "layer compression: gzip, zstd or none")
	tempDir := flag.String("temp-dir", "", "directory for the temporary layer file")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of both phases to this file")
	stream := flag.Bool("stream", false, "experiment: gzip layer streamed to the registry while it is made (see stream.go)")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: phases [flags] DISK HOST/REPO:TAG")
		os.Exit(2)
	}
	if *stream {
		if err := runStream(context.Background(), flag.Arg(0), flag.Arg(1)); err != nil {
			fmt.Fprintln(os.Stderr, "Error:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(context.Background(), flag.Arg(0), flag.Arg(1), *compression, *tempDir, *cpuprofile); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, diskPath, dst, compression, tempDir, cpuprofile string) error {
	ref, err := target.Parse(dst)
	if err != nil {
		return err
	}
	c, err := containerdisk.ParseCompression(compression)
	if err != nil {
		return err
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	disks := []containerdisk.Disk{{Architecture: "amd64", Path: diskPath}}
	opts := containerdisk.Options{Compression: c, TempDir: tempDir}

	p := start("layer (read, tar, compress, hash, write temp file)")
	layers, err := containerdisk.MakeLayers(ctx, disks, opts)
	if err != nil {
		return err
	}
	defer layers.Close()
	p.done()

	p = start("upload (layer, config, manifest) and tag")
	dst2, err := target.Open(ctx, ref, target.RemoteOptions{})
	if err != nil {
		return err
	}
	res, err := layers.Push(ctx, dst2)
	if err != nil {
		return err
	}
	if err := dst2.Tag(ctx, res.Root, ref.Reference); err != nil {
		return err
	}
	p.done()
	fmt.Println(res.Root.Digest)
	return nil
}

// phase measures one phase's wall and CPU time (user+sys of the process).
type phase struct {
	name string
	wall time.Time
	cpu  time.Duration
}

func start(name string) phase { return phase{name, time.Now(), cpuTime()} }

func (p phase) done() {
	fmt.Fprintf(os.Stderr, "%-52s %6.2f s wall %6.2f s CPU\n", p.name, time.Since(p.wall).Seconds(), (cpuTime() - p.cpu).Seconds())
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

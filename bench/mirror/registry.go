package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/containerdisk/kubectl-containerdisk/internal/testregistry"
)

// serve runs a registry stored in dir until ctx ends, as hack/registry does,
// and writes its request counts to dir/stats on every SIGUSR1: the script
// reads what each sync asked of the source and of the target.
func serve(ctx context.Context, dir string) error {
	r, err := testregistry.Start(dir)
	if err != nil {
		return err
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	fmt.Println(r.Host)
	for {
		select {
		case <-ctx.Done():
			return r.Close()
		case <-usr1:
			// The script asks between runs, when no client is connected, so
			// no request falls between reading and resetting.
			s := r.Stats()
			r.ResetStats()
			if err := writeStats(filepath.Join(r.Dir, "stats"), s); err != nil {
				fmt.Fprintln(os.Stderr, "Error:", err)
			}
		}
	}
}

// writeStats replaces path with s in one rename, so that a reader waiting
// for the file never sees half of it.
func writeStats(path string, s testregistry.Stats) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(s.String()), 0o644); err != nil {
		return fmt.Errorf("writing stats: %w", err)
	}
	return os.Rename(tmp, path)
}

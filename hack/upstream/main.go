// Command upstream serves the project's fake upstream on loopback for the
// demo and the benchmarks: a build of every curated version, in each
// distribution's real formats, under URL/NAME. It prints the URL on stdout
// and serves until it is interrupted.
//
//	upstream DIR [DISTRO ARGS...]
//
// With DISTRO ARGS it publishes that one build into DIR (see
// testupstream.Site.Publish) and exits, so a running server sees a new
// release appear.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/containerdisk/kubectl-containerdisk/internal/testupstream"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: upstream DIR [DISTRO ARGS...]")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func run(dir string, publish []string) error {
	site, err := testupstream.New(dir)
	if err != nil {
		return err
	}
	if len(publish) > 0 {
		return site.Publish(publish[0], publish[1:]...)
	}
	if err := site.PublishCurated(time.Now()); err != nil {
		return err
	}
	u, err := site.Start()
	if err != nil {
		return err
	}
	fmt.Println(u)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return site.Close()
}

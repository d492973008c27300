// Command mirrorbench is the helper of bench/mirror.sh: it makes the data set
// the mirror benchmark copies, serves registries that count their requests,
// and checks that a target holds a complete copy of the source.
//
//	mirrorbench fill DIR GIB > LIST      fill a registry stored in DIR with the data set
//	mirrorbench registry DIR             serve a registry stored in DIR (prints its host)
//	mirrorbench check SRC DST LIST       check that DST holds every image of LIST as SRC does
//
// LIST has one "REPOSITORY TAG" a line. The registry is the project's
// in-process test registry (internal/testregistry), plain HTTP on loopback,
// as hack/registry serves it; on SIGUSR1 it writes the request counts since
// the last SIGUSR1 (or its start) to DIR/stats and starts counting anew.
//
// It lives in a module of its own so that its requirements never enter the
// main module's or the other benchmarks' go.mod; its path under the main
// module lets it import the main module's internal/ packages.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

const usage = `usage:
  mirrorbench fill DIR GIB > LIST
  mirrorbench registry DIR
  mirrorbench check SRC DST LIST`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError("no command")
	}
	switch cmd, args := args[0], args[1:]; cmd {
	case "fill":
		if len(args) != 2 {
			return usageError("fill takes DIR GIB")
		}
		gib, err := strconv.ParseFloat(args[1], 64)
		if err != nil || gib <= 0 {
			return usageError(fmt.Sprintf("fill: size %q: expected a positive number of GiB such as 2 or 0.25", args[1]))
		}
		return fill(ctx, os.Stdout, args[0], gib)
	case "registry":
		if len(args) != 1 {
			return usageError("registry takes DIR")
		}
		return serve(ctx, args[0])
	case "check":
		if len(args) != 3 {
			return usageError("check takes SRC DST LIST")
		}
		return check(ctx, args[0], args[1], args[2])
	default:
		return usageError(fmt.Sprintf("unknown command %q", cmd))
	}
}

func usageError(msg string) error {
	return fmt.Errorf("%s\n%s", msg, usage)
}

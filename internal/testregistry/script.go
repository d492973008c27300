package testregistry

import (
	"fmt"
	"path/filepath"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"
)

// scriptUsage is the usage message of the registry script command.
const scriptUsage = "usage: registry [stats|reset]"

// ScriptCmd returns the testscript command `registry`, for Params.Cmds:
//
//	registry        start a registry storing under $WORK/.registry, set
//	                $REGISTRY to its host and stop it when the script ends
//	registry stats  print its Stats to stdout, lines "key value"
//	                (see [Stats.String]), e.g. "blob-bytes-in 0"
//	registry reset  set its Stats to zero
//
// A script has at most one registry. The command cannot be negated.
func ScriptCmd() func(ts *testscript.TestScript, neg bool, args []string) {
	var (
		mu   sync.Mutex
		regs = map[*testscript.TestScript]*Registry{}
	)
	running := func(ts *testscript.TestScript) *Registry {
		mu.Lock()
		defer mu.Unlock()
		return regs[ts]
	}
	return func(ts *testscript.TestScript, neg bool, args []string) {
		if neg {
			ts.Fatalf("registry cannot be negated with !; %s", scriptUsage)
		}
		if len(args) > 1 {
			ts.Fatalf("%s", scriptUsage)
		}
		r := running(ts)
		if len(args) == 0 {
			if r != nil {
				ts.Fatalf("registry already running at %s", r.Host)
			}
			r, err := Start(filepath.Join(ts.Getenv("WORK"), ".registry"))
			ts.Check(err)
			mu.Lock()
			regs[ts] = r
			mu.Unlock()
			ts.Defer(func() {
				mu.Lock()
				delete(regs, ts)
				mu.Unlock()
				// Fatalf would panic out of the script's end; the log is
				// what is left.
				if err := r.Close(); err != nil {
					ts.Logf("%v", err)
				}
			})
			ts.Setenv("REGISTRY", r.Host)
			return
		}
		if r == nil {
			ts.Fatalf("registry %s: no registry running; run `registry` first", args[0])
		}
		switch args[0] {
		case "stats":
			_, err := fmt.Fprint(ts.Stdout(), r.Stats())
			ts.Check(err)
		case "reset":
			r.ResetStats()
		default:
			ts.Fatalf("unknown registry subcommand %q; %s", args[0], scriptUsage)
		}
	}
}

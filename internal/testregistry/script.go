package testregistry

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"
)

// scriptUsage is the usage message of the registry script command.
const scriptUsage = "usage: registry [-name NAME] [-tls] [-auth USER:PASSWORD] | registry [-name NAME] stats|reset"

// ScriptCmd returns the testscript command `registry`, for Params.Cmds:
//
//	registry        start a registry storing under $WORK/.registry, set
//	                $REGISTRY to its host and stop it when the script ends
//	registry -tls   the same over HTTPS with a new CA, whose certificate
//	                file is in $REGISTRY_CA
//	registry -auth USER:PASSWORD
//	                the same, asking for that login
//	registry stats  print its Stats to stdout, lines "key value"
//	                (see [Stats.String]), e.g. "blob-bytes-in 0"
//	registry reset  set its Stats to zero
//	registry -name NAME …
//	                the same for a second (third, …) registry of the
//	                script, whose host is in $REGISTRY_NAME (upper case)
//
// The command cannot be negated.
func ScriptCmd() func(ts *testscript.TestScript, neg bool, args []string) {
	type key struct {
		ts   *testscript.TestScript
		name string
	}
	var (
		mu   sync.Mutex
		regs = map[key]*Registry{}
	)
	return func(ts *testscript.TestScript, neg bool, args []string) {
		if neg {
			ts.Fatalf("registry cannot be negated with !; %s", scriptUsage)
		}
		name := ""
		if len(args) > 1 && args[0] == "-name" {
			name, args = args[1], args[2:]
		}
		k := key{ts, name}
		running := func() *Registry {
			mu.Lock()
			defer mu.Unlock()
			return regs[k]
		}
		env := "REGISTRY"
		dir := ".registry"
		if name != "" {
			env += "_" + strings.ToUpper(name)
			dir += "-" + name
		}
		var opts Options
		starting := len(args) == 0
		for len(args) > 0 && strings.HasPrefix(args[0], "-") {
			starting = true
			switch {
			case args[0] == "-tls":
				opts.TLS = true
				args = args[1:]
			case args[0] == "-auth" && len(args) > 1 && strings.Contains(args[1], ":"):
				opts.Username, opts.Password, _ = strings.Cut(args[1], ":")
				args = args[2:]
			default:
				ts.Fatalf("%s", scriptUsage)
			}
		}
		if (starting && len(args) > 0) || len(args) > 1 {
			ts.Fatalf("%s", scriptUsage)
		}
		r := running()
		if starting {
			if r != nil {
				ts.Fatalf("registry already running at %s", r.Host)
			}
			r, err := StartWithOptions(filepath.Join(ts.Getenv("WORK"), dir), opts)
			ts.Check(err)
			mu.Lock()
			regs[k] = r
			mu.Unlock()
			ts.Defer(func() {
				mu.Lock()
				delete(regs, k)
				mu.Unlock()
				// Fatalf would panic out of the script's end; the log is
				// what is left.
				if err := r.Close(); err != nil {
					ts.Logf("%v", err)
				}
			})
			ts.Setenv(env, r.Host)
			ts.Setenv(env+"_CA", r.CAFile)
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

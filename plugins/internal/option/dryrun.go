package option

import "github.com/spf13/pflag"

// DryRunKind says what a command writes, which chooses the default of its
// --dry-run.
type DryRunKind int

const (
	// Publishes is a command that publishes (push, promote, docs publish):
	// what it writes is seen by every user of the registry at once, so it
	// is a dry run unless --dry-run=false.
	Publishes DryRunKind = iota
	// Syncs is a command that keeps copies in sync (mirror, mirror import,
	// mirror preload): it copies images published elsewhere, digests
	// unchanged, and mostly runs unattended (--interval, --schedule, a
	// CronJob), where a default dry run would copy nothing and say so only
	// in a log. It writes unless --dry-run, as skopeo sync does.
	Syncs
)

// Usage endings of --dry-run, by kind: the default and why.
const (
	dryRunPublishes = "; the default, as for every command that publishes: --dry-run=false writes"
	dryRunSyncs     = "; off by default, as in skopeo sync: a sync mostly runs unattended, where a default dry run would copy nothing"
)

// AddDryRun adds --dry-run to fs, bound to p, with the default of kind.
// plan says what a dry run prints, e.g. "what would be sent and tagged".
func AddDryRun(fs *pflag.FlagSet, p *bool, kind DryRunKind, plan string) {
	usage := "print " + plan + ", and write nothing"
	switch kind {
	case Publishes:
		fs.BoolVar(p, "dry-run", true, usage+dryRunPublishes)
	case Syncs:
		fs.BoolVar(p, "dry-run", false, usage+dryRunSyncs)
	}
}

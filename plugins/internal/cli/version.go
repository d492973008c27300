package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Commit is the source revision of the release, set at link time with
// -ldflags "-X github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli.Commit=0123abc".
// Left empty, it is the revision the go command stamped into the binary, if
// any.
var Commit = ""

// commit returns Commit, else the revision the go command recorded when it
// built from a Git checkout, else "unknown".
func commit() string {
	if Commit != "" {
		return Commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return rev
		}
	}
	return "unknown"
}

// VersionText is what "version" and --version print for the command called
// name: its release, commit, Go version and platform, one a line.
func VersionText(name string) string {
	return fmt.Sprintf("%s %s\ncommit: %s\ngo: %s\nplatform: %s/%s\n",
		name, Version, commit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// addVersion gives cmd a --version flag printing VersionText. The flag is
// declared here, without cobra's -v shorthand, so that -v stays free. A
// command with a --version of its own (build's is the image's version)
// keeps it, and its release is told by "kubectl containerdisk version".
func addVersion(cmd *cobra.Command, name string) {
	if cmd.Flags().Lookup("version") != nil {
		return
	}
	cmd.Version = Version
	cmd.Flags().Bool("version", false, "print the version, commit, Go version and platform")
	// A version template is a text/template: escape what the text holds.
	cmd.SetVersionTemplate(`{{"` + templateEscape(VersionText(name)) + `"}}`)
}

func templateEscape(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '"':
			out = append(out, '\\', c)
		case '\n':
			out = append(out, '\\', 'n')
		default:
			out = append(out, c)
		}
	}
	return string(out)
}

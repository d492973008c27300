// Package option holds the flag groups that subcommands share. Each group
// adds its flags with ApplyFlags and checks them with Parse.
package option

import (
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/containerdisk/kubectl-containerdisk/pkg/target"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
)

// Remote holds the flags for reaching registries.
type Remote struct {
	PlainHTTP      bool
	Insecure       bool
	CAFile         string
	RegistryConfig string
	// StallTimeout is how long a registry may make no progress on a
	// request; 0 for no limit.
	StallTimeout time.Duration
	// Log, when set, is told of retried requests and resumed uploads.
	Log func(format string, args ...any)

	plainHTTPSet bool
}

// ApplyFlags adds the registry flags.
func (o *Remote) ApplyFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.PlainHTTP, "plain-http", false, "use HTTP instead of HTTPS for registries (the default for localhost and 127.0.0.1)")
	fs.BoolVar(&o.Insecure, "insecure", false, "skip TLS certificate verification for registries")
	fs.StringVar(&o.CAFile, "ca-file", "", "PEM file of certificate authorities to trust for registries")
	fs.StringVar(&o.RegistryConfig, "registry-config", "", "Docker config file with registry credentials (default $DOCKER_CONFIG/config.json or ~/.docker/config.json)")
	fs.DurationVar(&o.StallTimeout, "stall-timeout", target.DefaultStallTimeout, "fail a registry request that makes no progress for this long: no connection, no answer, or less than 16 KiB moved (a slow transfer that keeps moving is not limited); 0 waits forever")
}

// Parse records which flags were given, checks them and reads --ca-file,
// so that a wrong one is a usage error before anything is sent.
func (o *Remote) Parse(cmd *cobra.Command) error {
	o.plainHTTPSet = cmd.Flags().Changed("plain-http")
	if o.StallTimeout < 0 {
		return cli.Usagef("--stall-timeout %v: expected a duration such as 30s or 2m, or 0 for no limit", o.StallTimeout)
	}
	if o.CAFile != "" {
		if _, err := target.LoadCAFile(cmd.Context(), o.CAFile); err != nil {
			return cli.Usagef("--ca-file: %w", err)
		}
	}
	return nil
}

// Options returns the target package's options.
func (o *Remote) Options() target.RemoteOptions {
	opts := target.RemoteOptions{
		Insecure:       o.Insecure,
		CAFile:         o.CAFile,
		RegistryConfig: o.RegistryConfig,
		StallTimeout:   o.StallTimeout,
		UserAgent:      "kubectl-containerdisk",
		Log:            o.Log,
	}
	if o.StallTimeout == 0 {
		opts.StallTimeout = -1 // no limit
	}
	if o.plainHTTPSet {
		v := o.PlainHTTP
		opts.PlainHTTP = &v
	}
	return opts
}

package verify

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Marker is the line a verification guest prints to its consoles once
// its user-data has run: seeing it proves that the disk booted and that
// cloud-init (or the #! script) read the NoCloud seed.
const Marker = "KUBECTL-CONTAINERDISK-VERIFY-BOOTED"

// DefaultUser is the user a verification VM logs in as when the image's
// default user is not known: cloud-init creates it as the default user.
const DefaultUser = "verify"

// consoles are the devices the marker is written to: /dev/console reaches
// only the last console= of the kernel command line, and KubeVirt's serial
// console is ttyS0 (x86), ttyAMA0 (arm64) or hvc0/ttysclp0 (s390x).
var consoles = []string{"/dev/console", "/dev/ttyS0", "/dev/ttyAMA0", "/dev/hvc0", "/dev/ttysclp0"}

// UserData is the NoCloud user-data given to a verification guest.
type UserData struct {
	// User is the user to log in as; DefaultUser when empty.
	User string
	// AuthorizedKeys are public keys in authorized_keys format
	// ("ssh-ed25519 AAAA… comment") that may log in as User.
	AuthorizedKeys []string
	// Marker is printed to the consoles once the user-data has run;
	// the package's Marker when empty.
	Marker string
}

func (u UserData) user() string {
	if u.User == "" {
		return DefaultUser
	}
	return u.User
}

func (u UserData) marker() string {
	if u.Marker == "" {
		return Marker
	}
	return u.Marker
}

// markerCommand writes the marker to every console that exists, so that
// whichever one is being read shows it.
func (u UserData) markerCommand() string {
	return fmt.Sprintf("for c in %s; do [ -w \"$c\" ] && echo %s >\"$c\"; done; true",
		strings.Join(consoles, " "), shellQuote(u.marker()))
}

// cloudConfig is the subset of cloud-init's #cloud-config schema used here.
type cloudConfig struct {
	// User overrides the name of the distribution's default user, which
	// keeps its groups and passwordless sudo.
	User              string   `yaml:"user"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys,omitempty"`
	SSHPasswordAuth   bool     `yaml:"ssh_pwauth"`
	Runcmd            []string `yaml:"runcmd"`
}

// CloudConfig returns the user-data as a #cloud-config document: the
// default user named User with AuthorizedKeys, and a runcmd that prints
// the marker to the consoles.
func (u UserData) CloudConfig() string {
	doc, err := yaml.Marshal(cloudConfig{
		User:              u.user(),
		SSHAuthorizedKeys: u.AuthorizedKeys,
		Runcmd:            []string{u.markerCommand()},
	})
	if err != nil {
		// Marshalling a struct of strings cannot fail.
		panic(fmt.Sprintf("marshalling cloud-config: %v", err))
	}
	return "#cloud-config\n" + string(doc)
}

// Script returns the user-data as a #!/bin/sh script that prints the same
// marker, for guests that run a script rather than cloud-config (and for
// cloud-init, which runs it too). It creates no user and installs no key:
// it proves only that the disk boots and reads its seed.
func (u UserData) Script() string {
	return "#!/bin/sh\n" + u.markerCommand() + "\n"
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

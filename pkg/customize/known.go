package customize

// The names below are those of guestfs-tools 1.48 (Debian 12). A test
// compares them with what the installed virt-customize and virt-sysprep
// report, so a new or removed name shows up as a failing test rather than as
// a spec that validates here and fails in the tool.

// commandArgs maps each virt-customize command accepted in a
// --commands-from-file line to whether it takes an argument. These are the
// customization options of virt-customize(1), without the leading "--";
// options about the run itself (--add, --format, --network, --memsize…)
// are not commands, and the spec sets them.
var commandArgs = map[string]bool{
	"append-line":        true,
	"chmod":              true,
	"commands-from-file": true,
	"copy":               true,
	"copy-in":            true,
	"delete":             true,
	"edit":               true,
	"firstboot":          true,
	"firstboot-command":  true,
	"firstboot-install":  true,
	"hostname":           true,
	"install":            true,
	"link":               true,
	"mkdir":              true,
	"move":               true,
	"no-logfile":         false,
	"password":           true,
	"password-crypto":    true,
	"root-password":      true,
	"run":                true,
	"run-command":        true,
	"scrub":              true,
	"selinux-relabel":    false,
	"sm-attach":          true,
	"sm-credentials":     true,
	"sm-register":        false,
	"sm-remove":          false,
	"sm-unregister":      false,
	"ssh-inject":         true,
	"timezone":           true,
	"touch":              true,
	"truncate":           true,
	"truncate-recursive": true,
	"uninstall":          true,
	"update":             false,
	"upload":             true,
	"write":              true,
}

// refusedCommands are virt-customize commands a spec may not use, with the
// reason. A nested commands file would hide lines from validation, from the
// architecture check and from the spec digest.
var refusedCommands = map[string]string{
	"commands-from-file": "its lines would escape validation and the spec digest: put them in commands",
}

// guestExecCommands are the virt-customize commands that run programs of the
// guest (through the appliance's chroot into it), so they need a host whose
// CPU runs the guest's binaries: virt-customize refuses them otherwise ("host
// cpu and guest arch are not compatible"). Everything else is done by the
// appliance on the guest's files: firstboot-* only installs a script, and
// selinux-relabel falls back to touching /.autorelabel on a foreign guest.
var guestExecCommands = map[string]bool{
	"install":       true,
	"run":           true,
	"run-command":   true,
	"sm-attach":     true,
	"sm-register":   true,
	"sm-remove":     true,
	"sm-unregister": true,
	"uninstall":     true,
	"update":        true,
}

// sysprepOperations maps each virt-sysprep operation to whether it is one of
// the defaults (what virt-sysprep runs without --operations), as
// `virt-sysprep --list-operations` prints them.
var sysprepOperations = map[string]bool{
	"abrt-data":               true,
	"backup-files":            true,
	"bash-history":            true,
	"blkid-tab":               true,
	"ca-certificates":         false,
	"crash-data":              true,
	"cron-spool":              true,
	"customize":               true,
	"dhcp-client-state":       true,
	"dhcp-server-state":       true,
	"dovecot-data":            true,
	"firewall-rules":          false,
	"flag-reconfiguration":    false,
	"fs-uuids":                false,
	"ipa-client":              true,
	"kerberos-data":           false,
	"kerberos-hostkeytab":     true,
	"logfiles":                true,
	"lvm-uuids":               true,
	"machine-id":              true,
	"mail-spool":              true,
	"net-hostname":            true,
	"net-hwaddr":              true,
	"net-nmconn":              true,
	"pacct-log":               true,
	"package-manager-cache":   true,
	"pam-data":                true,
	"passwd-backups":          true,
	"puppet-data-log":         true,
	"rh-subscription-manager": true,
	"rhn-systemid":            true,
	"rpm-db":                  true,
	"samba-db-log":            true,
	"script":                  true,
	"smolt-uuid":              true,
	"ssh-hostkeys":            true,
	"ssh-userdir":             true,
	"sssd-db-log":             true,
	"tmp-files":               true,
	"udev-persistent-net":     true,
	"user-account":            false,
	"utmp":                    true,
	"yum-uuid":                true,
}

// sysprepSpecial are the words virt-sysprep --operations accepts besides
// operation names: the default set and every operation.
var sysprepSpecial = map[string]bool{"defaults": true, "all": true}

// libguestfsArch maps the OCI architecture names of disks to the names
// libguestfs inspection reports, for messages.
var libguestfsArch = map[string]string{
	"amd64":   "x86_64",
	"arm64":   "aarch64",
	"s390x":   "s390x",
	"ppc64le": "ppc64le",
	"riscv64": "riscv64",
}

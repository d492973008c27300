package verify

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestUserDataCloudConfig(t *testing.T) {
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl kubectl-containerdisk-verify"
	tests := []struct {
		name       string
		ud         UserData
		wantUser   string
		wantMarker string
	}{
		{"the image's user", UserData{User: "fedora", AuthorizedKeys: []string{key}}, "fedora", Marker},
		{"no user known", UserData{AuthorizedKeys: []string{key}}, DefaultUser, Marker},
		{"a marker to quote", UserData{User: "ubuntu", AuthorizedKeys: []string{key}, Marker: `it's "booted"; rm -rf /`}, "ubuntu", `it's "booted"; rm -rf /`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := tt.ud.CloudConfig()
			if !strings.HasPrefix(doc, "#cloud-config\n") {
				t.Fatalf("user-data does not begin with #cloud-config:\n%s", doc)
			}
			var got struct {
				User              string   `yaml:"user"`
				SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys"`
				SSHPasswordAuth   *bool    `yaml:"ssh_pwauth"`
				Runcmd            []string `yaml:"runcmd"`
			}
			if err := yaml.Unmarshal([]byte(doc), &got); err != nil {
				t.Fatalf("user-data is not YAML: %v\n%s", err, doc)
			}
			if got.User != tt.wantUser {
				t.Errorf("user %q, want %q", got.User, tt.wantUser)
			}
			if !slices.Equal(got.SSHAuthorizedKeys, []string{key}) {
				t.Errorf("ssh_authorized_keys %q, want the key", got.SSHAuthorizedKeys)
			}
			if got.SSHPasswordAuth == nil || *got.SSHPasswordAuth {
				t.Error("password logins are not turned off")
			}
			if len(got.Runcmd) != 1 {
				t.Fatalf("runcmd %q, want one command", got.Runcmd)
			}
			checkMarkerCommand(t, got.Runcmd[0], tt.wantMarker)
		})
	}
}

func TestUserDataScript(t *testing.T) {
	for _, ud := range []UserData{{}, {Marker: "custom marker 'quoted'"}} {
		script := ud.Script()
		first, rest, _ := strings.Cut(script, "\n")
		if first != "#!/bin/sh" {
			t.Errorf("script begins with %q, want #!/bin/sh", first)
		}
		want := ud.Marker
		if want == "" {
			want = Marker
		}
		checkMarkerCommand(t, rest, want)
		if ud.CloudConfig() == script || !strings.Contains(ud.CloudConfig(), strings.TrimSpace(rest)) {
			t.Error("the script and the cloud-config do not print the marker alike")
		}
	}
}

// checkMarkerCommand runs command with the consoles replaced by a file,
// and checks that it prints marker there.
func checkMarkerCommand(t *testing.T, command, marker string) {
	t.Helper()
	for _, c := range consoles {
		if !strings.Contains(command, c) {
			t.Errorf("command %q does not write to %s", command, c)
		}
	}
	console := t.TempDir() + "/console"
	command = strings.ReplaceAll(command, "/dev/console", console)
	for _, c := range consoles {
		command = strings.ReplaceAll(command, c, "/nonexistent"+c)
	}
	if err := os.WriteFile(console, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", "-c", command).CombinedOutput(); err != nil {
		t.Fatalf("sh -c %q: %v\n%s", command, err, out)
	}
	out, err := os.ReadFile(console)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != marker+"\n" {
		t.Errorf("the console shows %q, want the marker %q", out, marker)
	}
}

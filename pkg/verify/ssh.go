package verify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHCommand is the command the SSH check runs in the guest.
const SSHCommand = "cat /etc/os-release"

// NewKey generates the ed25519 key pair a verification VM is given, and
// returns it with its public half in authorized_keys format.
func NewKey() (ssh.Signer, string, error) {
	_, private, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("generating an ed25519 key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(private)
	if err != nil {
		return nil, "", fmt.Errorf("generating an ed25519 key: %w", err)
	}
	authorized := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " kubectl-containerdisk-verify"
	return signer, authorized, nil
}

// CheckSSH logs in over conn as user with key, runs command and returns
// its standard output. It closes conn. The guest's host key is not checked:
// the guest generated it at first boot, so nothing could vouch for it, and
// conn already reaches that one guest through the API server.
func CheckSSH(ctx context.Context, conn net.Conn, user string, key ssh.Signer, command string) (string, error) {
	defer conn.Close()
	// The SSH library knows no context: a deadline and a close on
	// cancellation bound every read and write.
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	out, err := runSSH(conn, user, key, command)
	if deadline, ok := ctx.Deadline(); ok && err != nil && !time.Now().Before(deadline) {
		<-ctx.Done() // the conn's deadline was ctx's: ctx ends now, if it has not
	}
	if err != nil && ctx.Err() != nil {
		return "", fmt.Errorf("%w (%v)", context.Cause(ctx), err)
	}
	return out, err
}

func runSSH(conn net.Conn, user string, key ssh.Signer, command string) (string, error) {
	config := &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         30 * time.Second,
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, "vmi", config)
	if err != nil {
		if strings.Contains(err.Error(), "unable to authenticate") {
			return "", fmt.Errorf("logging in as %q with the generated key: the guest refused it "+
				"(is %q the image's default user, and did cloud-init install the key?): %w", user, user, err)
		}
		return "", fmt.Errorf("logging in as %q: %w", user, err)
	}
	client := ssh.NewClient(c, chans, reqs)
	defer client.Close()

	session, err := client.NewSession()
	if err != nil {
		return "", fmt.Errorf("opening an SSH session as %q: %w", user, err)
	}
	defer session.Close()
	var stdout, stderr bytes.Buffer
	session.Stdout = &stdout
	session.Stderr = &stderr
	if err := session.Run(command); err != nil {
		var exit *ssh.ExitError
		if errors.As(err, &exit) {
			return stdout.String(), fmt.Errorf("running %q as %q: exit status %d: %s",
				command, user, exit.ExitStatus(), strings.TrimSpace(stderr.String()))
		}
		return stdout.String(), fmt.Errorf("running %q as %q: %w", command, user, err)
	}
	return stdout.String(), nil
}

// osRelease returns a readable name from /etc/os-release content:
// PRETTY_NAME, else NAME VERSION, else ID; "" if it has none of them.
func osRelease(content string) string {
	fields := map[string]string{}
	for line := range strings.Lines(content) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		fields[k] = strings.Trim(v, `"'`)
	}
	switch {
	case fields["PRETTY_NAME"] != "":
		return fields["PRETTY_NAME"]
	case fields["NAME"] != "":
		return strings.TrimSpace(fields["NAME"] + " " + fields["VERSION"])
	}
	return fields["ID"]
}

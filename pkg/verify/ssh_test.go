package verify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

const fedoraOSRelease = `NAME="Fedora Linux"
VERSION="40 (Cloud Edition)"
ID=fedora
PRETTY_NAME="Fedora Linux 40 (Cloud Edition)"
`

// sshServer is a real SSH server that lets in one user with the keys
// given and answers SSHCommand with an os-release file.
type sshServer struct {
	config *ssh.ServerConfig
	addr   string // when listening
	mu     sync.Mutex
	// logins counts successful logins; commands are the commands run.
	logins   int
	commands []string
}

func newSSHServer(t *testing.T, user string, authorized ...ssh.PublicKey) *sshServer {
	t.Helper()
	_, hostKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	config := &ssh.ServerConfig{
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			for _, a := range authorized {
				if c.User() == user && bytes.Equal(key.Marshal(), a.Marshal()) {
					return nil, nil
				}
			}
			return nil, errors.New("not authorized")
		},
	}
	config.AddHostKey(hostSigner)
	return &sshServer{config: config}
}

// startSSHServer starts an sshServer on a loopback port.
func startSSHServer(t *testing.T, user string, authorized ...ssh.PublicKey) *sshServer {
	t.Helper()
	s := newSSHServer(t, user, authorized...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.serve(conn) })
		}
	})
	return s
}

// serve answers one connection.
func (s *sshServer) serve(conn net.Conn) {
	defer conn.Close()
	_, chans, reqs, err := ssh.NewServerConn(conn, s.config)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.logins++
	s.mu.Unlock()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, requests, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for req := range requests {
				if req.Type != "exec" || len(req.Payload) < 4 {
					req.Reply(false, nil)
					continue
				}
				command := string(req.Payload[4:])
				req.Reply(true, nil)
				s.mu.Lock()
				s.commands = append(s.commands, command)
				s.mu.Unlock()
				status := uint32(0)
				if command == SSHCommand {
					ch.Write([]byte(fedoraOSRelease))
				} else {
					ch.Stderr().Write([]byte("sh: " + command + ": not found\n"))
					status = 127
				}
				ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
				return
			}
		}()
	}
}

// dial connects to the server, whatever VMI is asked for: it stands in
// for KubeVirt's port-forward.
func (s *sshServer) dial(ctx context.Context, namespace, name string, port int) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", s.addr)
}

func (s *sshServer) stats() (int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins, append([]string(nil), s.commands...)
}

func TestCheckSSH(t *testing.T) {
	key, _, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	srv := startSSHServer(t, "fedora", key.PublicKey())

	tests := []struct {
		name    string
		user    string
		key     ssh.Signer
		command string
		want    string
		wantErr []string
	}{
		{name: "the generated key logs in", user: "fedora", key: key, command: SSHCommand, want: fedoraOSRelease},
		{name: "another key is refused", user: "fedora", key: other, command: SSHCommand,
			wantErr: []string{`logging in as "fedora"`, "refused", "unable to authenticate"}},
		{name: "another user is refused", user: "ubuntu", key: key, command: SSHCommand,
			wantErr: []string{`logging in as "ubuntu"`, "default user"}},
		{name: "a failing command", user: "fedora", key: key, command: "uptime",
			wantErr: []string{`running "uptime"`, "exit status 127", "not found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			conn, err := srv.dial(ctx, "ns", "vm", 22)
			if err != nil {
				t.Fatal(err)
			}
			out, err := CheckSSH(ctx, conn, tt.user, tt.key, tt.command)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("CheckSSH: %v", err)
				}
				if out != tt.want {
					t.Errorf("output %q, want %q", out, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckSSH succeeded with output %q, want an error", out)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if logins, commands := srv.stats(); logins != 2 || len(commands) != 2 {
		t.Errorf("server saw %d logins and commands %q, want 2 and 2", logins, commands)
	}
}

// A guest whose port is open but whose sshd never speaks must not hang
// the check past its context.
func TestCheckSSHSilentPeer(t *testing.T) {
	key, _, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		ctx    func(context.Context) (context.Context, context.CancelFunc)
		wantIs error
	}{
		{"deadline", func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, 200*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancel", func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(ctx)
			time.AfterFunc(200*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			local, remote := net.Pipe()
			defer remote.Close()
			go func() { // reads, never answers
				buf := make([]byte, 1024)
				for {
					if _, err := remote.Read(buf); err != nil {
						return
					}
				}
			}()
			ctx, cancel := tt.ctx(t.Context())
			defer cancel()
			start := time.Now()
			_, err := CheckSSH(ctx, local, "fedora", key, SSHCommand)
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("CheckSSH error %v, want %v", err, tt.wantIs)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("CheckSSH took %s", d)
			}
		})
	}
}

func TestNewKeySSHAuthorizedKey(t *testing.T) {
	key, authorized, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	parsed, comment, _, rest, err := ssh.ParseAuthorizedKey([]byte(authorized))
	if err != nil {
		t.Fatalf("authorized key %q: %v", authorized, err)
	}
	if parsed.Type() != ssh.KeyAlgoED25519 || !bytes.Equal(parsed.Marshal(), key.PublicKey().Marshal()) || len(rest) != 0 {
		t.Errorf("authorized key %q is not the signer's ed25519 key", authorized)
	}
	if comment == "" {
		t.Errorf("authorized key %q has no comment telling where it comes from", authorized)
	}
	again, _, _ := NewKey()
	if bytes.Equal(again.PublicKey().Marshal(), key.PublicKey().Marshal()) {
		t.Error("two calls of NewKey returned the same key")
	}
}

func TestSSHOSRelease(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{fedoraOSRelease, "Fedora Linux 40 (Cloud Edition)"},
		{"NAME=Alpine\nVERSION='3.20'\nID=alpine\n", "Alpine 3.20"},
		{"ID=cirros\n", "cirros"},
		{"hello\n", ""},
		{"", ""},
	} {
		if got := osRelease(tt.in); got != tt.want {
			t.Errorf("osRelease(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

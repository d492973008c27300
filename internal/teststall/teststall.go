// Package teststall serves hostile registries on loopback for tests: one
// that never answers, one that drips its answers a byte a second, and two
// whose tag and catalog listings never end.
package teststall

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// Modes of a hostile registry.
const (
	// Silent accepts connections and reads requests, but never answers.
	Silent = "silent"
	// Drip answers a GET with headers announcing 1 MiB, then sends a byte
	// every DripInterval; a HEAD (or any other request) gets its headers
	// a byte every DripInterval.
	Drip = "drip"
	// LinkSelf answers every tag list and catalog page with one entry and
	// a Link: rel="next" to the same page.
	LinkSelf = "linkself"
	// LinkNew answers every tag list and catalog page with a new entry and
	// a Link: rel="next" to a page after it, without end.
	LinkNew = "linknew"
)

// DripInterval is the pause between two bytes of a Drip registry.
const DripInterval = time.Second

// Server is a hostile registry.
type Server struct {
	// Host is its host:port on loopback.
	Host string

	ln    net.Listener
	http  *httptest.Server
	done  chan struct{}
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
	pages int
}

// Start starts a hostile registry of mode on loopback.
func Start(mode string) (*Server, error) {
	s := &Server{done: make(chan struct{})}
	switch mode {
	case Silent, Drip:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		s.ln, s.Host = ln, ln.Addr().String()
		s.wg.Add(1)
		go s.accept(mode)
	case LinkSelf, LinkNew:
		s.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.listing(mode, w, r)
		}))
		s.Host = strings.TrimPrefix(s.http.URL, "http://")
	default:
		return nil, fmt.Errorf("unknown mode %q: expected %s, %s, %s or %s", mode, Silent, Drip, LinkSelf, LinkNew)
	}
	return s, nil
}

// Conns is the number of connections a Silent or Drip registry accepted.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Pages is the number of listing pages served.
func (s *Server) Pages() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pages
}

// Close stops the server and drops its connections.
func (s *Server) Close() {
	if s.http != nil {
		s.http.CloseClientConnections()
		s.http.Close()
		return
	}
	close(s.done)
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) accept(mode string) {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			if mode == Silent {
				io.Copy(io.Discard, c)
				return
			}
			s.drip(c)
		}()
	}
}

// drip reads one request and answers it a byte at a time.
func (s *Server) drip(c net.Conn) {
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	go io.Copy(io.Discard, req.Body)
	var rest string
	if req.Method == http.MethodGet {
		head := "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n" +
			"Content-Length: 1048576\r\n\r\n{"
		if _, err := io.WriteString(c, head); err != nil {
			return
		}
		rest = strings.Repeat(" ", 1<<20)
	} else {
		rest = "HTTP/1.1 200 OK\r\nX-Drip: " + strings.Repeat("x", 1<<20)
	}
	t := time.NewTicker(DripInterval)
	defer t.Stop()
	for i := 0; i < len(rest); i++ {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		if _, err := io.WriteString(c, rest[i:i+1]); err != nil {
			return
		}
	}
}

// listing answers the registry API with listings that never end.
func (s *Server) listing(mode string, w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	var key string
	switch {
	case path == "/v2/" || path == "/v2":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
		return
	case path == "/v2/_catalog":
		key = "repositories"
	case strings.HasPrefix(path, "/v2/") && strings.HasSuffix(path, "/tags/list"):
		key = "tags"
	default:
		http.Error(w, `{"errors":[{"code":"NAME_UNKNOWN","message":"no such repository"}]}`, http.StatusNotFound)
		return
	}
	s.mu.Lock()
	s.pages++
	s.mu.Unlock()
	entry, next := "1", "1"
	if mode == LinkNew {
		n, _ := strconv.Atoi(r.URL.Query().Get("last"))
		entry, next = strconv.Itoa(n+1), strconv.Itoa(n+1)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Link", fmt.Sprintf(`<%s?n=1&last=%s>; rel="next"`, path, next))
	fmt.Fprintf(w, `{"name":"x",%q:[%q]}`, key, entry)
}

// scriptUsage is the usage message of the stallserver script command.
const scriptUsage = "usage: stallserver NAME silent|drip|linkself|linknew"

// ScriptCmd returns the testscript command `stallserver`, for Params.Cmds:
//
//	stallserver NAME MODE   start a hostile registry of MODE (silent, drip,
//	                        linkself or linknew, see the constants), set
//	                        $STALL_NAME (upper case) to its host and stop
//	                        it when the script ends
//
// The command cannot be negated.
func ScriptCmd() func(ts *testscript.TestScript, neg bool, args []string) {
	return func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 2 {
			ts.Fatalf(scriptUsage)
		}
		s, err := Start(args[1])
		ts.Check(err)
		ts.Defer(s.Close)
		ts.Setenv("STALL_"+strings.ToUpper(args[0]), s.Host)
	}
}

package docs

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// authLog is a loopback server that records the Authorization header of
// each request and answers as Quay does for a repository.
type authLog struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newAuthLog(t *testing.T, status int) *authLog {
	a := &authLog{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen = append(a.seen, r.Header.Get("Authorization"))
		a.mu.Unlock()
		if status != http.StatusOK {
			w.WriteHeader(status)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"description": "old", "is_public": true})
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *authLog) headers() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// redirector sends every request to the same path on to.
func redirector(t *testing.T, seen *[]string, to func() string) *httptest.Server {
	var mu sync.Mutex
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*seen = append(*seen, r.Header.Get("Authorization"))
		mu.Unlock()
		http.Redirect(w, r, to()+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	t.Cleanup(s.Close)
	return s
}

// TestPublishTokenOnlyToAPIOrigin checks that the token goes to the origin
// of APIURL and nowhere else: net/http would copy it to a redirect to
// another port of the same host.
func TestPublishTokenOnlyToAPIOrigin(t *testing.T) {
	const token = "s3cr3t-quay-token"
	pages := []Page{{Name: "fedora", File: "fedora.md", Content: []byte("new")}}

	t.Run("another port of the same host gets no token", func(t *testing.T) {
		other := newAuthLog(t, http.StatusOK)
		var first []string
		api := redirector(t, &first, func() string { return other.URL })
		q := &Quay{APIURL: api.URL, Namespace: "org", Token: token}
		res := q.Publish(context.Background(), pages, PublishOptions{DryRun: true})
		if len(res) != 1 || res[0].Err != nil || res[0].Action != WouldUpdate {
			t.Fatalf("results = %+v, want one %q", res, WouldUpdate)
		}
		if len(first) != 1 || first[0] != "Bearer "+token {
			t.Errorf("the API origin got Authorization %q, want the token once", first)
		}
		got := other.headers()
		if len(got) == 0 {
			t.Fatal("the redirect was not followed")
		}
		for _, h := range got {
			if h != "" {
				t.Errorf("%s, another origin, got Authorization %q", other.URL, h)
			}
		}
	})

	t.Run("a redirect within the origin keeps the token", func(t *testing.T) {
		var seen []string
		var mu sync.Mutex
		mux := http.NewServeMux()
		mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/moved"+r.URL.RequestURI(), http.StatusTemporaryRedirect)
		})
		mux.HandleFunc("/moved/", func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Header.Get("Authorization"))
			mu.Unlock()
			json.NewEncoder(w).Encode(map[string]any{"description": "new"})
		})
		srv := httptest.NewServer(mux)
		defer srv.Close()
		q := &Quay{APIURL: srv.URL, Namespace: "org", Token: token}
		res := q.Publish(context.Background(), pages, PublishOptions{DryRun: true})
		if len(res) != 1 || res[0].Err != nil || res[0].Action != Unchanged {
			t.Fatalf("results = %+v, want one %q", res, Unchanged)
		}
		if len(seen) != 1 || seen[0] != "Bearer "+token {
			t.Errorf("the redirected request had Authorization %q, want the token", seen)
		}
	})

	t.Run("a rejection after a redirect elsewhere says so", func(t *testing.T) {
		other := newAuthLog(t, http.StatusUnauthorized)
		var first []string
		api := redirector(t, &first, func() string { return other.URL })
		q := &Quay{APIURL: api.URL, Namespace: "org", Token: token}
		res := q.Publish(context.Background(), pages, PublishOptions{DryRun: true})
		if len(res) != 1 || !errors.Is(res[0].Err, ErrUnauthorized) {
			t.Fatalf("results = %+v, want an ErrUnauthorized", res)
		}
		msg := res[0].Err.Error()
		for _, w := range []string{"redirected to " + other.URL, "the token is sent to " + api.URL + " only"} {
			if !strings.Contains(msg, w) {
				t.Errorf("error lacks %q: %s", w, msg)
			}
		}
		if strings.Contains(msg, token) {
			t.Errorf("error holds the token: %s", msg)
		}
		for _, h := range other.headers() {
			if h != "" {
				t.Errorf("%s, another origin, got Authorization %q", other.URL, h)
			}
		}
	})
}

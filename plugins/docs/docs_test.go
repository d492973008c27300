package docs

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/containerdisk/kubectl-containerdisk/internal/testupstream"
	"github.com/containerdisk/kubectl-containerdisk/plugins/internal/cli"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	streams := cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	code = cli.Run(context.Background(), streams, "kubectl containerdisk docs", args, NewCommand)
	return code, out.String(), errOut.String()
}

func curatedSite(t *testing.T) string {
	t.Helper()
	s := testupstream.Serve(t)
	if err := s.PublishCurated(time.Now()); err != nil {
		t.Fatal(err)
	}
	return s.URL()
}

func TestGenerate(t *testing.T) {
	url := curatedSite(t)
	dir := t.TempDir()
	if code, _, stderr := run(t, "generate", "--mirror", "*="+url, "--dir", dir); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	page, err := os.ReadFile(filepath.Join(dir, "fedora.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# fedora\n", "--volume-containerdisk=src:quay.io/containerdisks/fedora:", "instancetype:", "#cloud-config"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("fedora.md lacks %q:\n%s", want, page)
		}
	}
	// The manifest in the page is valid YAML of a VirtualMachine.
	_, rest, _ := strings.Cut(string(page), "```yaml\n")
	manifest, _, _ := strings.Cut(rest, "```")
	var vm map[string]any
	if err := yaml.Unmarshal([]byte(manifest), &vm); err != nil {
		t.Fatalf("manifest does not parse: %v\n%s", err, manifest)
	}
	if vm["kind"] != "VirtualMachine" {
		t.Errorf("kind = %v, want VirtualMachine", vm["kind"])
	}
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if name := strings.TrimSuffix(e.Name(), ".md"); e.Name() != "README.md" && !bytes.Contains(readme, []byte("["+name+"]("+e.Name()+")")) {
			t.Errorf("README.md does not list %s", name)
		}
	}
}

const token = "s3cret-token-value"

// fakeQuay implements the repository endpoints publish uses.
type fakeQuay struct {
	mu     sync.Mutex
	desc   map[string]string
	public map[string]bool
	fail   map[string]int
	// busy answers 503 with Retry-After this many times per repository.
	busy        map[string]int
	writes      []string
	unauthorize bool
	// badQueries are GETs that would have brought the repository's tags.
	badQueries []string
}

func (q *fakeQuay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.unauthorize || r.Header.Get("Authorization") != "Bearer "+token {
		http.Error(w, `{"error": "invalid token `+r.Header.Get("Authorization")+`"}`, http.StatusUnauthorized)
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/api/v1/repository/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	repo, visibility := strings.CutSuffix(path, "/changevisibility")
	if q.busy[repo] > 0 {
		q.busy[repo]--
		w.Header().Set("Retry-After", "0")
		http.Error(w, `{"error": "busy"}`, http.StatusServiceUnavailable)
		return
	}
	if code := q.fail[repo]; code != 0 {
		http.Error(w, `{"error": "broken"}`, code)
		return
	}
	if _, ok := q.desc[repo]; !ok {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var in map[string]string
	switch {
	case r.Method == http.MethodGet && !visibility:
		// Quay lists up to 500 tags unless includeTags=false.
		if r.URL.Query().Get("includeTags") != "false" {
			q.badQueries = append(q.badQueries, r.URL.String())
		}
		json.NewEncoder(w).Encode(map[string]any{"namespace": "org", "description": q.desc[repo], "is_public": q.public[repo]})
	case r.Method == http.MethodPut && !visibility:
		if err := json.Unmarshal(body, &in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		q.desc[repo] = in["description"]
		q.writes = append(q.writes, "PUT "+repo)
		w.Write([]byte(`{}`))
	case r.Method == http.MethodPost && visibility:
		if err := json.Unmarshal(body, &in); err != nil || in["visibility"] != "public" {
			http.Error(w, "bad visibility", http.StatusBadRequest)
			return
		}
		q.public[repo] = true
		q.writes = append(q.writes, "POST "+repo+" public")
		w.Write([]byte(`{"success": true}`))
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func writePages(t *testing.T, pages map[string]string) (dir, tokenFile string) {
	t.Helper()
	dir = t.TempDir()
	for name, text := range pages {
		if err := os.WriteFile(filepath.Join(dir, name+".md"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("index"), 0o644)
	tokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, tokenFile
}

func TestPublish(t *testing.T) {
	pages := map[string]string{"fedora": "new fedora", "ubuntu": "same ubuntu", "debian": "new debian"}
	tests := []struct {
		name       string
		args       []string
		fail       map[string]int
		busy       map[string]int
		unauth     bool
		wantCode   int
		wantOut    []string
		wantErr    []string
		wantWrites []string
	}{
		{
			name:     "dry run sends nothing",
			wantOut:  []string{"would update quay.io/org/debian", "would update quay.io/org/fedora", "unchanged quay.io/org/ubuntu"},
			wantCode: 0,
		},
		{
			name:       "only changed descriptions are written",
			args:       []string{"--dry-run=false"},
			wantOut:    []string{"updated quay.io/org/debian", "updated quay.io/org/fedora", "unchanged quay.io/org/ubuntu"},
			wantWrites: []string{"PUT org/debian", "PUT org/fedora"},
		},
		{
			name:    "make public, dry run",
			args:    []string{"--make-public"},
			wantOut: []string{"would update quay.io/org/fedora (would make public)", "unchanged quay.io/org/ubuntu (already public)"},
		},
		{
			name:       "make public changes only private repositories",
			args:       []string{"--dry-run=false", "--make-public"},
			wantOut:    []string{"updated quay.io/org/fedora (made public)", "unchanged quay.io/org/ubuntu (already public)"},
			wantWrites: []string{"PUT org/debian", "POST org/debian public", "PUT org/fedora", "POST org/fedora public"},
		},
		{
			name:       "one failing repository does not stop the others",
			args:       []string{"--dry-run=false"},
			fail:       map[string]int{"org/debian": http.StatusInternalServerError},
			wantCode:   1,
			wantOut:    []string{"updated quay.io/org/fedora", "unchanged quay.io/org/ubuntu"},
			wantErr:    []string{"1 of 3 items failed", "quay.io/org/debian: reading the description", "500"},
			wantWrites: []string{"PUT org/fedora"},
		},
		{
			name:       "a busy Quay is asked again",
			args:       []string{"--dry-run=false"},
			busy:       map[string]int{"org/fedora": 2},
			wantOut:    []string{"updated quay.io/org/fedora", "updated quay.io/org/debian"},
			wantErr:    []string{"fedora: 503 Service Unavailable with Retry-After; retrying", "retry 2 of 5"},
			wantWrites: []string{"PUT org/debian", "PUT org/fedora"},
		},
		{
			name:     "a rejected token is a clear error",
			args:     []string{"--dry-run=false"},
			unauth:   true,
			wantCode: 1,
			wantErr:  []string{"3 of 3 items failed", "401", "the token was rejected"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &fakeQuay{
				desc:        map[string]string{"org/fedora": "old", "org/ubuntu": "same ubuntu", "org/debian": ""},
				public:      map[string]bool{"org/ubuntu": true},
				fail:        tt.fail,
				busy:        tt.busy,
				unauthorize: tt.unauth,
			}
			srv := httptest.NewServer(q)
			defer srv.Close()
			dir, tokenFile := writePages(t, pages)
			args := append([]string{"publish", "--registry", "quay.io/org", "--token-file", tokenFile, "--api-url", srv.URL, "--dir", dir}, tt.args...)
			code, stdout, stderr := run(t, args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout, w+"\n") {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stdout+stderr, token) {
				t.Errorf("the token is printed:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
			}
			if strings.Join(q.writes, ",") != strings.Join(tt.wantWrites, ",") {
				t.Errorf("writes = %q, want %q", q.writes, tt.wantWrites)
			}
			if len(q.badQueries) > 0 {
				t.Errorf("GETs without includeTags=false: %q", q.badQueries)
			}
		})
	}
}

func TestPublishUsage(t *testing.T) {
	for _, args := range [][]string{
		{"publish", "--registry", "quay.io/org"},
		{"publish", "--registry", "quay.io", "--token-file", "x"},
		{"publish", "--registry", "quay.io/org", "--token-file", "x", "--api-url", "quay.io"},
		{"generate"},
		{"cli"},
	} {
		if code, _, stderr := run(t, args...); code != cli.ExitUsage || stderr == "" {
			t.Errorf("%q: exit %d, want %d with a message; stderr: %s", args, code, cli.ExitUsage, stderr)
		}
	}
}

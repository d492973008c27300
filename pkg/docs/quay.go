package docs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// DefaultQuayAPI is the Quay instance Publish talks to unless told otherwise.
const DefaultQuayAPI = "https://quay.io"

// ErrUnauthorized is wrapped by Quay errors for a rejected token (HTTP 401
// or 403).
var ErrUnauthorized = errors.New("the token was rejected")

// Quay sets repository descriptions through the Quay API.
type Quay struct {
	// APIURL is the Quay base URL, e.g. https://quay.io.
	APIURL string
	// Namespace is the organization or user, e.g. containerdisks.
	Namespace string
	// Token is the OAuth application token, sent as a bearer token to the
	// origin (scheme, host and port) of APIURL only: a redirect elsewhere,
	// even to another port of the same host, goes without it. It is never
	// part of an error.
	Token string
	// HTTP is the client; nil means http.DefaultClient.
	HTTP *http.Client
}

// Action says what Publish did, or would do, with one repository.
type Action string

// The actions of a PublishResult.
const (
	Unchanged Action = "unchanged"
	Updated   Action = "updated"
	// WouldUpdate is Updated in a dry run.
	WouldUpdate Action = "would update"
	Failed      Action = "failed"
)

// PublishOptions tell Publish what to change.
type PublishOptions struct {
	// DryRun reads the current descriptions and changes nothing.
	DryRun bool
	// MakePublic also makes every repository that is private public.
	MakePublic bool
}

// The visibilities of a PublishResult, when MakePublic is set.
const (
	// AlreadyPublic: the repository was public; nothing was sent.
	AlreadyPublic = "already public"
	MadePublic    = "made public"
	// WouldMakePublic is MadePublic in a dry run.
	WouldMakePublic = "would make public"
)

// PublishResult is the outcome for one repository.
type PublishResult struct {
	Repository string
	Action     Action
	// Visibility is AlreadyPublic, MadePublic or WouldMakePublic when
	// MakePublic is set, else empty.
	Visibility string
	Err        error
}

// Publish sets each page's repository description where it differs from
// the page. A failing repository does not stop the others; every result is
// returned, in the order of pages. The index page is skipped.
func (q *Quay) Publish(ctx context.Context, pages []Page, opts PublishOptions) []PublishResult {
	var results []PublishResult
	for _, p := range pages {
		if p.Name == "" {
			continue
		}
		res := PublishResult{Repository: q.Namespace + "/" + p.Name}
		res.Action, res.Visibility, res.Err = q.publishOne(ctx, p, opts)
		if res.Err != nil {
			res.Action = Failed
		}
		results = append(results, res)
	}
	return results
}

func (q *Quay) publishOne(ctx context.Context, p Page, opts PublishOptions) (Action, string, error) {
	var repo struct {
		Description string `json:"description"`
		IsPublic    bool   `json:"is_public"`
	}
	// Without includeTags=false the answer carries up to 500 tags.
	if err := q.do(ctx, http.MethodGet, p.Name, "?includeTags=false", nil, &repo); err != nil {
		return "", "", fmt.Errorf("reading the description: %w", err)
	}
	action := Unchanged
	if repo.Description != string(p.Content) {
		action = WouldUpdate
		if !opts.DryRun {
			body := map[string]string{"description": string(p.Content)}
			if err := q.do(ctx, http.MethodPut, p.Name, "", body, nil); err != nil {
				return "", "", fmt.Errorf("setting the description: %w", err)
			}
			action = Updated
		}
	}
	switch {
	case !opts.MakePublic:
		return action, "", nil
	case repo.IsPublic:
		return action, AlreadyPublic, nil
	case opts.DryRun:
		return action, WouldMakePublic, nil
	}
	body := map[string]string{"visibility": "public"}
	if err := q.do(ctx, http.MethodPost, p.Name, "/changevisibility", body, nil); err != nil {
		return action, "", fmt.Errorf("making it public: %w", err)
	}
	return action, MadePublic, nil
}

func (q *Quay) do(ctx context.Context, method, repo, suffix string, in, out any) error {
	base := q.APIURL
	if base == "" {
		base = DefaultQuayAPI
	}
	u := strings.TrimSuffix(base, "/") + "/api/v1/repository/" + q.Namespace + "/" + repo + suffix
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return q.redact(err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := q.client(base).Do(req)
	if err != nil {
		return q.redact(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) && resp.Request != nil && origin(resp.Request.URL) != origin(req.URL):
		return fmt.Errorf("%s %s: redirected to %s, which answered %s: %w; the token is sent to %s only, never to another origin: set --api-url to the URL the API is served from",
			method, u, redactURL(resp.Request.URL), resp.Status, ErrUnauthorized, origin(req.URL))
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s %s: %s: %w; check that the token file holds a Quay OAuth token with repository administration rights for %s",
			method, u, resp.Status, ErrUnauthorized, q.Namespace)
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s %s: %s: the repository does not exist; push the image first", method, u, resp.Status)
	case resp.StatusCode/100 != 2:
		msg := strings.TrimSpace(string(data))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		return q.redact(fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, msg))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decoding the answer: %w", method, u, err)
		}
	}
	return nil
}

// client returns the HTTP client to send a request under base with: q.HTTP
// (or http.DefaultClient) with a transport that adds the token to each
// request, redirects included, whose origin is base's. The header is set
// per request, never on the first one only, because net/http copies an
// Authorization header to a redirect to the same host name whatever its
// port or scheme.
func (q *Quay) client(base string) *http.Client {
	c := http.DefaultClient
	if q.HTTP != nil {
		c = q.HTTP
	}
	if q.Token == "" {
		return c
	}
	u, err := url.Parse(base)
	if err != nil {
		return c
	}
	cc := *c
	cc.Transport = &bearerTransport{next: c.Transport, origin: origin(u), token: q.Token}
	return &cc
}

// bearerTransport sends a bearer token with the requests to one origin.
type bearerTransport struct {
	next   http.RoundTripper
	origin string
	token  string
}

func (t *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	next := t.next
	if next == nil {
		next = http.DefaultTransport
	}
	if origin(req.URL) != t.origin {
		if req.Header.Get("Authorization") == "" {
			return next.RoundTrip(req)
		}
		req = req.Clone(req.Context())
		req.Header.Del("Authorization")
		return next.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+t.token)
	return next.RoundTrip(req)
}

// origin is a URL's scheme, host and port, the port written out even when
// it is the scheme's default, so that https://quay.io and
// https://quay.io:443 are one origin.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return scheme + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// redactURL writes u without userinfo and query, which may hold secrets.
func redactURL(u *url.URL) string {
	v := *u
	v.User = nil
	v.RawQuery = ""
	v.Fragment = ""
	return v.String()
}

// redact keeps the token out of an error that might quote what was sent.
func (q *Quay) redact(err error) error {
	if q.Token == "" || !strings.Contains(err.Error(), q.Token) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), q.Token, "[token]"))
}

// Package adminclient is a typed HTTP client of Tether's admin API (DESIGN §6).
//
// It is what the tether CLI uses: the CLI speaks HTTP to a running server and
// never opens a store itself, because only the server may hold it (the
// embedded store locks its file, and a second writer would bypass the
// server's cache invalidation). Request and response bodies are apitype's,
// the same types the server uses.
//
// Secrets stay out of places they could leak from: the admin key travels only
// in the Authorization header and a session token only in a request body, never
// in a URL (URLs end up in proxy and access logs); neither ever appears in an
// error this package returns.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/apitype"
)

const (
	// DefaultTimeout bounds each request when the caller's http.Client has no
	// timeout of its own: an admin command should fail, not hang.
	DefaultTimeout = 30 * time.Second

	// MaxResponseBytes bounds every response body read, so a misbehaving or
	// hostile server cannot exhaust the client's memory.
	MaxResponseBytes = 1 << 20
)

// Client calls one admin API. It is safe for concurrent use.
type Client struct {
	base string // scheme://host[/prefix], no trailing slash
	key  string
	hc   *http.Client
}

// New returns a client of the admin API at baseURL (such as
// "http://127.0.0.1:8081") that authenticates with adminKey.
//
// hc may be nil. New uses a copy of it that never follows redirects (the admin
// API sends none, and following one would resend a request body, which may
// hold a token, to another address) and that has DefaultTimeout when hc has
// no timeout.
func New(baseURL, adminKey string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("invalid server URL %q", baseURL)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("server URL %q: scheme must be http or https", baseURL)
	case u.Host == "":
		return nil, fmt.Errorf("server URL %q has no host", baseURL)
	case u.User != nil:
		// Credentials in a URL leak into logs and process lists; the admin key
		// has its own channel.
		return nil, errors.New("the server URL must not hold credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("server URL %q must not have a query or fragment", baseURL)
	}
	if adminKey == "" {
		return nil, errors.New("the admin key is empty")
	}
	if strings.ContainsFunc(adminKey, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		// Also catches a key file's stray newline, which would otherwise be a
		// confusing 401 (or a header-injection attempt).
		return nil, errors.New("the admin key contains spaces or control characters")
	}
	c := http.Client{}
	if hc != nil {
		c = *hc
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = strings.TrimSuffix(u.RawPath, "/")
	return &Client{base: u.String(), key: adminKey, hc: &c}, nil
}

// APIError is an error answer of the admin API, such as
// {"error":"not_found","message":"no such session"}.
//
// It matches tether.ErrNotFound (404), tether.ErrBadInput (400) and
// tether.ErrUnavailable (503) under errors.Is, so callers can act on the kind
// of failure without comparing codes.
type APIError struct {
	Status     int           // HTTP status
	Code       string        // the "error" field; empty when the body was not the API's JSON
	Message    string        // the "message" field, or the status text
	RetryAfter time.Duration // from Retry-After (429, 503), 0 when absent
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("admin API: %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is lets errors.Is(err, tether.ErrNotFound) and friends work on API errors.
func (e *APIError) Is(target error) bool {
	switch target {
	case tether.ErrNotFound:
		return e.Status == http.StatusNotFound
	case tether.ErrBadInput:
		return e.Status == http.StatusBadRequest
	case tether.ErrUnavailable:
		return e.Status == http.StatusServiceUnavailable
	}
	return false
}

// CreateSessionRequest is the body of POST /v1/sessions.
type CreateSessionRequest struct {
	Subject string
	// Roles, when not nil, replaces the subject's roles; an empty non-nil
	// slice clears them, nil leaves them as they are.
	Roles []string
	// TTL and IdleTTL override the server's absolute and idle lifetimes; zero
	// means the server's default.
	TTL, IdleTTL time.Duration
	Metadata     map[string]string
}

// Key is one of the server's signing keys, as GET /v1/keys lists it.
type Key = apitype.Key

// CreateSession creates a session and returns its token, which the server
// never shows again, and the session.
func (c *Client) CreateSession(ctx context.Context, req CreateSessionRequest) (string, *tether.Session, error) {
	if req.Subject == "" {
		return "", nil, tether.BadInput("the subject is empty")
	}
	body := apitype.CreateSessionRequest{
		Subject: req.Subject, Roles: req.Roles, Metadata: req.Metadata,
		TTL: apitype.Duration(req.TTL), IdleTTL: apitype.Duration(req.IdleTTL),
	}
	var out apitype.TokenResponse
	if err := c.doJSON(ctx, http.MethodPost, "/v1/sessions", body, http.StatusCreated, &out); err != nil {
		return "", nil, err
	}
	if out.Token == "" || out.Session == nil {
		return "", nil, errors.New("admin API: the response has no token or session")
	}
	return out.Token, out.Session, nil
}

// GetSession returns the live session with this ID; an unknown, expired or
// revoked one is an *APIError that matches tether.ErrNotFound.
func (c *Client) GetSession(ctx context.Context, id string) (*tether.Session, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	var s tether.Session
	if err := c.doJSON(ctx, http.MethodGet, "/v1/sessions/"+id, nil, http.StatusOK, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// RevokeSession revokes one session; its token fails on the next request.
func (c *Client) RevokeSession(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	return c.doJSON(ctx, http.MethodDelete, "/v1/sessions/"+id, nil, http.StatusNoContent, nil)
}

// ListSessions returns the subject's live sessions.
func (c *Client) ListSessions(ctx context.Context, subject string) ([]*tether.Session, error) {
	seg, err := subjectSegment(subject)
	if err != nil {
		return nil, err
	}
	var out apitype.SessionsResponse
	if err := c.doJSON(ctx, http.MethodGet, "/v1/subjects/"+seg+"/sessions", nil, http.StatusOK, &out); err != nil {
		return nil, err
	}
	return out.Sessions, nil
}

// RevokeSubject revokes all the subject's sessions and returns how many there were.
func (c *Client) RevokeSubject(ctx context.Context, subject string) (int, error) {
	seg, err := subjectSegment(subject)
	if err != nil {
		return 0, err
	}
	var out apitype.RevokedResponse
	if err := c.doJSON(ctx, http.MethodDelete, "/v1/subjects/"+seg+"/sessions", nil, http.StatusOK, &out); err != nil {
		return 0, err
	}
	if out.Revoked == nil {
		return 0, errors.New(`admin API: the response has no "revoked" count`)
	}
	return *out.Revoked, nil
}

// SetRoles replaces the subject's roles (none clears them) and returns the
// roles the server now holds. Live sessions see them on their next request.
func (c *Client) SetRoles(ctx context.Context, subject string, roles []string) ([]string, error) {
	seg, err := subjectSegment(subject)
	if err != nil {
		return nil, err
	}
	if roles == nil {
		roles = []string{} // "clear" is [], never null
	}
	in := apitype.SetRolesRequest{Roles: &roles}
	var out apitype.RolesResponse
	if err := c.doJSON(ctx, http.MethodPut, "/v1/subjects/"+seg+"/roles", in, http.StatusOK, &out); err != nil {
		return nil, err
	}
	if out.Roles == nil {
		out.Roles = []string{}
	}
	return out.Roles, nil
}

// Introspect asks the server about a token (RFC 7662). The answer has
// "active" and, when it is true, the claims; numbers are json.Number so that
// times such as "exp" keep their exact value.
func (c *Client) Introspect(ctx context.Context, token string) (map[string]any, error) {
	if token == "" {
		return nil, tether.BadInput("the token is empty")
	}
	// The token goes in a form body, as RFC 7662 says, never in the URL.
	form := url.Values{"token": {token}}.Encode()
	var out map[string]any
	err := c.do(ctx, http.MethodPost, "/v1/introspect", strings.NewReader(form),
		"application/x-www-form-urlencoded", http.StatusOK, &out, token)
	if err != nil {
		return nil, err
	}
	if _, ok := out["active"].(bool); !ok {
		return nil, errors.New(`admin API: the introspection response has no "active" flag`)
	}
	return out, nil
}

// Keys lists the server's signing keys.
func (c *Client) Keys(ctx context.Context) ([]Key, error) {
	return c.keys(ctx, http.MethodGet, "/v1/keys")
}

// RotateKeys rotates the server's signing keys and returns the new list.
func (c *Client) RotateKeys(ctx context.Context) ([]Key, error) {
	return c.keys(ctx, http.MethodPost, "/v1/keys/rotate")
}

func (c *Client) keys(ctx context.Context, method, path string) ([]Key, error) {
	var out apitype.KeysResponse
	if err := c.doJSON(ctx, method, path, nil, http.StatusOK, &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

// checkID refuses anything that is not a session ID before it reaches a URL.
// Its message never repeats the input: a user who pastes a token where an ID
// belongs must not see it echoed into logs, nor sent in a URL.
func checkID(id string) error {
	if strings.HasPrefix(id, tether.TokenPrefix) {
		return tether.BadInput("that is a session token, not a session ID")
	}
	if !tether.ValidID(id) {
		return tether.BadInput("not a session ID (want 16 lower-case base32 characters)")
	}
	return nil
}

// subjectSegment escapes a subject for one path segment. "." and ".." are
// refused: servers clean them out of the path (Go's ServeMux redirects
// /v1/subjects/../sessions to /v1/sessions), so they cannot name a subject.
func subjectSegment(subject string) (string, error) {
	switch subject {
	case "":
		return "", tether.BadInput("the subject is empty")
	case ".", "..":
		return "", tether.BadInput("the subject %q cannot be addressed in a URL", subject)
	}
	return url.PathEscape(subject), nil
}

func (c *Client) doJSON(ctx context.Context, method, path string, in any, want int, out any) error {
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding the request: %w", err)
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	return c.do(ctx, method, path, body, ct, want, out)
}

// do sends one request and decodes a want-status answer into out (unless out
// is nil). secrets are scrubbed from any error it returns, on top of the admin
// key, in case a server echoes them back.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string, want int, out any, secrets ...string) error {
	secrets = append(secrets, c.key)
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return redact(fmt.Errorf("building the request: %w", err), secrets)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// A *url.Error names the URL, which holds no secret: IDs and subjects only.
		return redact(err, secrets)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return redact(fmt.Errorf("admin API: reading the response: %w", err), secrets)
	}
	if len(raw) > MaxResponseBytes {
		return fmt.Errorf("admin API: response larger than %d bytes", MaxResponseBytes)
	}
	if resp.StatusCode != want {
		return redact(apiError(resp, raw), secrets)
	}
	if out == nil {
		return nil
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return fmt.Errorf("admin API: response is %q, want application/json (is --server the admin address?)", mt)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // only affects map[string]any (Introspect); typed fields decode as usual
	if err := dec.Decode(out); err != nil {
		// JSON errors name a field or a byte offset, never a value.
		return fmt.Errorf("admin API: malformed response: %w", err)
	}
	return nil
}

// apiError builds the error for an unexpected status. A body that is not the
// API's JSON (a proxy's HTML page, say) is not shown: it says nothing useful
// and could echo what was sent.
func apiError(resp *http.Response, raw []byte) *APIError {
	e := &APIError{Status: resp.StatusCode}
	var body apitype.Error
	if json.Unmarshal(raw, &body) == nil && body.Error != "" {
		e.Code, e.Message = body.Error, body.Message
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		e.Message = "unexpected redirect (is --server the admin API's address?)"
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// redact replaces every secret in err's message. It keeps an *APIError an
// *APIError so callers can still errors.As it.
func redact(err error, secrets []string) error {
	scrub := func(s string) string {
		for _, sec := range secrets {
			if sec != "" {
				s = strings.ReplaceAll(s, sec, "[redacted]")
			}
		}
		return s
	}
	if ae, ok := err.(*APIError); ok {
		ae.Code, ae.Message = scrub(ae.Code), scrub(ae.Message)
		return ae
	}
	if msg := err.Error(); scrub(msg) != msg {
		return &redactedError{msg: scrub(msg), err: err}
	}
	return err
}

// redactedError keeps the chain for errors.Is (context.DeadlineExceeded…)
// while showing a scrubbed message.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

package main

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"github.com/tetherhq/tether"
)

const (
	cliAdminKey  = "cli-test-admin-key-0123456789"
	cliSessionID = "0123456789abcdef"
)

// runCLI is run with the admin commands added and stdin set.
//
// TODO(lead): once newRootCmd lists newSessionsCmd, newRolesCmd, newKeysCmd
// and newTokenCmd, call run here. run takes no stdin (cobra then reads
// os.Stdin), so the "token inspect -" cases need run to take an io.Reader or
// keep this helper. Commands the root already has are not added twice.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCLIContext(t.Context(), stdin, args...)
}

func runCLIContext(ctx context.Context, stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	root := newRootCmd()
	have := map[string]bool{}
	for _, c := range root.Commands() {
		have[c.Name()] = true
	}
	for _, newCmd := range []func() *cobra.Command{newSessionsCmd, newRolesCmd, newKeysCmd, newTokenCmd} {
		if c := newCmd(); !have[c.Name()] {
			root.AddCommand(c)
		}
	}
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errb)
	err := root.ExecuteContext(ctx)
	// As in run.
	var usage usageError
	switch {
	case err == nil:
	case errors.As(err, &usage):
		fmt.Fprintf(&errb, "tether: %v\nRun '%s --help' for usage.\n", err, usage.cmd)
		code = 2
	default:
		fmt.Fprintf(&errb, "tether: %v\n", err)
		code = 1
	}
	return code, out.String(), errb.String()
}

// adminCall is one request as the fake admin API saw it.
type adminCall struct {
	Method, Path string
	Body         any // decoded JSON, or the raw string for other bodies
}

// fakeAdmin answers every request with one canned response, after checking
// the admin key the way the server does, and records what it got.
type fakeAdmin struct {
	status int
	body   string
	header http.Header

	mu    sync.Mutex
	calls []adminCall
}

func (f *fakeAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	c := adminCall{Method: r.Method, Path: r.URL.EscapedPath()}
	if len(raw) > 0 {
		c.Body = string(raw)
		var v any
		if r.Header.Get("Content-Type") == "application/json" && json.Unmarshal(raw, &v) == nil {
			c.Body = v
		}
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer "+cliAdminKey {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"unauthenticated"}`)
		return
	}
	for k, v := range f.header {
		w.Header()[k] = v
	}
	w.WriteHeader(f.status)
	io.WriteString(w, f.body)
}

func (f *fakeAdmin) got() []adminCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// adminEnv points the admin commands at f with the right key, from a fresh
// working directory so no ./tether-data of the developer's is picked up.
func adminEnv(t *testing.T, f http.Handler) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Setenv("TETHER_ADMIN_URL", srv.URL)
	t.Setenv("TETHER_ADMIN_KEY", cliAdminKey)
	t.Setenv("TETHER_DATA_DIR", "")
	t.Chdir(t.TempDir())
}

const (
	cliSession1 = `{"id":"` + cliSessionID + `","subject":"alice","roles":["admin"],"created_at":"2026-03-01T12:00:00Z",` +
		`"last_seen_at":"2026-03-01T12:30:00Z","expires_at":"2026-03-02T12:00:00Z","idle_expires_at":"2026-03-01T13:30:00Z",` +
		`"metadata":{"ip":"192.0.2.1","user_agent":"Mozilla/5.0 \u001b[31mred\u001b[0m\u202e"}}`
	cliSession2 = `{"id":"fedcba9876543210","subject":"alice","roles":["admin"],"created_at":"2026-03-01T08:00:00Z",` +
		`"last_seen_at":"2026-03-01T08:00:00Z","expires_at":"2026-03-01T20:00:00Z","idle_expires_at":"2026-03-01T22:00:00Z","metadata":{}}`
	cliKeysJSON = `{"keys":[{"kid":"k-2026-03","alg":"EdDSA","created_at":"2026-03-01T12:00:00Z","state":"active"},` +
		`{"kid":"k-2026-02","alg":"EdDSA","created_at":"2026-02-01T12:00:00Z","state":"retired"}]}`
)

func TestAdminCommands(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		status   int
		header   http.Header
		resp     string
		wantCall *adminCall // nil: no request at all
		wantCode int
		wantOut  []string // each must be in stdout
		wantErr  []string // each must be in stderr
		never    []string // never in stdout or stderr (the admin key always)
	}{
		{
			name: "sessions list", args: []string{"sessions", "list", "--subject", "alice"},
			status: 200, resp: `{"sessions":[` + cliSession1 + `,` + cliSession2 + `]}`,
			wantCall: &adminCall{Method: "GET", Path: "/v1/subjects/alice/sessions"},
			wantOut: []string{
				"ID                CREATED               LAST SEEN             EXPIRES               IP         USER AGENT",
				cliSessionID + "  2026-03-01T12:00:00Z  2026-03-01T12:30:00Z  2026-03-01T13:30:00Z  192.0.2.1  Mozilla/5.0 ?[31mred?[0m?",
				"fedcba9876543210  2026-03-01T08:00:00Z  2026-03-01T08:00:00Z  2026-03-01T20:00:00Z  -          -",
			},
			never: []string{"\x1b", "\u202e"},
		},
		{
			name: "sessions list escapes the subject", args: []string{"sessions", "list", "--subject", "a/b c"},
			status: 200, resp: `{"sessions":[]}`,
			wantCall: &adminCall{Method: "GET", Path: "/v1/subjects/a%2Fb%20c/sessions"},
			wantOut:  []string{"no live sessions for subject a/b c"},
		},
		{
			name: "sessions list --json", args: []string{"sessions", "list", "--subject", "alice", "--json"},
			status: 200, resp: `{"sessions":[` + cliSession2 + `]}`,
			wantCall: &adminCall{Method: "GET", Path: "/v1/subjects/alice/sessions"},
			wantOut:  []string{`"sessions": [`, `"id": "fedcba9876543210"`, `"expires_at": "2026-03-01T20:00:00Z"`},
		},
		{
			name: "sessions list without --subject", args: []string{"sessions", "list"},
			wantCode: 2, wantErr: []string{"--subject is required", "tether sessions list --help"},
		},
		{
			name: "sessions list with empty --subject", args: []string{"sessions", "list", "--subject="},
			wantCode: 2, wantErr: []string{"--subject is required"},
		},
		{
			name: "sessions list store down", args: []string{"sessions", "list", "--subject", "alice"},
			status: 503, header: http.Header{"Retry-After": {"1"}},
			resp:     `{"error":"unavailable","message":"the session store is unavailable; try again"}`,
			wantCall: &adminCall{Method: "GET", Path: "/v1/subjects/alice/sessions"},
			wantCode: 1, wantErr: []string{"503 unavailable: the session store is unavailable; try again (retry in 1s)"},
		},
		{
			name: "sessions revoke", args: []string{"sessions", "revoke", cliSessionID},
			status:   204,
			wantCall: &adminCall{Method: "DELETE", Path: "/v1/sessions/" + cliSessionID},
			wantOut:  []string{"revoked session " + cliSessionID},
		},
		{
			name: "sessions revoke unknown", args: []string{"sessions", "revoke", cliSessionID},
			status: 404, resp: `{"error":"not_found","message":"no such session"}`,
			wantCall: &adminCall{Method: "DELETE", Path: "/v1/sessions/" + cliSessionID},
			wantCode: 1, wantErr: []string{"no live session " + cliSessionID},
		},
		{
			name: "sessions revoke a token", args: []string{"sessions", "revoke", cliToken(cliSessionID)},
			wantCode: 2, wantErr: []string{"that is a session token, not a session ID"},
			never: []string{cliToken(cliSessionID)[len(tether.TokenPrefix)+16:]},
		},
		{
			name: "sessions revoke a non-ID", args: []string{"sessions", "revoke", "../keys/rotate"},
			wantCode: 2, wantErr: []string{"is not a session ID"},
		},
		{name: "sessions revoke without ID", args: []string{"sessions", "revoke"}, wantCode: 2},
		{name: "sessions revoke two IDs", args: []string{"sessions", "revoke", cliSessionID, cliSessionID}, wantCode: 2},
		{
			name: "sessions revoke-all", args: []string{"sessions", "revoke-all", "--subject", "a/b c"},
			status: 200, resp: `{"revoked":3}`,
			wantCall: &adminCall{Method: "DELETE", Path: "/v1/subjects/a%2Fb%20c/sessions"},
			wantOut:  []string{"revoked 3 sessions of subject a/b c"},
		},
		{
			name: "sessions revoke-all one", args: []string{"sessions", "revoke-all", "--subject", "alice"},
			status: 200, resp: `{"revoked":1}`,
			wantCall: &adminCall{Method: "DELETE", Path: "/v1/subjects/alice/sessions"},
			wantOut:  []string{"revoked 1 session of subject alice"},
		},
		{name: "sessions revoke-all without --subject", args: []string{"sessions", "revoke-all"}, wantCode: 2, wantErr: []string{"--subject is required"}},
		{name: "sessions unknown subcommand", args: []string{"sessions", "purge"}, wantCode: 2, wantErr: []string{`unknown command "purge"`}},
		{name: "sessions unknown flag", args: []string{"sessions", "list", "--subjet", "alice"}, wantCode: 2, wantErr: []string{"unknown flag: --subjet"}},
		{name: "sessions help", args: []string{"sessions", "--help"}, wantOut: []string{"list", "revoke", "revoke-all", "--server", "--admin-key-file"}},
		{name: "sessions alone prints help", args: []string{"sessions"}, wantOut: []string{"revoke-all"}},
		{
			name: "roles set", args: []string{"roles", "set", "--subject", "a/b c", "admin", "editor"},
			status: 200, resp: `{"subject":"a/b c","roles":["admin","editor"]}`,
			wantCall: &adminCall{Method: "PUT", Path: "/v1/subjects/a%2Fb%20c/roles", Body: map[string]any{"roles": []any{"admin", "editor"}}},
			wantOut:  []string{"subject a/b c now has roles: admin, editor"},
		},
		{
			name: "roles set none clears", args: []string{"roles", "set", "--subject", "alice"},
			status: 200, resp: `{"subject":"alice","roles":[]}`,
			wantCall: &adminCall{Method: "PUT", Path: "/v1/subjects/alice/roles", Body: map[string]any{"roles": []any{}}},
			wantOut:  []string{"subject alice now has no roles"},
		},
		{
			name: "roles set refused", args: []string{"roles", "set", "--subject", "alice", "x"},
			status: 400, resp: `{"error":"bad_request","message":"role \"x\" is too short"}`,
			wantCall: &adminCall{Method: "PUT", Path: "/v1/subjects/alice/roles", Body: map[string]any{"roles": []any{"x"}}},
			wantCode: 1, wantErr: []string{`400 bad_request: role "x" is too short`},
		},
		{name: "roles set without --subject", args: []string{"roles", "set", "admin"}, wantCode: 2, wantErr: []string{"--subject is required"}},
		{name: "roles set empty role", args: []string{"roles", "set", "--subject", "alice", ""}, wantCode: 2, wantErr: []string{"a role cannot be empty"}},
		{
			name: "keys list", args: []string{"keys", "list"},
			status: 200, resp: cliKeysJSON,
			wantCall: &adminCall{Method: "GET", Path: "/v1/keys"},
			wantOut: []string{
				"KID        ALG    STATE    CREATED",
				"k-2026-03  EdDSA  active   2026-03-01T12:00:00Z",
				"k-2026-02  EdDSA  retired  2026-02-01T12:00:00Z",
			},
		},
		{
			name: "keys list --json", args: []string{"keys", "list", "--json"},
			status: 200, resp: cliKeysJSON,
			wantCall: &adminCall{Method: "GET", Path: "/v1/keys"},
			wantOut:  []string{`"kid": "k-2026-03"`, `"state": "retired"`},
		},
		{
			name: "keys rotate", args: []string{"keys", "rotate"},
			status: 200, resp: cliKeysJSON,
			wantCall: &adminCall{Method: "POST", Path: "/v1/keys/rotate"},
			wantOut:  []string{"k-2026-03  EdDSA  active"},
		},
		{
			name: "keys rotate not there yet", args: []string{"keys", "rotate"},
			status: 404, resp: `404 page not found`, header: http.Header{"Content-Type": {"text/plain"}},
			wantCall: &adminCall{Method: "POST", Path: "/v1/keys/rotate"},
			wantCode: 1, wantErr: []string{"admin API: 404: Not Found"},
		},
		{name: "keys list with an argument", args: []string{"keys", "list", "extra"}, wantCode: 2},
		{
			name: "the key is never a flag", args: []string{"keys", "list", "--admin-key=" + cliAdminKey},
			wantCode: 2, wantErr: []string{"never taken as a flag value"},
		},
		{
			// The client refuses it before any request, in the user's words:
			// one "tether: " prefix, no "bad input" jargon.
			name: "sessions revoke-all of a subject no URL can name", args: []string{"sessions", "revoke-all", "--subject", ".."},
			wantCode: 1, wantErr: []string{`tether: the subject ".." cannot be addressed in a URL`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeAdmin{status: tt.status, body: tt.resp, header: tt.header}
			adminEnv(t, f)
			code, stdout, stderr := runCLI(t, "", tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q; got:\n%s", want, stdout)
				}
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q; got:\n%s", want, stderr)
				}
			}
			if tt.wantCode == 0 && stderr != "" {
				t.Errorf("stderr %q, want it empty", stderr)
			}
			// Every error has one "tether: " prefix and names no internal package.
			for _, never := range append(tt.never, cliAdminKey, "\x1b", "tether: tether:", "adminclient", "bad input") {
				if strings.Contains(stdout+stderr, never) {
					t.Errorf("output holds %q:\nstdout:\n%s\nstderr:\n%s", never, stdout, stderr)
				}
			}
			var want []adminCall
			if tt.wantCall != nil {
				want = []adminCall{*tt.wantCall}
			}
			if diff := cmp.Diff(want, f.got()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}
}

// cliToken builds a well-formed token for session id the way tether does
// (TestTokenInspect checks InspectToken agrees), so no store is needed.
func cliToken(id string) string {
	enc := base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)
	body := tether.TokenPrefix + id + enc.EncodeToString([]byte("twenty secret bytes!"))
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.ChecksumIEEE([]byte(body)))
	return body + enc.EncodeToString(sum[:])
}

func TestTokenInspect(t *testing.T) {
	valid := cliToken(cliSessionID)
	secret := valid[len(tether.TokenPrefix)+16 : tether.TokenLen-7]
	// One character of the secret changed: the checksum no longer holds.
	flip := byte('0')
	if valid[30] == '0' {
		flip = '1'
	}
	tampered := valid[:30] + string(flip) + valid[31:]
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantOut  []string
		wantErr  []string
	}{
		{
			name: "valid", args: []string{"token", "inspect", valid},
			wantOut: []string{"prefix:       tts_", "session ID:   " + cliSessionID, "length:       59 (a Tether token has 59)",
				"checksum:     valid", "secret:       160 bits (not shown)", "description:  a well-formed Tether session token"},
		},
		{
			name: "valid from stdin", args: []string{"token", "inspect", "-"}, stdin: valid + "\n",
			wantOut: []string{"session ID:   " + cliSessionID, "checksum:     valid"},
		},
		{
			name: "valid from stdin with CRLF and no more", args: []string{"token", "inspect", "-"}, stdin: "  " + valid + "\r\nsecond line\n",
			wantOut: []string{"session ID:   " + cliSessionID},
		},
		{
			name: "valid --json", args: []string{"token", "inspect", "--json", valid},
			wantOut: []string{`"prefix": "tts_"`, `"session_id": "` + cliSessionID + `"`, `"checksum_ok": true`, `"recognised": true`},
		},
		{
			name: "tampered", args: []string{"token", "inspect", tampered},
			wantCode: 1,
			wantOut:  []string{"prefix:       tts_", "session ID:   (none)", "checksum:     INVALID", "the checksum does not match"},
			wantErr:  []string{"not a well-formed Tether session token"},
		},
		{
			name: "tampered --json", args: []string{"token", "inspect", "--json", tampered},
			wantCode: 1,
			wantOut:  []string{`"checksum_ok": false`, `"recognised": false`},
		},
		{
			name: "foreign (a JWT)", args: []string{"token", "inspect", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"},
			wantCode: 1,
			wantOut:  []string{"prefix:       (none)", "checksum:     not checked", "not a Tether session token (no tts_ prefix)"},
			wantErr:  []string{"not a well-formed Tether session token"},
		},
		{
			name: "truncated", args: []string{"token", "inspect", valid[:40]},
			wantCode: 1,
			wantOut:  []string{"length:       40 (a Tether token has 59)", "malformed: 40 characters, want 59"},
		},
		{
			name: "upper case", args: []string{"token", "inspect", strings.ToUpper(valid)},
			wantCode: 1, wantOut: []string{"upper-case letters; a Tether token is all lower case"},
		},
		{
			name: "a space inside", args: []string{"token", "inspect", valid[:20] + " " + valid[20:]},
			wantCode: 1, wantOut: []string{"a space or line break at character 21"},
		},
		{name: "empty stdin", args: []string{"token", "inspect", "-"}, wantCode: 1, wantErr: []string{"no token"}},
		{name: "huge stdin", args: []string{"token", "inspect", "-"}, stdin: strings.Repeat("a", 10000), wantCode: 1, wantErr: []string{"more than 4096 bytes"}},
		{name: "no token", args: []string{"token", "inspect"}, wantCode: 2},
		{name: "two tokens", args: []string{"token", "inspect", valid, valid}, wantCode: 2},
		{name: "help", args: []string{"token", "inspect", "--help"}, wantOut: []string{"Pass - to read the token from stdin", "never prints the secret"}},
		{name: "unknown subcommand", args: []string{"token", "decode", valid}, wantCode: 2},
	}
	if info := tether.InspectToken(valid); !info.Recognised || info.SessionID != cliSessionID {
		t.Fatalf("cliToken is out of date with the token format: %+v", info)
	}
	if tether.InspectToken(tampered).ChecksumOK {
		t.Fatal("the tampered token still has a valid checksum")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.stdin, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q; got:\n%s", want, stdout)
				}
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q; got:\n%s", want, stderr)
				}
			}
			// The secret part is never printed, nor is a rejected input echoed.
			for _, never := range []string{secret, tampered[len(tether.TokenPrefix)+16:], "c2lnbmF0dXJl"} {
				if !strings.Contains(strings.Join(tt.args, " "), "--help") && strings.Contains(stdout+stderr, never) {
					t.Errorf("output holds %q:\nstdout:\n%s\nstderr:\n%s", never, stdout, stderr)
				}
			}
		})
	}
}

func TestAdminKeySources(t *testing.T) {
	const fileKey = "key-from-a-file-0123456789"
	tests := []struct {
		name     string
		envKey   string
		dataDir  string            // TETHER_DATA_DIR
		files    map[string]string // path (relative to the working dir) → content, mode 0600
		loose    bool              // make the files mode 0644
		args     []string
		wantKey  string // the key the server must see; "" when no request is expected
		wantCode int
		wantErr  []string
	}{
		{name: "env", envKey: cliAdminKey, wantKey: cliAdminKey},
		{name: "--admin-key-file", files: map[string]string{"k": fileKey + "\n"}, args: []string{"--admin-key-file", "k"}, wantKey: fileKey},
		{name: "--admin-key-file beats env", envKey: cliAdminKey, files: map[string]string{"k": fileKey}, args: []string{"--admin-key-file", "k"}, wantKey: fileKey},
		{name: "env beats the data dir", envKey: cliAdminKey, files: map[string]string{"tether-data/admin.key": fileKey}, wantKey: cliAdminKey},
		{name: "./tether-data/admin.key", files: map[string]string{"tether-data/admin.key": fileKey + "\n"}, wantKey: fileKey},
		{name: "$TETHER_DATA_DIR/admin.key", dataDir: "d", files: map[string]string{"d/admin.key": fileKey}, wantKey: fileKey},
		{
			name: "none", wantCode: 1,
			wantErr: []string{"no admin key: set TETHER_ADMIN_KEY, or use --admin-key-file", filepath.Join("tether-data", "admin.key")},
		},
		{name: "missing file", args: []string{"--admin-key-file", "nope"}, wantCode: 1, wantErr: []string{"admin key file: open nope"}},
		{name: "empty file", files: map[string]string{"k": "\n"}, args: []string{"--admin-key-file", "k"}, wantCode: 1, wantErr: []string{"admin key file k is empty"}},
		{
			name: "readable by others", files: map[string]string{"k": fileKey}, loose: true, args: []string{"--admin-key-file", "k"},
			wantKey: fileKey, wantErr: []string{"warning: k is readable by other users"},
		},
		{name: "wrong key", envKey: "a-wrong-admin-key-0000", wantKey: "a-wrong-admin-key-0000", wantCode: 1, wantErr: []string{"refused the admin key (401)"}},
		{name: "bad server URL", envKey: cliAdminKey, args: []string{"--server", "ftp://x"}, wantCode: 2, wantErr: []string{`tether: server URL "ftp://x": scheme must be http or https`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var gotKey string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				gotKey = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
				mu.Unlock()
				if gotKey == tt.wantKey && tt.wantCode == 0 {
					r.Header.Set("Authorization", "Bearer "+cliAdminKey) // this case's key is the right one
				}
				(&fakeAdmin{status: 200, body: cliKeysJSON}).ServeHTTP(w, r)
			}))
			defer srv.Close()
			t.Setenv("TETHER_ADMIN_URL", srv.URL)
			t.Setenv("TETHER_ADMIN_KEY", tt.envKey)
			t.Setenv("TETHER_DATA_DIR", tt.dataDir)
			t.Chdir(t.TempDir())
			for path, content := range tt.files {
				mode := os.FileMode(0o600)
				if tt.loose {
					mode = 0o644
				}
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(content), mode); err != nil {
					t.Fatal(err)
				}
				os.Chmod(path, mode) // past the umask
			}
			code, stdout, stderr := runCLI(t, "", append([]string{"keys", "list"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q; got:\n%s", want, stderr)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if gotKey != tt.wantKey {
				t.Errorf("server got key %q, want %q", gotKey, tt.wantKey)
			}
			for _, key := range []string{cliAdminKey, fileKey, tt.envKey} {
				if key != "" && strings.Contains(stdout+stderr, key) {
					t.Errorf("output holds the key %q:\nstdout:\n%s\nstderr:\n%s", key, stdout, stderr)
				}
			}
		})
	}
}

func TestUnreachableServer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens there now
	t.Setenv("TETHER_ADMIN_KEY", cliAdminKey)
	t.Setenv("TETHER_ADMIN_URL", "")
	code, _, stderr := runCLI(t, "", "sessions", "revoke-all", "--subject", "alice", "--server", srv.URL)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if want := "cannot reach the admin API"; !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q; got:\n%s", want, stderr)
	}
	if strings.Contains(stderr, cliAdminKey) {
		t.Errorf("stderr holds the key: %s", stderr)
	}
}

func TestPlainHTTPWarning(t *testing.T) {
	t.Setenv("TETHER_ADMIN_KEY", cliAdminKey)
	// The warning comes before the request; a cancelled context makes that
	// request fail at once instead of waiting on 192.0.2.1 (TEST-NET-1).
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	code, _, stderr := runCLIContext(ctx, "", "sessions", "list", "--subject", "alice", "--server", "http://192.0.2.1:1")
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if want := "warning: sending the admin key over plain HTTP to 192.0.2.1:1"; !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q; got:\n%s", want, stderr)
	}
	code, _, stderr = runCLIContext(ctx, "", "sessions", "list", "--subject", "alice", "--server", "http://localhost:1")
	if code != 1 || strings.Contains(stderr, "warning") {
		t.Errorf("loopback: exit code %d and stderr %q, want 1 and no warning", code, stderr)
	}
}

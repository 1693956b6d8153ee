package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestKeysNewShared(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.key")
	if err := os.WriteFile(existing, []byte("keep me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "new file", args: []string{filepath.Join(dir, "new.key")}},
		{name: "existing file is never overwritten", args: []string{existing}, wantCode: 1, wantErr: "already exists"},
		{name: "missing directory", args: []string{filepath.Join(dir, "nope", "x.key")}, wantCode: 1, wantErr: "no such file"},
		{name: "no file named", args: nil, wantCode: 2},
		{name: "two files named", args: []string{filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")}, wantCode: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, "", append([]string{"keys", "new-shared"}, tt.args...)...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q: want exit %d and %q", code, stderr, tt.wantCode, tt.wantErr)
			}
			if code != 0 {
				return
			}
			path := tt.args[0]
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("mode: got %v, want 0600", fi.Mode().Perm())
			}
			b, _ := os.ReadFile(path)
			text := strings.TrimSuffix(string(b), "\n")
			key, err := base64.RawURLEncoding.Strict().DecodeString(text)
			if err != nil || len(key) < 32 {
				t.Errorf("key: got %d bytes (%v), want ≥ 32 as unpadded base64url", len(key), err)
			}
			if strings.Contains(stdout+stderr, text) {
				t.Errorf("the key was printed: %q", stdout+stderr)
			}
		})
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me\n" {
		t.Errorf("existing file now holds %q", b)
	}
	// Two keys from two runs differ: they come from crypto/rand.
	a, b := filepath.Join(dir, "r1.key"), filepath.Join(dir, "r2.key")
	runCLI(t, "", "keys", "new-shared", a)
	runCLI(t, "", "keys", "new-shared", b)
	ka, _ := os.ReadFile(a)
	kb, _ := os.ReadFile(b)
	if len(ka) == 0 || bytes.Equal(ka, kb) {
		t.Errorf("two new keys: %d bytes, equal %v", len(ka), bytes.Equal(ka, kb))
	}
}

// TestReadmeHandshakeByHand follows the README's "handshake by hand": the
// key from `tether keys new-shared`, the two config files written exactly as
// the README's shell block writes them, and its curl calls made with net/http
// (curl's -d sends application/x-www-form-urlencoded unless told otherwise).
func TestReadmeHandshakeByHand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nodes")
	}
	dir := t.TempDir()
	md, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	files := heredocs(t, string(md), "a.yaml", "b.yaml")
	if code, _, stderr := runCLI(t, "", "keys", "new-shared", filepath.Join(dir, "a-to-b.key")); code != 0 {
		t.Fatalf("keys new-shared: exit %d: %s", code, stderr)
	}
	nodes := map[string]*localNode{}
	for _, name := range []string{"a", "b"} {
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, []byte(files[name+".yaml"]), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := localConfig(filepath.Join(dir, name+"-data"), "")
		if err := cfg.LoadFile(path); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Resolve(); err != nil {
			t.Fatal(err)
		}
		n, err := startLocalNode(t.Context(), cfg)
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() { n.stop() })
		nodes[name] = n
	}
	a, b := nodes["a"], nodes["b"]
	call := func(method, url, bearer, contentType, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var got map[string]any
		json.Unmarshal(raw, &got)
		return resp.StatusCode, got
	}
	const curlForm = "application/x-www-form-urlencoded"
	code, login := call("POST", a.admin+"/v1/sessions", a.adminKey, curlForm, `{"subject":"alice"}`)
	if code != http.StatusCreated {
		t.Fatalf("login at A: %d %v", code, login)
	}
	code, hs := call("POST", a.public+"/v1/handshakes", login["token"].(string), "application/json", `{"audience":"https://b.example"}`)
	if code != http.StatusCreated {
		t.Fatalf("mint at A: %d %v", code, hs)
	}
	body := fmt.Sprintf(`{"token":%q}`, hs["token"])
	if code, got := call("POST", b.public+"/v1/handshakes/exchange", "", curlForm, body); code != http.StatusBadRequest {
		t.Errorf("exchange without Content-Type: application/json: got %d %v, want 400", code, got)
	}
	code, got := call("POST", b.public+"/v1/handshakes/exchange", "", "application/json", body)
	if code != http.StatusCreated {
		t.Fatalf("exchange at B: %d %v", code, got)
	}
	sess, _ := got["session"].(map[string]any)
	if sess["subject"] != "alice" || sess["auth_method"] != "handshake" || sess["auth_time"] == nil {
		t.Errorf("B's session: got %v, want alice, auth_method handshake and an auth_time", sess)
	}
	if at, err := time.Parse(time.RFC3339, fmt.Sprint(sess["auth_time"])); err != nil || time.Since(at) > time.Minute {
		t.Errorf("auth_time %v: want alice's login at A, just now (%v)", sess["auth_time"], err)
	}
	if code, got := call("POST", b.public+"/v1/handshakes/exchange", "", "application/json", body); code != http.StatusUnauthorized {
		t.Errorf("replay at B: got %d %v, want 401", code, got)
	}
}

// heredocs returns the bodies of `cat > NAME <<'EOF'` blocks in md.
func heredocs(t *testing.T, md string, names ...string) map[string]string {
	t.Helper()
	start := regexp.MustCompile(`^cat > (\S+) <<'EOF'$`)
	out := map[string]string{}
	var name string
	var body strings.Builder
	sc := bufio.NewScanner(strings.NewReader(md))
	for sc.Scan() {
		line := sc.Text()
		switch m := start.FindStringSubmatch(line); {
		case m != nil:
			name = m[1]
			body.Reset()
		case name != "" && line == "EOF":
			out[name] = body.String()
			name = ""
		case name != "":
			body.WriteString(line + "\n")
		}
	}
	for _, n := range names {
		if out[n] == "" {
			t.Fatalf("README has no `cat > %s <<'EOF'` block", n)
		}
	}
	return out
}

package config

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tetherhq/tether/webhook"
)

// TestResolveWebhooks: a webhook's URL, secret file and event types are
// checked when the settings load, before any secret is read, whatever the
// store.
func TestResolveWebhooks(t *testing.T) {
	ok := Webhook{URL: "https://hooks.example/t", SecretFile: "/s"}
	tests := []struct {
		name  string
		w     Webhook
		store string
		want  string // "" for no error, else a substring of it
	}{
		{"https", ok, "", ""},
		{"loopback http, some types", Webhook{URL: "http://127.0.0.1:9/t", SecretFile: "/s", Events: []string{"session.revoked", "subject.revoked"}}, "", ""},
		{"plain http elsewhere", Webhook{URL: "http://hooks.example/t", SecretFile: "/s"}, "", "webhooks[0].url"},
		{"credentials in the URL", Webhook{URL: "https://u:p@hooks.example/t", SecretFile: "/s"}, "", "webhooks[0].url"},
		{"no URL", Webhook{SecretFile: "/s"}, "", "webhooks[0].url"},
		{"no secret file", Webhook{URL: "https://hooks.example/t"}, "", "webhooks[0].secret_file must be set"},
		{"unknown type", Webhook{URL: "https://hooks.example/t", SecretFile: "/s", Events: []string{"session.deleted"}}, "", `unknown event type "session.deleted"`},
		// Every store keeps the event log that deliveries come from.
		{"on Redis Cluster", ok, "redis+cluster://127.0.0.1:7000,127.0.0.1:7001", ""},
		{"on standalone Redis", ok, "redis://127.0.0.1:6379/0", ""},
		{"on Sentinel", ok, "redis+sentinel://127.0.0.1:26379/0?master=m", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Webhooks = []Webhook{tt.w}
			c.Store = tt.store
			wantErr(t, c.Resolve(), tt.want)
		})
	}
}

// TestWebhookEndpoints: the secret files become the endpoints' keys; a file
// others can read, or one that holds no whsec_ secret, is refused without
// showing its content.
func TestWebhookEndpoints(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{0xa7}, 32)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	good := write("good.secret", secret+"\n", 0o600)
	ownerOnly := write("owner-read.secret", secret, 0o400)
	groupReadable := write("group.secret", secret, 0o640)
	worldReadable := write("world.secret", secret, 0o604)
	notWhsec := write("raw.secret", "s3cret-"+base64.StdEncoding.EncodeToString(key), 0o600)
	short := write("short.secret", "whsec_"+base64.StdEncoding.EncodeToString(key[:8]), 0o600)
	huge := write("huge.secret", strings.Repeat("whsec_", 1000), 0o600)

	tests := []struct {
		name  string
		files []string
		want  string // "" for no error
	}{
		{"none", nil, ""},
		{"mode 0600", []string{good}, ""},
		{"mode 0400", []string{ownerOnly}, ""},
		{"group can read", []string{good, groupReadable}, "webhooks[1].secret_file: " + groupReadable + " has mode 0640"},
		{"others can read", []string{worldReadable}, "mode 0604"},
		{"not whsec_", []string{notWhsec}, `starts with "whsec_"`},
		{"too short", []string{short}, "24 to 64 bytes"},
		{"too large", []string{huge}, "larger than"},
		{"missing", []string{filepath.Join(dir, "missing.secret")}, "no such file"},
		{"a directory", []string{dir}, "not a regular file"},
		{"a device", []string{os.DevNull}, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			for _, f := range tt.files {
				c.Webhooks = append(c.Webhooks, Webhook{URL: "https://hooks.example/t", SecretFile: f, Events: []string{"session.revoked"}})
			}
			eps, err := c.WebhookEndpoints()
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
				}
				if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(key)) {
					t.Errorf("error %q shows a secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want []webhook.Endpoint
			for range tt.files {
				want = append(want, webhook.Endpoint{URL: "https://hooks.example/t", Secret: key, Events: []string{"session.revoked"}})
			}
			if diff := cmp.Diff(want, eps); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEventRetention: the file's retention reaches tether.Config; 0 keeps
// every event, which the library spells as negative.
func TestEventRetention(t *testing.T) {
	for _, tt := range []struct{ file, want time.Duration }{
		{30 * 24 * time.Hour, 30 * 24 * time.Hour},
		{time.Hour, time.Hour},
		{0, -1},
		{-time.Hour, -1},
	} {
		c := Default()
		c.Events.Retention = tt.file
		if got := c.Manager(nil, nil).EventRetention; got != tt.want {
			t.Errorf("events.retention %v: got tether.Config.EventRetention %v, want %v", tt.file, got, tt.want)
		}
	}
	if got := Default().Events.Retention; got != 30*24*time.Hour {
		t.Errorf("default events.retention %v, want 30 days (DESIGN §10)", got)
	}
}

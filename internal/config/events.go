package config

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/webhook"
)

// Events tunes the event log (DESIGN §10).
type Events struct {
	Retention time.Duration `yaml:"retention"` // 0 (or negative): keep every event
}

// Webhook is one endpoint that receives the events as Standard Webhooks.
type Webhook struct {
	URL        string   `yaml:"url"`
	SecretFile string   `yaml:"secret_file"` // "whsec_" + base64, mode 0600
	Events     []string `yaml:"events"`      // none: every type
}

var eventSettings = []Setting{
	{Key: "events.retention", Env: "TETHER_EVENTS_RETENTION", Flag: "events-retention", Default: "720h",
		Help:  "how long the event log keeps events (default 30 days); older ones are trimmed hourly; 0: keep every event",
		field: func(c *Config) any { return &c.Events.Retention }},
	{Key: "webhooks", Help: "endpoints that receive events as signed Standard Webhooks: a list of {url, secret_file, events: [types]} (see Events, audit log and webhooks)"},
}

// checkWebhooks checks what can be checked without reading the secrets, so
// that a typo stops Load.
func (c *Config) checkWebhooks() error {
	for i, w := range c.Webhooks {
		if err := webhook.CheckURL(w.URL); err != nil {
			return fmt.Errorf("config: webhooks[%d].url: %w", i, err)
		}
		if w.SecretFile == "" {
			return fmt.Errorf("config: webhooks[%d].secret_file must be set", i)
		}
		for _, t := range w.Events {
			if !slices.Contains(tether.EventTypes, t) {
				return fmt.Errorf("config: webhooks[%d].events: unknown event type %q; want one of %v", i, t, tether.EventTypes)
			}
		}
	}
	return nil
}

// WebhookEndpoints reads the webhooks' secrets. A secret file must be
// readable by its owner alone (mode 0600 or stricter), as a key is; errors
// name the file, never its content.
func (c *Config) WebhookEndpoints() ([]webhook.Endpoint, error) {
	var eps []webhook.Endpoint
	for i, w := range c.Webhooks {
		secret, err := readSecretFile(w.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("config: webhooks[%d].secret_file: %w", i, err)
		}
		eps = append(eps, webhook.Endpoint{URL: w.URL, Secret: secret, Events: w.Events})
	}
	return eps, nil
}

// maxSecretFileBytes bounds a secret file: a whsec_ secret of 64 bytes is
// under 100 characters.
const maxSecretFileBytes = 4 << 10

func readSecretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o: a secret file must be readable by its owner only (chmod 600)", path, perm)
	}
	if fi.Size() > maxSecretFileBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a webhook secret", path, maxSecretFileBytes)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	secret, err := webhook.ParseSecret(string(b))
	if err != nil {
		return nil, errors.New(path + ": " + err.Error()) // ParseSecret's errors never hold the secret
	}
	return secret, nil
}

// retention is the file's events.retention as tether.Config takes it: there 0
// means the default and negative means forever.
func (e Events) retention() time.Duration {
	if e.Retention <= 0 {
		return -1
	}
	return e.Retention
}

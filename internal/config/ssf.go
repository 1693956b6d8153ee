package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tetherhq/tether/ssf"
)

// SSF is the Shared Signals section (DESIGN §11): whom this node pushes its
// revocations to, who may manage a stream of them, and whose it accepts.
type SSF struct {
	Receivers    []SSFReceiver    `yaml:"receivers"`
	Clients      []SSFClient      `yaml:"clients"`
	Transmitters []SSFTransmitter `yaml:"transmitters"`
	// AllowPrivateEndpoints lets streams made through the management API push
	// to loopback, private or plain-http endpoints: for development only, as
	// it lets a client make this node send requests inside its network.
	AllowPrivateEndpoints bool `yaml:"allow_private_endpoints"`
}

// SSFReceiver gets every event pushed (RFC 8935) to its endpoint.
type SSFReceiver struct {
	Audience          string `yaml:"audience"`
	Endpoint          string `yaml:"endpoint"`
	AuthorizationFile string `yaml:"authorization_file"` // the secret sent as "Authorization: Bearer …"
}

// SSFClient may make one stream through the management API, authorised by
// the token in TokenFile.
type SSFClient struct {
	Audience  string `yaml:"audience"`
	TokenFile string `yaml:"token_file"`
}

// SSFTransmitter is a transmitter whose SETs this node accepts at
// POST /ssf/events.
type SSFTransmitter struct {
	Issuer            string `yaml:"issuer"`
	JWKSURL           string `yaml:"jwks_url"`
	Alg               string `yaml:"alg"`                // EdDSA (default) or ES256
	AuthorizationFile string `yaml:"authorization_file"` // the secret it must send
}

var ssfSettings = []Setting{
	{Key: "ssf", Help: "Shared Signals: ssf.receivers to push revocations to, ssf.clients that may manage a stream, ssf.transmitters to accept them from (see Revocation across services)"},
}

// MaxSecretBytes bounds a secret file.
const MaxSecretBytes = 4 << 10

// ReadSecret reads a file holding one secret (surrounding whitespace
// ignored). Errors name the path, never the content.
func ReadSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSecretBytes+1))
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	switch {
	case len(b) > MaxSecretBytes:
		return "", fmt.Errorf("%s: larger than %d bytes", path, MaxSecretBytes)
	case len(s) < 16:
		return "", fmt.Errorf("%s: a secret of at least 16 characters is required", path)
	case strings.ContainsAny(s, " \t\r\n"):
		return "", fmt.Errorf("%s: one secret without whitespace is expected", path)
	}
	return s, nil
}

// Load reads the section's secret files into the ssf package's types.
func (c SSF) Load() (receivers []ssf.PushReceiver, clients []ssf.Client, transmitters []ssf.TrustedTransmitter, err error) {
	var errs []error
	secret := func(key, path string) string {
		if path == "" {
			errs = append(errs, fmt.Errorf("config: %s is required", key))
			return ""
		}
		s, err := ReadSecret(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("config: %s: %w", key, err))
		}
		return s
	}
	for i, r := range c.Receivers {
		receivers = append(receivers, ssf.PushReceiver{Audience: r.Audience, Endpoint: r.Endpoint,
			Authorization: secret(fmt.Sprintf("ssf.receivers[%d].authorization_file", i), r.AuthorizationFile)})
	}
	for i, cl := range c.Clients {
		clients = append(clients, ssf.Client{Audience: cl.Audience,
			Token: secret(fmt.Sprintf("ssf.clients[%d].token_file", i), cl.TokenFile)})
	}
	for i, t := range c.Transmitters {
		transmitters = append(transmitters, ssf.TrustedTransmitter{Issuer: t.Issuer, JWKSURL: t.JWKSURL, Alg: t.Alg,
			Authorization: secret(fmt.Sprintf("ssf.transmitters[%d].authorization_file", i), t.AuthorizationFile)})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, nil, err
	}
	return receivers, clients, transmitters, nil
}

package handshake

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/tetherhq/tether/internal/urlpolicy"
)

// Formats and algorithms. Each (format, alg) pair is bound to one key type
// when the configuration is loaded; nothing in a token can change it.
const (
	FormatJWT    = "jwt"
	FormatPASETO = "paseto"

	AlgHS256    = "HS256"     // JWT, shared key of at least 32 bytes
	AlgEdDSA    = "EdDSA"     // JWT, Ed25519
	AlgES256    = "ES256"     // JWT, ECDSA P-256
	AlgV4Public = "v4.public" // PASETO v4.public, Ed25519
	AlgV4Local  = "v4.local"  // PASETO v4.local, shared 32-byte key
)

// Limits and defaults.
const (
	DefaultTTL    = 60 * time.Second
	MaxTTL        = 5 * time.Minute // also the longest accepted exp − iat
	DefaultLeeway = 30 * time.Second
	MaxLeeway     = 5 * time.Minute
	MaxTokenSize  = 8 << 10 // bytes; longer input is refused before parsing
)

// Config is the handshake part of Tether's configuration file (the
// "handshake:" key). Durations are Go duration strings ("60s"), which
// go.yaml.in/yaml/v3 decodes into time.Duration by itself.
type Config struct {
	// TTL is the lifetime of the tokens this node mints: default 60s, at most 5m.
	TTL time.Duration `yaml:"ttl"`
	// Leeway is the clock skew allowed on exp, nbf and iat: default 30s
	// (zero means the default), at most 5m.
	Leeway time.Duration `yaml:"leeway"`
	// Audiences are whom this node mints tokens for, keyed by audience.
	Audiences map[string]AudienceSpec `yaml:"audiences"`
	// TrustedIssuers are whose tokens this node accepts.
	TrustedIssuers []IssuerSpec `yaml:"trusted_issuers"`
}

// AudienceSpec says how to mint for one audience. KeyFile is required for
// HS256 and v4.local (a shared key); EdDSA, ES256 and v4.public use the
// node's own key ring and take no key file.
type AudienceSpec struct {
	Format  string `yaml:"format"`
	Alg     string `yaml:"alg"`
	KeyFile string `yaml:"key_file,omitempty"`
}

// IssuerSpec trusts one issuer with one pinned format, algorithm and key
// source: KeyFile (HS256, v4.local), PublicKeyFile (EdDSA, ES256,
// v4.public) or JWKSURL (EdDSA, ES256; https, or http to a loopback address).
type IssuerSpec struct {
	Issuer        string `yaml:"issuer"`
	Format        string `yaml:"format"`
	Alg           string `yaml:"alg"`
	KeyFile       string `yaml:"key_file,omitempty"`
	PublicKeyFile string `yaml:"public_key_file,omitempty"`
	JWKSURL       string `yaml:"jwks_url,omitempty"`
	// SubjectPrefix is put before the token's sub to name the local subject
	// (Claims.LocalSubject). When unset: none for a shared-key issuer (an
	// internal service sharing this node's users) and "<issuer>|" for a
	// public-key issuer, so that an external party can never speak for a
	// local user, only for its own.
	SubjectPrefix *string `yaml:"subject_prefix,omitempty"`
}

// subjectPrefix returns the prefix with its default applied, for the
// issuer's suite.
func (s IssuerSpec) subjectPrefix(st suite) string {
	switch {
	case s.SubjectPrefix != nil:
		return *s.SubjectPrefix
	case st.sharedKey():
		return ""
	default:
		return s.Issuer + "|"
	}
}

// ttl returns the minting lifetime with its default applied.
func (c Config) ttl() (time.Duration, error) {
	switch {
	case c.TTL == 0:
		return DefaultTTL, nil
	case c.TTL < time.Second || c.TTL > MaxTTL:
		return 0, fmt.Errorf("handshake: ttl %s out of range [1s, %s]", c.TTL, MaxTTL)
	}
	return c.TTL, nil
}

// leeway returns the clock leeway with its default applied.
func (c Config) leeway() (time.Duration, error) {
	switch {
	case c.Leeway == 0:
		return DefaultLeeway, nil
	case c.Leeway < 0 || c.Leeway > MaxLeeway:
		return 0, fmt.Errorf("handshake: leeway %s out of range (0, %s]", c.Leeway, MaxLeeway)
	}
	return c.Leeway, nil
}

// checkSource returns the issuer's suite after checking that the entry
// names exactly the key source the suite needs.
func (s IssuerSpec) checkSource() (suite, error) {
	if s.Issuer == "" {
		return nil, fmt.Errorf("handshake: trusted issuer without issuer")
	}
	st, err := lookupSuite(s.Format, s.Alg)
	if err != nil {
		return nil, fmt.Errorf("trusted issuer %s: %w", s.Issuer, err)
	}
	wrong := func(what string) error {
		return fmt.Errorf("handshake: trusted issuer %s (%s): %s", s.Issuer, s.Alg, what)
	}
	if st.sharedKey() {
		if s.KeyFile == "" || s.PublicKeyFile != "" || s.JWKSURL != "" {
			return nil, wrong("needs key_file and nothing else")
		}
		return st, nil
	}
	if s.KeyFile != "" {
		return nil, wrong("key_file is for shared keys; use public_key_file or jwks_url")
	}
	if (s.PublicKeyFile == "") == (s.JWKSURL == "") {
		return nil, wrong("needs exactly one of public_key_file and jwks_url")
	}
	if s.JWKSURL != "" {
		if !st.jwks() {
			return nil, wrong("jwks_url is for JWT issuers only")
		}
		if urlpolicy.HTTPSOrLoopback(s.JWKSURL) != nil {
			return nil, wrong("jwks_url must be an https URL (plain http only to a loopback address)")
		}
	}
	return st, nil
}

// resolve makes a relative key file path relative to baseDir.
func resolve(baseDir, path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(baseDir, path)
}

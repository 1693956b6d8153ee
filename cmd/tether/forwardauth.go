package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/forwardauth"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/internal/config"
)

// newAuthorizer builds forward auth (/v1/authz) from the forward_auth and
// cookie sections.
func newAuthorizer(cfg config.Config, m *tether.Manager, log *slog.Logger) (*forwardauth.Authorizer, error) {
	p, err := forwardauth.NewPolicy(cfg.Front.ForwardAuth)
	if err != nil {
		return nil, err
	}
	return forwardauth.New(forwardauth.Options{
		Validator: m, Cookies: tether.Cookies{Domain: cfg.Front.Cookie.Domain}, Logger: log,
	}, p)
}

// oidcConfig reads the oidc section and its client secret file; nil when
// sign-in through an OpenID provider is off.
func oidcConfig(cfg config.Config) (*api.OIDCConfig, error) {
	o := cfg.Front.OIDC
	if o.Issuer == "" {
		return nil, nil
	}
	var secret string
	if o.ClientSecretFile != "" {
		fi, err := os.Stat(o.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("oidc.client_secret_file: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("oidc.client_secret_file %s: readable by others (mode %v); want 0600", o.ClientSecretFile, fi.Mode().Perm())
		}
		b, err := os.ReadFile(o.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("oidc.client_secret_file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	return &api.OIDCConfig{
		Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: secret, RedirectURL: o.RedirectURL,
		Scopes: o.Scopes, RolesClaim: o.RolesClaim, SubjectPrefix: o.SubjectPrefix,
	}, nil
}

// reloadOnSIGHUP re-reads the forward_auth section of the config file on
// every SIGHUP and swaps the new rules in atomically: requests in flight
// finish under the old ones and none is dropped. A file that does not load
// leaves the old rules in place. Other settings need a restart. The returned
// function stops it.
func reloadOnSIGHUP(file string, a *forwardauth.Authorizer, log *slog.Logger) (stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
			}
			if file == "" {
				log.Warn("SIGHUP: no config file to reload forward_auth rules from")
				continue
			}
			c := config.Default()
			err := c.LoadFile(file)
			if err == nil {
				err = c.Resolve()
			}
			var p *forwardauth.Policy
			if err == nil {
				p, err = forwardauth.NewPolicy(c.Front.ForwardAuth)
			}
			if err != nil {
				log.Error("SIGHUP: forward_auth rules not reloaded; the old ones stay", "err", err)
				continue
			}
			a.SetPolicy(p)
			log.Info("forward_auth rules reloaded", "rules", len(c.Front.ForwardAuth.Rules))
		}
	}()
	return func() {
		signal.Stop(sig)
		cancel()
		wg.Wait()
	}
}

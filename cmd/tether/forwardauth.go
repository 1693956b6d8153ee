package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/forwardauth"
	"github.com/tetherhq/tether/forwardauth/extauthz"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/internal/config"
)

// newAuthorizer builds forward auth (/v1/authz) from the forward_auth and
// cookie sections.
func newAuthorizer(cfg config.Config, m *tether.Manager, log *slog.Logger) (*forwardauth.Authorizer, error) {
	p, err := forwardauth.NewPolicy(cfg.ForwardAuth.Config)
	if err != nil {
		return nil, err
	}
	return forwardauth.New(forwardauth.Options{
		Validator: m, Cookies: tether.Cookies{Domain: cfg.Cookie.Domain}, Logger: log,
	}, p)
}

// oidcConfig reads the oidc section and its client secret file; nil when
// sign-in through an OpenID provider is off.
func oidcConfig(cfg config.Config) (*api.OIDCConfig, error) {
	o := cfg.OIDC
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

// serveExtAuthz serves Envoy's gRPC ext_authz on addr, a listener of its
// own, until the returned function stops it (gracefully, within ctx's time).
func serveExtAuthz(addr string, a *forwardauth.Authorizer, log *slog.Logger) (stop func(context.Context), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ext_authz gRPC listener: %w", err)
	}
	srv := grpc.NewServer(grpc.ConnectionTimeout(5*time.Second), grpc.MaxRecvMsgSize(64<<10))
	authv3.RegisterAuthorizationServer(srv, extauthz.New(a))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil {
			log.Error("ext_authz gRPC listener stopped", "err", err)
		}
	}()
	log.Info("ext_authz gRPC ready", "addr", ln.Addr().String())
	return func(ctx context.Context) {
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			srv.Stop()
		}
		<-done
	}, nil
}

// signInURL is where the account pages send a browser that is not signed
// in: the OpenID sign-in when there is one.
func signInURL(o *api.OIDCConfig) string {
	if o == nil {
		return ""
	}
	return "/v1/login"
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
				p, err = forwardauth.NewPolicy(c.ForwardAuth.Config)
			}
			if err != nil {
				log.Error("SIGHUP: forward_auth rules not reloaded; the old ones stay", "err", err)
				continue
			}
			a.SetPolicy(p)
			log.Info("forward_auth rules reloaded", "rules", len(c.ForwardAuth.Rules))
		}
	}()
	return func() {
		signal.Stop(sig)
		cancel()
		wg.Wait()
	}
}

package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/internal/adminauth"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/internal/config"
	"github.com/tetherhq/tether/internal/server"
	"github.com/tetherhq/tether/internal/tracing"
	"github.com/tetherhq/tether/store"
	"github.com/tetherhq/tether/webhook"
)

func newServeCmd() *cobra.Command {
	src := config.Source{Getenv: os.Getenv, Flags: config.Flags{}}
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the public and admin APIs",
		Long: `Run the public API (--addr) and the admin API (--admin-addr).

Settings come from flags, then the environment, then the YAML file given by
--config (TETHER_CONFIG), then defaults; README.md's Configuration table lists
each with its key, variable and flag. The admin key comes from
TETHER_ADMIN_KEY; if that is unset, one is generated once into the data dir.`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := config.Load(src)
			if err != nil {
				return err
			}
			return serve(c.Context(), cfg, cfg.AdminKey, c.OutOrStdout(), c.ErrOrStderr(), nil)
		},
	}
	src.Flags.Register(c.Flags())
	return c
}

// serve runs a node until ctx ends. ready, if not nil, receives the bound
// addresses (tests and the demo listen on port 0).
func serve(ctx context.Context, cfg config.Config, adminKey string, stdout, stderr io.Writer, ready func(public, admin string)) error {
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: logLevel(cfg.LogLevel)}))
	// Every file the settings name is checked before anything is written or
	// listened on, so a typo costs no admin key, database or half start.
	if err := cfg.CheckFiles(); err != nil {
		return err
	}
	var tlsConfig *tls.Config
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return fmt.Errorf("config: tls.cert_file %s and tls.key_file %s: %w", cfg.TLS.CertFile, cfg.TLS.KeyFile, err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	// Off unless the standard OTEL_ environment turns it on; then the store,
	// the routes and the outgoing calls (JWKS, webhooks) make spans.
	tr, err := tracing.FromEnv(ctx, versionString())
	if err != nil {
		return err
	}
	defer func() { // last: the spans of the shutdown go out too
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(ctx); err != nil {
			log.Warn("tracing: spans not sent at shutdown", "err", err)
		}
	}()
	var verifierOpts handshake.Options
	if tr.On() {
		// The verifier bounds each JWKS fetch itself.
		verifierOpts.HTTPClient = &http.Client{Transport: tr.Transport(nil)}
	}
	// The verifier needs nothing from the data dir, so its key files are
	// loaded (and refused) before the data dir is touched too. The config
	// made the file's key paths absolute already.
	verifier, err := handshake.NewVerifier(cfg.Issuer, cfg.Handshake, ".", verifierOpts)
	if err != nil {
		return err
	}
	hooks, err := cfg.WebhookEndpoints()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if adminKey == "" {
		key, path, created, err := loadOrCreateAdminKey(cfg.DataDir)
		if err != nil {
			return err
		}
		adminKey = key
		if created {
			fmt.Fprintf(stdout, "admin key generated and saved in %s (mode 0600)\n", path)
		} else {
			fmt.Fprintf(stdout, "admin key read from %s\n", path)
		}
	}

	st, err := store.Open(ctx, cfg.Store, cfg.DataDir, cfg.StoreOptions(log))
	if err != nil {
		return err
	}
	defer st.Close()
	if tr.On() {
		st = tether.TraceStore(st, tr.Tracer())
	}
	mcfg := cfg.Manager(st, log)
	mcfg.Cookies = tether.Cookies{Domain: cfg.Cookie.Domain}
	m, err := tether.NewManager(mcfg)
	if err != nil {
		return err
	}
	defer m.Close()
	keys, err := handshake.LoadKeyRing(filepath.Join(cfg.DataDir, "keys"), handshake.Options{})
	if err != nil {
		return err
	}
	// Both are built even when nothing is configured, so that every mistake in
	// the handshake section stops the start with a clear error.
	minter, err := handshake.NewMinter(cfg.Issuer, cfg.Handshake, keys, ".", handshake.Options{})
	if err != nil {
		return err
	}
	admin, err := adminauth.New(adminKey) // one key check for the admin API and the console
	if err != nil {
		return err
	}
	admin.RecordFailures(m)
	authz, err := newAuthorizer(cfg, m, log)
	if err != nil {
		return err
	}
	defer reloadOnSIGHUP(cfg.File, authz, log)()
	oidcCfg, err := oidcConfig(cfg)
	if err != nil {
		return err
	}
	transmitter, receiver, err := startSSF(cfg, m, st, keys, verifier, log, tr.Transport(nil))
	if err != nil {
		return err
	}
	defer transmitter.Close()
	if oidcCfg != nil && tr.On() {
		// The sign-in's own default timeout, with trace context on its calls
		// to the provider.
		oidcCfg.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: tr.Transport(nil)}
	}
	srv, err := api.New(api.Config{Manager: m, Admin: admin, Logger: log, Keys: keys, Minter: minter, Verifier: verifier,
		ForwardAuth: authz, OIDC: oidcCfg, Cookies: mcfg.Cookies, SignInURL: signInURL(oidcCfg), Tracing: tr,
		Transmitter: transmitter, Receiver: receiver})
	if err != nil {
		return err
	}
	// Deliveries come from the store's event log, so they start here and
	// pick up whatever an earlier run left undelivered.
	deliverer, err := webhook.New(webhook.Config{Manager: m, Endpoints: hooks, Logger: log,
		Registerer: srv.Metrics().Registry(), Transport: tr.Transport(nil)})
	if err != nil {
		return err
	}
	defer deliverer.Close() // before the Manager and the store close

	// Envoy's gRPC ext_authz, if configured, on a listener of its own, until
	// serve returns.
	if addr := cfg.ForwardAuth.GRPCAddr; addr != "" {
		stop, err := serveExtAuthz(addr, authz, log)
		if err != nil {
			return err
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
			defer cancel()
			stop(ctx)
		}()
	}
	pubLn, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("public listener: %w", err)
	}
	admLn, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		pubLn.Close()
		return fmt.Errorf("admin listener: %w", err)
	}
	public := srv.Public()
	if tlsConfig != nil {
		public = hsts(public)
	}
	pubHTTP := newHTTPServer(public, log)
	pubHTTP.TLSConfig = tlsConfig
	lim := cfg.Server
	admHTTP := newHTTPServer(srv.Admin(), log)
	admHTTP.RegisterOnShutdown(srv.Close) // change streams never go idle by themselves
	servers := []*server.Server{
		server.New("public", pubHTTP, pubLn, server.Limits{MaxInflight: lim.MaxInflight, MaxConns: lim.MaxConns}, log),
		server.New("admin", admHTTP, admLn, server.Limits{MaxInflight: lim.Admin.MaxInflight, MaxConns: lim.Admin.MaxConns}, log),
	}
	errc := make(chan error, 2)
	go func() {
		if tlsConfig != nil {
			errc <- servers[0].ServeTLS("", "") // the certificate is in TLSConfig
		} else {
			errc <- servers[0].Serve()
		}
	}()
	go func() { errc <- servers[1].Serve() }()

	log.Info("tether ready", "public", pubLn.Addr().String(), "admin", admLn.Addr().String(),
		"store", storeKind(cfg.Store), "data_dir", cfg.DataDir, "tracing", tr.On())
	if ready != nil {
		ready(pubLn.Addr().String(), admLn.Addr().String())
	}

	select {
	case <-ctx.Done():
		err = nil
	case err = <-errc:
		err = fmt.Errorf("listener stopped: %w", err)
	}
	drainAndShutdown(servers, lim, errc, log)
	log.Info("tether stopped")
	return err
}

// hsts tells browsers to reach this host over HTTPS only, for two years and
// on its subdomains too. Only the TLS public listener sends it: browsers
// ignore it over plain HTTP (RFC 6797 §8.1), and the admin listener has no TLS.
func hsts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		h.ServeHTTP(w, r)
	})
}

// newHTTPServer sets a timeout on every phase, so slow clients cannot hold
// connections open (slowloris) and no request runs unbounded.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func logLevel(s string) slog.Level {
	var l slog.Level
	l.UnmarshalText([]byte(s)) // checked by config.Resolve
	return l
}

// storeKind names the store without its URL, which may hold a password.
func storeKind(rawURL string) string {
	if rawURL == "" {
		return "bolt (data dir)"
	}
	scheme, _, _ := strings.Cut(rawURL, ":")
	return scheme
}

// loadOrCreateAdminKey reads the admin key from the data dir, creating it
// (mode 0600, exclusively) on first start.
func loadOrCreateAdminKey(dataDir string) (key, path string, created bool, err error) {
	path = filepath.Join(dataDir, "admin.key")
	b, err := os.ReadFile(path)
	if err == nil {
		key = strings.TrimSpace(string(b))
		if len(key) < 16 {
			return "", "", false, fmt.Errorf("admin key in %s is too short", path)
		}
		return key, path, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", "", false, fmt.Errorf("admin key: %w", err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	key = "tta_" + base64.RawURLEncoding.EncodeToString(secret)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", "", false, fmt.Errorf("admin key: %w", err)
	}
	_, err = f.WriteString(key + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", "", false, fmt.Errorf("admin key: %w", err)
	}
	return key, path, true, nil
}

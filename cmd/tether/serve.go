package main

import (
	"context"
	"crypto/rand"
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
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/internal/config"
	"github.com/tetherhq/tether/store"
)

func newServeCmd() *cobra.Command {
	var configFile string
	cfg := config.Default()
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the public and admin APIs",
		Long: `Run the public API (--addr) and the admin API (--admin-addr).

Settings come from flags, then the environment (TETHER_ADDR, TETHER_ADMIN_ADDR,
TETHER_STORE, TETHER_DATA_DIR, TETHER_CONFIG, TETHER_ISSUER, TETHER_LOG_LEVEL),
then the YAML file given by --config, then defaults. The admin key comes from
TETHER_ADMIN_KEY; if that is unset, one is generated once into the data dir.`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			final := config.Default()
			if configFile == "" {
				configFile = os.Getenv("TETHER_CONFIG")
			}
			if configFile != "" {
				if err := final.LoadFile(configFile); err != nil {
					return err
				}
			}
			final.ApplyEnv(os.Getenv)
			applyChangedFlags(c, &final, cfg)
			if err := final.Resolve(); err != nil {
				return err
			}
			return serve(c.Context(), final, strings.TrimSpace(os.Getenv("TETHER_ADMIN_KEY")), c.OutOrStdout(), c.ErrOrStderr(), nil)
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.Addr, "addr", cfg.Addr, "public API listen address")
	f.StringVar(&cfg.AdminAddr, "admin-addr", cfg.AdminAddr, "admin API listen address")
	f.StringVar(&cfg.Store, "store", "", "store URL (bolt:///path, memory:, redis://…, postgres://…); default: bolt in the data dir")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory (embedded store, admin key, signing keys)")
	f.StringVar(&configFile, "config", "", "YAML configuration file")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	f.DurationVar(&cfg.Sessions.MaxStaleness, "max-staleness", cfg.Sessions.MaxStaleness, "longest a cached session is served without reading the store (0: no cache)")
	return c
}

// applyChangedFlags copies the flags the user set over the file and env values.
func applyChangedFlags(c *cobra.Command, dst *config.Config, flags config.Config) {
	set := c.Flags().Changed
	if set("addr") {
		dst.Addr = flags.Addr
	}
	if set("admin-addr") {
		dst.AdminAddr = flags.AdminAddr
	}
	if set("store") {
		dst.Store = flags.Store
	}
	if set("data-dir") {
		dst.DataDir = flags.DataDir
	}
	if set("log-level") {
		dst.LogLevel = flags.LogLevel
	}
	if set("max-staleness") {
		dst.Sessions.MaxStaleness = flags.Sessions.MaxStaleness
	}
}

// serve runs a node until ctx ends. ready, if not nil, receives the bound
// addresses (tests and the demo listen on port 0).
func serve(ctx context.Context, cfg config.Config, adminKey string, stdout, stderr io.Writer, ready func(public, admin string)) error {
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: logLevel(cfg.LogLevel)}))
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

	st, err := store.Open(ctx, cfg.Store, cfg.DataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := tether.NewManager(tether.Config{
		Store: st, Logger: log,
		Lifetime: cfg.Sessions.Lifetime, IdleTimeout: cfg.Sessions.IdleTimeout,
		TouchInterval: cfg.Sessions.TouchInterval, MaxStaleness: managerStaleness(cfg.Sessions.MaxStaleness),
		CacheSize: cfg.Sessions.CacheSize, MaxSessionsPerSubject: cfg.Sessions.MaxPerSubject,
	})
	if err != nil {
		return err
	}
	defer m.Close()
	keys, err := handshake.LoadKeyRing(filepath.Join(cfg.DataDir, "keys"), nil)
	if err != nil {
		return err
	}
	// Both are built even when nothing is configured, so that every mistake in
	// the handshake section stops the start with a clear error.
	minter, err := handshake.NewMinter(cfg.Issuer, cfg.Handshake, keys, cfg.BaseDir(), nil)
	if err != nil {
		return err
	}
	verifier, err := handshake.NewVerifier(cfg.Issuer, cfg.Handshake, cfg.BaseDir())
	if err != nil {
		return err
	}
	srv, err := api.New(api.Config{Manager: m, AdminKey: adminKey, Logger: log, Keys: keys, Minter: minter, Verifier: verifier})
	if err != nil {
		return err
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
	servers := []*http.Server{newHTTPServer(srv.Public(), log), newHTTPServer(srv.Admin(), log)}
	servers[1].RegisterOnShutdown(srv.Close) // change streams never go idle by themselves
	errc := make(chan error, 2)
	go func() {
		if cfg.TLS.CertFile != "" {
			errc <- servers[0].ServeTLS(pubLn, cfg.TLS.CertFile, cfg.TLS.KeyFile)
		} else {
			errc <- servers[0].Serve(pubLn)
		}
	}()
	go func() { errc <- servers[1].Serve(admLn) }()

	log.Info("tether ready", "public", pubLn.Addr().String(), "admin", admLn.Addr().String(),
		"store", storeKind(cfg.Store), "data_dir", cfg.DataDir)
	if ready != nil {
		ready(pubLn.Addr().String(), admLn.Addr().String())
	}

	select {
	case <-ctx.Done():
		err = nil
	case err = <-errc:
		err = fmt.Errorf("listener stopped: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range servers {
		s.Shutdown(shutdownCtx)
	}
	log.Info("tether stopped")
	return err
}

// managerStaleness turns the setting, where 0 means "no cache" (DESIGN §2),
// into tether.Config's terms, where 0 means "the default".
func managerStaleness(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
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

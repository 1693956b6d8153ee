package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tetherhq/tether/internal/config"
)

// localNode is a `tether serve` running inside this process on loopback, for
// the demo and the benchmarks.
type localNode struct {
	public, admin, adminKey string // base URLs and the admin key
	stop                    func() error
}

// localConfig is a node on free loopback ports with its data in dir.
func localConfig(dir, storeURL string) config.Config {
	cfg := config.Default()
	cfg.Addr, cfg.AdminAddr, cfg.DataDir, cfg.Store, cfg.LogLevel = "127.0.0.1:0", "127.0.0.1:0", dir, storeURL, "error"
	return cfg
}

func startLocalNode(ctx context.Context, cfg config.Config) (*localNode, error) {
	key := "local-admin-" + rand.Text()
	ctx, cancel := context.WithCancel(ctx)
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, key, io.Discard, io.Discard, func(pub, adm string) { ready <- [2]string{pub, adm} })
	}()
	select {
	case addrs := <-ready:
		stop := func() error { cancel(); return <-done }
		return &localNode{public: "http://" + addrs[0], admin: "http://" + addrs[1], adminKey: key, stop: stop}, nil
	case err := <-done:
		cancel()
		return nil, err
	}
}

// createSession logs subject in through the admin API and returns the token.
func (n *localNode) createSession(ctx context.Context, subject string) (string, error) {
	var created struct {
		Token string `json:"token"`
	}
	client := &http.Client{Timeout: 5 * time.Second}
	code, err := demoCall(client, "POST", n.admin+"/v1/sessions", n.adminKey, map[string]any{"subject": subject}, &created)
	if err != nil || code != http.StatusCreated {
		return "", fmt.Errorf("create session: status %d: %v", code, err)
	}
	return created.Token, nil
}

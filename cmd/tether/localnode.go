package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"

	"github.com/tetherhq/tether/internal/adminclient"
	"github.com/tetherhq/tether/internal/config"
)

// localNode is a `tether serve` running inside this process on loopback, for
// the demo and the benchmarks.
type localNode struct {
	public, admin string              // base URLs
	adminKey      string              // shown by demo --web, for the console
	adminAPI      *adminclient.Client // what the CLI speaks to the admin API
	stop          func() error
}

// localConfig is a node on free loopback ports with its data in dir.
func localConfig(dir, storeURL string) config.Config {
	cfg := config.Default()
	cfg.Addr, cfg.AdminAddr, cfg.DataDir, cfg.Store, cfg.LogLevel = "127.0.0.1:0", "127.0.0.1:0", dir, storeURL, "error"
	cfg.Server.DrainDelay = 0 // no load balancer to tell: stop at once
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
		n := &localNode{public: "http://" + addrs[0], admin: "http://" + addrs[1], adminKey: key, stop: stop}
		var err error
		if n.adminAPI, err = adminclient.New(n.admin, key, nil); err != nil {
			stop()
			return nil, err
		}
		return n, nil
	case err := <-done:
		cancel()
		return nil, err
	}
}

// createSession logs subject in through the admin API and returns the token.
func (n *localNode) createSession(ctx context.Context, subject string) (string, error) {
	token, _, err := n.adminAPI.CreateSession(ctx, adminclient.CreateSessionRequest{Subject: subject})
	return token, err
}

// callJSON makes one call to a node's public API and decodes a JSON answer
// into out, if given.
func callJSON(client *http.Client, method, url, bearer string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode < 300 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, err
		}
	}
	return resp.StatusCode, nil
}

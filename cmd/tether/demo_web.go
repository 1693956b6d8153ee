package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tetherhq/tether/internal/adminclient"
	"github.com/tetherhq/tether/internal/web"
)

// withDemoWebFlag adds --web to the demo command: instead of the
// walk-through, serve a node with its web pages until Ctrl-C.
func withDemoWebFlag(c *cobra.Command) *cobra.Command {
	var serveWeb bool
	c.Flags().BoolVar(&serveWeb, "web", false,
		`serve a demo node with its pages ("Your sessions", the admin console) until Ctrl-C`)
	walk := c.RunE
	c.RunE = func(c *cobra.Command, args []string) error {
		if serveWeb {
			return runDemoWeb(c.Context(), c.OutOrStdout())
		}
		return walk(c, args)
	}
	return c
}

// demoDevices are where alice is already signed in when the demo starts, so
// that her sessions page has something to show.
var demoDevices = []map[string]string{
	{"ip": "198.51.100.20", "device": "phone",
		"user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"},
	{"ip": "203.0.113.7", "device": "work laptop",
		"user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"},
}

// runDemoWeb starts a node on loopback (a real `tether serve`, embedded store
// in a temporary directory), a one-click sign-in page beside it, prints their
// addresses and serves until ctx ends.
//
// The sign-in page runs on its own port, so that it never exists in `tether
// serve`; the cookie it sets reaches the node's public port as well, since
// browsers do not isolate cookies by port (RFC 6265 §8.5).
func runDemoWeb(ctx context.Context, out io.Writer) error {
	dir, err := os.MkdirTemp("", "tether-demo-web-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	node, err := startLocalNode(ctx, localConfig(filepath.Join(dir, "node"), ""))
	if err != nil {
		return err
	}
	defer node.stop()

	create := func(ctx context.Context, subject string, md map[string]string) (string, time.Time, error) {
		token, sess, err := node.adminAPI.CreateSession(ctx, adminclient.CreateSessionRequest{Subject: subject, Metadata: md})
		if err != nil {
			return "", time.Time{}, fmt.Errorf("create a session for %s: %w", subject, err)
		}
		return token, sess.ExpiresAt, nil
	}
	for _, md := range demoDevices {
		if _, _, err := create(ctx, "alice", md); err != nil {
			return err
		}
	}
	if _, err := node.adminAPI.SetRoles(ctx, "alice", []string{"viewer"}); err != nil {
		return fmt.Errorf("set alice's roles: %w", err)
	}

	// A browser's previous session ends as a user's own sign-out does.
	end := func(ctx context.Context, token string) error {
		status, err := callJSON(http.DefaultClient, http.MethodDelete, node.public+"/v1/session", token, nil, nil)
		if err == nil && status != http.StatusNoContent && status != http.StatusUnauthorized {
			err = fmt.Errorf("ending the previous session: status %d", status)
		}
		return err
	}
	signIn, err := web.DemoSignIn(web.DemoConfig{
		Subjects: []string{"alice", "bob"}, Next: node.public + "/account/sessions", Create: create, End: end,
		DBSCRegisterURL: node.public + web.DBSCRegisterPath,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: signIn, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	p := &demoOut{w: out}
	p.para("Tether demo in the browser: one node on loopback, its store in " + dir + ".")
	fmt.Fprintln(out)
	for _, item := range [][3]string{
		{"1. Sign a browser in:", fmt.Sprintf("http://%s/demo/sign-in", ln.Addr()), "(demo only: one click, no password)"},
		{"2. Your sessions:", node.public + "/account/sessions", ""},
		{"3. Admin console:", node.admin + "/admin/", ""},
		{"   admin key:", node.adminKey, "(made for this demo; it dies with it)"},
	} {
		fmt.Fprintf(out, "  %-21s  %s\n", item[0], item[1])
		if item[2] != "" {
			fmt.Fprintf(out, "  %-21s  %s\n", "", item[2])
		}
	}
	p.para("Sign in as alice in two browsers, or in a normal and a private window: each is " +
		"a device. On one, sign the other out, then reload the other: it is refused at once. " +
		"alice is also signed in on a phone and a work laptop, seeded through the admin API. " +
		"In the admin console, search for alice, change her roles (GET " + node.public +
		"/v1/session in her browser shows them at once), revoke her sessions and watch the counters.")
	p.para("Press Ctrl-C to stop.")

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("sign-in page: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Fprintln(out, "\nStopped.")
	return nil
}

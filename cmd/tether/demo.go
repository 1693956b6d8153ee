package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/internal/adminclient"
	"github.com/tetherhq/tether/internal/apitype"
	"github.com/tetherhq/tether/internal/config"
	"github.com/tetherhq/tether/internal/selfcontained"
)

func newDemoCmd() *cobra.Command {
	return withDemoWebFlag(&cobra.Command{
		Use:   "demo",
		Short: "Walk through opaque sessions versus JWT sessions on a real server",
		Long: `Start Tether nodes on loopback (embedded stores in a temporary directory) and walk
through three scenarios:
  A. a login, a role change, a stolen token and a sign-out, printing under each
     step what a 15-minute HS256 session JWT with the same claims would have done;
  B. service A hands alice to internal service B with a single-use HS256 handshake;
  C. A hands her to external services with an EdDSA JWT (verified through A's
     JWKS) and PASETO v4.public and v4.local tokens (verified in-process by the library).

With --web it instead serves a node with the account and admin pages and prints
their addresses, so you can watch a revocation take effect in a second window.`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			return runDemo(c.Context(), c.OutOrStdout())
		},
	})
}

// jwtVerdict says what a JWT-session service concludes from the token alone.
func jwtVerdict(f selfcontained.Format, raw string) string {
	c, err := f.Verify(raw, time.Now())
	if err != nil {
		return "rejected (" + err.Error() + ")"
	}
	left := time.Until(c.Expiry).Round(time.Second)
	return fmt.Sprintf("200, roles %s (valid %v more)", strings.Join(c.Roles, ","), left)
}

func runDemo(ctx context.Context, out io.Writer) error {
	dir, err := os.MkdirTemp("", "tether-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	d, err := startDemoNodes(ctx, dir)
	if err != nil {
		return err
	}
	defer d.stop()
	p := &demoOut{w: out}
	p.para(fmt.Sprintf("Tether demo: service A on %s (admin %s), embedded store in %s", d.a.public, d.a.admin, dir))
	if err := demoScenarioA(ctx, d, p); err != nil {
		return fmt.Errorf("scenario A: %w", err)
	}
	if err := demoScenarioBC(ctx, d, p); err != nil {
		return fmt.Errorf("scenarios B and C: %w", err)
	}
	p.para(fmt.Sprintf("Done in %v.", time.Since(start).Round(time.Millisecond)))
	return nil
}

// demoWidth is the widest line the demo prints: a terminal's default, so
// nothing wraps where it should not.
const demoWidth = 80

// demoOut prints the walk-through within demoWidth columns: what each side
// does stacks under the step rather than beside it, and long text wraps.
type demoOut struct {
	w       io.Writer
	n       int  // steps so far in the current scenario
	started bool // something is printed: paragraphs now need a blank line
}

// para prints text as a paragraph after a blank line (none before the first).
func (p *demoOut) para(text string) {
	if p.started {
		fmt.Fprintln(p.w)
	}
	p.started = true
	p.lines(wrapWords(text, "", ""))
}

// scenario starts a scenario: a paragraph, then steps numbered from 1.
func (p *demoOut) scenario(text string) {
	p.para(text)
	fmt.Fprintln(p.w)
	p.n = 0
}

// group names the steps that follow within a scenario.
func (p *demoOut) group(text string) { p.lines(wrapWords(text, "  ", "  ")) }

// step prints one numbered step and, under it, each side's outcome; a side
// with nothing to say is left out.
func (p *demoOut) step(what string, sides ...[2]string) {
	p.n++
	p.lines(wrapWords(what, fmt.Sprintf("%3d. ", p.n), "     "))
	for _, s := range sides {
		if s[1] != "" {
			p.lines(wrapWords(s[1], fmt.Sprintf("       %-8s", s[0]), strings.Repeat(" ", 15)))
		}
	}
}

func (p *demoOut) lines(ls []string) {
	for _, l := range ls {
		fmt.Fprintln(p.w, l)
	}
}

// wrapWords breaks text at spaces into lines of at most demoWidth columns,
// the first starting with first and the others with rest. A word longer than
// a line stands alone on its line.
func wrapWords(text, first, rest string) []string {
	var out []string
	line := first
	empty := true
	for _, word := range strings.Fields(text) {
		if !empty && utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) > demoWidth {
			out = append(out, line)
			line, empty = rest, true
		}
		if !empty {
			line += " "
		}
		line += word
		empty = false
	}
	return append(out, line)
}

// demoNodes are the services of the demo: A, where alice logs in; B, an
// internal service trusting A's HS256 key; P, an external partner trusting A's
// Ed25519 key through A's JWKS.
type demoNodes struct {
	a, b, p   *localNode
	dir       string
	ssfToken  string // B's token for A's stream management API
	ssfPush   string // the secret A pushes to B with
	localKey  string // the v4.local key file A shares with d.example
	http      *http.Client
	stopNodes []func() error
}

func (d *demoNodes) stop() {
	for _, stop := range d.stopNodes {
		stop()
	}
}

const (
	demoIssuerA  = "https://a.example"
	demoIssuerB  = "https://b.example"
	demoPartner  = "https://partner.example"
	demoPASETOv4 = "https://c.example"
	demoLocalv4  = "https://d.example"
)

func startDemoNodes(ctx context.Context, dir string) (*demoNodes, error) {
	d := &demoNodes{dir: dir, http: &http.Client{Timeout: 5 * time.Second}}
	sharedB, sharedD := filepath.Join(dir, "b.key"), filepath.Join(dir, "d.key")
	for _, f := range []string{sharedB, sharedD} {
		if err := os.WriteFile(f, []byte(base64.RawURLEncoding.EncodeToString(randomBytes(32))), 0o600); err != nil {
			return nil, err
		}
	}
	d.localKey = sharedD
	d.ssfToken, d.ssfPush = base64.RawURLEncoding.EncodeToString(randomBytes(24)), base64.RawURLEncoding.EncodeToString(randomBytes(24))
	streamToken, pushSecret := filepath.Join(dir, "b-stream.token"), filepath.Join(dir, "b-push.secret")
	for f, secret := range map[string]string{streamToken: d.ssfToken, pushSecret: d.ssfPush} {
		if err := os.WriteFile(f, []byte(secret), 0o600); err != nil {
			return nil, err
		}
	}
	start := func(name string, cfg config.Config) (*localNode, error) {
		n, err := startLocalNode(ctx, cfg)
		if err != nil {
			d.stop()
			return nil, fmt.Errorf("start service %s: %w", name, err)
		}
		d.stopNodes = append(d.stopNodes, n.stop)
		return n, nil
	}
	var err error
	cfg := localConfig(filepath.Join(dir, "a"), "")
	cfg.Issuer = demoIssuerA
	cfg.Handshake.Audiences = map[string]handshake.AudienceSpec{
		demoIssuerB:  {Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: sharedB},
		demoPartner:  {Format: handshake.FormatJWT, Alg: handshake.AlgEdDSA},
		demoPASETOv4: {Format: handshake.FormatPASETO, Alg: handshake.AlgV4Public},
		demoLocalv4:  {Format: handshake.FormatPASETO, Alg: handshake.AlgV4Local, KeyFile: sharedD},
	}
	cfg.SSF.Clients = []config.SSFClient{{Audience: demoIssuerB, TokenFile: streamToken}} // B subscribes in the demo
	cfg.SSF.AllowPrivateEndpoints = true                                                  // B is on loopback
	if d.a, err = start("A", cfg); err != nil {
		return nil, err
	}
	cfg = localConfig(filepath.Join(dir, "b"), "")
	cfg.Issuer = demoIssuerB
	cfg.Handshake.TrustedIssuers = []handshake.IssuerSpec{{Issuer: demoIssuerA, Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: sharedB}}
	cfg.SSF.Transmitters = []config.SSFTransmitter{{Issuer: demoIssuerA, JWKSURL: d.a.public + "/.well-known/jwks.json", AuthorizationFile: pushSecret}}
	if d.b, err = start("B", cfg); err != nil {
		return nil, err
	}
	cfg = localConfig(filepath.Join(dir, "p"), "")
	cfg.Issuer = demoPartner
	cfg.Handshake.TrustedIssuers = []handshake.IssuerSpec{{Issuer: demoIssuerA, Format: handshake.FormatJWT, Alg: handshake.AlgEdDSA,
		JWKSURL: d.a.public + "/.well-known/jwks.json"}}
	if d.p, err = start("P", cfg); err != nil {
		return nil, err
	}
	return d, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// verdict describes an HTTP outcome in a few words.
func verdict(code int, err error, ok string) string {
	switch {
	case err != nil:
		return "error: " + err.Error()
	case code < 300:
		return fmt.Sprintf("%d, %s", code, ok)
	default:
		return fmt.Sprintf("%d %s: refused", code, http.StatusText(code))
	}
}

func demoScenarioA(ctx context.Context, d *demoNodes, p *demoOut) error {
	a := d.a
	step := func(what, opaque, jwtSays string) {
		p.step(what, [2]string{"Tether", opaque}, [2]string{"JWT", jwtSays})
	}
	p.scenario("Scenario A: an ordinary web session, opaque and server-authoritative. " +
		"Under each step, what Tether does, and what a 15-minute HS256 session JWT " +
		"with the same claims would have done.")

	alice := d.http
	thief := &http.Client{Timeout: 5 * time.Second}
	jwts := selfcontained.Find(demoIssuerA, "JWT HS256")
	token, sess, err := a.adminAPI.CreateSession(ctx, adminclient.CreateSessionRequest{
		Subject: "alice", Roles: []string{"admin"},
		Metadata: map[string]string{"user_agent": "alice-laptop", "device": "laptop"},
	})
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	now := time.Now()
	jwtToken, err := jwts.Mint(selfcontained.Claims{
		Issuer: demoIssuerA, Subject: "alice", SessionID: sess.ID, Roles: []string{"admin"},
		IssuedAt: now, Expiry: now.Add(15 * time.Minute),
	})
	if err != nil {
		return err
	}
	step("alice logs in (roles: admin)",
		fmt.Sprintf("201, token of %d bytes", len(token)),
		fmt.Sprintf("minted, token of %d bytes (%.1fx)", len(jwtToken), float64(len(jwtToken))/float64(len(token))))

	whoami := func(c *http.Client) string {
		var s tether.Session
		code, err := callJSON(c, "GET", a.public+"/v1/session", token, nil, &s)
		return verdict(code, err, "roles "+strings.Join(s.Roles, ","))
	}
	step("alice requests her session", whoami(alice), jwtVerdict(jwts, jwtToken))

	roles, err := a.adminAPI.SetRoles(ctx, "alice", []string{"viewer"})
	if err != nil {
		return fmt.Errorf("demote: %w", err)
	}
	step("an admin demotes alice to viewer", "200, roles now "+strings.Join(roles, ","), "nothing to change: roles are baked in")
	step("alice's next request", whoami(alice), jwtVerdict(jwts, jwtToken)+": stale")

	step("a thief replays alice's stolen token", whoami(thief), jwtVerdict(jwts, jwtToken))

	var revoked apitype.RevokedResponse
	if code, err := callJSON(alice, "DELETE", a.public+"/v1/sessions", token, nil, &revoked); err != nil || code != http.StatusOK || revoked.Revoked == nil {
		return fmt.Errorf("sign out everywhere: status %d: %v", code, err)
	}
	t0 := time.Now()
	step("alice signs out everywhere", fmt.Sprintf("200, %d session(s) revoked", *revoked.Revoked), "cannot revoke without a deny-list (state)")
	thiefSays := whoami(thief)
	took := time.Since(t0)
	step("the thief tries again", thiefSays+fmt.Sprintf(" (%v after the revoke)", took.Round(time.Microsecond)), jwtVerdict(jwts, jwtToken)+": still works")

	p.para("Scenario A in short")
	w := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "\t\tTether opaque\tJWT session\n")
	fmt.Fprintf(w, "\ttoken bytes on the wire\t%d\t%d\n", len(token), len(jwtToken))
	fmt.Fprintf(w, "\trole change takes effect\tnext request\tat expiry (15 min)\n")
	fmt.Fprintf(w, "\tstolen token dies\tat revocation (%v)\tat expiry (15 min)\n", took.Round(time.Microsecond))
	fmt.Fprintf(w, "\tper-request check\tSHA-256 + compare\tsignature + JSON\n")
	if err := w.Flush(); err != nil {
		return err
	}
	p.para("A cached Tether check verifies the token's CRC-32 checksum, hashes its 20-byte " +
		"secret once with SHA-256 and compares that with the stored hash in constant " +
		"time: no signature, no JSON, no store read. " +
		"A JWT is checked by its signature and parsed as JSON on every request.")
	return nil
}

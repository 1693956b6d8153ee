package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/internal/apitype"
	"github.com/tetherhq/tether/ssf"
	"github.com/tetherhq/tether/store/memstore"
)

// demoScenarioBC hands alice from A to other services with single-use
// handshake tokens, which each receiver exchanges once for its own session.
func demoScenarioBC(ctx context.Context, d *demoNodes, p *demoOut) error {
	token, err := d.a.createSession(ctx, "alice")
	if err != nil {
		return err
	}
	p.scenario("Scenarios B and C: alice, signed in at A, is handed to other services " +
		"with single-use handshake tokens. Under each step, what Tether does, and " +
		"what would happen if A forwarded a session JWT instead.")
	step := func(what, tether, jwtSays string) {
		p.step(what, [2]string{"Tether", tether}, [2]string{"JWT", jwtSays})
	}
	mint := func(audience string) (string, error) {
		var h apitype.MintResponse
		code, err := callJSON(d.http, "POST", d.a.public+"/v1/handshakes", token, apitype.MintRequest{Audience: audience}, &h)
		if err != nil || code != http.StatusCreated {
			return "", fmt.Errorf("mint for %s: status %d: %v", audience, code, err)
		}
		return h.Token, nil
	}
	exchange := func(n *localNode, raw string) string {
		var got apitype.TokenResponse
		code, err := callJSON(d.http, "POST", n.public+"/v1/handshakes/exchange", "", apitype.ExchangeRequest{Token: raw}, &got)
		subject := ""
		if got.Session != nil {
			subject = got.Session.Subject
		}
		return verdict(code, err, fmt.Sprintf("own opaque session for %s (%d bytes)", subject, len(got.Token)))
	}

	p.group("B: an internal service, with a shared HS256 key")
	hs, err := mint(demoIssuerB)
	if err != nil {
		return err
	}
	step("A mints a handshake for B", fmt.Sprintf("JWT HS256, %d bytes, lives 60 s", len(hs)), "the whole session leaves A")
	step("B exchanges it", exchange(d.b, hs), "B trusts the JWT as a session")
	step("the same token is replayed at B", exchange(d.b, hs), "accepted until it expires")

	if err := demoCrossService(ctx, d, step); err != nil {
		return err
	}

	p.group("C: external services, with public keys or a PASETO key")
	ed, err := mint(demoPartner)
	if err != nil {
		return err
	}
	step("A mints an EdDSA JWT for a partner", fmt.Sprintf("JWT EdDSA, %d bytes", len(ed)), "")
	step("the partner checks it with A's JWKS", exchange(d.p, ed), "")
	step("a replay at the partner", exchange(d.p, ed), "accepted until it expires")

	for _, r := range []struct {
		audience, alg string
		spec          handshake.IssuerSpec
	}{
		{demoPASETOv4, "PASETO v4.public", handshake.IssuerSpec{Format: handshake.FormatPASETO, Alg: handshake.AlgV4Public}},
		{demoLocalv4, "PASETO v4.local", handshake.IssuerSpec{Format: handshake.FormatPASETO, Alg: handshake.AlgV4Local, KeyFile: d.localKey}},
	} {
		raw, err := mint(r.audience)
		if err != nil {
			return err
		}
		r.spec.Issuer = demoIssuerA
		if r.spec.Alg == handshake.AlgV4Public {
			if r.spec.PublicKeyFile, err = d.saveSigningKey("EdDSA"); err != nil {
				return err
			}
		}
		first, again, err := exchangeInProcess(ctx, r.audience, r.spec, raw)
		if err != nil {
			return err
		}
		step("A mints a "+r.alg+" token", fmt.Sprintf("%d bytes", len(raw)), "")
		step("a Go service exchanges it with the library", first, "")
		step("a replay there", again, "accepted until it expires")
	}
	return nil
}

// saveSigningKey writes A's public key for alg, as published in its JWKS, to a
// PEM file that a receiver can trust.
func (d *demoNodes) saveSigningKey(alg string) (string, error) {
	var set jose.JSONWebKeySet
	if code, err := callJSON(d.http, "GET", d.a.public+"/.well-known/jwks.json", "", nil, &set); err != nil || code != http.StatusOK {
		return "", fmt.Errorf("fetch JWKS: status %d: %v", code, err)
	}
	for _, k := range set.Keys {
		if k.Algorithm != alg {
			continue
		}
		der, err := x509.MarshalPKIXPublicKey(k.Key)
		if err != nil {
			return "", err
		}
		path := filepath.Join(d.dir, "a-"+alg+".pem")
		return path, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	}
	return "", fmt.Errorf("no %s key in A's JWKS", alg)
}

// exchangeInProcess is a Go service receiving a handshake with the library
// alone: a handshake.Verifier and a tether.Manager, no Tether server.
func exchangeInProcess(ctx context.Context, audience string, trust handshake.IssuerSpec, raw string) (first, again string, err error) {
	v, err := handshake.NewVerifier(audience, handshake.Config{TrustedIssuers: []handshake.IssuerSpec{trust}}, ".", handshake.Options{})
	if err != nil {
		return "", "", err
	}
	m, err := tether.NewManager(tether.Config{Store: memstore.New()})
	if err != nil {
		return "", "", err
	}
	defer m.Close()
	try := func() string {
		token, sess, err := m.Exchange(ctx, v, raw, tether.ExchangeParams{})
		if errors.Is(err, handshake.ErrInvalid) {
			return "refused: " + handshake.Reason(err)
		}
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("accepted, own opaque session for %s (%d bytes)", sess.Subject, len(token))
	}
	return try(), try(), nil
}

// demoCrossService: B subscribes to A's revocations (a Shared Signals push
// stream made through A's management API); alice, with a session at B made
// from A's handshake, signs out at A, and B refuses that session moments
// later.
func demoCrossService(ctx context.Context, d *demoNodes, step func(what, tether, jwtSays string)) error {
	stream := ssf.StreamConfig{DefaultSubjects: "ALL", Delivery: &ssf.Delivery{
		Method: ssf.DeliveryPush, EndpointURL: d.b.public + "/ssf/events", AuthorizationHeader: "Bearer " + d.ssfPush,
	}}
	if code, err := callJSON(d.http, "POST", d.a.public+ssf.PathStreams, d.ssfToken, stream, nil); err != nil || code != http.StatusCreated {
		return fmt.Errorf("B's stream at A: status %d: %v", code, err)
	}
	step("B subscribes to A's revocations", "a Shared Signals push stream", "nothing to subscribe to")
	aToken, err := d.a.createSession(ctx, "alice")
	if err != nil {
		return err
	}
	var h apitype.MintResponse
	if code, err := callJSON(d.http, "POST", d.a.public+"/v1/handshakes", aToken, apitype.MintRequest{Audience: demoIssuerB}, &h); err != nil || code != http.StatusCreated {
		return fmt.Errorf("mint for B: status %d: %v", code, err)
	}
	var got apitype.TokenResponse
	if code, err := callJSON(d.http, "POST", d.b.public+"/v1/handshakes/exchange", "", apitype.ExchangeRequest{Token: h.Token}, &got); err != nil || code != http.StatusCreated {
		return fmt.Errorf("exchange at B: status %d: %v", code, err)
	}
	atB := func() int {
		code, _ := callJSON(d.http, "GET", d.b.public+"/v1/session", got.Token, nil, nil)
		return code
	}
	step("alice, at B through A's handshake, asks B", verdict(atB(), nil, "its session, made from A's "+got.Session.Origin.SessionID), "B holds A's session JWT")
	if code, err := callJSON(d.http, "DELETE", d.a.public+"/v1/session", aToken, nil, nil); err != nil || code != http.StatusNoContent {
		return fmt.Errorf("sign out at A: status %d: %v", code, err)
	}
	start := time.Now()
	code := atB()
	for code == http.StatusOK && time.Since(start) < 5*time.Second {
		time.Sleep(time.Millisecond)
		code = atB()
	}
	step("alice signs out at A; her next request at B", fmt.Sprintf("%s, %v after A's revoke", verdict(code, nil, "still accepted"),
		time.Since(start).Round(100*time.Microsecond)), "B accepts the JWT until it expires")
	return nil
}

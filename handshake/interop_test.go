package handshake

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether/internal/servicetest"
)

const nodeIssuer = "https://node.example"

// interopDir holds a pinned package-lock.json of independent JOSE and
// PASETO implementations for Node.
var interopDir = filepath.Join("testdata", "interop")

// TestInteropNode: tokens Tether mints verify in Node with the right typ,
// aud, iss and implicit assertion; tokens Node mints verify in Tether.
func TestInteropNode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs npm and node")
	}
	servicetest.NPMInstall(t, interopDir)
	e := newEnv(t)
	e.clock.Add(time.Since(e.clock.Now())) // Node checks times with the real clock

	nodeEd, nodeEdPriv, _ := ed25519.GenerateKey(rand.Reader)
	nodeES, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	writeFile(t, e.dir, "node-ed.pem", pemPublic(t, nodeEd))
	writeFile(t, e.dir, "node-es.jwk", jwkPublic(t, &nodeES.PublicKey, AlgES256))
	writeFile(t, e.dir, "node-v4.paserk", paserkPublic+b64.EncodeToString(nodeEd))
	cfg := e.cfg
	cfg.TrustedIssuers = append(cfg.TrustedIssuers,
		IssuerSpec{Issuer: nodeIssuer, Format: FormatJWT, Alg: AlgHS256, KeyFile: "hs.key"},
		IssuerSpec{Issuer: nodeIssuer, Format: FormatJWT, Alg: AlgEdDSA, PublicKeyFile: "node-ed.pem"},
		IssuerSpec{Issuer: nodeIssuer, Format: FormatJWT, Alg: AlgES256, PublicKeyFile: "node-es.jwk"},
		IssuerSpec{Issuer: nodeIssuer, Format: FormatPASETO, Alg: AlgV4Public, PublicKeyFile: "node-v4.paserk"},
		IssuerSpec{Issuer: nodeIssuer, Format: FormatPASETO, Alg: AlgV4Local, KeyFile: "local.key"},
	)
	verifier, err := NewVerifier(audB, cfg, e.dir, Options{})
	if err != nil {
		t.Fatal(err)
	}

	tether := map[string]string{}
	jtis := map[string]string{}
	for _, alg := range allAlgs {
		tok, _, _, err := e.minters[alg].Mint(audB, "alice")
		if err != nil {
			t.Fatal(err)
		}
		c, err := e.verifier.Verify(context.Background(), tok)
		if err != nil {
			t.Fatal(err)
		}
		tether[alg], jtis[alg] = tok, c.ID
	}
	jwk := func(k any, alg string) json.RawMessage {
		b, err := json.Marshal(jose.JSONWebKey{Key: k, Algorithm: alg})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	req := map[string]any{
		"issuer": issuerA, "audience": audB, "node_issuer": nodeIssuer, "node_audience": audB,
		"tether": tether,
		"keys": map[string]any{
			"hs256":               b64.EncodeToString(e.hsKey),
			"ed_public_jwk":       jwk(ringPublic(t, e.ring, AlgEdDSA), AlgEdDSA),
			"es_public_jwk":       jwk(ringPublic(t, e.ring, AlgES256), AlgES256),
			"v4_public":           paserkPublic + b64.EncodeToString(ringPublic(t, e.ring, AlgEdDSA).(ed25519.PublicKey)),
			"v4_local":            paserkLocal + b64.EncodeToString(e.localKey),
			"node_ed_private_jwk": jwk(nodeEdPriv, AlgEdDSA),
			"node_es_private_jwk": jwk(nodeES, AlgES256),
			"node_v4_secret":      "k4.secret." + b64.EncodeToString(nodeEdPriv),
		},
	}
	in, _ := json.Marshal(req)
	cmd := exec.Command("node", "interop.mjs")
	cmd.Dir = interopDir
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var report struct {
		Verified map[string]struct {
			OK       bool
			Sub, JTI string
			Error    string
		}
		RejectedWrongAssertion map[string]bool `json:"rejected_wrong_assertion"`
		Minted                 map[string]string
	}
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	for _, alg := range allAlgs {
		t.Run("node verifies Tether/"+alg, func(t *testing.T) {
			got := report.Verified[alg]
			if !got.OK || got.Sub != "alice" || got.JTI != jtis[alg] {
				t.Errorf("got %+v, want ok with sub alice and jti %s", got, jtis[alg])
			}
		})
		t.Run("Tether verifies node/"+alg, func(t *testing.T) {
			c, err := verifier.Verify(context.Background(), report.Minted[alg])
			if err != nil {
				t.Fatalf("got %v, want accepted", err)
			}
			if c.Issuer != nodeIssuer || c.Subject != "bob" {
				t.Errorf("got %+v, want iss %s sub bob", c, nodeIssuer)
			}
		})
	}
	for alg, rejected := range report.RejectedWrongAssertion {
		if !rejected {
			t.Errorf("node accepted %s with a wrong implicit assertion", alg)
		}
	}
}

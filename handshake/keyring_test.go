package handshake

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestKeyRingGenerateAndReload(t *testing.T) {
	c := newClock()
	dir := filepath.Join(t.TempDir(), "keys")
	r, err := LoadKeyRing(dir, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	list := r.List()
	if len(list) != 2 {
		t.Fatalf("got %d keys, want 2", len(list))
	}
	for _, k := range list {
		if k.State != KeyActive || !k.Created.Equal(c.Now()) || k.KID == "" {
			t.Errorf("got %+v, want an active key created now", k)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode: got %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 2 {
		t.Errorf("got files %v, want 2", files)
	}
	for _, f := range files {
		if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode: got %v, want 0600", f, fi.Mode().Perm())
		}
	}
	again, err := LoadKeyRing(dir, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if got := again.List(); !slices.Equal(kids(got), kids(list)) {
		t.Errorf("reloaded kids: got %v, want %v", kids(got), kids(list))
	}
	if string(again.JWKS()) != string(r.JWKS()) {
		t.Error("reloaded JWKS differs")
	}
}

func kids(list []KeyInfo) []string {
	var out []string
	for _, k := range list {
		out = append(out, k.KID)
	}
	return out
}

func TestKeyRingRefusesLooseModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	if _, err := LoadKeyRing(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	os.Chmod(files[0], 0o644)
	if _, err := LoadKeyRing(dir, Options{}); err == nil {
		t.Error("loaded a world-readable key file")
	}
	os.Chmod(files[0], 0o600)
	os.Chmod(dir, 0o755)
	if _, err := LoadKeyRing(dir, Options{}); err == nil {
		t.Error("loaded a key dir others can read")
	}
}

func TestKeyRingRejectsForeignKid(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	if _, err := LoadKeyRing(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	data, _ := os.ReadFile(files[0])
	var f keyFile
	json.Unmarshal(data, &f)
	f.KID = "forged"
	data, _ = json.Marshal(f)
	os.WriteFile(files[0], data, 0o600)
	if _, err := LoadKeyRing(dir, Options{}); err == nil {
		t.Error("loaded a key whose kid is not its thumbprint")
	}
}

// TestKeyRingRotate: new keys sign; old ones stay in the JWKS and keep
// verifying through a JWKS-backed Verifier until the overlap ends, then are
// pruned from memory, disk and the JWKS.
func TestKeyRingRotate(t *testing.T) {
	e := newEnv(t)
	// signWith mints a token for issuer Y with one of Y's ring keys.
	signWith := func(kid string) string {
		priv := ringKeyByKid(t, e.ringY, kid)
		c := &Claims{Issuer: issuerY, Subject: "alice", Audience: audB, ID: rand.Text(),
			IssuedAt: e.clock.Now(), ExpiresAt: e.clock.Now().Add(time.Minute)}
		return signJWTWith(t, AlgEdDSA, priv, kid, c)
	}
	old := e.ringY.List()
	oldKid, _ := ringPrivate(t, e.ringY, AlgEdDSA)
	if _, err := e.verifier.Verify(context.Background(), signWith(oldKid)); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	e.clock.Add(time.Hour)
	if err := e.ringY.Rotate(); err != nil {
		t.Fatal(err)
	}
	newKid, _ := ringPrivate(t, e.ringY, AlgEdDSA)
	if newKid == oldKid {
		t.Fatal("rotation did not change the signing key")
	}
	list := e.ringY.List()
	if len(list) != 4 {
		t.Fatalf("after rotate: got %d keys, want 4", len(list))
	}
	for _, k := range list {
		retiring := slices.Contains(kids(old), k.KID)
		if want := map[bool]string{true: KeyRetiring, false: KeyActive}[retiring]; k.State != want {
			t.Errorf("%s: got state %s, want %s", k.KID, k.State, want)
		}
		if retiring && !k.RetiresAt.Equal(e.clock.Now().Add(DefaultOverlap)) {
			t.Errorf("%s: retires at %v, want now+24h", k.KID, k.RetiresAt)
		}
	}
	var set struct{ Keys []map[string]any }
	json.Unmarshal(e.ringY.JWKS(), &set)
	if len(set.Keys) != 4 {
		t.Errorf("JWKS: got %d keys, want 4", len(set.Keys))
	}
	for _, k := range set.Keys {
		if k["use"] != "sig" || k["kid"] == "" || (k["alg"] != AlgEdDSA && k["alg"] != AlgES256) || k["d"] != nil {
			t.Errorf("JWKS entry %v: want a public key with kid, alg and use sig", k)
		}
	}
	for name, kid := range map[string]string{"new key": newKid, "retiring key": oldKid} {
		if _, err := e.verifier.Verify(context.Background(), signWith(kid)); err != nil {
			t.Errorf("%s during overlap: %v", name, err)
		}
	}

	e.clock.Add(DefaultOverlap)
	if err := e.ringY.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := e.ringY.List(); len(got) != 2 || slices.ContainsFunc(got, func(k KeyInfo) bool { return k.State != KeyActive }) {
		t.Errorf("after overlap: got %+v, want the 2 active keys", got)
	}
	if got := string(e.ringY.JWKS()); strings.Contains(got, oldKid) {
		t.Error("pruned key still in JWKS")
	}
	files, _ := filepath.Glob(filepath.Join(e.dir, "ring-y", "*.json"))
	if len(files) != 2 {
		t.Errorf("after prune: got %d key files, want 2", len(files))
	}
}

func ringKeyByKid(t *testing.T, r *KeyRing, kid string) any {
	t.Helper()
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, k := range r.keys {
		if k.kid == kid {
			return k.priv
		}
	}
	t.Fatalf("no key %s", kid)
	return nil
}

func TestKeyRingReloadSeesOtherProcessRotation(t *testing.T) {
	c := newClock()
	dir := filepath.Join(t.TempDir(), "keys")
	a, err := LoadKeyRing(dir, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadKeyRing(dir, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, want := kids(a.List()), kids(b.List()); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	kidA, _ := ringPrivate(t, a, AlgEdDSA)
	kidB, _ := ringPrivate(t, b, AlgEdDSA)
	if kidA != kidB {
		t.Errorf("signing kid: got %s, want %s", kidA, kidB)
	}
}

package api_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/ssf"
	"github.com/tetherhq/tether/store/memstore"
)

const (
	ssfIssuer   = "https://a.example"
	ssfAudience = "https://b.example"
	ssfToken    = "stream-client-token-0123456789"
)

// pushed is a push receiver that keeps the claims of every SET it gets,
// verified with the transmitter's JWKS.
type pushed struct {
	keys *handshake.KeyRing
	down atomic.Bool // answer 503 to everything, as a receiver that is down
	mu   sync.Mutex
	sets []map[string]any
	bad  int
}

func (p *pushed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.down.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var set jose.JSONWebKeySet
	json.Unmarshal(p.keys.JWKS(), &set)
	claims, err := verifySET(string(body), set)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil || r.Header.Get("Content-Type") != ssf.ContentType || r.Header.Get("Authorization") != "Bearer pushed" {
		p.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	p.sets = append(p.sets, claims)
	w.WriteHeader(http.StatusAccepted)
}

func verifySET(raw string, set jose.JSONWebKeySet) (map[string]any, error) {
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		return nil, err
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 || jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType] != ssf.SETType {
		return nil, io.ErrUnexpectedEOF
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		return nil, err
	}
	var c map[string]any
	return c, json.Unmarshal(payload, &c)
}

// events returns the event types of the SETs received, in order.
func (p *pushed) events() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, c := range p.sets {
		for typ := range c["events"].(map[string]any) {
			out = append(out, typ)
		}
	}
	return out
}

type ssfEnv struct {
	*env
	rc  *pushed
	url string // the push receiver
}

func newSSFEnv(t *testing.T) *ssfEnv {
	t.Helper()
	st := memstore.New()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	m, err := tether.NewManager(tether.Config{Store: st, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := handshake.LoadKeyRing(filepath.Join(t.TempDir(), "keys"), handshake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ssf.NewTransmitter(ssf.TransmitterConfig{
		Issuer: ssfIssuer, Manager: m, Keys: keys, Clients: []ssf.Client{{Audience: ssfAudience, Token: ssfToken}},
		Wake: st, Poll: 20 * time.Millisecond, LeaseWindow: time.Second, Sync: 50 * time.Millisecond, Logger: log,
		AllowPrivateEndpoints: true, // the receiver is an httptest server on loopback
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Manager: m, Admin: newAdmin(t), Logger: log, Keys: keys, Transmitter: tr})
	if err != nil {
		t.Fatal(err)
	}
	rc := &pushed{keys: keys}
	hs := httptest.NewServer(rc)
	t.Cleanup(func() {
		hs.Close()
		tr.Close()
		m.Close()
		st.Close()
		if strings.Contains(logs.String(), ssfToken) || strings.Contains(logs.String(), "Bearer pushed") {
			t.Errorf("the log holds a credential:\n%s", logs)
		}
	})
	return &ssfEnv{env: &env{store: st, m: m, pub: validated(t, "public", srv.Public()), adm: validated(t, "admin", srv.Admin()), log: logs}, rc: rc, url: hs.URL + "/events"}
}

// client calls the stream management API as the stream client.
func (e *ssfEnv) client(method, target, body string) *httptest.ResponseRecorder {
	return serve(e.pub, req(method, target, strings.NewReader(body), "Authorization", "Bearer "+ssfToken, "Content-Type", "application/json"))
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor) // a bound for a hang, not a timing
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSSFMetadata(t *testing.T) {
	e := newSSFEnv(t)
	w := serve(e.pub, req(http.MethodGet, "/.well-known/ssf-configuration", nil))
	got := decode[map[string]any](t, w)
	for key, want := range map[string]any{
		"issuer": ssfIssuer, "jwks_uri": ssfIssuer + "/.well-known/jwks.json",
		"configuration_endpoint": ssfIssuer + ssf.PathStreams, "status_endpoint": ssfIssuer + ssf.PathStatus,
		"verification_endpoint": ssfIssuer + ssf.PathVerify, "add_subject_endpoint": ssfIssuer + ssf.PathAddSubject,
		"remove_subject_endpoint": ssfIssuer + ssf.PathRemoveSubject,
	} {
		if got[key] != want {
			t.Errorf("%s: got %v, want %v", key, got[key], want)
		}
	}
	if methods, _ := got["delivery_methods_supported"].([]any); len(methods) != 2 {
		t.Errorf("delivery_methods_supported: got %v, want push and poll", got["delivery_methods_supported"])
	}
}

// TestSSFStreamPush: a push stream made through the management API gets the
// events of the subjects added to it, of the types it asked for, while
// enabled; a paused stream holds them; verification events arrive with their
// state.
func TestSSFStreamPush(t *testing.T) {
	e := newSSFEnv(t)
	for _, tt := range []struct{ name, auth string }{{"none", ""}, {"wrong", "Bearer not-a-client-token-0000"}} {
		w := serve(e.pub, req(http.MethodPost, ssf.PathStreams, strings.NewReader(`{}`), "Authorization", tt.auth))
		wantError(t, w, http.StatusUnauthorized, "unauthenticated", "")
	}
	for _, tt := range []struct{ name, body, msg string }{
		{"unknown method", `{"delivery":{"method":"urn:example:carrier-pigeon"}}`, "delivery.method"},
		{"plain http", `{"delivery":{"method":"urn:ietf:rfc:8935","endpoint_url":"http://b.example/ssf"}}`, "https"},
		{"unknown field", `{"delivery":{"method":"urn:ietf:rfc:8936"},"colour":"red"}`, "colour"},
		{"bad subjects", `{"default_subjects":"SOME"}`, "default_subjects"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, e.client(http.MethodPost, ssf.PathStreams, tt.body), http.StatusBadRequest, "bad_request", tt.msg)
		})
	}
	body, _ := json.Marshal(map[string]any{
		"delivery":         map[string]string{"method": ssf.DeliveryPush, "endpoint_url": e.url, "authorization_header": "Bearer pushed"},
		"events_requested": []string{ssf.EventSessionRevoked},
	})
	w := e.client(http.MethodPost, ssf.PathStreams, string(body))
	if w.Code != http.StatusCreated {
		t.Fatalf("create: got %d %s", w.Code, w.Body)
	}
	stream := decode[ssf.StreamConfig](t, w)
	if stream.Audience != ssfAudience || stream.Issuer != ssfIssuer || stream.Delivery.AuthorizationHeader != "" ||
		!slices.Equal(stream.EventsDelivered, []string{ssf.EventSessionRevoked}) {
		t.Fatalf("created stream: got %+v", stream)
	}
	if w := e.client(http.MethodPost, ssf.PathStreams, string(body)); w.Code != http.StatusConflict {
		t.Fatalf("second create: got %d, want 409", w.Code)
	}
	id := stream.ID
	if w := e.client(http.MethodPost, ssf.PathAddSubject, `{"stream_id":"`+id+`","subject":{"format":"iss_sub","iss":"`+ssfIssuer+`","sub":"alice"}}`); w.Code != http.StatusOK {
		t.Fatalf("add subject: got %d %s", w.Code, w.Body)
	}
	wantError(t, e.client(http.MethodPost, ssf.PathAddSubject, `{"stream_id":"`+id+`","subject":{"format":"email","email":"a@b"}}`),
		http.StatusBadRequest, "bad_request", "")

	alice, bob := e.create(t, `{"subject":"alice"}`), e.create(t, `{"subject":"bob"}`)
	e.m.SetRoles(t.Context(), "alice", []string{"x"}) // token-claims-change: not requested
	for _, s := range []created{bob, alice} {
		if w := e.admin(http.MethodDelete, "/v1/sessions/"+s.Session.ID, ""); w.Code != http.StatusNoContent {
			t.Fatalf("revoke: %d", w.Code)
		}
	}
	waitUntil(t, "alice's revocation", func() bool { return len(e.rc.events()) == 1 })

	if w := e.client(http.MethodPost, ssf.PathStatus, `{"stream_id":"`+id+`","status":"paused"}`); w.Code != http.StatusOK {
		t.Fatalf("pause: %d %s", w.Code, w.Body)
	}
	if got := decode[ssf.StreamStatus](t, e.client(http.MethodGet, ssf.PathStatus+"?stream_id="+id, "")); got.Status != ssf.StatusPaused {
		t.Fatalf("status: got %+v, want paused", got)
	}
	held := e.create(t, `{"subject":"alice"}`)
	e.admin(http.MethodDelete, "/v1/sessions/"+held.Session.ID, "")
	if w := e.client(http.MethodPost, ssf.PathStatus, `{"stream_id":"`+id+`","status":"enabled"}`); w.Code != http.StatusOK {
		t.Fatalf("enable: %d %s", w.Code, w.Body)
	}
	waitUntil(t, "the revocation held while paused", func() bool { return len(e.rc.events()) == 2 })

	if w := e.client(http.MethodPost, ssf.PathVerify, `{"stream_id":"`+id+`","state":"s-1"}`); w.Code != http.StatusNoContent {
		t.Fatalf("verify: %d %s", w.Code, w.Body)
	}
	waitUntil(t, "the verification event", func() bool { return len(e.rc.events()) == 3 })
	if w := e.client(http.MethodPost, ssf.PathVerify, `{"stream_id":"`+id+`"}`); w.Code != http.StatusTooManyRequests {
		t.Fatalf("verify again at once: got %d, want 429", w.Code)
	}
	want := []string{ssf.EventSessionRevoked, ssf.EventSessionRevoked, ssf.EventVerification}
	if got := e.rc.events(); !slices.Equal(got, want) || e.rc.bad != 0 {
		t.Fatalf("received %v (%d refused), want %v", got, e.rc.bad, want)
	}
	first := e.rc.sets[0]
	if sub := first["sub_id"].(map[string]any); sub["format"] != "complex" || first["jti"] == "" || first["aud"] != ssfAudience {
		t.Fatalf("first SET: %v", first)
	}

	if w := e.client(http.MethodPost, ssf.PathRemoveSubject, `{"stream_id":"`+id+`","subject":{"format":"opaque","id":"alice"}}`); w.Code != http.StatusNoContent {
		t.Fatalf("remove subject: %d %s", w.Code, w.Body)
	}
	if w := e.client(http.MethodDelete, ssf.PathStreams+"?stream_id="+id, ""); w.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	wantError(t, e.client(http.MethodGet, ssf.PathStreams, ""), http.StatusNotFound, "not_found", "stream")
}

// TestSSFStreamPoll: a poll stream (RFC 8936) returns the SETs not yet
// acknowledged, and forgets each once acknowledged.
func TestSSFStreamPoll(t *testing.T) {
	e := newSSFEnv(t)
	w := e.client(http.MethodPost, ssf.PathStreams, `{"delivery":{"method":"urn:ietf:rfc:8936"},"default_subjects":"ALL"}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	if got := decode[ssf.StreamConfig](t, w); got.Delivery.EndpointURL != ssfIssuer+ssf.PathPoll {
		t.Fatalf("poll endpoint: got %q", got.Delivery.EndpointURL)
	}
	for _, sub := range []string{"alice", "bob"} {
		s := e.create(t, `{"subject":"`+sub+`"}`)
		e.admin(http.MethodDelete, "/v1/sessions/"+s.Session.ID, "")
	}
	set := decode[jose.JSONWebKeySet](t, serve(e.pub, req(http.MethodGet, "/.well-known/jwks.json", nil)))
	poll := func(body string) ssf.PollResponse {
		t.Helper()
		w := e.client(http.MethodPost, ssf.PathPoll, body)
		if w.Code != http.StatusOK {
			t.Fatalf("poll %s: %d %s", body, w.Code, w.Body)
		}
		return decode[ssf.PollResponse](t, w)
	}
	got := poll(`{"returnImmediately":true,"maxEvents":1}`)
	if len(got.Sets) != 1 || !got.MoreAvailable {
		t.Fatalf("first poll: %d SETs, more %v; want 1 and more", len(got.Sets), got.MoreAvailable)
	}
	var acks []string
	for jti, raw := range got.Sets {
		if _, err := verifySET(raw, set); err != nil {
			t.Fatalf("SET %s does not verify: %v", jti, err)
		}
		acks = append(acks, jti)
	}
	ack, _ := json.Marshal(acks)
	got = poll(`{"returnImmediately":true,"ack":` + string(ack) + `}`)
	if len(got.Sets) != 1 || got.MoreAvailable {
		t.Fatalf("second poll: %d SETs, more %v; want the other one", len(got.Sets), got.MoreAvailable)
	}
	for jti := range got.Sets {
		if slices.Contains(acks, jti) {
			t.Fatalf("an acknowledged SET came again")
		}
		acks = []string{jti}
	}
	ack, _ = json.Marshal(acks)
	if got = poll(`{"returnImmediately":true,"ack":` + string(ack) + `}`); len(got.Sets) != 0 {
		t.Fatalf("after every ack: %d SETs, want none", len(got.Sets))
	}
	wantError(t, e.client(http.MethodPost, ssf.PathPoll, `{"maxEvents":1000}`), http.StatusBadRequest, "bad_request", "maxEvents")
}

// TestSSFDeliveryMetrics: the push deliveries to SSF receivers are on the
// admin /metrics, as webhooks' are, by receiver audience: while the
// receiver is down, failed attempts, one event pending and its age; once
// it is back, the event delivered and nothing pending.
func TestSSFDeliveryMetrics(t *testing.T) {
	e := newSSFEnv(t)
	body, _ := json.Marshal(map[string]any{
		"delivery":         map[string]string{"method": ssf.DeliveryPush, "endpoint_url": e.url, "authorization_header": "Bearer pushed"},
		"default_subjects": "ALL",
	})
	if w := e.client(http.MethodPost, ssf.PathStreams, string(body)); w.Code != http.StatusCreated {
		t.Fatalf("create stream: got %d %s", w.Code, w.Body)
	}
	// metric returns the value of name for this receiver, or "" if absent.
	metric := func(name string) string {
		for line := range strings.Lines(e.admin(http.MethodGet, "/metrics", "").Body.String()) {
			if rest, ok := strings.CutPrefix(line, name+`{audience="`+ssfAudience+`"} `); ok {
				return strings.TrimSpace(rest)
			}
		}
		return ""
	}
	number := func(name string) float64 {
		f, _ := strconv.ParseFloat(metric(name), 64)
		return f
	}

	e.rc.down.Store(true)
	alice := e.create(t, `{"subject":"alice"}`)
	if w := e.admin(http.MethodDelete, "/v1/sessions/"+alice.Session.ID, ""); w.Code != http.StatusNoContent {
		t.Fatalf("revoke: %d", w.Code)
	}
	waitUntil(t, "a failed push on /metrics", func() bool { return number("tether_ssf_failed_total") >= 1 })
	if got := metric("tether_ssf_pending"); got != "1" {
		t.Errorf("tether_ssf_pending while the receiver is down: got %q, want 1", got)
	}
	if got := number("tether_ssf_oldest_pending_seconds"); got <= 0 || got > waitFor.Seconds() {
		t.Errorf("tether_ssf_oldest_pending_seconds while the receiver is down: got %v, want the revocation's age", got)
	}
	if got := metric("tether_ssf_delivered_total"); got != "" {
		t.Errorf("tether_ssf_delivered_total before any delivery: got %q, want none", got)
	}

	e.rc.down.Store(false)
	waitUntil(t, "the delivery on /metrics", func() bool {
		return metric("tether_ssf_delivered_total") == "1" && metric("tether_ssf_pending") == "0" && metric("tether_ssf_oldest_pending_seconds") == "0"
	})
	if got := e.rc.events(); !slices.Equal(got, []string{ssf.EventSessionRevoked}) {
		t.Fatalf("received %v, want the one revocation", got)
	}
	if got := metric("tether_ssf_dropped_total"); got != "" {
		t.Errorf("tether_ssf_dropped_total: got %q, want none", got)
	}
}

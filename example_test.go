package tether_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/memstore"
)

// newExampleManager is what a program does once at start-up.
func newExampleManager() *tether.Manager {
	m, err := tether.NewManager(tether.Config{Store: memstore.New()})
	if err != nil {
		log.Fatal(err)
	}
	return m
}

func Example() {
	ctx := context.Background()
	m := newExampleManager()
	defer m.Close()

	// On login: create a session and hand the token to the client.
	token, _, err := m.Create(ctx, tether.CreateParams{
		Subject:  "alice",
		Roles:    []string{"editor"},
		Metadata: map[string]string{"user_agent": "example"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("token prefix:", token[:len(tether.TokenPrefix)], "length:", len(token))

	// On every request: validate it.
	s, err := m.Validate(ctx, token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("subject:", s.Subject, "roles:", s.Roles, "editor:", s.HasRole("editor"))

	// Anything else is refused, garbage without a store read.
	_, err = m.Validate(ctx, "tts_not-a-token")
	fmt.Println("garbage refused:", errors.Is(err, tether.ErrInvalidToken))
	// Output:
	// token prefix: tts_ length: 59
	// subject: alice roles: [editor] editor: true
	// garbage refused: true
}

func ExampleManager_Revoke() {
	ctx := context.Background()
	m := newExampleManager()
	defer m.Close()

	token, s, _ := m.Create(ctx, tether.CreateParams{Subject: "alice"})
	if err := m.Revoke(ctx, s.ID); err != nil {
		log.Fatal(err)
	}
	// The very next validation fails, on this node and on every node sharing the store.
	_, err := m.Validate(ctx, token)
	fmt.Println("after revoke:", errors.Is(err, tether.ErrInvalidToken))
	// Output:
	// after revoke: true
}

func ExampleManager_SetRoles() {
	ctx := context.Background()
	m := newExampleManager()
	defer m.Close()

	token, _, _ := m.Create(ctx, tether.CreateParams{Subject: "alice", Roles: []string{"viewer"}})
	s, _ := m.Validate(ctx, token)
	fmt.Println("before:", s.Roles)

	// Roles belong to the subject: the change reaches every live session at once.
	if err := m.SetRoles(ctx, "alice", []string{"viewer", "admin"}); err != nil {
		log.Fatal(err)
	}
	s, _ = m.Validate(ctx, token)
	fmt.Println("after:", s.Roles)
	// Output:
	// before: [viewer]
	// after: [viewer admin]
}

func ExampleManager_Rotate() {
	ctx := context.Background()
	m := newExampleManager()
	defer m.Close()

	old, s, _ := m.Create(ctx, tether.CreateParams{Subject: "alice"})

	// After a privilege elevation: a new token for the same session.
	fresh, rotated, err := m.Rotate(ctx, old)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same session:", rotated.ID == s.ID, "new token:", fresh != old)

	_, err = m.Validate(ctx, old)
	fmt.Println("old token refused:", errors.Is(err, tether.ErrInvalidToken))
	_, err = m.Validate(ctx, fresh)
	fmt.Println("new token accepted:", err == nil)
	// Output:
	// same session: true new token: true
	// old token refused: true
	// new token accepted: true
}

func ExampleManager_RevokeSubject() {
	ctx := context.Background()
	m := newExampleManager()
	defer m.Close()

	laptop, current, _ := m.Create(ctx, tether.CreateParams{Subject: "alice"})
	phone, _, _ := m.Create(ctx, tether.CreateParams{Subject: "alice"})
	tablet, _, _ := m.Create(ctx, tether.CreateParams{Subject: "alice"})

	// "Sign out everywhere else": keep the session making the request.
	n, err := m.RevokeSubject(ctx, "alice", current.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("revoked:", n)
	for _, d := range []struct{ name, token string }{{"laptop", laptop}, {"phone", phone}, {"tablet", tablet}} {
		_, err := m.Validate(ctx, d.token)
		fmt.Printf("%s live: %v\n", d.name, err == nil)
	}
	// Output:
	// revoked: 2
	// laptop live: true
	// phone live: false
	// tablet live: false
}

func ExampleManager_Middleware() {
	ctx := context.Background()
	m := newExampleManager()
	defer m.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		s, _ := tether.FromContext(r.Context()) // always there behind Middleware
		fmt.Fprintf(w, "hello %s", s.Subject)
	})
	srv := httptest.NewServer(m.Middleware(mux))
	defer srv.Close()

	get := func(token string) {
		req, _ := http.NewRequest("GET", srv.URL+"/whoami", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Println(resp.StatusCode, strings.TrimSpace(string(body)))
	}

	token, _, _ := m.Create(ctx, tether.CreateParams{Subject: "alice"})
	get(token)
	get("")
	// Output:
	// 200 hello alice
	// 401 {"error":"unauthenticated"}
}

func ExampleInspectToken() {
	ctx := context.Background()
	m := newExampleManager()
	defer m.Close()
	token, s, _ := m.Create(ctx, tether.CreateParams{Subject: "alice"})

	// Offline: no store, no secret in the answer.
	info := tether.InspectToken(token)
	fmt.Println(info.Recognised, info.ChecksumOK, info.SessionID == s.ID, info.SecretBits)

	tampered := token[:len(token)-1] + "x"
	if tampered == token {
		tampered = token[:len(token)-1] + "y"
	}
	fmt.Println(tether.InspectToken(tampered).Description)
	fmt.Println(tether.InspectToken("eyJhbGciOiJIUzI1NiJ9.e30.x").Description)
	// Output:
	// true true true 160
	// malformed: the checksum does not match (mistyped or altered)
	// not a Tether session token (no tts_ prefix)
}

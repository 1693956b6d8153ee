package tether_test

import (
	"context"
	"fmt"

	"github.com/tetherhq/tether"
)

// A session remembers where it came from: the service whose handshake
// started it (Manager.Exchange fills this in from the token's iss, sub and
// sid) or the OpenID provider it was signed in through. When that party
// revokes its session (an SSF session-revoked event, a back-channel logout),
// RevokeOrigin ends exactly the sessions made from it; the subject's other
// sessions stay.
func ExampleManager_RevokeOrigin() {
	ctx := context.Background()
	m := newExampleManager()
	defer m.Close()

	var sessions []*tether.Session
	for _, sid := range []string{"idp-session-1", "idp-session-2"} {
		_, sess, err := m.Create(ctx, tether.CreateParams{
			Subject: "alice", AuthMethod: "oidc",
			Origin: tether.Origin{Issuer: "https://idp.example", Subject: "alice", SessionID: sid},
		})
		if err != nil {
			fmt.Println(err)
			return
		}
		sessions = append(sessions, sess)
	}
	fmt.Printf("origin: %+v\n", *sessions[0].Origin)

	// The provider ends idp-session-1.
	n, err := m.RevokeOrigin(ctx, "alice", tether.Origin{Issuer: "https://idp.example", Subject: "alice", SessionID: "idp-session-1"})
	fmt.Println("ended:", n, err)
	for _, s := range sessions {
		_, err := m.Get(ctx, s.ID)
		fmt.Println(s.Origin.SessionID, "live:", err == nil)
	}
	// Output:
	// origin: {Issuer:https://idp.example Subject:alice SessionID:idp-session-1}
	// ended: 1 <nil>
	// idp-session-1 live: false
	// idp-session-2 live: true
}

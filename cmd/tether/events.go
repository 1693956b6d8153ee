package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/tetherhq/tether"
)

// followInterval is how often `tether events --follow` asks for new events: a
// revocation made anywhere shows within it.
const followInterval = 500 * time.Millisecond

func newEventsCmd() *cobra.Command {
	var conn adminConn
	var q tether.EventQuery
	var follow, asJSON bool
	c := &cobra.Command{
		Use:   "events [--subject S] [--type T] [--follow]",
		Short: "Show the audit log (admin API)",
		Long: `Show the audit log of a running tether serve, oldest first: every session
created, rotated and revoked, role change, handshake and failed admin login,
with who did it (self, admin, system, cascade, oidc) and from where.
With --follow, keep printing new events as they happen, until interrupted.`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := conn.client(c)
			if err != nil {
				return err
			}
			out := c.OutOrStdout()
			q.Limit = tether.MaxEventLimit
			for {
				p, err := cl.Events(c.Context(), q)
				if err != nil {
					if follow && c.Context().Err() != nil {
						return nil // interrupted
					}
					return apiFailure(err)
				}
				for i := range p.Events {
					printEvent(out, &p.Events[i], asJSON)
				}
				// A short page is not the end: a store may stop reading early
				// when the filters skip much of the log, and still move the
				// cursor. Only a page that moves it no further is the end.
				moved := p.Next != q.After
				q.After = p.Next
				if moved {
					continue
				}
				if !follow {
					return nil
				}
				select {
				case <-c.Context().Done():
					return nil
				case <-time.After(followInterval):
				}
			}
		},
	}
	conn.register(c)
	c.Flags().StringVar(&q.Subject, "subject", "", "only this subject's events")
	c.Flags().StringVar(&q.SessionID, "session", "", "only this session's events")
	c.Flags().StringVar(&q.Type, "type", "", "only events of this type, such as session.revoked")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events as they come")
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON event per line")
	return c
}

func printEvent(w io.Writer, e *tether.Event, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(e)
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	actor := e.Actor.Kind
	if e.Actor.IP != "" {
		actor += "@" + printable(e.Actor.IP, 45)
	}
	line := fmt.Sprintf("%s  %-19s  %s", e.Time.UTC().Format(time.RFC3339), e.Type, printable(e.Subject, 100))
	if e.SessionID != "" {
		line += "  session " + printable(e.SessionID, 32)
	}
	line += "  by " + actor
	if len(e.Detail) > 0 {
		b, _ := json.Marshal(e.Detail)
		line += "  " + printable(string(b), 300)
	}
	fmt.Fprintln(w, line)
}

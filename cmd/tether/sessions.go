package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tetherhq/tether"
)

func newSessionsCmd() *cobra.Command {
	var conn adminConn
	c := newGroupCmd("sessions", "List and revoke sessions (admin API)",
		"List and revoke sessions through the admin API of a running tether serve.")
	conn.register(c)
	c.AddCommand(newSessionsListCmd(&conn), newSessionsRevokeCmd(&conn), newSessionsRevokeAllCmd(&conn))
	return c
}

func newSessionsListCmd(conn *adminConn) *cobra.Command {
	var subject string
	var asJSON bool
	c := &cobra.Command{
		Use:   "list --subject S",
		Short: "List a subject's live sessions",
		Long: `List a subject's live sessions: ID, when created and last seen, when it
expires (the earlier of its absolute and idle expiry), client IP and user agent.
Times are UTC.`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := requireFlag(c, "subject", subject); err != nil {
				return err
			}
			cl, err := conn.client(c)
			if err != nil {
				return err
			}
			sessions, err := cl.ListSessions(c.Context(), subject)
			if err != nil {
				return apiFailure(err)
			}
			out := c.OutOrStdout()
			if asJSON {
				if sessions == nil {
					sessions = []*tether.Session{}
				}
				return printJSON(out, map[string]any{"sessions": sessions})
			}
			if len(sessions) == 0 {
				fmt.Fprintf(out, "no live sessions for subject %s\n", printable(subject, 200))
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCREATED\tLAST SEEN\tEXPIRES\tIP\tUSER AGENT")
			for _, s := range sessions {
				exp := s.ExpiresAt
				if !s.IdleExpiresAt.IsZero() && s.IdleExpiresAt.Before(exp) {
					exp = s.IdleExpiresAt
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", printable(s.ID, 32),
					utc(s.CreatedAt), utc(s.LastSeenAt), utc(exp),
					printable(s.Metadata["ip"], 45), printable(s.Metadata["user_agent"], 60))
			}
			return tw.Flush()
		},
	}
	c.Flags().StringVar(&subject, "subject", "", "the subject (user ID) whose sessions to list (required)")
	c.Flags().BoolVar(&asJSON, "json", false, `print {"sessions":[…]} as JSON`)
	return c
}

func utc(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func newSessionsRevokeCmd(conn *adminConn) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke one session by its ID",
		Long: `Revoke one session by its ID: its token fails on the next request.
The ID is the one sessions list shows (token inspect finds it in a token).`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			id := args[0]
			if err := checkSessionID(c, id); err != nil {
				return err
			}
			cl, err := conn.client(c)
			if err != nil {
				return err
			}
			if err := cl.RevokeSession(c.Context(), id); err != nil {
				if errors.Is(err, tether.ErrNotFound) {
					return fmt.Errorf("no live session %s (unknown, expired or already revoked)", id)
				}
				return apiFailure(err)
			}
			fmt.Fprintf(c.OutOrStdout(), "revoked session %s\n", id)
			return nil
		},
	}
}

// checkSessionID refuses a non-ID before it can reach a URL. A pasted token is
// not echoed, so the error does not copy it into logs.
func checkSessionID(c *cobra.Command, id string) error {
	switch {
	case strings.HasPrefix(id, tether.TokenPrefix):
		return usageError{errors.New("that is a session token, not a session ID; `tether token inspect -` shows its ID"), c.CommandPath()}
	case !tether.ValidID(id):
		return usageError{fmt.Errorf("%q is not a session ID (16 lower-case base32 characters)", printable(id, 40)), c.CommandPath()}
	}
	return nil
}

func newSessionsRevokeAllCmd(conn *adminConn) *cobra.Command {
	var subject string
	c := &cobra.Command{
		Use:   "revoke-all --subject S",
		Short: "Revoke all a subject's sessions (sign out everywhere)",
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := requireFlag(c, "subject", subject); err != nil {
				return err
			}
			cl, err := conn.client(c)
			if err != nil {
				return err
			}
			n, err := cl.RevokeSubject(c.Context(), subject)
			if err != nil {
				return apiFailure(err)
			}
			plural := "s"
			if n == 1 {
				plural = ""
			}
			fmt.Fprintf(c.OutOrStdout(), "revoked %d session%s of subject %s\n", n, plural, printable(subject, 200))
			return nil
		},
	}
	c.Flags().StringVar(&subject, "subject", "", "the subject (user ID) to sign out everywhere (required)")
	return c
}

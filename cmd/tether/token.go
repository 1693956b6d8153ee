package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tetherhq/tether"
)

// maxTokenInput bounds what token inspect reads from stdin: far more than a
// token, far less than a mistake (a piped file) could cost.
const maxTokenInput = 4 << 10

func newTokenCmd() *cobra.Command {
	c := newGroupCmd("token", "Decode session tokens offline",
		"Decode session tokens offline, without a server or a store.")
	c.AddCommand(newTokenInspectCmd())
	return c
}

func newTokenInspectCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "inspect TOKEN|-",
		Short: "Show what a token is, offline, without its secret",
		Long: `Show what can be learnt from a token offline: its prefix, session ID,
length and whether its checksum holds. It never prints the secret, and it
cannot tell whether the session is live: only the server can.

Pass - to read the token from stdin, so it stays out of shell history.
Exits 1 when the input is not a well-formed Tether session token.`,
		Example: "  tether token inspect -   # then paste the token and press Enter",
		Args:    exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			raw := args[0]
			if raw == "-" {
				var err error
				if raw, err = readTokenLine(c.InOrStdin()); err != nil {
					return err
				}
			}
			info := tether.InspectToken(raw)
			out := c.OutOrStdout()
			if asJSON {
				if err := printJSON(out, info); err != nil {
					return err
				}
			} else {
				printTokenInfo(out, info)
			}
			if !info.Recognised {
				// The input is not repeated: it may be some other secret.
				return errors.New("not a well-formed Tether session token")
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the details as JSON")
	return c
}

// readTokenLine reads one line, so a token typed or pasted at a terminal ends
// at Enter rather than at Ctrl-D.
func readTokenLine(in io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(in, maxTokenInput+1)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("reading the token from stdin: %w", err)
	}
	if len(line) > maxTokenInput {
		return "", fmt.Errorf("stdin: more than %d bytes on one line; want one token", maxTokenInput)
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return "", errors.New("stdin: no token (want one token on one line)")
	}
	return line, nil
}

func printTokenInfo(w io.Writer, info tether.TokenInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("prefix", orNone(info.Prefix))
	row("session ID", orNone(info.SessionID))
	row("length", fmt.Sprintf("%d (a Tether token has %d)", info.Length, tether.TokenLen))
	switch {
	case info.ChecksumOK:
		row("checksum", "valid")
	case info.Prefix != "" && info.Length == tether.TokenLen:
		row("checksum", "INVALID")
	default:
		row("checksum", "not checked")
	}
	if info.SecretBits > 0 {
		row("secret", fmt.Sprintf("%d bits (not shown)", info.SecretBits))
	}
	row("description", info.Description)
	tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tetherhq/tether/internal/adminclient"
)

func newKeysCmd() *cobra.Command {
	var conn adminConn
	c := newGroupCmd("keys", "List and rotate the server's signing keys (admin API)",
		`List and rotate the key pairs a running tether serve signs handshake tokens
with; their public halves are at /.well-known/jwks.json.`)
	conn.register(c)
	c.AddCommand(
		newKeysOpCmd(&conn, "list", "List the signing keys", (*adminclient.Client).Keys),
		newKeysOpCmd(&conn, "rotate", "Rotate the signing keys and list them", (*adminclient.Client).RotateKeys),
	)
	return c
}

// newKeysOpCmd builds list and rotate, which differ only in the call: both
// print the resulting key list.
func newKeysOpCmd(conn *adminConn, use, short string, op func(*adminclient.Client, context.Context) ([]adminclient.Key, error)) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := conn.client(c)
			if err != nil {
				return err
			}
			keys, err := op(cl, c.Context())
			if err != nil {
				return apiFailure(err)
			}
			if asJSON {
				if keys == nil {
					keys = []adminclient.Key{}
				}
				return printJSON(c.OutOrStdout(), map[string]any{"keys": keys})
			}
			return printKeys(c.OutOrStdout(), keys)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, `print {"keys":[…]} as JSON`)
	return c
}

func printKeys(w io.Writer, keys []adminclient.Key) error {
	if len(keys) == 0 {
		_, err := fmt.Fprintln(w, "no signing keys")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", printable(k.KID, 64), printable(k.Alg, 16), printable(k.State, 16), utc(k.CreatedAt))
	}
	return tw.Flush()
}

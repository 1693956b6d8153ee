package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tetherhq/tether/internal/adminclient"
)

func newKeysCmd() *cobra.Command {
	var conn adminConn
	c := newGroupCmd("keys", "Manage handshake keys: the server's signing keys, new shared keys",
		`List and rotate the key pairs a running tether serve signs handshake tokens
with (admin API); their public halves are at /.well-known/jwks.json.
Write a new shared key file for HS256 or PASETO v4.local handshakes (offline).`)
	// Only the commands that speak to the server take its flags.
	for _, op := range []*cobra.Command{
		newKeysOpCmd(&conn, "list", "List the signing keys", (*adminclient.Client).Keys),
		newKeysOpCmd(&conn, "rotate", "Rotate the signing keys and list them", (*adminclient.Client).RotateKeys),
	} {
		conn.register(op)
		c.AddCommand(op)
	}
	c.AddCommand(newKeysNewSharedCmd())
	return c
}

// sharedKeyBytes is the size of a new shared key: HS256 wants at least the
// hash's 32 bytes (RFC 7518 §3.2), PASETO v4.local exactly 32.
const sharedKeyBytes = 32

func newKeysNewSharedCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "new-shared FILE",
		Short: "Write a new random shared key to FILE (mode 0600), for HS256 or v4.local",
		Long: `Write 32 random bytes from crypto/rand to FILE as unpadded base64url, mode
0600: a shared key for a handshake audience or trusted issuer with alg HS256 or
v4.local (key_file in the config). Give the same file to both services, and
each direction its own key. FILE must not exist: a key is never overwritten.
Works offline; it never prints the key.`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			path := args[0]
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s already exists: a key file is never overwritten; remove it first or choose another name", path)
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(f, base64.RawURLEncoding.EncodeToString(randomBytes(sharedKeyBytes)))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(path) // a partial key must not be mistaken for one
				return err
			}
			_, err = fmt.Fprintf(c.OutOrStdout(), "wrote a new %d-bit shared key to %s (mode 0600)\n", sharedKeyBytes*8, path)
			return err
		},
	}
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

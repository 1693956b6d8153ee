package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/adminclient"
	"github.com/tetherhq/tether/internal/config"
	"github.com/tetherhq/tether/internal/urlpolicy"
)

// Where the admin commands find the key when no flag or variable says; the
// URL and data dir defaults are config's.
const (
	adminKeyFileName = "admin.key" // written into the data dir by tether serve when TETHER_ADMIN_KEY is unset
	maxKeyFileBytes  = 4 << 10
)

// adminConn is the connection flags that every admin command group shares.
// The key is deliberately never a flag value: it would land in shell history
// and in the process list.
type adminConn struct {
	server   string
	keyFile  string
	keyValue string // the hidden --admin-key, only to refuse it with a hint
}

func (a *adminConn) register(c *cobra.Command) {
	f := c.PersistentFlags()
	def := config.Default()
	f.StringVar(&a.server, "server", "", "admin API URL (default $TETHER_ADMIN_URL, else "+def.AdminURL+")")
	f.StringVar(&a.keyFile, "admin-key-file", "",
		"file holding the admin key (if not given: $TETHER_ADMIN_KEY, else $TETHER_DATA_DIR/"+adminKeyFileName+" or "+def.DataDir+"/"+adminKeyFileName+")")
	f.StringVar(&a.keyValue, "admin-key", "", "refused: use TETHER_ADMIN_KEY or --admin-key-file")
	f.MarkHidden("admin-key")
}

// client resolves the server URL and the admin key, in this order:
// --server, $TETHER_ADMIN_URL, the default; --admin-key-file,
// $TETHER_ADMIN_KEY, the data dir's admin.key. An explicit flag beats the
// environment, as everywhere else, so a flag is never silently ignored.
func (a *adminConn) client(c *cobra.Command) (*adminclient.Client, error) {
	if c.Flags().Changed("admin-key") {
		return nil, usageError{errors.New("the admin key is never taken as a flag value (it would be kept in shell history): set TETHER_ADMIN_KEY or use --admin-key-file"), c.CommandPath()}
	}
	env, err := config.ClientEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	server := a.server
	if server == "" {
		server = env.AdminURL
	}
	key, err := a.adminKey(env, c.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	cl, err := adminclient.New(server, key, nil)
	if err != nil {
		return nil, usageError{err, c.CommandPath()}
	}
	if u, _ := url.Parse(server); u != nil && u.Scheme == "http" && !urlpolicy.IsLoopback(u.Hostname()) {
		fmt.Fprintf(c.ErrOrStderr(), "warning: sending the admin key over plain HTTP to %s; use https beyond loopback\n", u.Host)
	}
	return cl, nil
}

func (a *adminConn) adminKey(env config.Config, stderr io.Writer) (string, error) {
	if a.keyFile != "" {
		return readKeyFile(a.keyFile, stderr)
	}
	if env.AdminKey != "" {
		return env.AdminKey, nil
	}
	path := filepath.Join(env.DataDir, adminKeyFileName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no admin key: set TETHER_ADMIN_KEY, or use --admin-key-file (tether serve writes one to %s when TETHER_ADMIN_KEY is unset)", path)
	}
	return readKeyFile(path, stderr)
}

// readKeyFile reads a key file's first line. Its errors name the file, never
// its content.
func readKeyFile(path string, stderr io.Writer) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("admin key file: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(stderr, "warning: %s is readable by other users (mode %v); chmod 600 it\n", path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("admin key file %s: %w", path, err)
	}
	if len(b) > maxKeyFileBytes {
		return "", fmt.Errorf("admin key file %s is larger than %d bytes; is it the right file?", path, maxKeyFileBytes)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	key := strings.TrimSpace(line)
	if key == "" {
		return "", fmt.Errorf("admin key file %s is empty", path)
	}
	return key, nil
}

// apiFailure turns a client error into what the user should read: what went
// wrong and what to check. 404s are left to each command, which knows what
// was not found.
func apiFailure(err error) error {
	var ae *adminclient.APIError
	var ue *url.Error
	var pe *tether.PublicError
	switch {
	case errors.As(err, &pe):
		// The client refused the input before sending it; its message is
		// written for the user (main adds the one "tether: " prefix).
		return errors.New(pe.Message)
	case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized:
		return errors.New("the admin API refused the admin key (401): check TETHER_ADMIN_KEY or --admin-key-file")
	case errors.As(err, &ae) && ae.RetryAfter > 0:
		return fmt.Errorf("%w (retry in %v)", err, ae.RetryAfter)
	case errors.As(err, &ae):
		return err
	case errors.As(err, &ue):
		// ue names the URL: IDs and subjects only, never a token or the key.
		return fmt.Errorf("cannot reach the admin API: %w (is tether serve running, and --server its admin address?)", err)
	}
	return err
}

// newGroupCmd returns a command that only holds subcommands: it prints its
// help, and an unknown subcommand is a usage error (cobra would print help
// and exit 0).
func newGroupCmd(use, short, long string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q", args[0], c.CommandPath()), c.CommandPath()}
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error { return c.Help() },
	}
}

// requireFlag makes a missing or empty flag a usage error. (cobra's
// MarkFlagRequired would exit 1, not 2.)
func requireFlag(c *cobra.Command, name, value string) error {
	if value == "" {
		return usageError{fmt.Errorf("--%s is required", name), c.CommandPath()}
	}
	return nil
}

// printJSON writes v indented, with <, > and & left readable.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printable makes a server-supplied string safe for a terminal: session
// metadata such as the user agent comes from clients, and a control or bidi
// character in it could rewrite the operator's screen. Long values are cut to
// max runes; empty ones become "-" so table columns stay aligned.
func printable(s string, max int) string {
	if s == "" {
		return "-"
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("…")
			break
		}
		if !unicode.IsPrint(r) {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

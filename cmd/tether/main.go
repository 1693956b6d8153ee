// Command tether is the Tether server and its command-line client.
//
// One subcommand per file; each is built by a newXxxCmd function listed in
// newRootCmd. Exit codes: 0 ok, 1 failure, 2 usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: tests call it with their own args and writers.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	var usage usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "tether: %v\nRun '%s --help' for usage.\n", err, usage.cmd)
		return 2
	default:
		fmt.Fprintf(stderr, "tether: %v\n", err)
		return 1
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "tether",
		Short:         "Opaque, server-authoritative sessions and single-use handshake tokens",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err, c.CommandPath()} })
	root.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unknown command %q", args[0]), "tether"}
		}
		return nil
	}
	root.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	for _, newCmd := range []func() *cobra.Command{
		newBenchCmd,
		newDemoCmd,
		newServeCmd,
		newSessionsCmd,
		newRolesCmd,
		newKeysCmd,
		newEventsCmd,
		newTokenCmd,
		newVersionCmd,
	} {
		root.AddCommand(newCmd())
	}
	return root
}

// usageError marks a mistake in how the command was called (exit code 2).
type usageError struct {
	error
	cmd string
}

// exactArgs is cobra.ExactArgs with a usage error, so a wrong count exits 2.
func exactArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(c, args); err != nil {
			return usageError{err, c.CommandPath()}
		}
		return nil
	}
}

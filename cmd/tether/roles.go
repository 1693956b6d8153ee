package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newRolesCmd() *cobra.Command {
	var conn adminConn
	c := newGroupCmd("roles", "Set a subject's roles (admin API)",
		"Set a subject's roles through the admin API of a running tether serve.")
	conn.register(c)
	c.AddCommand(newRolesSetCmd(&conn))
	return c
}

func newRolesSetCmd(conn *adminConn) *cobra.Command {
	var subject string
	c := &cobra.Command{
		Use:   "set --subject S [ROLE…]",
		Short: "Replace a subject's roles (none clears them)",
		Long: `Replace a subject's roles with the ones given; with none, clear them.
Roles live with the subject, not in tokens, so every live session of the
subject sees the change on its next request.`,
		Args: func(c *cobra.Command, args []string) error {
			for _, r := range args {
				if strings.TrimSpace(r) == "" {
					return usageError{errors.New("a role cannot be empty"), c.CommandPath()}
				}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if err := requireFlag(c, "subject", subject); err != nil {
				return err
			}
			cl, err := conn.client(c)
			if err != nil {
				return err
			}
			roles, err := cl.SetRoles(c.Context(), subject, args)
			if err != nil {
				return apiFailure(err)
			}
			if len(roles) == 0 {
				fmt.Fprintf(c.OutOrStdout(), "subject %s now has no roles\n", printable(subject, 200))
				return nil
			}
			for i, r := range roles {
				roles[i] = printable(r, 100)
			}
			fmt.Fprintf(c.OutOrStdout(), "subject %s now has roles: %s\n", printable(subject, 200), strings.Join(roles, ", "))
			return nil
		},
	}
	c.Flags().StringVar(&subject, "subject", "", "the subject (user ID) whose roles to set (required)")
	return c
}

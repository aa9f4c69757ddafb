package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"mailwave/internal/pgschema"
	"mailwave/roster/rosterstore"
	"mailwave/roster/storesetup"
)

// newStoreCmd makes `starter store`: the roster store's own database role.
func newStoreCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "The roster store in PostgreSQL: its database, its role, its tables"}
	var adminFile, store string
	setup := &cobra.Command{
		Use:   "setup",
		Short: "As a database administrator, once: create mailwave's database, its own role and its tables, and grant that role exactly what mailwave needs",
		Long: `Run once by a database administrator (and again to change the role's password).

The administrator's connection is read from --admin-file: a file (mode 0600)
holding one postgres:// URL, which may carry the administrator's password.
--waves-dir is the URL mailwave itself will use: its user is mailwave's role,
its database mailwave's database, and its password file (the URL's passfile=,
or PGPASSFILE) holds the role's password, which is set on the role as a
SCRAM-SHA-256 verifier. The role may then read and write mailwave's tables,
make temporary tables, and nothing else: no other table, no CREATE, no other
database. A host other than loopback needs sslmode=verify-full and a CA file.`,
		Example: `  starter store setup --admin-file /run/secrets/pg-admin-url \
      --waves-dir 'postgres://mailwave@db.example:5432/mailwave?sslmode=verify-full&sslrootcert=/tls/ca.pem&passfile=/run/secrets/mailwave-pgpass'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !rosterstore.IsPostgres(store) {
				return fmt.Errorf("--waves-dir: want mailwave's postgres:// URL (a directory store needs no setup)")
			}
			res, err := storesetup.Run(cmd.Context(), adminFile, store)
			if err != nil {
				return err
			}
			verb := map[bool]string{true: "created", false: "password set again"}
			db := map[bool]string{true: "created", false: "there already"}
			fmt.Fprintf(cmd.OutOrStdout(), "role %s: %s\ndatabase %s: %s; only %s (and administrators) may connect\n"+
				"tables (owned by the administrator; %s may SELECT, INSERT, UPDATE, DELETE): %s\nmailwave connects with %s\n",
				res.Role, verb[res.RoleCreated], res.Database, db[res.DBCreated], res.Role, res.Role,
				strings.Join(res.Tables, ", "), pgschema.Redact(store))
			return nil
		},
	}
	f := setup.Flags()
	f.StringVar(&adminFile, "admin-file", "", "file (mode 0600) holding the administrator's postgres:// URL")
	f.StringVar(&store, "waves-dir", "", "the roster store's URL as mailwave connects: postgres://ROLE@HOST:PORT/DATABASE?passfile=...")
	_ = setup.MarkFlagRequired("admin-file")
	cmd.AddCommand(setup)
	return cmd
}

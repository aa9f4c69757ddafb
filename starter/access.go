package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"mailwave/internal/accesstoken"
	"mailwave/internal/atomicfile"
)

// newAccessCmd issues and revokes the access tokens the Temporal server
// (and the codec server) verify: `access key new` makes the signing key,
// `access token` issues a token for one person or service with its roles,
// `access revoke` refuses a name's tokens from now on. docs/access.md.
func newAccessCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "access", Short: "Issue and revoke access tokens (roles on Temporal and the codec server)"}
	cmd.AddCommand(newAccessKeyCmd(a), newAccessTokenCmd(a), newAccessRevokeCmd(a))
	return cmd
}

func newAccessKeyCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Make the signing key of access tokens"}
	var dir string
	newCmd := &cobra.Command{
		Use:   "new",
		Short: "Write a new Ed25519 signing key (" + accesstoken.KeyFile + ", mode 0600) and its public key (" + accesstoken.PublicKeyFile + ") to --dir",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return errors.New("--dir is required: where to write the key pair")
			}
			k, err := accesstoken.NewKey()
			if err != nil {
				return err
			}
			keyPath, pubPath, err := accesstoken.WriteKeyPair(dir, k)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "signing key %s (keep it with the programme's administrators only)\npublic key %s (for the Temporal server and the codec server)\n", keyPath, pubPath)
			return nil
		},
	}
	newCmd.Flags().StringVar(&dir, "dir", "", "directory to write the key pair to (made 0700 if missing; existing keys are never overwritten)")
	cmd.AddCommand(newCmd)
	return cmd
}

func newAccessTokenCmd(a *app) *cobra.Command {
	var roles, name, keyFile, out string
	var valid time.Duration
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Issue an access token for one person or service, with its roles, for the namespace of --namespace",
		Long: `Issue an access token: a JWT signed with the signing key, naming the person or
service (--for), its roles (worker, operator, viewer, decoder, admin) and the
Temporal namespace (--namespace), valid for --valid (at most 24h). It is printed,
or written to --out (mode 0600, replacing it atomically: a running worker takes
a renewed token up within a second).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return errors.New("--for is required: the name of the person or service the token is for")
			}
			if roles == "" {
				return errors.New("--role is required: one or more of worker, operator, viewer, decoder, admin, comma-separated")
			}
			if keyFile == "" {
				return errors.New("--key is required: the signing key (`starter access key new`)")
			}
			rs, err := accesstoken.ParseRoles(roles)
			if err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			if err := accesstoken.CheckSubject(name); err != nil {
				return fmt.Errorf("--for: %w", err)
			}
			if valid <= 0 || valid > accesstoken.MaxValidity {
				return fmt.Errorf("--valid %s: between a second and %s", valid, accesstoken.MaxValidity)
			}
			key, err := accesstoken.LoadSigningKey(keyFile)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			ns := a.temporal.Namespace
			if ns == "" {
				ns = client.DefaultNamespace
			}
			now := time.Now()
			c := accesstoken.Claims{Subject: name, Roles: rs, Namespace: ns, IssuedAt: now, Expires: now.Add(valid)}
			tok, err := accesstoken.Issue(key, c)
			if err != nil {
				return err
			}
			if out == "" {
				fmt.Fprintln(a.out, tok)
			} else if err := atomicfile.Write(out, 0o600, func(w io.Writer) error {
				_, err := io.WriteString(w, tok+"\n")
				return err
			}); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "access token for %s, namespace %s, valid until %s\n", c.Identity(), ns, c.Expires.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&roles, "role", "", "the roles, comma-separated: worker, operator, viewer, decoder, admin")
	cmd.Flags().StringVar(&name, "for", "", "who the token is for: a person's or service's name (no spaces), recorded in history as who acted")
	cmd.Flags().DurationVar(&valid, "valid", 8*time.Hour, "how long the token is good for (at most 24h)")
	cmd.Flags().StringVar(&keyFile, "key", "", "the signing key file (PKCS#8 PEM, mode 0600)")
	cmd.Flags().StringVar(&out, "out", "", "write the token to this file (mode 0600) instead of printing it")
	return cmd
}

func newAccessRevokeCmd(a *app) *cobra.Command {
	var name, list string
	cmd := &cobra.Command{
		Use:   "revoke",
		Short: "Refuse every token issued to a name until now: adds it to the revocation list the servers read",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return errors.New("--for is required: the name whose tokens to revoke")
			}
			if list == "" {
				return errors.New("--revocations is required: the revocation list the Temporal server and the codec server read")
			}
			if err := accesstoken.CheckSubject(name); err != nil {
				return fmt.Errorf("--for: %w", err)
			}
			if _, err := os.Stat(list); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("--revocations: %w", err)
			}
			at := time.Now()
			if err := accesstoken.Revoke(list, name, at); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "revoked %s at %s: the servers refuse the tokens issued to %s until then within a second; a token issued later is good\n",
				name, at.UTC().Format(time.RFC3339), name)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "for", "", "the name whose tokens to revoke")
	cmd.Flags().StringVar(&list, "revocations", "", "the revocation list (created if missing)")
	return cmd
}

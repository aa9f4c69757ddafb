package main

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"mailwave/contract"
	"mailwave/identity"
	"mailwave/mail/graph"
	"mailwave/mail/port"
	"mailwave/worker/workerapp"
)

func newTargetCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "target", Short: "Prove an organisation's target before a wave"}
	cmd.AddCommand(newTargetCheckCmd(a))
	return cmd
}

func newTargetCheckCmd(a *app) *cobra.Command {
	var cfg, org, address, keySecret string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "One read and one tiny write-and-delete against an organisation's target for one mailbox",
		Long: `Check an organisation's target for one mailbox with the worker's configuration
and secrets (run it where a worker runs): a read (Graph: the Inbox; IMAP: a
login and INBOX) and a tiny message written and removed again. It says plainly
what is wrong: the application's consent or permission missing, the mailbox
not found at the target, the target throttling.`,
		Example: `  starter target check --config /etc/mailwave/mailwave.yaml --org trust-g --mailbox someone@trust-g.example`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m := contract.MailboxRef{Key: "check", Address: address, Org: org}
			if keySecret != "" {
				secret, err := identity.LoadSecret(keySecret)
				if err != nil {
					return err
				}
				k, err := identity.NewKeyer(secret)
				if err != nil {
					return err
				}
				if m.Key, err = k.Key(address); err != nil {
					return err
				}
			}
			err := workerapp.CheckTarget(cmd.Context(), workerapp.Config{ConfigFile: cfg, Warn: func(string) {}}, m)
			if err != nil {
				return fmt.Errorf("target of organisation %s, mailbox %s: %s", org, m.Key, explain(err))
			}
			fmt.Fprintf(a.out, "target of organisation %s, mailbox %s: read and a test message written and removed: OK\n", org, m.Key)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg, "config", "", "the worker's configuration file")
	f.StringVar(&org, "org", "", "the organisation, as configured")
	f.StringVar(&address, "mailbox", "", "the mailbox's address")
	f.StringVar(&keySecret, "key-secret-file", "", "the deployment's key secret, to name the mailbox by its key (else \"check\")")
	for _, name := range []string{"config", "org", "mailbox"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

// explain says what an error from a target means for the operator, by
// the errors' types: the identity platform's refusal with its AADSTS
// codes (graph.RefusedError), Graph's answer with its status
// (graph.StatusError), the ports' permanent and throttling errors.
func explain(err error) string {
	var (
		thr     *port.ThrottledError
		refused *graph.RefusedError
		status  *graph.StatusError
	)
	typ, permanent := port.IsPermanent(err)
	badCredentials := permanent && typ == contract.ErrTypeBadCredentials
	switch {
	case errors.As(err, &thr):
		return fmt.Sprintf("the target is throttling (retry after %s): %v", thr.RetryAfter, err)
	case badCredentials && errors.As(err, &refused) && refused.Has(aadstsConsentMissing):
		return "consent missing: an administrator must grant the application's permissions (" + err.Error() + ")"
	case badCredentials && errors.As(err, &status) && status.Status == http.StatusForbidden:
		return "permission missing: the application may not write to this mailbox (Mail.ReadWrite, its RBAC scope) (" + err.Error() + ")"
	case badCredentials:
		return "the login or the application was refused (" + err.Error() + ")"
	case permanent && typ == contract.ErrTypeMailboxNotFound:
		return "the mailbox is not found at the target (" + err.Error() + ")"
	}
	return err.Error()
}

// aadstsConsentMissing is the identity platform's "the user or
// administrator has not consented to use the application".
const aadstsConsentMissing = 65001

// Command starter is the operator's CLI: start and inspect mailbox
// migrations, generate and verify the simulated estate, run the demo.
//
// Every flag can also be set in the environment: --temporal-address is
// MAILWAVE_TEMPORAL_ADDRESS. The key secret comes from MAILWAVE_KEY_SECRET or
// --key-secret-file.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"mailwave/identity"
	"mailwave/internal/cliutil"
	"mailwave/internal/connect"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd(os.Stdout).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "starter:", err)
		os.Exit(1)
	}
}

// app holds what every command shares.
type app struct {
	temporal   connect.Options
	secretFile string
	out        io.Writer
	warned     bool // the start warnings were logged (at the first dial)
}

func newRootCmd(out io.Writer) *cobra.Command {
	a := &app{out: out}
	root := &cobra.Command{
		Use:           "starter",
		Short:         "mailwave's operator CLI",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := cliutil.BindEnv(cmd.Root().PersistentFlags()); err != nil {
				return err
			}
			return cliutil.BindEnv(cmd.Flags())
		},
	}
	root.SetOut(out)
	a.temporal.Log.Level = "warn" // the SDK's own chatter stays out of an operator's way
	a.temporal.AddFlags(root.PersistentFlags())
	root.PersistentFlags().StringVar(&a.secretFile, "key-secret-file", "", "file holding the mailbox key secret (default: $"+identity.SecretEnv+")")
	root.AddCommand(newMailboxCmd(a), newWaveCmd(a), newPrestagePoolCmd(a), newEstateCmd(a), newDemoCmd(a), newReportCmd(a), newSearchAttributesCmd(a), newCodecKeyCmd(a), newTargetCmd(a),
		newProgrammeCmd(a), newOrgCmd(a), newStoreCmd(), newAccessCmd(a))
	return root
}

// keyer builds the mailbox keyer from the deployment secret.
func (a *app) keyer() (*identity.Keyer, error) {
	secret, err := identity.LoadSecret(a.secretFile)
	if err != nil {
		return nil, err
	}
	return identity.NewKeyer(secret)
}

// dial connects to Temporal through the one connection builder.
func (a *app) dial(ctx context.Context) (client.Client, error) {
	c, z, err := a.temporal.Connect(ctx)
	if z != nil && !a.warned {
		a.warned = true
		connect.LogStartWarnings(z, a.temporal.StartWarnings(""))
	}
	return c, err
}

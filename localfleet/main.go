// Command localfleet brings mailwave's production shape up on one machine,
// for trying it and for the benchmark: Debian's PostgreSQL; the Temporal
// server itself on it (not the dev server), its schema set up by Temporal's
// own SQL tool and its frontend on mTLS; the roster store and notice ledger
// in a mailwave database on the same PostgreSQL; a fleet of worker
// processes, each in its own private directory; and a routing host's
// worker that alone cuts mailboxes over. The mail estate is the simulated
// one, its notices an outbox directory standing in for the SMTP relay.
//
// It runs until interrupted, starting again any worker that dies, and
// writes the starter's connection settings to DIR/connect.env:
//
//	localfleet up --dir data/production --estate data/production/estate \
//	    --codec-key-file data/production/codec-keys
//	set -a; . data/production/connect.env; set +a
//	bin/starter wave status --wave W
//
// `make production` does all of it and runs a wave through.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"mailwave/codec"
	"mailwave/internal/accesstoken"
	"mailwave/internal/cliutil"
	"mailwave/mail/sim"
	"mailwave/testkit/fleet"
	"mailwave/testkit/pki"
	"mailwave/testkit/proc"
)

// routerQueue is the routing host's task queue.
const routerQueue = "mta-1"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "localfleet:", err)
		os.Exit(1)
	}
}

type upOptions struct {
	dir, estate, outbox, keyFile, worker string
	workers                              int
	timeScale                            float64
	faults                               bool
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{Use: "localfleet", Short: "mailwave's production shape on one machine, a local fleet for trying it", SilenceUsage: true, SilenceErrors: true}
	var o upOptions
	up := &cobra.Command{
		Use:   "up",
		Short: "Start PostgreSQL, the Temporal server on mTLS, the workers and the routing host's worker; run until interrupted",
		Args:  cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			return cliutil.BindEnv(cmd.Flags())
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return up(cmd.Context(), o) },
	}
	f := up.Flags()
	f.StringVar(&o.dir, "dir", "data/production", "where the databases, certificates, logs and each worker's private directory go")
	f.StringVar(&o.estate, "estate", "data/production/estate", "the simulated estate (`starter estate generate`)")
	f.StringVar(&o.outbox, "outbox", "data/production/outbox", "the notices, standing in for the SMTP relay")
	f.StringVar(&o.keyFile, "codec-key-file", "data/production/codec-keys", "the payload codec's key ring (`starter codec-key new`)")
	f.StringVar(&o.worker, "worker", "bin/worker", "the worker binary")
	f.IntVar(&o.workers, "workers", 3, "worker processes of the fleet")
	f.Float64Var(&o.timeScale, "sim-time-scale", 36000, "the estate's simulated seconds per real second")
	f.BoolVar(&o.faults, "faults", true, "inject the estate's faults: transient errors and throttling, mailboxes missing at the source")
	root.AddCommand(up, newCertsCmd())
	return root
}

// newCertsCmd makes the TLS material docker-compose.yml mounts: a CA, the
// Temporal frontend's certificate (for the name "temporal"), PostgreSQL's
// (for "postgresql": the roster store is verify-full) and the client
// certificates of mailwave and the UI. Short-lived (ten days) and for
// trying the shape only: production certificates come from your own CA.
func newCertsCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Make throwaway mTLS material for docker-compose.yml (a CA, the frontend's and the clients' certificates)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			ca, err := pki.NewCAIn(dir, "mailwave trial CA")
			if err != nil {
				return err
			}
			for _, c := range []struct {
				name   string
				server bool
			}{{"temporal", true}, {"postgresql", true}, {"mailwave", false}, {"temporal-ui", false}} {
				if _, err := ca.Issue(c.name, c.server); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "TLS material in %s: ca.pem, temporal.pem (frontend), postgresql.pem (the database), mailwave.pem and temporal-ui.pem (clients), keys *-key.pem\n", dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "deploy/tls", "where the files go")
	return cmd
}

func up(ctx context.Context, o upOptions) error {
	abs := func(p *string) error {
		a, err := filepath.Abs(*p)
		*p = a
		return err
	}
	for _, p := range []*string{&o.dir, &o.estate, &o.outbox, &o.keyFile, &o.worker} {
		if err := abs(p); err != nil {
			return err
		}
	}
	if o.workers < 1 {
		return fmt.Errorf("--workers %d: at least one", o.workers)
	}
	if _, err := os.Stat(filepath.Join(o.estate, sim.ManifestFile)); err != nil {
		return fmt.Errorf("--estate %s: no simulated estate (make one with `starter estate generate --dir %s`)", o.estate, o.estate)
	}
	keys, err := codec.LoadKeyFile(o.keyFile)
	if err != nil {
		return fmt.Errorf("--codec-key-file: %w", err)
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	// PostgreSQL runs as the postgres user when started by root.
	if err := os.Chmod(o.dir, 0o755); err != nil {
		return err
	}
	faults := ""
	if o.faults {
		faults = ", transient_rate: 0.01, throttle_rate: 0.01, throttle_retry_after: 2s, not_found_rate: 0.005"
	}
	fmt.Fprintln(os.Stderr, "localfleet: starting PostgreSQL and the Temporal server (the first start sets up the schema)")
	f, err := fleet.Start(ctx, fleet.Options{
		Dir: o.dir, WorkerBin: o.worker, Keys: keys,
		Env: []string{cliutil.EnvName("codec-key-file") + "=" + o.keyFile},
		Config: func(string) string {
			return fmt.Sprintf(`organisations:
  - name: simulated
    default: true
    catch_all: true
    sim: {dir: %q, time_scale: %g%s}
    notifier: {kind: outbox, from: "Migration Team <migration@nhs.example>", outbox: {dir: %q}}
    router: {kind: sim, task_queue: %s, sim: {dir: %q}}
`, o.estate, o.timeScale, faults, o.outbox, routerQueue, o.estate)
		},
	})
	if err != nil {
		return err
	}
	defer f.Stop()
	// Each build of the worker is a version of the Worker Deployment, named
	// by the binary's hash: runs stay pinned to the build that started
	// them, and the workers of a new binary become the current version.
	build, err := buildID(o.worker)
	if err != nil {
		return err
	}
	for i := range o.workers {
		if _, err := f.StartWorker(fmt.Sprintf("worker-%d", i+1), "--build-id", build, "--set-current"); err != nil {
			return err
		}
	}
	if _, err := f.StartRouter("router", routerQueue); err != nil {
		return err
	}
	env := filepath.Join(o.dir, "connect.env")
	// The starter's flags, as its environment: an operator's token in the
	// name of whoever runs the shape (history records it as who acted).
	who := "operator"
	if u, err := user.Current(); err == nil && accesstoken.CheckSubject(u.Username) == nil {
		who = u.Username
	}
	co, err := f.Server.ConnectAs(who, accesstoken.Operator)
	if err != nil {
		return err
	}
	flags := append(fleet.ConnectArgs(co), "--codec-key-file", o.keyFile, "--waves-dir", f.DSN)
	var lines []string
	for i := 0; i+1 < len(flags); i += 2 {
		// Quoted for the shell that sources it: a URL holds '&'.
		lines = append(lines, cliutil.EnvName(strings.TrimPrefix(flags[i], "--"))+"='"+strings.ReplaceAll(flags[i+1], "'", `'\''`)+"'")
	}
	if err := os.WriteFile(env, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "localfleet: up: %s, and the routing host's worker on task queue %s\n", f, routerQueue)
	fmt.Fprintf(os.Stderr, "localfleet: PostgreSQL takes passwords only (SCRAM-SHA-256): Temporal as its role temporal, mailwave as its own role mailwave (rights on its own tables only; password file %s)\n", filepath.Join(o.dir, "mailwave.pgpass"))
	fmt.Fprintf(os.Stderr, "localfleet: each worker's private directory and log under %s; the starter's settings in %s\n", o.dir, env)
	fmt.Fprintf(os.Stderr, "localfleet: access tokens (workers: worker; %s: operator; the setup: admin) and the signing key in %s; revocations %s\n",
		who, filepath.Dir(f.Server.PublicKeyFile), f.Server.Revocations)
	return supervise(ctx, append(f.Workers, f.Router), f.Server.RenewTokens)
}

// buildID names a worker binary's build: "w-" and the start of its
// SHA-256.
func buildID(bin string) (string, error) {
	f, err := os.Open(bin)
	if err != nil {
		return "", fmt.Errorf("the worker binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("the worker binary: %w", err)
	}
	return "w-" + hex.EncodeToString(h.Sum(nil))[:12], nil
}

// tokenRenewal is how often the access tokens (valid a day) are issued
// again.
const tokenRenewal = 6 * time.Hour

// supervise starts again any worker that dies, as a service manager
// would, and renews the access tokens every tokenRenewal, until ctx ends.
func supervise(ctx context.Context, procs []*proc.Proc, renew func() error) error {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	renewed := time.Now()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(os.Stderr, "localfleet: stopping")
			return nil
		case <-tick.C:
		}
		if time.Since(renewed) > tokenRenewal {
			if err := renew(); err != nil {
				return fmt.Errorf("renewing the access tokens: %w", err)
			}
			renewed = time.Now()
		}
		for _, p := range procs {
			if p.Running() {
				continue
			}
			fmt.Fprintf(os.Stderr, "localfleet: %s exited; its log ends:\n%s\nlocalfleet: starting it again\n", p.Name, p.LogTail(5))
			if err := p.Restart(); err != nil {
				return err
			}
		}
	}
}

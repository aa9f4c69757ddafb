package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"mailwave/activities"
	"mailwave/codec"
	"mailwave/contract"
	"mailwave/identity"
	"mailwave/mail/sim"
	"mailwave/testkit"
	"mailwave/testkit/proc"
)

// capacity measures one worker holding n slow pre-stage copies at once (the
// simulated target's per-mailbox budget at 8 KiB/s of real time, so even
// the estate's smallest mailbox, 1 MiB, copies for two minutes): its memory idle and with the copies running, the
// heartbeats it sends, their size, its CPU, and the history events the
// server writes meanwhile. It prints name=value figures.
func capacity(ctx context.Context, o options, n int, hold time.Duration) error {
	dir, err := os.MkdirTemp("", "mailwave-capacity-")
	if err != nil {
		return err
	}
	defer func() {
		if !o.keep {
			_ = os.RemoveAll(dir)
		}
	}()
	srv, err := testkit.StartDevServer(ctx, testkit.DevServerConfig{Bin: o.temporalBin, Dir: dir})
	if err != nil {
		return err
	}
	defer func() { _ = srv.Stop() }()
	estateDir := filepath.Join(dir, "estate")
	if _, err := sim.Generate(estateDir, sim.GenerateOptions{Seed: o.seed, Mailboxes: n}); err != nil {
		return err
	}
	est, err := sim.Open(estateDir, sim.Options{Instant: true})
	if err != nil {
		return err
	}
	roster, err := est.Roster()
	if err != nil {
		return err
	}
	keyer, err := identity.NewKeyer([]byte(secret))
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", port)
	w, err := startWorkerWith(o, dir, []string{
		"--temporal-address", srv.FrontendHostPort(),
		"--sim-dir", estateDir, "--outbox-dir", filepath.Join(dir, "outbox"), "--waves-dir", filepath.Join(dir, "waves"),
		"--sim-time-scale", "1", "--sim-rate", strconv.Itoa(1 << 40), "--sim-mailbox-rate", strconv.Itoa(8 << 10),
		"--log-level", "warn", "--metrics-listen", metricsAddr,
		"--max-activities", strconv.Itoa(n + 100), "--max-local-activities", "500", "--max-workflow-tasks", "100",
	})
	if err != nil {
		return err
	}
	defer w.stop()
	if err := waitMetrics(ctx, metricsAddr); err != nil {
		return err
	}
	time.Sleep(5 * time.Second)
	idle, err := proc.VmRSS(w.cmd.Process.Pid)
	if err != nil {
		return err
	}

	// n mailboxes whose bulk pass starts at once (planned at 1 kB/s: too
	// large for any lead) and lasts minutes; T an hour away.
	c := srv.Client()
	at := time.Now().Add(time.Hour)
	logf("capacity: starting %d mailboxes", n)
	for i, r := range roster {
		key, err := keyer.Key(r.Address)
		if err != nil {
			return err
		}
		if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: contract.MailboxWorkflowID(key), TaskQueue: contract.TaskQueue},
			contract.MailboxWorkflowName, contract.MailboxInput{
				Mailbox:   contract.MailboxRef{Key: key, Address: r.Address, Org: r.Org, DisplayName: r.DisplayName},
				MigrateAt: at, NoticeLead: time.Until(at) - time.Second, ReminderLead: time.Minute,
				Prestage: &contract.Prestage{MailboxRate: 1000, Efficiency: 1, Margin: time.Minute, Cap: 1},
			}); err != nil {
			return fmt.Errorf("mailbox %d: %w", i, err)
		}
	}
	if err := waitFor(ctx, 5*time.Minute, func() (bool, error) {
		m, err := scrape(ctx, metricsAddr)
		return m.inFlight >= 0.98*float64(n), err
	}); err != nil {
		return fmt.Errorf("the %d copies never all ran: %w", n, err)
	}
	logf("capacity: %d copies running; holding %s", n, hold)
	time.Sleep(10 * time.Second) // past the first heartbeats of each
	m0, err := scrape(ctx, metricsAddr)
	if err != nil {
		return err
	}
	e0, err := historyEvents(ctx, c)
	if err != nil {
		return err
	}
	cpu0, _ := proc.CPUSeconds(w.cmd.Process.Pid)
	start := time.Now()
	time.Sleep(hold)
	m1, err := scrape(ctx, metricsAddr)
	if err != nil {
		return err
	}
	e1, err := historyEvents(ctx, c)
	if err != nil {
		return err
	}
	cpu1, _ := proc.CPUSeconds(w.cmd.Process.Pid)
	el := time.Since(start).Seconds()
	rss, err := proc.VmRSS(w.cmd.Process.Pid)
	if err != nil {
		return err
	}
	if m1.inFlight < 0.95*float64(n) {
		return fmt.Errorf("only %.0f of %d copies still running at the end: lengthen the copies or shorten -capacity-hold", m1.inFlight, n)
	}
	held := (m0.inFlight + m1.inFlight) / 2
	beat, err := heartbeatBytes()
	if err != nil {
		return err
	}
	hb := (m1.heartbeats - m0.heartbeats) / el
	fmt.Printf("capacity_copies=%.0f\ncapacity_hold_seconds=%.0f\n", held, el)
	fmt.Printf("worker_rss_idle_mb=%.0f\nworker_rss_mb=%.0f\nworker_rss_per_copy_kb=%.0f\n", idle, rss, (rss-idle)*1024/held)
	fmt.Printf("heartbeats_per_second=%.1f\nheartbeats_per_copy_per_minute=%.2f\nheartbeat_bytes=%d\n", hb, hb*60/held, beat)
	fmt.Printf("worker_cpu_cores=%.3f\nhistory_events_per_second=%.2f\n", (cpu1-cpu0)/el, float64(e1-e0)/el)
	return nil
}

// heartbeatBytes is the encoded, encrypted size of a copy's heartbeat
// details for a mailbox of five folders.
func heartbeatBytes() (int, error) {
	p := activities.CopyProgress{Checkpoint: contract.Checkpoint{Folders: map[string]contract.FolderCheckpoint{}},
		Stats: contract.CopyStats{Items: 12345, Bytes: 987654321}}
	for _, f := range []string{"INBOX", "Sent", "Archive", "Deleted Items", "Drafts"} {
		p.Checkpoint.Folders[f] = contract.FolderCheckpoint{UIDValidity: 1700000000, LastUID: 54321, TargetUIDValidity: 1700000001, TargetUIDNext: 54322}
	}
	pl, err := codec.DataConverter(testkit.TestKeyRing()).ToPayload(p)
	if err != nil {
		return 0, err
	}
	return pl.Size(), nil
}

// workerMetrics are the figures scraped from the worker.
type workerMetrics struct{ inFlight, heartbeats float64 }

func scrape(ctx context.Context, addr string) (workerMetrics, error) {
	var m workerMetrics
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return m, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, _ := strings.Cut(line, " ")
		value := func() float64 {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
		switch {
		case strings.HasPrefix(name, "mailwave_copies_in_flight"):
			m.inFlight += value()
		case strings.HasPrefix(name, "temporal_request_total{") && strings.Contains(name, `operation="RecordActivityTaskHeartbeat"`):
			m.heartbeats += value()
		}
	}
	return m, sc.Err()
}

func waitMetrics(ctx context.Context, addr string) error {
	return waitFor(ctx, time.Minute, func() (bool, error) {
		_, err := scrape(ctx, addr)
		return err == nil, nil
	})
}

func waitFor(ctx context.Context, within time.Duration, ok func() (bool, error)) error {
	deadline := time.Now().Add(within)
	for {
		done, err := ok()
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("not within %s", within)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

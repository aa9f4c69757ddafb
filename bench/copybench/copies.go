package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"mailwave/contract"
	"mailwave/mail/imapcopy"
	"mailwave/mail/port"
	"mailwave/testkit/proc"
)

// roundMailwave copies the source to a fresh target of the case with
// mailwave's copier in a child process, checks the target and returns the
// time and the child's memory.
func (b *bench) roundMailwave(c benchCase, round int) (time.Duration, memory, error) {
	t, err := b.startTarget(c, fmt.Sprintf("target-mailwave-%s-%d", c.name, round))
	if err != nil {
		return 0, memory{}, err
	}
	defer t.stop()
	exe, err := os.Executable()
	if err != nil {
		return 0, memory{}, err
	}
	cmd := exec.Command(exe, "-child", "-src-port", strconv.Itoa(t.srcPort), "-tgt-port", strconv.Itoa(t.tgtPort),
		"-window", strconv.Itoa(b.o.window), "-lanes", strconv.Itoa(b.o.lanes), "-no-multiappend="+strconv.FormatBool(b.o.noMulti), "-no-pipeline="+strconv.FormatBool(b.o.noPipeline))
	cmd.Stderr = os.Stderr
	settle()
	busy0 := machineBusy()
	t0 := time.Now()
	out, err := cmd.Output()
	d := time.Since(t0)
	t.copied()
	if err != nil {
		return 0, memory{}, fmt.Errorf("mailwave copy: %w", err)
	}
	var res childResult
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, memory{}, fmt.Errorf("mailwave copy said %q: %w", out, err)
	}
	m := memory{rss: float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024, own: res.VmHWMMB}
	logf("round %d %s: mailwave copied %d messages in %s (its cpu: user %s, sys %s; peak RSS %.1f MB, its own VmHWM %.1f MB, this process's peak RSS %.1f MB; machine busy %.0f%% of %d cores)",
		round, c.name, res.Stats.Items, d.Round(time.Millisecond),
		cmd.ProcessState.UserTime().Round(time.Millisecond), cmd.ProcessState.SystemTime().Round(time.Millisecond),
		m.rss, m.own, float64(selfMaxRSS())/1024,
		100*(machineBusy()-busy0)/d.Seconds()/float64(runtime.NumCPU()), runtime.NumCPU())
	got, err := snapshot(t.srv)
	if err != nil {
		return 0, memory{}, err
	}
	if diff := diff(b.want, got, true); diff != "" {
		return 0, memory{}, fmt.Errorf("mailwave's target differs from the source: %s", diff)
	}
	return d, m, nil
}

// roundMbsync does the same with mbsync. mbsync adds an X-TUID header to
// every message it copies, so its sizes and hashes differ by design, and it
// does not copy keywords ($Label1); folder, system flags, date and
// Message-ID must match.
func (b *bench) roundMbsync(c benchCase, round int) (time.Duration, error) {
	t, err := b.startTarget(c, fmt.Sprintf("target-mbsync-%s-%d", c.name, round))
	if err != nil {
		return 0, err
	}
	defer t.stop()
	settle()
	d, err := runMbsync(filepath.Join(b.dir, fmt.Sprintf("mbsync-%s-%d", c.name, round)), t.srcPort, t.tgtPort)
	t.copied()
	if err != nil {
		return 0, err
	}
	got, err := snapshot(t.srv)
	if err != nil {
		return 0, err
	}
	if diff := diff(b.want, got, false); diff != "" {
		return 0, fmt.Errorf("mbsync's target differs from the source: %s", diff)
	}
	return d, nil
}

// childResult is what the measured process says on stdout, as JSON.
type childResult struct {
	Stats contract.CopyStats
	// VmHWMMB is the process's own peak resident set, MB, read at the end.
	VmHWMMB float64
}

// child is the measured process: one bulk copy, its stats as JSON on stdout.
func child(o options) error {
	creds := func(context.Context, imapcopy.Side, contract.MailboxRef) (imapcopy.Credentials, error) {
		return imapcopy.Credentials{Mechanism: imapcopy.MechPlain, Username: user, Password: password}, nil
	}
	c, err := imapcopy.New(imapcopy.Options{
		Source:        imapcopy.Endpoint{Host: "127.0.0.1", Port: o.src, Security: imapcopy.SecurityNone},
		Target:        imapcopy.Endpoint{Host: "127.0.0.1", Port: o.tgt, Security: imapcopy.SecurityNone},
		Credentials:   creds,
		Window:        o.window,
		Lanes:         o.lanes,
		NoMultiAppend: o.noMulti,
		NoPipeline:    o.noPipeline,
	})
	if err != nil {
		return err
	}
	stats, err := c.Copy(context.Background(), port.CopyRequest{
		Mailbox: contract.MailboxRef{Key: "bench"}, Pass: contract.PassBulk,
		Progress: func(contract.Checkpoint, contract.CopyStats) {},
	})
	if err != nil {
		return err
	}
	peak, err := proc.VmHWM(os.Getpid())
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(childResult{Stats: stats, VmHWMMB: peak})
}

// selfMaxRSS is this process's peak RSS so far, KB.
func selfMaxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss
}

// runMbsync copies the source to the target with mbsync, keeping arrival
// dates (INTERNALDATE) as mailwave does. The ports are the source's and
// the target's on 127.0.0.1 (or their latency proxies').
func runMbsync(dir string, srcPort, tgtPort int) (time.Duration, error) {
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return 0, err
	}
	conf := fmt.Sprintf(`IMAPAccount source
Host 127.0.0.1
Port %d
User %s
Pass %s
SSLType None
AuthMechs LOGIN

IMAPStore source
Account source

IMAPAccount target
Host 127.0.0.1
Port %d
User %s
Pass %s
SSLType None
AuthMechs LOGIN

IMAPStore target
Account target

Channel copy
Far :source:
Near :target:
Patterns *
Create Near
Sync Pull
Expunge None
CopyArrivalDate yes
SyncState %s/
`, srcPort, user, password, tgtPort, user, password, state)
	path := filepath.Join(dir, "mbsyncrc")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return 0, err
	}
	cmd := exec.Command("mbsync", "-c", path, "-a", "-q")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	busy0 := machineBusy()
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("mbsync: %w", err)
	}
	d := time.Since(t0)
	logf("mbsync copied in %s (its cpu: user %s, sys %s; machine busy %.0f%% of %d cores)", d.Round(time.Millisecond),
		cmd.ProcessState.UserTime().Round(time.Millisecond), cmd.ProcessState.SystemTime().Round(time.Millisecond),
		100*(machineBusy()-busy0)/d.Seconds()/float64(runtime.NumCPU()), runtime.NumCPU())
	return d, nil
}

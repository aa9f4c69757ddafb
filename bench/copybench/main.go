// Command copybench measures mailwave's IMAP copier against mbsync (isync)
// on the same generated mailbox: one source Dovecot on loopback, and for
// each copy a fresh, empty target Dovecot. Each round runs mailwave's
// copier (as its own process, so its peak memory is its own), then mbsync;
// both targets are checked against the source. Times vary a lot from run
// to run here (mbsync's between 1.9 and 5.5 s for the same copy), so a
// warm-up round is run and not counted, the counted rounds alternate which
// copy goes first, and the figures are the medians.
//
// It prints one `name=value` figure a line on stdout; progress goes to
// stderr. Run it from the module root (make bench-copy):
//
//	go run ./bench/copybench -messages 5000 -mbytes 200
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mailwave/activities"
	"mailwave/contract"
	"mailwave/internal/testkit/dovecot"
	"mailwave/internal/testkit/imaptest"
	"mailwave/mail/imapcopy"
)

const (
	user     = "bench"
	password = "bench-pw"
)

type options struct {
	messages      int
	mbytes        int
	seed          int64
	window, lanes int
	keep          bool
	rounds        int
	noMulti       bool
	child         bool
	src, tgt      int
}

func main() {
	var o options
	flag.IntVar(&o.messages, "messages", 5000, "messages in the generated mailbox")
	flag.IntVar(&o.mbytes, "mbytes", 200, "total size of the generated mailbox, MB")
	flag.Int64Var(&o.seed, "seed", 1, "seed of the generated mailbox")
	flag.IntVar(&o.window, "window", 0, "mailwave: messages per fetch window and batch (0: the copier's default)")
	flag.IntVar(&o.lanes, "lanes", 0, "mailwave: connection pairs per mailbox (0: the copier's default)")
	flag.BoolVar(&o.keep, "keep", false, "keep the servers' directories")
	flag.BoolVar(&o.noMulti, "no-multiappend", false, "mailwave: one APPEND per message, as to a target without MULTIAPPEND and LITERAL+")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of both copies, each to fresh targets; the figures are the medians")
	flag.BoolVar(&o.child, "child", false, "internal: run one copy (the measured process)")
	flag.IntVar(&o.src, "src-port", 0, "internal: source port")
	flag.IntVar(&o.tgt, "tgt-port", 0, "internal: target port")
	flag.Parse()
	var err error
	if o.child {
		err = child(o)
	} else {
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "copybench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "copybench: "+format+"\n", args...)
}

func run(o options) error {
	if err := dovecot.Available(); err != nil {
		return err
	}
	if _, err := exec.LookPath("mbsync"); err != nil {
		return errors.New("mbsync not found: install Debian's isync")
	}
	dir, err := os.MkdirTemp("", "copybench-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	} else {
		logf("keeping %s", dir)
	}
	dopts := dovecot.Options{Users: []dovecot.User{{Name: user, Password: password}}, Plaintext: true, Storage: dovecot.Maildir}
	src, err := dovecot.Start(filepath.Join(dir, "source"), dopts) // maildir: seeded by writing files
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer src.Stop()

	t0 := time.Now()
	folders := []string{"INBOX", "Sent", "Archive/2019", "Archive/2020", "Projects/Réunions"}
	n, total, err := imaptest.SeedMaildir(src, user, imaptest.BulkFolders(folders),
		imaptest.GenerateBulk(o.seed, o.messages, int64(o.mbytes)<<20, folders))
	if err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	logf("seeded %d messages, %.1f MB, in %d folders, in %s", n, float64(total)/(1<<20), len(folders), time.Since(t0).Round(time.Millisecond))
	// Let the source index everything before either copy reads it, so
	// neither pays for it.
	want, err := snapshot(src)
	if err != nil {
		return err
	}

	// Round 0 warms the machine (page cache, the source's index cache) and
	// is not counted; the counted rounds alternate which copy goes first.
	var mwTimes, mbTimes []time.Duration
	var peakKB int64
	for round := 0; round <= o.rounds; round++ {
		var mwTime, mbTime time.Duration
		var rssKB int64
		doMailwave := func() (err error) { mwTime, rssKB, err = roundMailwave(o, dir, round, src, want); return err }
		doMbsync := func() (err error) { mbTime, err = roundMbsync(dir, round, src, want); return err }
		steps := []func() error{doMailwave, doMbsync}
		if round%2 == 0 {
			steps[0], steps[1] = steps[1], steps[0]
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		if round == 0 {
			logf("warm-up: mailwave %s, mbsync %s (not counted)", mwTime.Round(time.Millisecond), mbTime.Round(time.Millisecond))
			continue
		}
		logf("round %d: mailwave %s, mbsync %s, ratio %.2f", round, mwTime.Round(time.Millisecond), mbTime.Round(time.Millisecond),
			mbTime.Seconds()/mwTime.Seconds())
		mwTimes, mbTimes, peakKB = append(mwTimes, mwTime), append(mbTimes, mbTime), max(peakKB, rssKB)
	}
	mwTime, mbTime := median(mwTimes), median(mbTimes)
	mw := float64(n) / mwTime.Seconds()
	mb := float64(n) / mbTime.Seconds()
	fmt.Printf("messages=%d\n", n)
	fmt.Printf("mbytes=%.1f\n", float64(total)/(1<<20))
	fmt.Printf("rounds=%d\n", o.rounds)
	fmt.Printf("mailwave_seconds=%.2f\n", mwTime.Seconds())
	fmt.Printf("mbsync_seconds=%.2f\n", mbTime.Seconds())
	fmt.Printf("mailwave_msgs_per_s=%.1f\n", mw)
	fmt.Printf("mbsync_msgs_per_s=%.1f\n", mb)
	fmt.Printf("mailwave_mb_per_s=%.1f\n", float64(total)/(1<<20)/mwTime.Seconds())
	fmt.Printf("mbsync_mb_per_s=%.1f\n", float64(total)/(1<<20)/mbTime.Seconds())
	fmt.Printf("ratio_vs_mbsync=%.2f\n", mw/mb)
	fmt.Printf("mailwave_peak_rss_mb=%.1f\n", float64(peakKB)/1024)
	return nil
}

// median is the middle of the times (the lower middle of an even count).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// freshTarget starts an empty target server for one copy.
func freshTarget(dir, name string) (*dovecot.Server, error) {
	return dovecot.Start(filepath.Join(dir, name), dovecot.Options{Users: []dovecot.User{{Name: user, Password: password}}, Plaintext: true})
}

// roundMailwave copies the source to a fresh target with mailwave's copier
// in a child process, checks the target and returns the time and the
// child's peak RSS (KB).
func roundMailwave(o options, dir string, round int, src *dovecot.Server, want []imaptest.Message) (time.Duration, int64, error) {
	tgt, err := freshTarget(dir, fmt.Sprintf("target-mailwave-%d", round))
	if err != nil {
		return 0, 0, err
	}
	defer tgt.Stop()
	exe, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(exe, "-child", "-src-port", strconv.Itoa(src.Port), "-tgt-port", strconv.Itoa(tgt.Port),
		"-window", strconv.Itoa(o.window), "-lanes", strconv.Itoa(o.lanes), "-no-multiappend="+strconv.FormatBool(o.noMulti))
	cmd.Stderr = os.Stderr
	settle()
	busy0 := machineBusy()
	t0 := time.Now()
	out, err := cmd.Output()
	d := time.Since(t0)
	if err != nil {
		return 0, 0, fmt.Errorf("mailwave copy: %w", err)
	}
	var stats contract.CopyStats
	if err := json.Unmarshal(out, &stats); err != nil {
		return 0, 0, fmt.Errorf("mailwave copy said %q: %w", out, err)
	}
	logf("round %d: mailwave copied %d messages in %s (its cpu: user %s, sys %s; machine busy %.0f%% of %d cores)", round, stats.Items,
		d.Round(time.Millisecond), cmd.ProcessState.UserTime().Round(time.Millisecond), cmd.ProcessState.SystemTime().Round(time.Millisecond),
		100*(machineBusy()-busy0)/d.Seconds()/float64(runtime.NumCPU()), runtime.NumCPU())
	got, err := snapshot(tgt)
	if err != nil {
		return 0, 0, err
	}
	if diff := diff(want, got, true); diff != "" {
		return 0, 0, fmt.Errorf("mailwave's target differs from the source: %s", diff)
	}
	return d, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss, nil
}

// roundMbsync does the same with mbsync. mbsync adds an X-TUID header to
// every message it copies, so its sizes and hashes differ by design, and it
// does not copy keywords ($Label1); folder, system flags, date and
// Message-ID must match.
func roundMbsync(dir string, round int, src *dovecot.Server, want []imaptest.Message) (time.Duration, error) {
	tgt, err := freshTarget(dir, fmt.Sprintf("target-mbsync-%d", round))
	if err != nil {
		return 0, err
	}
	defer tgt.Stop()
	settle()
	d, err := runMbsync(filepath.Join(dir, fmt.Sprintf("mbsync-%d", round)), src, tgt)
	if err != nil {
		return 0, err
	}
	got, err := snapshot(tgt)
	if err != nil {
		return 0, err
	}
	if diff := diff(want, got, false); diff != "" {
		return 0, fmt.Errorf("mbsync's target differs from the source: %s", diff)
	}
	return d, nil
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
	})
	if err != nil {
		return err
	}
	stats, err := c.Copy(context.Background(), activities.CopyRequest{
		Mailbox: contract.MailboxRef{Key: "bench"}, Pass: contract.PassBulk,
		Progress: func(contract.Checkpoint, contract.CopyStats) {},
	})
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(stats)
}

// runMbsync copies the source to the target with mbsync, keeping arrival
// dates (INTERNALDATE) as mailwave does.
func runMbsync(dir string, src, tgt *dovecot.Server) (time.Duration, error) {
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
`, src.Port, user, password, tgt.Port, user, password, state)
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

// settle flushes dirty pages to disk before a timed copy, so that neither
// pays for writing back what the seeding or the other copy left.
func settle() {
	syscall.Sync()
	time.Sleep(time.Second)
}

// machineBusy is the machine's CPU seconds spent not idle so far, from
// /proc/stat (Linux); 0 where it cannot be read.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0
	}
	var busy float64
	for i, f := range fields[1:] {
		v, _ := strconv.ParseFloat(f, 64)
		if i != 3 && i != 4 { // idle and iowait
			busy += v
		}
	}
	return busy / 100 // USER_HZ
}

func systemFlags(flags []string) []string {
	var out []string
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) {
			out = append(out, f)
		}
	}
	return out
}

func snapshot(s *dovecot.Server) ([]imaptest.Message, error) {
	cl, err := imaptest.Dial(s.Addr(), user, password)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return imaptest.Snapshot(cl)
}

// diff names the first difference between two snapshots; exact adds the
// size and the hash of each message.
func diff(want, got []imaptest.Message, exact bool) string {
	if len(want) != len(got) {
		return fmt.Sprintf("%d messages, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if w.Folder != g.Folder || w.MessageID != g.MessageID || !w.InternalDate.Equal(g.InternalDate) ||
			fmt.Sprint(systemFlags(w.Flags)) != fmt.Sprint(systemFlags(g.Flags)) ||
			exact && (fmt.Sprint(w.Flags) != fmt.Sprint(g.Flags) || w.BodySHA256 != g.BodySHA256 || w.Size != g.Size) {
			return fmt.Sprintf("message %d: got %+v, want %+v", i, g, w)
		}
	}
	return ""
}

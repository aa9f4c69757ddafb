// Command copybench measures mailwave's IMAP copier against mbsync (isync)
// on the same generated mailbox: one source Dovecot on loopback, and for
// each copy a fresh, empty target Dovecot. Each round runs mailwave's
// copier (as its own process, so its peak memory is its own), then mbsync;
// both targets are checked against the source. Times vary a lot from run
// to run here (mbsync's between 1.9 and 5.5 s for the same copy), so a
// warm-up round (the first case's two copies) is run and not counted, the
// counted rounds alternate which copy goes first, and the figures are the
// medians.
//
// Three cases, each timed for both copiers in every round (-cases picks):
//
//   - multiappend: a Dovecot target as it comes, with MULTIAPPEND and
//     LITERAL+ (figures ratio_vs_mbsync and the like);
//   - literalplus: a target like Exchange's, with LITERAL+ but without
//     MULTIAPPEND before login or after (figures ending _literalplus);
//   - 20ms: the first target, with both servers behind proxies that add
//     20 ms to every round trip (figures ending _20ms, and rtt_ms, the
//     median NOOP round trip through them, checked before the rounds).
//
// mailwave_peak_rss_mb is the largest ru_maxrss of mailwave's copies, as
// the kernel gives it for the child; Linux counts in it this process's own
// peak RSS (printed as copybench_peak_rss_mb), so it is never below that.
// mailwave_peak_vmhwm_mb is the largest of the copies' own peaks (VmHWM,
// read by each as it ends).
//
// It prints one `name=value` figure a line on stdout; progress goes to
// stderr. Run it from the module root (make bench-copy):
//
//	go run ./bench/copybench -messages 5000 -mbytes 200
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mailwave/testkit/dovecot"
	"mailwave/testkit/imaptest"
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
	cases         []benchCase
	noMulti       bool
	noPipeline    bool
	child         bool
	src, tgt      int
}

func main() {
	var o options
	var cases, proxyTo string
	flag.IntVar(&o.messages, "messages", 5000, "messages in the generated mailbox")
	flag.IntVar(&o.mbytes, "mbytes", 200, "total size of the generated mailbox, MB")
	flag.Int64Var(&o.seed, "seed", 1, "seed of the generated mailbox")
	flag.IntVar(&o.window, "window", 0, "mailwave: messages per fetch window and batch (0: the copier's default)")
	flag.IntVar(&o.lanes, "lanes", 0, "mailwave: connection pairs per mailbox (0: the copier's default)")
	flag.BoolVar(&o.keep, "keep", false, "keep the servers' directories")
	flag.BoolVar(&o.noMulti, "no-multiappend", false, "mailwave: no MULTIAPPEND batches, even to a target that offers them (the copier's NoMultiAppend)")
	flag.BoolVar(&o.noPipeline, "no-pipeline", false, "mailwave: go-imap's APPEND, one message at a time, waiting for each (the copier's NoPipeline)")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of every case's copies, each to fresh targets; the figures are the medians")
	flag.StringVar(&cases, "cases", caseNames(knownCases()), "the cases to run, comma-separated")
	flag.BoolVar(&o.child, "child", false, "internal: run one copy (the measured process)")
	flag.IntVar(&o.src, "src-port", 0, "internal: source port")
	flag.IntVar(&o.tgt, "tgt-port", 0, "internal: target port")
	flag.StringVar(&proxyTo, "proxy-to", "", "internal: run a latency proxy to this address until standard input closes")
	flag.Parse()
	var err error
	if o.child {
		err = child(o)
	} else if proxyTo != "" {
		err = proxyChild(proxyTo)
	} else if o.cases, err = parseCases(cases); err == nil {
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

// bench is one run: the source, what every target must hold after a copy,
// and what the cases need.
type bench struct {
	o    options
	dir  string
	src  *dovecot.Server
	want []imaptest.Message
	// literalPlusCaps is the literalplus target's imap_capability.
	literalPlusCaps string
	// srcProxyPort is the port of the source's latency proxy, for cases
	// with latency.
	srcProxyPort int
}

func run(o options) error {
	started := time.Now()
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
	b := &bench{o: o, dir: dir}
	dopts := dovecot.Options{Users: []dovecot.User{{Name: user, Password: password}}, Plaintext: true, Storage: dovecot.Maildir}
	b.src, err = dovecot.Start(filepath.Join(dir, "source"), dopts) // maildir: seeded by writing files
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer b.src.Stop()
	n, total, err := b.seed()
	if err != nil {
		return err
	}
	if err := b.checkTargets(); err != nil {
		return err
	}
	var rtt time.Duration
	if slices.ContainsFunc(o.cases, func(c benchCase) bool { return c.latency }) {
		stop, err := b.startLatency()
		if err != nil {
			return err
		}
		defer stop()
		if rtt, err = b.measureRTT(); err != nil {
			return err
		}
	}
	times, err := b.rounds()
	if err != nil {
		return err
	}

	fmt.Printf("messages=%d\n", n)
	fmt.Printf("mbytes=%.1f\n", float64(total)/(1<<20))
	fmt.Printf("rounds=%d\n", o.rounds)
	fmt.Printf("cases=%s\n", caseNames(o.cases))
	var peak memory
	for i, c := range o.cases {
		printFigures(c, times[i], n, total)
		peak = peak.max(times[i].peak)
		logf("%s: mailwave's peak RSS %.1f MB (ru_maxrss), its own VmHWM %.1f MB", c.name, times[i].peak.rss, times[i].peak.own)
	}
	if rtt > 0 {
		fmt.Printf("rtt_ms=%.1f\n", float64(rtt.Microseconds())/1000)
	}
	fmt.Printf("mailwave_peak_rss_mb=%.1f\n", peak.rss)
	fmt.Printf("mailwave_peak_vmhwm_mb=%.1f\n", peak.own)
	fmt.Printf("copybench_peak_rss_mb=%.1f\n", float64(selfMaxRSS())/1024)
	fmt.Printf("run_seconds=%.0f\n", time.Since(started).Seconds())
	return nil
}

// seed fills the source with the generated mailbox and reads it back as
// what every target must hold.
func (b *bench) seed() (n int, total int64, err error) {
	t0 := time.Now()
	folders := []string{"INBOX", "Sent", "Archive/2019", "Archive/2020", "Projects/Réunions"}
	n, total, err = imaptest.SeedMaildir(b.src, user, imaptest.BulkFolders(folders),
		imaptest.GenerateBulk(b.o.seed, b.o.messages, int64(b.o.mbytes)<<20, folders))
	if err != nil {
		return 0, 0, fmt.Errorf("seeding: %w", err)
	}
	logf("seeded %d messages, %.1f MB, in %d folders, in %s", n, float64(total)/(1<<20), len(folders), time.Since(t0).Round(time.Millisecond))
	// Let the source index everything before either copy reads it, so
	// neither pays for it.
	b.want, err = snapshot(b.src)
	return n, total, err
}

// rounds runs round 0 (the first case only: it warms the page cache and
// the source's index cache, and is not counted), then the counted rounds,
// each of them every case, each case alternating which copy goes first.
func (b *bench) rounds() ([]caseTimes, error) {
	times := make([]caseTimes, len(b.o.cases))
	for round := 0; round <= b.o.rounds; round++ {
		for i, c := range b.o.cases {
			if round == 0 && i > 0 {
				break
			}
			mw, mb, m, err := b.round(c, round)
			if err != nil {
				return nil, fmt.Errorf("%s, round %d: %w", c.name, round, err)
			}
			if round == 0 {
				logf("warm-up (%s): mailwave %s, mbsync %s (not counted)", c.name, mw.Round(time.Millisecond), mb.Round(time.Millisecond))
				continue
			}
			logf("round %d %s: mailwave %s, mbsync %s, ratio %.2f", round, c.name, mw.Round(time.Millisecond), mb.Round(time.Millisecond),
				mb.Seconds()/mw.Seconds())
			times[i].add(mw, mb, m)
		}
	}
	return times, nil
}

// round runs one case's two copies, mbsync first in even rounds.
func (b *bench) round(c benchCase, round int) (mw, mb time.Duration, m memory, err error) {
	doMailwave := func() (err error) { mw, m, err = b.roundMailwave(c, round); return err }
	doMbsync := func() (err error) { mb, err = b.roundMbsync(c, round); return err }
	steps := []func() error{doMailwave, doMbsync}
	if round%2 == 0 {
		steps[0], steps[1] = steps[1], steps[0]
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return 0, 0, memory{}, err
		}
	}
	return mw, mb, m, nil
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

package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// proxyRTT is the round trip that the latency case puts between the
// copiers and both servers: half of it each way.
const proxyRTT = 20 * time.Millisecond

// benchCase is one kind of copy, timed for mailwave and for mbsync in the
// same rounds.
type benchCase struct {
	name   string // as given to -cases
	suffix string // ends the names of its figures: "ratio_vs_mbsync" + suffix
	// noMultiAppend: the target advertises LITERAL+ but not MULTIAPPEND,
	// before login and after, as Exchange does.
	noMultiAppend bool
	// latency: both copiers reach both servers through proxies that add
	// proxyRTT to every round trip.
	latency bool
}

// knownCases lists the cases in the order they run and print.
func knownCases() []benchCase {
	return []benchCase{
		{name: "multiappend"},
		{name: "literalplus", suffix: "_literalplus", noMultiAppend: true},
		{name: "20ms", suffix: "_20ms", latency: true},
	}
}

// caseNames is the names of cases, comma-separated.
func caseNames(cases []benchCase) string {
	var names []string
	for _, c := range cases {
		names = append(names, c.name)
	}
	return strings.Join(names, ",")
}

// parseCases reads the -cases flag: names from knownCases, comma-separated,
// in any order; the cases run in knownCases' order.
func parseCases(list string) ([]benchCase, error) {
	known := knownCases()
	want := map[string]bool{}
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.ContainsFunc(known, func(c benchCase) bool { return c.name == name }) {
			return nil, fmt.Errorf("-cases: unknown case %q (known: %s)", name, caseNames(known))
		}
		want[name] = true
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("-cases: no case named (known: %s)", caseNames(known))
	}
	return slices.DeleteFunc(known, func(c benchCase) bool { return !want[c.name] }), nil
}

// memory is how much memory a mailwave copy took, MB.
type memory struct {
	// rss is the kernel's ru_maxrss for the child. Linux counts in it the
	// peak RSS of the process that started the child (this one): Go
	// starts children with vfork, and exec keeps the larger of the two.
	rss float64
	// own is the child's own peak (VmHWM), read as it ends.
	own float64
}

func (m memory) max(o memory) memory { return memory{rss: max(m.rss, o.rss), own: max(m.own, o.own)} }

// caseTimes is what the counted rounds of one case measured.
type caseTimes struct {
	mailwave, mbsync []time.Duration
	peak             memory // mailwave's largest
}

func (t *caseTimes) add(mw, mb time.Duration, m memory) {
	t.mailwave, t.mbsync, t.peak = append(t.mailwave, mw), append(t.mbsync, mb), t.peak.max(m)
}

// printFigures prints one case's figures: medians of its rounds, each name
// ending in the case's suffix.
func printFigures(c benchCase, t caseTimes, n int, total int64) {
	fig := func(name, format string, v any) { fmt.Printf("%s%s="+format+"\n", name, c.suffix, v) }
	mwTime, mbTime := median(t.mailwave), median(t.mbsync)
	mw, mb := float64(n)/mwTime.Seconds(), float64(n)/mbTime.Seconds()
	mbytes := float64(total) / (1 << 20)
	fig("mailwave_seconds", "%.2f", mwTime.Seconds())
	fig("mbsync_seconds", "%.2f", mbTime.Seconds())
	fig("mailwave_msgs_per_s", "%.1f", mw)
	fig("mbsync_msgs_per_s", "%.1f", mb)
	fig("mailwave_mb_per_s", "%.1f", mbytes/mwTime.Seconds())
	fig("mbsync_mb_per_s", "%.1f", mbytes/mbTime.Seconds())
	fig("ratio_vs_mbsync", "%.2f", mw/mb)
	var rounds []string
	for i := range t.mailwave {
		rounds = append(rounds, fmt.Sprintf("%.2f", t.mbsync[i].Seconds()/t.mailwave[i].Seconds()))
	}
	fmt.Printf("ratio_vs_mbsync%s_rounds=%s\n", c.suffix, strings.Join(rounds, ","))
}

// median is the middle of the times (the lower middle of an even count).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

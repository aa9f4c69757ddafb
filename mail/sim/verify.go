package sim

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"mailwave/mail/port"
)

// Report is the verifier's account of an estate: one row per mailbox, by
// key, and the totals.
type Report struct {
	Rows   []ReportRow
	Totals Totals
}

// ReportRow is one mailbox. Missing counts messages at the source that the
// target lacks; Duplicates counts messages the target was given twice.
// Cutovers counts route changes: exactly 1 for a mailbox cut over.
type ReportRow struct {
	Key         string
	SourceItems int64
	TargetItems int64
	Missing     int64
	Duplicates  int64
	Route       port.Route
	Cutovers    int
}

// Totals sums a report up.
type Totals struct {
	Mailboxes  int // mailboxes verified
	CutOver    int // routed to the target
	Incomplete int // not cut over, including NoState
	NoState    int // asked for but never touched: no row, no key known
	// SourceItems and TargetItems are the messages at the source and on the
	// target over all rows.
	SourceItems int64
	TargetItems int64
	// Lost is the messages at the source missing from the target, summed over
	// the mailboxes cut over: mail the user no longer sees. Messages not yet
	// copied for a mailbox still on the source are not lost.
	Lost int64
	// Duplicated is the messages written twice, over all rows.
	Duplicated int64
}

// OK reports whether every mailbox verified is cut over, with nothing lost
// and nothing duplicated.
func (r *Report) OK() bool {
	t := r.Totals
	return t.Incomplete == 0 && t.Lost == 0 && t.Duplicated == 0
}

// Verify compares source and target for the mailboxes at addresses, or for
// every mailbox with state when addresses is empty. It reads each state file
// once, in parallel, and derives the source side, so it takes seconds for
// tens of thousands of mailboxes. Since state is kept by key, it reads all
// state files in both cases.
func (e *Estate) Verify(ctx context.Context, addresses []string) (Report, error) {
	var want map[int]bool // index -> seen; nil means every mailbox with state
	if len(addresses) > 0 {
		want = make(map[int]bool, len(addresses))
		for n, a := range addresses {
			i, ok := e.lookupAddress(a)
			if !ok {
				return Report{}, fmt.Errorf("sim: verify: address #%d is not in the estate", n+1)
			}
			want[i] = false
		}
	}
	paths, err := e.statePaths()
	if err != nil {
		return Report{}, err
	}
	states, err := readStates(ctx, paths)
	if err != nil {
		return Report{}, err
	}

	var r Report
	for _, st := range states {
		if st.Index < 0 || st.Index >= e.manifest.Mailboxes {
			return Report{}, fmt.Errorf("sim: verify: state of mailbox %s has index %d out of range", st.Key, st.Index)
		}
		if want != nil {
			if _, ok := want[st.Index]; !ok {
				continue
			}
			want[st.Index] = true
		}
		r.add(e.verifyOne(st))
	}
	for i, seen := range want {
		if !seen {
			r.Totals.Mailboxes++
			r.Totals.Incomplete++
			r.Totals.NoState++
			p := e.profile(i)
			r.Totals.SourceItems += p.sourceItems(false)
		}
	}
	slices.SortFunc(r.Rows, func(a, b ReportRow) int { return strings.Compare(a.Key, b.Key) })
	return r, nil
}

// verifyOne compares one mailbox's target with its source.
func (e *Estate) verifyOne(st *mailboxState) ReportRow {
	p := e.profile(st.Index)
	row := ReportRow{Key: st.Key, Route: st.route(), Cutovers: st.Cutovers}
	for fi, f := range p.Folders {
		n := p.sourceCount(fi, st.DeltaArrived)
		row.SourceItems += int64(n)
		t := st.Target[f.Name]
		if t == nil {
			row.Missing += int64(n)
			continue
		}
		row.TargetItems += t.UIDs.count()
		row.Missing += int64(n) - t.UIDs.countUpTo(n)
		row.Duplicates += t.Duplicates
	}
	return row
}

// add appends a row and counts it in the totals.
func (r *Report) add(row ReportRow) {
	r.Rows = append(r.Rows, row)
	t := &r.Totals
	t.Mailboxes++
	if row.Route == port.RouteTarget {
		t.CutOver++
		t.Lost += row.Missing
	} else {
		t.Incomplete++
	}
	t.SourceItems += row.SourceItems
	t.TargetItems += row.TargetItems
	t.Duplicated += row.Duplicates
}

// statePaths lists every state file.
func (e *Estate) statePaths() ([]string, error) {
	root := filepath.Join(e.dir, stateDir)
	shards, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("sim: verify: %w", err)
	}
	var paths []string
	for _, s := range shards {
		if !s.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(root, s.Name()))
		if err != nil {
			return nil, fmt.Errorf("sim: verify: %w", err)
		}
		for _, f := range files {
			if strings.HasSuffix(f.Name(), ".json") { // not a temporary file
				paths = append(paths, filepath.Join(root, s.Name(), f.Name()))
			}
		}
	}
	return paths, nil
}

// readStates reads state files in parallel, in the order given.
func readStates(ctx context.Context, paths []string) ([]*mailboxState, error) {
	states := make([]*mailboxState, len(paths))
	errs := make([]error, len(paths))
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(4, 2*runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := range next {
				states[i], errs[i] = readState(paths[i])
			}
		})
	}
	var err error
feed:
	for i := range paths {
		select {
		case next <- i:
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("sim: verify: %w", err)
		}
	}
	return states, nil
}

// WriteCSV writes the rows, keys only, under a header row.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"key", "source_items", "target_items", "missing", "duplicates", "route", "cutovers"})
	for _, row := range r.Rows {
		cw.Write([]string{
			row.Key,
			strconv.FormatInt(row.SourceItems, 10),
			strconv.FormatInt(row.TargetItems, 10),
			strconv.FormatInt(row.Missing, 10),
			strconv.FormatInt(row.Duplicates, 10),
			string(row.Route),
			strconv.Itoa(row.Cutovers),
		})
	}
	cw.Flush()
	return cw.Error()
}

// Summary is a few readable lines about the totals.
func (r *Report) Summary() string {
	t := r.Totals
	verdict := "OK"
	if !r.OK() {
		verdict = "NOT OK"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "mailboxes: %d verified, %d cut over, %d not cut over (%d never touched)\n", t.Mailboxes, t.CutOver, t.Incomplete, t.NoState)
	fmt.Fprintf(&b, "items: %d at source, %d on target\n", t.SourceItems, t.TargetItems)
	fmt.Fprintf(&b, "lost: %d, duplicated: %d\n", t.Lost, t.Duplicated)
	fmt.Fprintf(&b, "result: %s\n", verdict)
	return b.String()
}

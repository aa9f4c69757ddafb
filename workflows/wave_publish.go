package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"mailwave/contract"
	"mailwave/contract/searchattr"
)

// changeWaveVisibility: a wave publishes its progress in its memo (so
// `wave status` answers when no worker can answer a query), its current
// details, and whether it is paused as a search attribute.
const changeWaveVisibility = "wave-visibility"

// publishEvery is the least time between two publications of the wave's
// progress: each costs an event, and a busy wave changes all the time.
const publishEvery = 15 * time.Second

// publisher holds what the wave last published.
type publisher struct {
	on          bool
	last        contract.WaveProgress // as published, PublishedAt cleared
	at          time.Time
	armed       bool // a timer will publish what is held back
	pausedShown bool
}

// setupPublisher decides, once per run, whether this run publishes.
func (w *wave) setupPublisher(ctx workflow.Context) {
	w.pub.on = workflow.GetVersion(ctx, changeWaveVisibility, workflow.DefaultVersion, 1) == 1
	// Search attributes carry over continue-as-new: a pause the last run
	// showed is what this run's first publication is judged against.
	w.pub.pausedShown, _ = workflow.GetTypedSearchAttributes(ctx).GetBool(searchattr.Paused)
}

// publish writes the wave's progress to its memo when it has changed, at
// most every publishEvery: a change held back is published by a timer, so
// the memo is never stale by more than that while anything happens. The
// details and the paused search attribute follow at the same time.
func (w *wave) publish(ctx workflow.Context, final bool) {
	if !w.pub.on {
		return
	}
	p := w.progress()
	p.Refusals = nil // listed by the query; the memo stays small
	p.Copied.Bad = nil
	if progressKeyOf(p) == progressKeyOf(w.pub.last) && !final {
		return
	}
	now := workflow.Now(ctx)
	if wait := publishEvery - now.Sub(w.pub.at); wait > 0 && !final {
		if !w.pub.armed {
			w.pub.armed = true
			w.sel.AddFuture(workflow.NewTimerWithOptions(ctx, wait, workflow.TimerOptions{Summary: "publish progress"}),
				func(workflow.Future) { w.pub.armed = false })
		}
		return
	}
	w.pub.last, w.pub.at = p, now
	p.PublishedAt = now
	if err := workflow.UpsertMemo(ctx, map[string]any{contract.MemoProgress: p}); err != nil {
		workflow.GetLogger(ctx).Warn("progress not published", "wave", w.in.WaveID, "error", err)
	}
	if p.Paused != w.pub.pausedShown {
		w.pub.pausedShown = p.Paused
		if err := workflow.UpsertTypedSearchAttributes(ctx, searchattr.Paused.ValueSet(p.Paused)); err != nil {
			workflow.GetLogger(ctx).Warn("pause not published", "wave", w.in.WaveID, "error", err)
		}
	}
	workflow.SetCurrentDetails(ctx, waveDetails(p, now))
}

// progressKey is what of a wave's progress is worth publishing again,
// comparable (workflow code cannot use reflect). The pre-stage pool's
// figures are zero for a wave without Prestage: they publish nothing more
// for it (no GetVersion).
type progressKey struct {
	total, started, refused, waiting, active, migrated, needsSupport, cancelled, deferred, cap, runs int
	prestageCap, prestaging, prestageQueued                                                          int
	items, bytes, skipped, badItems                                                                  int64
	paused, cancelling                                                                               bool
	reason                                                                                           string
}

func progressKeyOf(p contract.WaveProgress) progressKey {
	return progressKey{
		total: p.Total, started: p.Started, refused: p.Refused, waiting: p.Waiting, active: p.Active,
		migrated: p.Migrated, needsSupport: p.NeedsSupport, cancelled: p.Cancelled, deferred: p.Deferred, cap: p.Cap, runs: p.Runs,
		prestageCap: p.PrestageCap, prestaging: p.Prestaging, prestageQueued: p.PrestageQueued,
		items: p.Copied.Items, bytes: p.Copied.Bytes, skipped: p.Copied.Skipped, badItems: p.Copied.BadItems,
		paused: p.Paused, cancelling: p.Cancelling, reason: p.PauseReason,
	}
}

// waveDetails is the wave's progress as the Temporal UI shows it (through
// the payload codec): counts, cap, paused and why.
func waveDetails(p contract.WaveProgress, now time.Time) string {
	var b strings.Builder
	done := p.Migrated + p.NeedsSupport + p.Cancelled + p.Deferred
	b.WriteString(fmt.Sprintf("%d of %d mailboxes finished: %d migrated, %d need support, %d cancelled",
		done, p.Total, p.Migrated, p.NeedsSupport, p.Cancelled))
	if p.Deferred > 0 {
		b.WriteString(fmt.Sprintf(", %d deferred, back to the pool (", p.Deferred))
		for i, r := range p.DeferredBy {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(fmt.Sprintf("%s %d", r.Reason, r.Count))
		}
		b.WriteString(")")
	}
	b.WriteString("\n")
	b.WriteString(fmt.Sprintf("started %d, waiting %d, copying or cutting over %d of a cap of %d; refused at start %d\n",
		p.Started, p.Waiting, p.Active, p.Cap, p.Refused))
	if p.PrestageCap > 0 {
		b.WriteString(fmt.Sprintf("pre-staging %d of a pool of %d, %d waiting for it\n", p.Prestaging, p.PrestageCap, p.PrestageQueued))
	}
	b.WriteString(fmt.Sprintf("copied %.1f GB, %d messages; run %d; as of %s", float64(p.Copied.Bytes)/1e9, p.Copied.Items, p.Runs,
		now.UTC().Format("2006-01-02 15:04:05 MST")))
	switch {
	case p.Cancelling:
		b.WriteString("\ncancelling")
	case p.Paused:
		b.WriteString("\npaused: " + p.PauseReason)
	}
	return b.String()
}

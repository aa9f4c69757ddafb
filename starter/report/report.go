// Package report turns what mailboxes published (contract.MailboxSummary,
// from their memos) into the operator's reports: one CSV row per mailbox,
// and a summary per organisation against the programme's support budget.
// It reads nothing itself: the starter lists the workflows and hands the
// mailboxes in.
package report

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"mailwave/contract"
	"mailwave/starter/printer"
)

// OutcomeRemaining is a mailbox still running: no summary yet.
const OutcomeRemaining = "remaining"

// Mailbox is one mailbox in a report: its summary when it has finished, or
// what its search attributes say while it runs.
type Mailbox struct {
	Key  string
	Org  string
	Wave string
	// Outcome is the summary's outcome, OutcomeRemaining while the mailbox
	// runs, or the workflow's status (e.g. "terminated") for one that
	// closed without a summary.
	Outcome string
	// Stage is where a remaining mailbox is.
	Stage   string
	Summary *contract.MailboxSummary
}

// FromSummary is a finished mailbox.
func FromSummary(s contract.MailboxSummary) Mailbox {
	return Mailbox{Key: s.Key, Org: s.Org, Wave: s.WaveID, Outcome: string(s.Outcome), Summary: &s}
}

// Duration is how long a finished mailbox's migration took: from its first
// copy pass to its end (a summary without one, from the workflow's start,
// so with the notice lead in it); zero without a summary.
func (m Mailbox) Duration() time.Duration {
	if m.Summary == nil || m.Summary.FinishedAt.IsZero() {
		return 0
	}
	from := m.Summary.CopyStartedAt
	if from.IsZero() {
		from = m.Summary.StartedAt
	}
	if from.IsZero() {
		return 0
	}
	return m.Summary.FinishedAt.Sub(from)
}

// CSVHeader is the report CSV's header row.
var CSVHeader = []string{"key", "org", "wave", "outcome", "stage", "failed_step", "error_type", "source_items", "target_items",
	"bytes", "bad_items", "duplicates_removed", "consistency", "duration_seconds", "notices_sent", "started_at", "finished_at"}

// CSVRecord is a mailbox as a CSV row under CSVHeader. Counts are empty for
// a mailbox without a summary; the notices are space-separated kinds. A
// deferred mailbox's reason is its error_type.
func (m Mailbox) CSVRecord() []string {
	rec := []string{m.Key, m.Org, m.Wave, m.Outcome, m.Stage}
	s := m.Summary
	if s == nil {
		return append(rec, make([]string, len(CSVHeader)-len(rec))...)
	}
	notices := make([]string, len(s.NoticesSent))
	for i, k := range s.NoticesSent {
		notices[i] = string(k)
	}
	return append(rec, string(s.FailedStep), s.ErrorType,
		strconv.FormatInt(s.SourceItems, 10), strconv.FormatInt(s.TargetItems, 10),
		strconv.FormatInt(s.Bytes, 10), strconv.FormatInt(s.BadItems, 10), strconv.FormatInt(s.Duplicates, 10), string(s.Consistency),
		strconv.FormatInt(int64(printer.SecondsOf(m.Duration())), 10), strings.Join(notices, " "),
		timeText(s.StartedAt), timeText(s.FinishedAt))
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// WriteCSV writes the header and one row per mailbox, in the order given.
func WriteCSV(w io.Writer, mailboxes []Mailbox) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, m := range mailboxes {
		if err := cw.Write(m.CSVRecord()); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing the report CSV: %w", err)
	}
	return nil
}

// Budget verdicts.
const (
	BudgetWithin = "within"
	BudgetOver   = "over"
)

// OrgSummary is how an organisation's mailboxes stand. The support share is
// of the finished ones (migrated or needing support).
type OrgSummary struct {
	Org          string        `json:"org"`
	Mailboxes    int           `json:"mailboxes"`
	Migrated     int           `json:"migrated"`
	NeedsSupport int           `json:"needs_support"`
	SupportShare printer.Share `json:"support_share"`
	Budget       string        `json:"budget"` // within or over; "" before any has finished
	Cancelled    int           `json:"cancelled"`
	// Deferred are mailboxes their preflight found cannot go (back to the
	// pool): not in the support share.
	Deferred  int `json:"deferred"`
	Remaining int `json:"remaining"`
	// Other are mailboxes whose workflow closed without a summary
	// (terminated, say, or run before summaries were published).
	Other       int           `json:"other"`
	Bytes       printer.Bytes `json:"bytes"`
	Perfect     int           `json:"perfect"`
	Good        int           `json:"good"`
	Investigate int           `json:"investigate"`
	Poor        int           `json:"poor"`
}

// Slow is one of the slowest mailboxes.
type Slow struct {
	Key      string          `json:"key"`
	Org      string          `json:"org"`
	Outcome  string          `json:"outcome"`
	Duration printer.Seconds `json:"duration_seconds" text:"DURATION"`
}

// Deferral is how many mailboxes were deferred for one reason.
type Deferral struct {
	Reason    string `json:"reason"` // the preflight's error type
	Mailboxes int    `json:"mailboxes"`
}

// Summary is a report's summary: per organisation, all together, the
// deferred by reason, and the slowest mailboxes.
type Summary struct {
	Scope         string        `json:"scope"`
	SupportBudget printer.Share `json:"support_budget"`
	Total         OrgSummary    `json:"total"`
	Organisations []OrgSummary  `json:"organisations"`
	// DeferredBy counts the deferred mailboxes by reason, in
	// contract.DeferReasons' order (any other after, by name).
	DeferredBy []Deferral `json:"deferred_by"`
	Slowest    []Slow     `json:"slowest"`
}

// NoOrg stands for mailboxes without an organisation.
const NoOrg = "(none)"

// AllOrgs names the total.
const AllOrgs = "(all)"

// Summarise sums mailboxes per organisation (sorted by name), judges each
// against the support budget (a share, e.g. 0.02), and keeps the slowest
// finished ones, at most slowest of them.
func Summarise(scope string, mailboxes []Mailbox, budget float64, slowest int) Summary {
	byOrg := map[string]*OrgSummary{}
	total := OrgSummary{Org: AllOrgs}
	for _, m := range mailboxes {
		org := cmp.Or(m.Org, NoOrg)
		s, ok := byOrg[org]
		if !ok {
			s = &OrgSummary{Org: org}
			byOrg[org] = s
		}
		s.add(m)
		total.add(m)
	}
	sum := Summary{Scope: scope, SupportBudget: printer.Share(budget), Total: total.judged(budget),
		Organisations: make([]OrgSummary, 0, len(byOrg)), DeferredBy: deferralsOf(mailboxes), Slowest: slowestOf(mailboxes, slowest)}
	for _, s := range byOrg {
		sum.Organisations = append(sum.Organisations, s.judged(budget))
	}
	slices.SortFunc(sum.Organisations, func(a, b OrgSummary) int { return strings.Compare(a.Org, b.Org) })
	return sum
}

func (s *OrgSummary) add(m Mailbox) {
	s.Mailboxes++
	switch m.Outcome {
	case string(contract.OutcomeMigrated):
		s.Migrated++
	case string(contract.OutcomeNeedsSupport):
		s.NeedsSupport++
	case string(contract.OutcomeCancelled):
		s.Cancelled++
	case string(contract.OutcomeDeferred):
		s.Deferred++
	case OutcomeRemaining:
		s.Remaining++
	default:
		s.Other++
	}
	if m.Summary == nil {
		return
	}
	s.Bytes += printer.Bytes(m.Summary.Bytes)
	switch m.Summary.Consistency {
	case contract.ConsistencyPerfect:
		s.Perfect++
	case contract.ConsistencyGood:
		s.Good++
	case contract.ConsistencyInvestigate:
		s.Investigate++
	case contract.ConsistencyPoor:
		s.Poor++
	}
}

// judged sets the support share and the verdict against budget.
func (s OrgSummary) judged(budget float64) OrgSummary {
	finished := s.Migrated + s.NeedsSupport
	if finished == 0 {
		return s
	}
	s.SupportShare = printer.Share(float64(s.NeedsSupport) / float64(finished))
	s.Budget = BudgetWithin
	if float64(s.SupportShare) > budget {
		s.Budget = BudgetOver
	}
	return s
}

// deferralsOf counts the deferred mailboxes by reason.
func deferralsOf(mailboxes []Mailbox) []Deferral {
	count := map[string]int{}
	for _, m := range mailboxes {
		if m.Outcome == string(contract.OutcomeDeferred) {
			reason := ""
			if m.Summary != nil {
				reason = m.Summary.ErrorType
			}
			count[cmp.Or(reason, "(unknown)")]++
		}
	}
	out := []Deferral{}
	for _, r := range contract.DeferReasons {
		if n, ok := count[r]; ok {
			out = append(out, Deferral{Reason: r, Mailboxes: n})
			delete(count, r)
		}
	}
	for _, r := range slices.Sorted(maps.Keys(count)) {
		out = append(out, Deferral{Reason: r, Mailboxes: count[r]})
	}
	return out
}

// slowestOf is the n finished mailboxes that ran longest, longest first
// (by key when equal).
func slowestOf(mailboxes []Mailbox, n int) []Slow {
	var out []Slow
	for _, m := range mailboxes {
		if m.Summary != nil && m.Duration() > 0 {
			out = append(out, Slow{Key: m.Key, Org: m.Org, Outcome: m.Outcome, Duration: printer.SecondsOf(m.Duration())})
		}
	}
	slices.SortFunc(out, func(a, b Slow) int {
		return cmp.Or(cmp.Compare(b.Duration, a.Duration), strings.Compare(a.Key, b.Key))
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// WriteText writes the summary for people: a line on the scope and the
// budget, a table of the organisations with the total as its last row, and
// the slowest mailboxes.
func (s Summary) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "%s: %d mailboxes; support budget %s of those finished\n", s.Scope, s.Total.Mailboxes, s.SupportBudget.Text())
	if err := printer.WriteTable(w, append(slices.Clip(s.Organisations), s.Total), ""); err != nil {
		return err
	}
	if len(s.DeferredBy) > 0 {
		fmt.Fprint(w, "deferred, back to the pool (by their preflight, their admin told; Rescheduled: moved to another night by an operator):")
		for i, d := range s.DeferredBy {
			sep := ","
			if i == 0 {
				sep = ""
			}
			fmt.Fprintf(w, "%s %s %d", sep, d.Reason, d.Mailboxes)
		}
		fmt.Fprintln(w)
	}
	if len(s.Slowest) == 0 {
		_, err := fmt.Fprintln(w, "slowest: none finished yet")
		return err
	}
	fmt.Fprintln(w, "slowest (from the first copy pass to the end):")
	return printer.WriteTable(w, s.Slowest, "  ")
}

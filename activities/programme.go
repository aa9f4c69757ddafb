package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"mailwave/contract"
	"mailwave/internal/control"
	"mailwave/mail/port"
	"mailwave/plan"
	"mailwave/roster/estate"
	"mailwave/roster/wavefile"
)

// RosterWriter writes a wave's roster into the roster store, once.
type RosterWriter interface {
	Write(ctx context.Context, waveID string, mailboxes []wavefile.Mailbox) error
	All(ctx context.Context, waveID string) ([]wavefile.Mailbox, error)
}

// ProgrammeActivities choose a night's mailboxes from the estate and write
// back how they ended: their ports are the estate and the roster store
// (both in the shared store) and Temporal, through the worker's client.
type ProgrammeActivities struct {
	client  client.Client
	estate  estate.Store
	rosters RosterWriter
	// notifier tells an organisation's admin contact that it was held.
	notifier port.Notifier
}

// NewProgramme returns the programme's activities.
func NewProgramme(c client.Client, e estate.Store, rosters RosterWriter, n port.Notifier) *ProgrammeActivities {
	return &ProgrammeActivities{client: c, estate: e, rosters: rosters, notifier: n}
}

// ChooseNightInput asks for a night's mailboxes.
type ChooseNightInput struct {
	WaveID    string
	MigrateAt time.Time
	N         int
	Seed      int64
	Zone      string
	Skip      []string `json:",omitempty"`
	Orgs      []string `json:",omitempty"` // a pilot's organisations
	// Fired, Lead and Schedule, when Fired is set: the night is computed
	// here from the firing's scheduled time (WaveID, MigrateAt and Seed
	// are then ignored).
	Fired    time.Time     `json:",omitempty"`
	Lead     time.Duration `json:",omitempty"`
	Schedule string        `json:",omitempty"`
	// Every: nights every so often, not one a date (a rehearsal's
	// schedule): a night's reservations are those from its T to the next.
	Every time.Duration `json:",omitempty"`
	// Prestage, when the night pre-stages with a tenant's limit and no
	// spread of its own, has the night's spread planned from its
	// mailboxes' sizes (ChooseNightResult.Spread).
	Prestage *contract.Prestage `json:",omitempty"`
}

// ChooseNightResult says what was chosen, or why nothing was.
type ChooseNightResult struct {
	Chosen  int
	Date    string // the night's date in its zone
	Skipped string `json:",omitempty"`
	// The night's wave ID, T and seed, as computed from the firing (or
	// given).
	WaveID    string    `json:",omitempty"`
	MigrateAt time.Time `json:",omitempty"`
	Seed      int64     `json:",omitempty"`
	// Spread is the night's pre-stage spread, planned (0: none planned),
	// and Shape how its passes begin over it (contract.Prestage.Shape).
	Spread time.Duration `json:",omitempty"`
	Shape  []float64     `json:",omitempty"`
}

// ChooseNight samples the night's mailboxes from the estate (seeded, and
// idempotent per night: a retry, or a worker killed mid-way, chooses the
// same ones) and writes them as the night's roster. A night on a date to
// skip chooses nothing.
func (a *ProgrammeActivities) ChooseNight(ctx context.Context, in ChooseNightInput) (ChooseNightResult, error) {
	loc, err := time.LoadLocation(in.Zone)
	if err != nil {
		return ChooseNightResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("time zone %.40q: %v", in.Zone, err), contract.ErrTypeInvalidInput, nil)
	}
	if !in.Fired.IsZero() {
		// The night is Lead after the firing on the calendar of its zone:
		// whole days keep the time of day across a change of the clocks
		// (fourteen days of 24 hours after a firing at 20:00 GMT is 21:00
		// BST). Its wave ID and seed follow from it.
		in.MigrateAt = NightAt(in.Fired, in.Lead, loc)
		in.WaveID = contract.NightWaveID(in.Schedule, in.MigrateAt)
		in.Seed = contract.NightSeed(in.WaveID)
	}
	res, err := a.chooseNight(ctx, in, loc)
	res.WaveID, res.MigrateAt, res.Seed = in.WaveID, in.MigrateAt, in.Seed
	return res, err
}

// NightAt is the night a firing at fired chooses: Lead after it on the
// calendar of loc (whole days keep the time of day across a change of the
// clocks; what is left of Lead is added as time), in UTC to the second.
func NightAt(fired time.Time, lead time.Duration, loc *time.Location) time.Time {
	days := lead / (24 * time.Hour)
	return fired.In(loc).AddDate(0, 0, int(days)).Add(lead % (24 * time.Hour)).UTC().Truncate(time.Second)
}

func (a *ProgrammeActivities) chooseNight(ctx context.Context, in ChooseNightInput, loc *time.Location) (ChooseNightResult, error) {
	date := in.MigrateAt.In(loc).Format(time.DateOnly)
	if slices.Contains(in.Skip, date) {
		return ChooseNightResult{Date: date, Skipped: "the night of " + date + " is a date to skip"}, nil
	}
	// The night's date in its zone: the mailboxes reserved for it are
	// taken first.
	local := in.MigrateAt.In(loc)
	from := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc)
	until := from.AddDate(0, 0, 1)
	if in.Every > 0 {
		// Nights every so often (a rehearsal): each its own stretch,
		// from its T to the next night's.
		from, until = in.MigrateAt, in.MigrateAt.Add(in.Every)
	}
	// A roster under the night's wave ID that this night did not write
	// (a wave launched by hand under that ID) is refused before anything
	// is chosen: chosen first, the mailboxes would be stranded.
	if _, err := a.estate.Night(ctx, in.WaveID); errors.Is(err, estate.ErrUnknownNight) {
		if have, err := a.rosters.All(ctx, in.WaveID); err == nil && len(have) > 0 {
			return ChooseNightResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("wave %s has a roster this night did not choose", in.WaveID), contract.ErrTypeBadWaveFile, nil)
		}
	} else if err != nil {
		return ChooseNightResult{}, err
	}
	night, err := a.estate.Choose(ctx, estate.Choice{
		Night: in.WaveID, N: in.N, Seed: in.Seed, Orgs: in.Orgs,
		ReservedFrom: from, ReservedUntil: until,
	}, time.Now())
	if err != nil {
		return ChooseNightResult{}, err
	}
	if len(night.Mailboxes) == 0 {
		from := "a ready organisation"
		if len(in.Orgs) > 0 {
			from = "the pilot's organisations"
		}
		return ChooseNightResult{Date: date, Skipped: "the estate has no mailbox left to choose from " + from}, nil
	}
	rows := make([]wavefile.Mailbox, len(night.Mailboxes))
	for i, m := range night.Mailboxes {
		rows[i] = wavefile.Mailbox{Index: i, Key: m.Key, Address: m.Address, Org: m.Org, DisplayName: m.DisplayName}
	}
	if err := a.rosters.Write(ctx, in.WaveID, rows); errors.Is(err, os.ErrExist) {
		// Written by an attempt that did not live to say so: the same
		// night, so the same rows, unless someone wrote another.
		have, err := a.rosters.All(ctx, in.WaveID)
		if err != nil {
			return ChooseNightResult{}, err
		}
		if !sameRoster(have, rows) {
			return ChooseNightResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("wave %s has a roster that is not the night's choice", in.WaveID), contract.ErrTypeBadWaveFile, nil)
		}
	} else if err != nil {
		return ChooseNightResult{}, err
	}
	var before []plan.Mailbox
	if p := in.Prestage; p != nil && p.Spread <= 0 && p.TenantRate > 0 {
		if before, err = a.nightsBefore(ctx, in, time.Now()); err != nil {
			return ChooseNightResult{}, err
		}
	}
	spread, shape, err := nightSpread(night.Mailboxes, before, in)
	if err != nil {
		return ChooseNightResult{}, err
	}
	return ChooseNightResult{Chosen: len(rows), Date: date, Spread: spread, Shape: shape}, nil
}

// nightsBefore are the mailboxes still to be copied of the nights of the
// same schedule whose bulk passes are not due yet (T-Margin after now)
// and whose T is no later than the night's: their passes pre-stage into
// the same tenant, and the tenant's pool grants theirs first. They are
// planned from now at the earliest (what ran before is not known here:
// a mailbox pre-staged already is counted as still to copy). Nights chosen
// by hand (no schedule), or of another schedule, are not read.
func (a *ProgrammeActivities) nightsBefore(ctx context.Context, in ChooseNightInput, now time.Time) ([]plan.Mailbox, error) {
	if in.Schedule == "" || in.Prestage == nil {
		return nil, nil
	}
	nights, err := a.estate.Nights(ctx)
	if err != nil {
		return nil, err
	}
	var out []plan.Mailbox
	for _, n := range nights {
		t, ok := contract.NightMigrateAt(in.Schedule, n.Name)
		if !ok || n.Name == in.WaveID || n.InFlight == 0 || !t.Add(-in.Prestage.Margin).After(now) || t.After(in.MigrateAt) {
			continue
		}
		night, err := a.estate.Night(ctx, n.Name)
		if err != nil {
			return nil, err
		}
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, len(out)) // a night of 83,000 read
		}
		for _, m := range night.Mailboxes {
			if m.Outcome == "" {
				out = append(out, planned(m, t, maxTime(noticeOf(t, in.Lead), now)))
			}
		}
	}
	return out, nil
}

// assumedBytes is the size a night's plan gives a mailbox the estate has
// no size for: the estate's mean.
const assumedBytes = 1e9

// planned is an estate's mailbox to plan for the night at t.
func planned(m estate.Mailbox, t, notice time.Time) plan.Mailbox {
	b, est := m.SizeBytes, m.SizeBytes <= 0
	if est {
		b = assumedBytes
	}
	return plan.Mailbox{Key: m.Key, Bytes: b, Estimated: est, T: t, Notice: notice}
}

// noticeOf is when the users of the night at t are told.
func noticeOf(t time.Time, lead time.Duration) time.Time {
	if lead <= 0 {
		lead = contract.DefaultNoticeLead
	}
	return t.Add(-lead)
}

// nightSpread plans the night's bulk passes under the tenant's limit (or
// the pool's cap, if fewer), as package plan does for programme plan,
// after the passes of the nights before it (before, from nightsBefore),
// which keep the lanes their plan gives them; it returns how long before
// T-margin the first must begin, the wave's Prestage.Spread, and how the
// passes begin over it, its Shape. Zero when the night does not
// pre-stage, has a spread given, or no tenant limit.
func nightSpread(mailboxes []estate.Mailbox, before []plan.Mailbox, in ChooseNightInput) (time.Duration, []float64, error) {
	p := in.Prestage
	if p == nil || p.Spread > 0 || p.TenantRate <= 0 {
		return 0, nil, nil
	}
	notice := noticeOf(in.MigrateAt, in.Lead)
	ms := make([]plan.Mailbox, len(mailboxes))
	for i, m := range mailboxes {
		ms[i] = planned(m, in.MigrateAt, notice)
	}
	limits := plan.Limits{MailboxRate: p.MailboxRate, TenantRate: contract.PoolRate(*p), Efficiency: p.Efficiency, PassOverhead: p.PassOverhead}
	policy := plan.DefaultPolicy
	policy.StartDelay, policy.Margin, policy.IncrementalEvery = p.StartDelay, p.Margin, p.IncrementalEvery
	r, _, err := plan.PlanAfter(before, ms, limits, policy)
	switch {
	case err != nil:
		return 0, nil, temporal.NewNonRetryableApplicationError("planning the night's spread: "+err.Error(), contract.ErrTypeInvalidInput, err)
	case len(r.Nights) != 1:
		return 0, nil, fmt.Errorf("planning the night's spread: %d nights planned for one", len(r.Nights))
	}
	return r.Nights[0].Spread(p.Margin), r.Shape(r.Nights[0].T, p.Margin, contract.MaxPrestageShape), nil
}

// ReserveNightInput asks for a rescheduled mailbox to be kept for the
// night at At.
type ReserveNightInput struct {
	Key string
	At  time.Time
}

// ReserveNight keeps a mailbox moved to another night (the reschedule
// update) for that night in the estate: the night of its date takes it
// first. The estate's refusal (a mailbox not in it: one started by hand
// from a wave file, not a programme's night; a leaver; one migrated or
// needing support) is for good, and the mailbox is deferred all the same.
func (a *ProgrammeActivities) ReserveNight(ctx context.Context, in ReserveNightInput) error {
	err := a.estate.Reserve(ctx, in.Key, in.At)
	if errors.Is(err, estate.ErrUnknownMailbox) || estate.IsRefused(err) {
		return temporal.NewNonRetryableApplicationError(err.Error(), contract.ErrTypeInvalidMailbox, nil)
	}
	return err
}

func sameRoster(a, b []wavefile.Mailbox) bool {
	return slices.EqualFunc(a, b, func(x, y wavefile.Mailbox) bool { return x.Index == y.Index && x.Key == y.Key })
}

// RecordNightInput asks for a night's outcomes to be written back.
type RecordNightInput struct {
	WaveID        string
	SupportBudget float64
	MinSample     int
	Pilot         bool `json:",omitempty"` // a pilot's night: nobody is held for it
}

// RecordNightResult counts what was written back, and the organisations
// held for it. Unknown are the mailboxes whose outcome could not be read
// (their history gone past the namespace's retention, or still running
// under another wave): left as chosen, never put back in the pool, where
// a migrated one could be chosen and moved again.
type RecordNightResult struct {
	Migrated, NeedsSupport, Deferred, Unknown int
	Held                                      []string `json:",omitempty"`
}

// RecordNight reads how each of the night's mailboxes ended (its workflow's
// result) and writes it to the estate: a mailbox deferred or cancelled goes
// back to the pool; one recorded already (moved to another night) is left
// as it is. An organisation ready before the night whose share needing
// support on it passes the budget, with at least MinSample of its mailboxes
// ended, is held and its admin contact told (never on a pilot's night: a
// pilot is judged by org ready). Safe to retry: the estate takes the same
// outcome twice as once, and an organisation held already stays held.
func (a *ProgrammeActivities) RecordNight(ctx context.Context, in RecordNightInput) (RecordNightResult, error) {
	night, err := a.estate.Night(ctx, in.WaveID)
	if err != nil {
		return RecordNightResult{}, err
	}
	outcomes := make(map[string]estate.Outcome, len(night.Mailboxes))
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		sem     = make(chan struct{}, parallelStarts)
		first   error
		done    int
		unknown int
		orgOf   = map[string]string{}
		ended   = map[string]int{}
		needed  = map[string]int{}
	)
	for _, m := range night.Mailboxes {
		orgOf[m.Key] = m.Org
		if m.Outcome != "" {
			outcomes[m.Key] = m.Outcome // recorded already (a mailbox moved to another night)
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			o, err := a.outcome(ctx, m.Key, in.WaveID)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				first = cmpErr(first, err)
			case o == "":
				unknown++
			default:
				outcomes[m.Key] = o
			}
			done++
			if done%500 == 0 {
				activity.RecordHeartbeat(ctx, done)
			}
		})
	}
	wg.Wait()
	if first != nil {
		return RecordNightResult{}, first
	}
	if err := a.estate.Record(ctx, in.WaveID, outcomes); err != nil {
		return RecordNightResult{}, err
	}
	res := RecordNightResult{Unknown: unknown}
	if unknown > 0 {
		activity.GetLogger(ctx).Warn("mailboxes of the night whose outcome is unknown, left as chosen", "night", in.WaveID, "count", unknown)
	}
	for key, o := range outcomes {
		switch o {
		case estate.Migrated:
			res.Migrated++
		case estate.NeedsSupport:
			res.NeedsSupport++
			needed[orgOf[key]]++
		default:
			res.Deferred++
			continue
		}
		ended[orgOf[key]]++
	}
	if in.Pilot {
		return res, nil
	}
	held, err := a.holdOverBudget(ctx, in, ended, needed)
	res.Held = held
	return res, err
}

// outcome is how one mailbox of the night ended, as the estate keeps it;
// "" when it cannot be known.
func (a *ProgrammeActivities) outcome(ctx context.Context, key, waveID string) (estate.Outcome, error) {
	run, err := control.Describe(ctx, a.client, contract.MailboxWorkflowID(key))
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		// Never started, or its history is gone: which, nothing says.
		// Put back in the pool, a migrated mailbox would be moved again.
		return "", nil
	case err != nil:
		return "", err
	case run.Running && run.Wave == waveID:
		return "", fmt.Errorf("mailbox %s of wave %s is still running", key, waveID)
	case run.Running:
		return "", nil // being moved by another wave: that one's night records it
	case run.Result == nil:
		if run.Wave != waveID {
			return "", nil
		}
		return estate.NeedsSupport, nil // terminated, failed or timed out
	}
	// Its latest run ended, in this wave or another (then it was moved by
	// hand, or by another night, since): what it did stands.
	switch run.Result.Outcome {
	case contract.OutcomeMigrated:
		return estate.Migrated, nil
	case contract.OutcomeNeedsSupport:
		return estate.NeedsSupport, nil
	}
	return estate.Deferred, nil // cancelled, or deferred (its preflight, or moved to another night)
}

// holdOverBudget holds the organisations whose share needing support on the
// night passed the budget.
func (a *ProgrammeActivities) holdOverBudget(ctx context.Context, in RecordNightInput, ended, needed map[string]int) ([]string, error) {
	budget := in.SupportBudget
	if budget <= 0 {
		budget = contract.DefaultSupportBudget
	}
	minSample := in.MinSample
	if minSample <= 0 {
		minSample = 20
	}
	orgs, err := a.estate.Orgs(ctx)
	if err != nil {
		return nil, err
	}
	var held []string
	for _, o := range orgs {
		n := ended[o.Name]
		if n < minSample || float64(needed[o.Name]) <= budget*float64(n) || o.State != estate.Ready {
			continue
		}
		reason := fmt.Sprintf("%d of %d mailboxes needed support on night %s (%.1f %%), over the budget of %.1f %%",
			needed[o.Name], n, in.WaveID, 100*float64(needed[o.Name])/float64(n), 100*budget)
		// Told first, then held: a retry after a failure between the two
		// tells again (the notice is idempotent by organisation and
		// night), where the other order would hold it untold.
		if err := a.tellAdmin(ctx, o.Name, in.WaveID, reason); err != nil {
			return held, err
		}
		if err := a.estate.SetOrg(ctx, estate.Org{Name: o.Name, State: estate.Held, Reason: reason, By: "mailwave", Since: time.Now()}); err != nil {
			return held, err
		}
		held = append(held, o.Name)
		activity.GetLogger(ctx).Warn("organisation held: too many needing support", "org", o.Name, "reason", reason)
	}
	return held, nil
}

// tellAdmin sends the organisation's admin contact the notice that it was
// held on the night. The notice's key is the organisation's and the night's
// (no mailbox's), so a retry sends it once. An organisation without an
// admin contact is held all the same, the notice refused for good logged.
func (a *ProgrammeActivities) tellAdmin(ctx context.Context, org, night, reason string) error {
	sum := sha256.Sum256([]byte(org + "\x00" + night))
	key := "org-" + hex.EncodeToString(sum[:8])
	_, err := a.notifier.Send(ctx, port.Notice{
		Mailbox:   contract.MailboxRef{Key: key, Org: org},
		Kind:      contract.NoticeOrgHeld,
		MessageID: contract.NoticeMessageID(key, contract.NoticeOrgHeld),
		WaveID:    night,
		Failure:   &contract.Failure{Step: "programme", ErrorType: contract.ErrTypeOrgHeld, Reason: reason},
	})
	if _, permanent := port.IsPermanent(err); permanent {
		activity.GetLogger(ctx).Warn("the held organisation's admin could not be told", "org", org, "error", err)
		return nil
	}
	return err
}

// WaveEndedInput asks after a wave.
type WaveEndedInput struct{ WaveID string }

// WaveEndedResult says whether the wave has ended, and its result.
type WaveEndedResult struct {
	Ended  bool
	Result contract.WaveResult
}

// WaveEnded reads whether a wave has ended and, if it completed, its
// result (a wave that failed or was terminated has ended with none).
func (a *ProgrammeActivities) WaveEnded(ctx context.Context, in WaveEndedInput) (WaveEndedResult, error) {
	id := contract.WaveWorkflowID(in.WaveID)
	desc, err := a.client.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return WaveEndedResult{}, err
	}
	var res WaveEndedResult
	switch desc.GetWorkflowExecutionInfo().GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
		return res, nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		if err := a.client.GetWorkflow(ctx, id, "").Get(ctx, &res.Result); err != nil {
			return res, err
		}
	}
	res.Ended = true
	return res, nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

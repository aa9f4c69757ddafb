package contract

import (
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"
	"time"
)

// NightWorkflowName is the type of the workflow a programme's schedule
// starts for each night: it chooses the night's mailboxes from the estate,
// writes the night's roster, starts its wave, waits for it, and records how
// each mailbox's move ended.
const NightWorkflowName = "ProgrammeNight"

// ScheduleIDPrefix begins the ID of every programme schedule.
const ScheduleIDPrefix = "mailwave-programme-"

// ScheduleNameRule says what a programme schedule's name may be: it goes
// into schedule and wave IDs.
const ScheduleNameRule = "a schedule name is 1-32 letters, digits or '-', starting with a letter"

var scheduleNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,31}$`)

// ValidScheduleName reports whether name follows ScheduleNameRule.
func ValidScheduleName(name string) bool { return scheduleNamePattern.MatchString(name) }

// ScheduleID is the Temporal schedule of a programme schedule's name.
func ScheduleID(name string) string { return ScheduleIDPrefix + name }

// NightInput is what a programme schedule gives each night it starts. The
// schedule fires Lead before the night (at T-14 for a lead of 14 days): the
// firing's scheduled time plus Lead is the night's T.
type NightInput struct {
	Schedule string // the schedule's name
	Size     int    // mailboxes chosen a night
	// Lead is the notice lead (T-14), ReminderLead the reminder's (T-1).
	Lead         time.Duration
	ReminderLead time.Duration
	Cap          int     `json:",omitempty"` // the wave's mailboxes at once
	ErrorBudget  float64 `json:",omitempty"` // the wave pauses past this share needing support
	// Zone names the time zone the nights' dates are in (Europe/London);
	// Skip lists the dates (2006-01-02, in Zone) on which no night is
	// chosen: bank holidays. The schedule leaves their firings out too;
	// this is the second guard, for a date added after it was made.
	Zone string
	Skip []string `json:",omitempty"`
	// SupportBudget: an organisation whose share needing support on a
	// night passes it is held, and its admin contact told (0.012).
	SupportBudget float64 `json:",omitempty"`
	// MinSample: an organisation is held only once at least this many of
	// its mailboxes ended on the night (default 20).
	MinSample int `json:",omitempty"`
	// A pilot: the night's T given (not a schedule's firing plus Lead),
	// and its mailboxes chosen from these organisations only, whatever
	// their state.
	MigrateAt time.Time `json:",omitempty"`
	Orgs      []string  `json:",omitempty"`
	// Every is a rehearsal schedule's interval: nights every so often,
	// not one a date.
	Every time.Duration `json:",omitempty"`
	// Prestage, when set, pre-stages each night's wave (WaveInput.Prestage).
	Prestage *Prestage `json:",omitempty"`
}

// PilotSchedule is the schedule name of an organisation's pilot nights, if
// its name can go into an ID.
func PilotSchedule(org string) (string, error) {
	name := "pilot-" + org
	if !ValidScheduleName(name) {
		return "", fmt.Errorf("organisation %.40q: its name cannot go into a pilot's wave ID (%s)", org, ScheduleNameRule)
	}
	return name, nil
}

// Check refuses an input a night cannot run with.
func (in NightInput) Check() error {
	switch {
	case !ValidScheduleName(in.Schedule):
		return fmt.Errorf("schedule %.40q: %s", in.Schedule, ScheduleNameRule)
	case in.Size < 1 || in.Size > MaxWaveSize:
		return fmt.Errorf("size %d: a night takes 1 to %d mailboxes", in.Size, MaxWaveSize)
	case in.Lead <= 0 || in.ReminderLead <= 0 || in.ReminderLead >= in.Lead:
		return fmt.Errorf("lead %s, reminder %s: both more than zero, the reminder after the notice", in.Lead, in.ReminderLead)
	case in.MinSample < 0:
		return fmt.Errorf("hold min sample %d: not negative", in.MinSample)
	case in.SupportBudget < 0 || in.SupportBudget > 1:
		return fmt.Errorf("support budget %v: a share from 0 to 1", in.SupportBudget)
	}
	for _, d := range in.Skip {
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			return fmt.Errorf("skip %.20q: not a date (2006-01-02)", d)
		}
	}
	return nil
}

// DefaultSupportBudget is the share of a night's mailboxes of one
// organisation that may need support before it is held.
const DefaultSupportBudget = 0.012

// NightWaveID is the wave of a schedule's night at T: the schedule's name
// and T in UTC to the second, so that each firing's night has its own.
func NightWaveID(schedule string, t time.Time) string {
	return schedule + "-" + t.UTC().Format(nightWaveIDTime)
}

const nightWaveIDTime = "20060102T150405Z"

// NightMigrateAt is the T of the night of schedule whose wave ID is
// waveID (NightWaveID's inverse); false for a wave ID of another schedule,
// or none's.
func NightMigrateAt(schedule, waveID string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(waveID, schedule+"-")
	if !ok || schedule == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(nightWaveIDTime, rest)
	return t, err == nil
}

// NightSeed is the seed of a night's random sample: a hash of its wave ID,
// so the same night always chooses the same mailboxes from the same estate.
func NightSeed(waveID string) int64 {
	h := fnv.New64a()
	h.Write([]byte(waveID))
	return int64(h.Sum64() >> 1)
}

// NightResult is how a night went.
type NightResult struct {
	WaveID    string
	MigrateAt time.Time
	Seed      int64
	Chosen    int
	// Skipped says why no wave was started: a date to skip, an estate
	// with nothing left to choose, or the night's wave started already by
	// another run.
	Skipped string     `json:",omitempty"`
	Wave    WaveResult `json:",omitempty"`
	// Recorded: the outcomes written back to the estate.
	Migrated, NeedsSupport, Deferred int
	// Unknown: mailboxes whose outcome could not be read (their history
	// gone past the namespace's retention), left as chosen.
	Unknown int `json:",omitempty"`
	// Held are the organisations held for passing the support budget.
	Held []string `json:",omitempty"`
}

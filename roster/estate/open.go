package estate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"mailwave/contract"
	"mailwave/roster/rosterstore"
)

// Open opens the estate in the roster store spec names: a postgres:// URL,
// or a directory (the estate under <dir>/estate/).
func Open(ctx context.Context, spec string) (Store, error) {
	if rosterstore.IsPostgres(spec) {
		return OpenPostgres(ctx, spec)
	}
	return OpenDir(spec)
}

// NightRule says what a night's name may be: it names a file in the
// directory store, so it follows the wave IDs' rule (a date, or a pilot's
// wave ID, does).
const NightRule = "a night's name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"

func checkNight(name string) error {
	if !contract.ValidWaveID(name) {
		return refuse("night %.80q: %s", name, NightRule)
	}
	return nil
}

func checkChoice(c Choice) error {
	if err := checkNight(c.Night); err != nil {
		return err
	}
	if c.N < 1 {
		return refuse("night %s: %d mailboxes asked for; at least 1", c.Night, c.N)
	}
	return nil
}

// checkImport refuses an import the estate could not keep: no mailboxes
// (every one would become a leaver), a mailbox without key or organisation,
// a key twice. Errors name keys, never addresses.
func checkImport(mailboxes []Mailbox) error {
	if len(mailboxes) == 0 {
		return refuse("an import of no mailboxes would make every mailbox of the estate a leaver: refused")
	}
	seen := make(map[string]int, len(mailboxes))
	for i, m := range mailboxes {
		switch {
		case m.Key == "":
			return refuse("import: mailbox %d has no key", i+1)
		case m.Org == "":
			return refuse("import: mailbox %s has no organisation", m.Key)
		case m.SizeBytes < 0:
			return refuse("import: mailbox %s has a size of %d bytes", m.Key, m.SizeBytes)
		}
		if j, dup := seen[m.Key]; dup {
			return refuse("import: mailboxes %d and %d have the same key %s", j+1, i+1, m.Key)
		}
		seen[m.Key] = i
	}
	return nil
}

// changed reports whether an import's m changes the stored old: its
// address, organisation or name, or a size now known and different.
func changed(old, m Mailbox) bool {
	return old.Address != m.Address || old.Org != m.Org || old.DisplayName != m.DisplayName ||
		(m.SizeBytes != 0 && m.SizeBytes != old.SizeBytes)
}

// merged is old with what the import m says (a size not known keeps the
// one stored).
func merged(old, m Mailbox) Mailbox {
	old.Address, old.Org, old.DisplayName = m.Address, m.Org, m.DisplayName
	if m.SizeBytes != 0 {
		old.SizeBytes = m.SizeBytes
	}
	return old
}

// newOrgReason is the Reason of an organisation an import adds.
const newOrgReason = "new in an import"

// importer is who changes an organisation automatically.
const importer = "mailwave"

// sampleStream is the second PCG seed word ("estate" in ASCII): the seed
// alone decides the sample. Changing it changes every sample drawn.
const sampleStream = 0x657374617465

// sample chooses up to n of the pool's keys uniformly at random, in the
// order chosen: the pool sorted first (so that the choice depends on its
// keys and the seed, not on the order a store lists them), then a partial
// Fisher-Yates shuffle by a PCG seeded with seed. Every n-subset is
// equally likely. pool is sorted in place.
func sample(pool []string, n int, seed int64) []string {
	slices.Sort(pool)
	n = min(n, len(pool))
	rng := rand.New(rand.NewPCG(uint64(seed), sampleStream))
	for i := range n {
		j := i + rng.IntN(len(pool)-i)
		pool[i], pool[j] = pool[j], pool[i]
	}
	return slices.Clone(pool[:n])
}

func validOutcome(o Outcome) bool { return o == Migrated || o == NeedsSupport || o == Deferred }

// checkRecord says whether a mailbox recorded was on a night may be
// recorded now instead: once, then between migrated and needs_support
// only (support may mend one; a deferred one is back in the pool).
func checkRecord(night, key string, was, now Outcome) error {
	switch {
	case !validOutcome(now):
		return refuse("night %s, mailbox %s: %q is not an outcome (%s, %s or %s)", night, key, now, Migrated, NeedsSupport, Deferred)
	case was == "" || was == now:
		return nil
	case was != Deferred && now != Deferred:
		return nil
	}
	return refuse("night %s, mailbox %s: recorded %s already; it cannot become %s", night, key, was, now)
}

// checkOrg refuses a state the estate does not keep.
func checkOrg(o Org) error {
	switch {
	case !o.State.Valid():
		return refuse("organisation %s: %q is not a state (%s, %s or %s)", o.Name, o.State, Pilot, Ready, Held)
	case o.State == Held && o.Reason == "":
		return refuse("organisation %s: holding it needs a reason", o.Name)
	}
	return nil
}

// stamp is a time as the stores keep it: UTC, to the microsecond
// (PostgreSQL's precision).
func stamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// pilotOrgs is a Choice's Orgs as a night keeps them: sorted, once each.
func pilotOrgs(orgs []string) []string {
	if len(orgs) == 0 {
		return nil
	}
	out := slices.Clone(orgs)
	slices.Sort(out)
	return slices.Compact(out)
}

// IsRefused reports whether err is the estate's refusal by its own rules
// (not its storage's failure): asking again changes nothing.
func IsRefused(err error) bool {
	var r refused
	return errors.As(err, &r)
}

// refused is an error of the estate's own rules, not of its storage.
type refused struct{ error }

func (r refused) Unwrap() error { return r.error }

func refuse(format string, args ...any) error { return refused{fmt.Errorf(format, args...)} }

// reservedIn reports whether a reservation falls in the Choice's range.
func (c Choice) reservedIn(at time.Time) bool {
	return !at.IsZero() && !c.ReservedFrom.IsZero() && !at.Before(c.ReservedFrom) && at.Before(c.ReservedUntil)
}

// sampleable reports whether a pool's mailbox reserved for at (zero: not
// reserved) may be sampled at random on the Choice's night: not reserved,
// or reserved for a time before the night's range (a reservation whose
// night never took it, as a date skipped, has lapsed). A night without a
// range (a pilot) takes no reserved mailbox.
func (c Choice) sampleable(at time.Time) bool {
	return at.IsZero() || (!c.ReservedFrom.IsZero() && at.Before(c.ReservedFrom))
}

// checkReserve refuses a reservation the estate cannot keep, given where
// the mailbox stands: a leaver, one migrated or needing support.
func checkReserve(key string, left bool, outcome Outcome) error {
	switch {
	case left:
		return refuse("mailbox %.80q is a leaver: it is not moved", key)
	case outcome == Migrated:
		return refuse("mailbox %.80q is migrated already", key)
	case outcome == NeedsSupport:
		return refuse("mailbox %.80q needs support: it is not chosen again until support mends it", key)
	}
	return nil
}

// nightChosen refuses a reservation for a time whose night has been chosen
// already: it would never take the mailbox.
func nightChosen(key string, at time.Time, night string) error {
	return refuse("mailbox %.80q cannot be kept for %s: the night of that date (%s) has been chosen already", key, at.UTC().Format(time.RFC3339), night)
}

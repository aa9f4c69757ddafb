// Package estate keeps the programme's estate in the shared store: every
// mailbox to be moved (imported, re-imported as staff join and leave), its
// organisation's state (pilot, ready, held), and which night each mailbox
// was chosen for and how its move ended. The nightly sample chooses from it
// (Choose), the night's wave reports back to it (Record), and the operator
// reads it (Counts). It lives where the wave rosters do: a directory on one
// host, or PostgreSQL for a fleet.
//
// Nothing here names a person outside the store: a mailbox is known to
// Temporal by its identity key, an organisation by its configured name.
package estate

import (
	"context"
	"errors"
	"time"
)

// OrgState is where an organisation stands in the programme.
type OrgState string

const (
	// Pilot: not ready; only a pilot wave may take its mailboxes.
	Pilot OrgState = "pilot"
	// Ready: the nightly sample may choose its mailboxes.
	Ready OrgState = "ready"
	// Held: taken out of the sample, with why and by whom.
	Held OrgState = "held"
)

// Valid reports whether s is one of the states.
func (s OrgState) Valid() bool { return s == Pilot || s == Ready || s == Held }

// Org is an organisation of the estate. A new organisation starts as a
// pilot.
type Org struct {
	Name   string
	State  OrgState
	Reason string    // why it is in this state (required for held, and for ready when forced)
	By     string    // who put it there (an operator, or "mailwave" for an automatic hold)
	Since  time.Time // when
}

// Mailbox is one mailbox of the estate.
type Mailbox struct {
	Key         string // identity key of Address (identity.Keyer)
	Address     string
	Org         string
	DisplayName string
	SizeBytes   int64 // 0: not known yet
	// Left: not in the last import (a leaver); never chosen again, kept
	// for what was done with it.
	Left bool
	// Night is the night it was chosen for ("" while in the pool), and
	// Outcome how its move ended ("" while chosen and not ended).
	Night   string
	Outcome Outcome
	// ReservedFor is the night an operator moved it to (Reserve): zero
	// when none. The night whose date holds it takes it first; a night
	// of another date does not take it at random (but for a reservation
	// whose date has passed: it has lapsed).
	ReservedFor time.Time
}

// Outcome is how a chosen mailbox's night ended, as the estate keeps it.
type Outcome string

const (
	Migrated     Outcome = "migrated"
	NeedsSupport Outcome = "needs_support"
	// Deferred: not moved that night (its preflight failed, it was moved
	// to another night, or its wave was cancelled before it began); it
	// goes back to the pool and may be chosen again.
	Deferred Outcome = "deferred"
)

// ImportResult counts what an import changed.
type ImportResult struct {
	Added     int // new mailboxes
	Updated   int // an organisation, name or size changed
	Unchanged int
	Left      int // in the estate, not in the import: marked as leavers
	Returned  int // leavers that are back
	NewOrgs   []string
}

// Choice asks for a night's mailboxes.
type Choice struct {
	Night string // the night's name: its date ("2026-12-21"), or a pilot's wave ID
	N     int    // how many
	Seed  int64  // the random sample's seed (recorded with the night)
	// Orgs limits the sample to these organisations, whatever their
	// state (a pilot); empty: every ready organisation.
	Orgs []string
	// ReservedFrom and ReservedUntil are the night's date in its zone, as
	// a half-open range: the pool's mailboxes reserved in it are taken
	// first (all of them, whatever their organisation's state: an
	// operator moved each there), before the random sample. Zero (a
	// pilot): none is taken first.
	ReservedFrom, ReservedUntil time.Time
}

// Night is what was chosen for one night.
type Night struct {
	Name     string
	Seed     int64
	ChosenAt time.Time
	// Orgs is the Choice's Orgs: the organisations a pilot was limited
	// to; empty for a night of every ready organisation. An
	// organisation's pilot is the last night chosen with it in Orgs.
	Orgs []string
	// Mailboxes in the order chosen, each with this Night and its
	// Outcome on this night: Deferred for one deferred, though it is
	// back in the pool, or chosen for another night, since.
	Mailboxes []Mailbox
}

// NightCounts is one chosen night's progress.
type NightCounts struct {
	Name         string
	Seed         int64
	ChosenAt     time.Time
	Orgs         []string // as Night's
	Chosen       int      // how many were chosen
	Migrated     int
	NeedsSupport int
	Deferred     int
	InFlight     int // no outcome yet
}

// OrgCounts is one organisation's progress. Leavers are counted in
// Migrated, NeedsSupport and Chosen (what was done with them stays
// counted), never in Total or Remaining.
type OrgCounts struct {
	Org          string
	State        OrgState
	Total        int // not leavers
	Migrated     int
	NeedsSupport int
	Chosen       int // chosen for a night whose move has not ended
	Remaining    int // in the pool (not leavers)
	Deferred     int // times a mailbox of it was deferred
}

// Store is the estate.
type Store interface {
	// Import adds and updates mailboxes (by key), marks those missing from
	// the import as leavers, and adds new organisations as pilots. A
	// mailbox chosen or migrated keeps its night and outcome.
	Import(ctx context.Context, mailboxes []Mailbox, at time.Time) (ImportResult, error)
	// Orgs lists the organisations by name.
	Orgs(ctx context.Context) ([]Org, error)
	// SetOrg changes an organisation's state; ErrUnknownOrg if none.
	SetOrg(ctx context.Context, o Org) error
	// Choose samples a night's mailboxes at random (by the seed) from the
	// pool: not leavers, not chosen for any night, of ready organisations
	// (or of c.Orgs), not reserved for a later night; the pool's
	// mailboxes reserved in c's range come first, in key order. The
	// night's choice clears the reservation of every one it takes. It is
	// idempotent: once a night is chosen, choosing
	// it again returns the same night, whatever c asks. Fewer than N are
	// chosen when the pool is smaller.
	Choose(ctx context.Context, c Choice, at time.Time) (Night, error)
	// Night reads a chosen night; ErrUnknownNight if none.
	Night(ctx context.Context, name string) (Night, error)
	// Nights lists every chosen night with its counts, in the order
	// chosen.
	Nights(ctx context.Context) ([]NightCounts, error)
	// Record sets the outcomes of a night's mailboxes, by key: a deferred
	// mailbox goes back to the pool. Recording the same outcome again
	// changes nothing; migrated and needs_support may replace each other,
	// but an outcome never becomes or stops being deferred once recorded.
	// Every outcome is recorded, or (on an error) none.
	Record(ctx context.Context, night string, outcomes map[string]Outcome) error
	// Reserve keeps a mailbox for the night at `at`: the night whose date
	// holds it takes it first. It is refused for a key not in the estate
	// (ErrUnknownMailbox), a leaver, and one migrated or needing support;
	// one chosen for a night whose outcome is not recorded yet may be
	// reserved (an operator moving it off that night): it is recorded
	// Deferred on that night at once, back in the pool with its
	// reservation, so that the night of its new date can take it even if
	// it is chosen before the old night's outcomes are written. A second
	// Reserve replaces the first.
	Reserve(ctx context.Context, key string, at time.Time) error
	// Counts lists every organisation's progress, by name.
	Counts(ctx context.Context) ([]OrgCounts, error)
	Close()
}

var (
	ErrUnknownOrg   = errors.New("no such organisation in the estate")
	ErrUnknownNight = errors.New("no such night in the estate")
	// ErrUnknownMailbox: Reserve's key is not in the estate.
	ErrUnknownMailbox = errors.New("no such mailbox in the estate")
)

package testkit

import (
	"context"
	"path/filepath"
	"testing"

	"mailwave/identity"
	"mailwave/mail/sim"
	"mailwave/roster/wavefile"
)

// Estate is a simulated estate generated for a test.
type Estate struct {
	Dir string
	*sim.Estate
	Roster []sim.RosterEntry
}

// NewEstate generates an estate of n mailboxes from seed in a t.TempDir()
// and opens it.
func NewEstate(t testing.TB, seed int64, n int) *Estate {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "estate")
	if _, err := sim.Generate(dir, sim.GenerateOptions{Seed: seed, Mailboxes: n}); err != nil {
		t.Fatal(err)
	}
	est, err := sim.Open(dir, sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	roster, err := est.Roster()
	if err != nil {
		t.Fatal(err)
	}
	return &Estate{Dir: dir, Estate: est, Roster: roster}
}

// Addresses are the roster's addresses, in roster order.
func (e *Estate) Addresses() []string {
	out := make([]string, len(e.Roster))
	for i, r := range e.Roster {
		out[i] = r.Address
	}
	return out
}

// VerifyAll verifies every mailbox of the roster.
func (e *Estate) VerifyAll(t testing.TB, ctx context.Context) sim.Report {
	t.Helper()
	rep, err := e.Verify(ctx, e.Addresses())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// Mailboxes is the roster as a wave's mailboxes, keyed by keyer.
func (e *Estate) Mailboxes(t testing.TB, keyer *identity.Keyer) []wavefile.Mailbox {
	t.Helper()
	rows := make([]wavefile.Row, len(e.Roster))
	for i, r := range e.Roster {
		rows[i] = wavefile.Row{Line: i + 2, Address: r.Address, Org: r.Org, DisplayName: r.DisplayName}
	}
	mailboxes, err := wavefile.Build(rows, keyer)
	if err != nil {
		t.Fatal(err)
	}
	return mailboxes
}

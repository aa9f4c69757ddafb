package sim

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// File names inside an estate directory.
const (
	ManifestFile = "estate.json"
	RosterFile   = "roster.csv"
	stateDir     = "state"
)

// ManifestVersion is the estate format written by this package.
const ManifestVersion = 1

// DefaultDomain is the parent domain of every organisation's mail domain.
const DefaultDomain = "nhs.example"

// rosterHeader is the header row of roster.csv.
var rosterHeader = []string{"address", "org", "display_name"}

// Manifest describes an estate. Everything else about the source, down to
// each message's size, is derived from it.
type Manifest struct {
	Version   int    `json:"version"`
	Seed      int64  `json:"seed"`
	Mailboxes int    `json:"mailboxes"`
	Orgs      int    `json:"orgs"`
	Domain    string `json:"domain"`
}

// GenerateOptions sizes a new estate.
type GenerateOptions struct {
	Seed      int64
	Mailboxes int
	Orgs      int    // default max(1, Mailboxes/100)
	Domain    string // default DefaultDomain
}

// RosterEntry is one row of the roster. Index is the mailbox's position in
// the roster, from 0.
type RosterEntry struct {
	Index       int
	Address     string
	Org         string
	DisplayName string
}

// Generate creates an estate in dir: the manifest and the roster. It is
// idempotent for the same options and refuses to touch an estate made with
// different ones.
func Generate(dir string, o GenerateOptions) (*Manifest, error) {
	m, err := o.manifest()
	if err != nil {
		return nil, err
	}
	old, err := readManifest(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	case *old != m:
		return nil, fmt.Errorf("sim: an estate already exists in %s with seed %d, %d mailboxes, %d orgs, domain %s: refusing to replace it with seed %d, %d mailboxes, %d orgs, domain %s",
			dir, old.Seed, old.Mailboxes, old.Orgs, old.Domain, m.Seed, m.Mailboxes, m.Orgs, m.Domain)
	default:
		if _, err := os.Stat(filepath.Join(dir, RosterFile)); err == nil {
			return old, nil
		}
		// Same estate with its roster lost: write the roster again below.
	}
	if err := os.MkdirAll(filepath.Join(dir, stateDir), 0o755); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	// The roster goes first: a manifest on disk means a complete estate.
	err = writeFileAtomic(filepath.Join(dir, RosterFile), true, func(w io.Writer) error {
		return writeRoster(w, &m)
	})
	if err != nil {
		return nil, err
	}
	err = writeFileAtomic(filepath.Join(dir, ManifestFile), true, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(&m)
	})
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// manifest validates the options and fills in the defaults.
func (o GenerateOptions) manifest() (Manifest, error) {
	m := Manifest{Version: ManifestVersion, Seed: o.Seed, Mailboxes: o.Mailboxes, Orgs: o.Orgs, Domain: strings.ToLower(o.Domain)}
	if m.Mailboxes <= 0 {
		return m, fmt.Errorf("sim: the number of mailboxes must be positive, not %d", m.Mailboxes)
	}
	if m.Orgs == 0 {
		m.Orgs = max(1, m.Mailboxes/100)
	}
	if m.Orgs < 0 {
		return m, fmt.Errorf("sim: the number of orgs must be positive, not %d", m.Orgs)
	}
	if m.Domain == "" {
		m.Domain = DefaultDomain
	}
	if strings.ContainsAny(m.Domain, "@, \t\r\n\"") {
		return m, fmt.Errorf("sim: %q is not a domain", m.Domain)
	}
	return m, nil
}

// readManifest reads and checks dir's manifest.
func readManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("sim: bad manifest in %s: %w", dir, err)
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("sim: estate in %s has format version %d, this build reads %d", dir, m.Version, ManifestVersion)
	}
	if m.Mailboxes <= 0 || m.Orgs <= 0 || m.Domain == "" {
		return nil, fmt.Errorf("sim: bad manifest in %s", dir)
	}
	return &m, nil
}

// writeRoster writes the whole roster as CSV.
func writeRoster(w io.Writer, m *Manifest) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(rosterHeader); err != nil {
		return err
	}
	for i := range m.Mailboxes {
		e := m.entry(i)
		if err := cw.Write([]string{e.Address, e.Org, e.DisplayName}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ReadRoster parses a roster written by Generate.
func ReadRoster(r io.Reader) ([]RosterEntry, error) {
	cr := csv.NewReader(bufio.NewReader(r))
	cr.FieldsPerRecord = len(rosterHeader)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("sim: roster: %w", err)
	}
	if strings.Join(head, ",") != strings.Join(rosterHeader, ",") {
		return nil, fmt.Errorf("sim: roster: unexpected header %q", strings.Join(head, ","))
	}
	var out []RosterEntry
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("sim: roster: %w", err)
		}
		out = append(out, RosterEntry{Index: len(out), Address: rec[0], Org: rec[1], DisplayName: rec[2]})
	}
}

// entry derives mailbox i's roster entry. The zero-padded index makes every
// address unique whatever names are drawn.
func (m *Manifest) entry(i int) RosterEntry {
	first := firstNames[hash(uint64(m.Seed), uint64(i), saltFirst)%uint64(len(firstNames))]
	last := lastNames[hash(uint64(m.Seed), uint64(i), saltLast)%uint64(len(lastNames))]
	org := fmt.Sprintf("org%03d", hash(uint64(m.Seed), uint64(i), saltOrg)%uint64(m.Orgs))
	return RosterEntry{
		Index:       i,
		Address:     fmt.Sprintf("%s.%s.%06d@%s.%s", strings.ToLower(first), strings.ToLower(last), i, org, m.Domain),
		Org:         org,
		DisplayName: first + " " + last,
	}
}

// Name pools for display names and addresses. Read-only.
var (
	firstNames = [...]string{
		"Alex", "Sam", "Jordan", "Taylor", "Morgan", "Jamie", "Chris", "Robin",
		"Olivia", "Amelia", "Isla", "Ava", "Mia", "Grace", "Sophie", "Emily",
		"Priya", "Aisha", "Fatima", "Zara", "Hannah", "Chloe", "Lucy", "Ella",
		"Oliver", "George", "Harry", "Noah", "Jack", "Charlie", "Thomas", "James",
		"Mohammed", "Arjun", "Rohan", "Daniel", "Samuel", "Joseph", "David", "Owen",
		"Rhys", "Callum", "Eilidh", "Niamh", "Siobhan", "Ciaran", "Declan", "Megan",
	}
	lastNames = [...]string{
		"Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson",
		"Thomas", "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White",
		"Edwards", "Hughes", "Green", "Hall", "Lewis", "Harris", "Clarke", "Patel",
		"Jackson", "Wood", "Turner", "Martin", "Cooper", "Hill", "Ward", "Morris",
		"Moore", "Clark", "Lee", "King", "Baker", "Harrison", "Morgan", "Allen",
		"Khan", "Ahmed", "Singh", "Ali", "Begum", "Campbell", "Stewart", "Murphy",
	}
)

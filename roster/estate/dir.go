package estate

import (
	"bufio"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"mailwave/internal/atomicfile"
	"mailwave/internal/flock"
)

// The directory store's files, under <dir>/estate/. Each is replaced whole
// (internal/atomicfile), and every operation holds the estate's lock
// (internal/flock) from its first read to its last write, so two starters
// or workers on one host never interleave. What a night chose, and how each
// of its mailboxes ended, is in the night's file alone: a mailbox's night
// and its deferrals are read from the nights, so Choose and Record each
// replace one file and a crash leaves either all of it or none.
const (
	mailboxesFile = "mailboxes.csv" // key, address, org, display_name, size_bytes, left
	orgsFile      = "orgs.json"
	// reservationsFile: each reserved mailbox's key and the time of the
	// night it was moved to; a night's choice clears those it takes
	// (written after the night's file: a crash between leaves a
	// reservation on a chosen mailbox, which no night takes first while
	// it is chosen, and which lapses once its date has passed).
	reservationsFile = "reservations.json"
	nightsDir        = "nights" // <night>.json
	lockFile         = ".lock"
	// filePerm: the files hold addresses and names.
	filePerm fs.FileMode = 0o640
	dirPerm  fs.FileMode = 0o750
)

var mailboxesHeader = []string{"key", "address", "org", "display_name", "size_bytes", "left"}

// Dir is the estate in a directory on one host. It is fine for tens of
// thousands of mailboxes, and works (every operation reads the whole
// estate) for millions.
type Dir struct{ dir string }

// OpenDir opens the estate under <dir>/estate/ (made when first written).
func OpenDir(dir string) (*Dir, error) {
	if dir == "" {
		return nil, errors.New("estate: no directory")
	}
	return &Dir{dir: filepath.Join(dir, "estate")}, nil
}

// Close does nothing: no file stays open between operations.
func (d *Dir) Close() {}

// locked runs fn holding the estate's lock. A reader of an estate not
// yet written reads nothing, and makes nothing.
func (d *Dir) locked(ctx context.Context, fn func() error) error {
	return d.lockedFor(ctx, false, fn)
}

// writing is locked for fn that writes: the directories are made first
// (the roster store's as the roster store makes it, the estate's private
// to its owner and group).
func (d *Dir) writing(ctx context.Context, fn func() error) error {
	return d.lockedFor(ctx, true, fn)
}

func (d *Dir) lockedFor(ctx context.Context, write bool, fn func() error) error {
	if !write {
		if _, err := os.Stat(d.dir); errors.Is(err, fs.ErrNotExist) {
			return fn()
		}
	}
	if err := os.MkdirAll(filepath.Dir(d.dir), 0o755); err != nil {
		return fmt.Errorf("estate: %w", err)
	}
	for _, p := range []string{d.dir, filepath.Join(d.dir, nightsDir)} {
		if err := os.Mkdir(p, dirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("estate: %w", err)
		}
	}
	unlock, err := flock.Lock(ctx, filepath.Join(d.dir, lockFile), os.O_CREATE|os.O_RDWR, filePerm)
	if err != nil {
		return fmt.Errorf("estate: %w", err)
	}
	defer unlock()
	return fn()
}

// nightFile is a night's file: what was chosen, and each one's outcome.
type nightFile struct {
	Name     string    `json:"name"`
	Seed     int64     `json:"seed"`
	ChosenAt time.Time `json:"chosen_at"`
	Orgs     []string  `json:"orgs,omitempty"`
	// From and Until are the night's date (in its zone): a reservation
	// for a time in it comes too late once the night is chosen.
	From      time.Time    `json:"from,omitzero"`
	Until     time.Time    `json:"until,omitzero"`
	Mailboxes []nightEntry `json:"mailboxes"`
}

type nightEntry struct {
	Key     string  `json:"key"`
	Outcome Outcome `json:"outcome,omitempty"`
}

// orgEntry is an organisation in the organisations' file.
type orgEntry struct {
	Name   string    `json:"name"`
	State  OrgState  `json:"state"`
	Reason string    `json:"reason,omitempty"`
	By     string    `json:"by,omitempty"`
	Since  time.Time `json:"since"`
}

// readMailboxes reads the mailboxes (Night and Outcome not set), in the
// file's order.
func (d *Dir) readMailboxes() ([]Mailbox, error) {
	p := filepath.Join(d.dir, mailboxesFile)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("estate: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	r.FieldsPerRecord = len(mailboxesHeader)
	r.ReuseRecord = true
	head, err := r.Read()
	if err != nil || !slices.Equal(head, mailboxesHeader) {
		return nil, fmt.Errorf("estate: %s does not start with the header %s", p, strings.Join(mailboxesHeader, ","))
	}
	var out []Mailbox
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			// The error names a line, never what is on it.
			line, _ := r.FieldPos(0)
			return nil, fmt.Errorf("estate: %s is damaged at line %d", p, line)
		}
		size, err := strconv.ParseInt(rec[4], 10, 64)
		if err != nil {
			line, _ := r.FieldPos(0)
			return nil, fmt.Errorf("estate: %s line %d: the size is not a number", p, line)
		}
		out = append(out, Mailbox{Key: rec[0], Address: rec[1], Org: rec[2], DisplayName: rec[3], SizeBytes: size, Left: rec[5] == "1"})
	}
}

// reservation is a mailbox's entry in the reservations' file.
type reservation struct {
	Key string    `json:"key"`
	For time.Time `json:"for"`
}

// readReservations reads the reservations, by key.
func (d *Dir) readReservations() (map[string]time.Time, error) {
	b, err := os.ReadFile(filepath.Join(d.dir, reservationsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]time.Time{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("estate: %w", err)
	}
	var entries []reservation
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("estate: %s: %w", reservationsFile, err)
	}
	out := make(map[string]time.Time, len(entries))
	for _, e := range entries {
		out[e.Key] = e.For.UTC()
	}
	return out, nil
}

func (d *Dir) writeReservations(r map[string]time.Time) error {
	entries := make([]reservation, 0, len(r))
	for k, at := range r {
		entries = append(entries, reservation{Key: k, For: at})
	}
	slices.SortFunc(entries, func(a, b reservation) int { return strings.Compare(a.Key, b.Key) })
	return d.writeJSON(reservationsFile, entries)
}

// readReserved reads the mailboxes with their reservations.
func (d *Dir) readReserved() ([]Mailbox, map[string]time.Time, error) {
	mailboxes, err := d.readMailboxes()
	if err != nil {
		return nil, nil, err
	}
	res, err := d.readReservations()
	if err != nil {
		return nil, nil, err
	}
	for i := range mailboxes {
		mailboxes[i].ReservedFor = res[mailboxes[i].Key]
	}
	return mailboxes, res, nil
}

func (d *Dir) writeMailboxes(mailboxes []Mailbox) error {
	err := atomicfile.Write(filepath.Join(d.dir, mailboxesFile), filePerm, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		cw := csv.NewWriter(bw)
		_ = cw.Write(mailboxesHeader)
		for _, m := range mailboxes {
			left := ""
			if m.Left {
				left = "1"
			}
			_ = cw.Write([]string{m.Key, m.Address, m.Org, m.DisplayName, strconv.FormatInt(m.SizeBytes, 10), left})
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return fmt.Errorf("estate: writing its mailboxes: %w", err)
	}
	return nil
}

// readOrgs reads the organisations, by name.
func (d *Dir) readOrgs() ([]Org, error) {
	b, err := os.ReadFile(filepath.Join(d.dir, orgsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("estate: %w", err)
	}
	var entries []orgEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("estate: %s: %w", orgsFile, err)
	}
	out := make([]Org, len(entries))
	for i, e := range entries {
		out[i] = Org(e)
		out[i].Since = e.Since.UTC()
	}
	slices.SortFunc(out, func(a, b Org) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (d *Dir) writeOrgs(orgs []Org) error {
	entries := make([]orgEntry, len(orgs))
	for i, o := range orgs {
		entries[i] = orgEntry(o)
	}
	slices.SortFunc(entries, func(a, b orgEntry) int { return strings.Compare(a.Name, b.Name) })
	return d.writeJSON(orgsFile, entries)
}

func (d *Dir) writeJSON(name string, v any) error {
	err := atomicfile.Write(filepath.Join(d.dir, name), filePerm, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		if err := json.NewEncoder(bw).Encode(v); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return fmt.Errorf("estate: writing %s: %w", name, err)
	}
	return nil
}

func nightPath(name string) string { return filepath.Join(nightsDir, name+".json") }

// readNight reads a night's file; ErrUnknownNight if there is none.
func (d *Dir) readNight(name string) (nightFile, error) {
	var nf nightFile
	if err := checkNight(name); err != nil {
		return nf, err
	}
	b, err := os.ReadFile(filepath.Join(d.dir, nightPath(name)))
	if errors.Is(err, fs.ErrNotExist) {
		return nf, fmt.Errorf("night %s: %w", name, ErrUnknownNight)
	}
	if err != nil {
		return nf, fmt.Errorf("estate: %w", err)
	}
	if err := json.Unmarshal(b, &nf); err != nil {
		return nf, fmt.Errorf("estate: night %s: %w", name, err)
	}
	nf.ChosenAt = nf.ChosenAt.UTC()
	return nf, nil
}

// readNights reads every night's file, in the order chosen.
func (d *Dir) readNights() ([]nightFile, error) {
	names, err := filepath.Glob(filepath.Join(d.dir, nightsDir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("estate: %w", err)
	}
	var out []nightFile
	for _, p := range names {
		name := strings.TrimSuffix(filepath.Base(p), ".json")
		if checkNight(name) != nil {
			continue // not a night's file
		}
		nf, err := d.readNight(name)
		if err != nil {
			return nil, err
		}
		out = append(out, nf)
	}
	slices.SortFunc(out, func(a, b nightFile) int {
		return cmp.Or(a.ChosenAt.Compare(b.ChosenAt), strings.Compare(a.Name, b.Name))
	})
	return out, nil
}

// placement is where the nights put a mailbox.
type placement struct {
	night     string // the night it is chosen for ("" in the pool)
	outcome   Outcome
	deferrals int
}

// placements reads, from the nights, each chosen mailbox's night and
// outcome and how often it was deferred. A mailbox is on one night at most
// but for those it was deferred from.
func placements(nights []nightFile) map[string]placement {
	out := make(map[string]placement)
	for _, nf := range nights {
		for _, e := range nf.Mailboxes {
			p := out[e.Key]
			if e.Outcome == Deferred {
				p.deferrals++
			} else {
				p.night, p.outcome = nf.Name, e.Outcome
			}
			out[e.Key] = p
		}
	}
	return out
}

// Import adds and updates mailboxes and marks leavers (see Store).
func (d *Dir) Import(ctx context.Context, mailboxes []Mailbox, at time.Time) (ImportResult, error) {
	var res ImportResult
	if err := checkImport(mailboxes); err != nil {
		return res, err
	}
	err := d.writing(ctx, func() error {
		old, err := d.readMailboxes()
		if err != nil {
			return err
		}
		orgs, err := d.readOrgs()
		if err != nil {
			return err
		}
		incoming := make(map[string]int, len(mailboxes))
		for i, m := range mailboxes {
			incoming[m.Key] = i
		}
		out := make([]Mailbox, 0, max(len(old), len(mailboxes)))
		kept := make(map[string]bool, len(old))
		for _, o := range old {
			kept[o.Key] = true
			i, ok := incoming[o.Key]
			switch {
			case !ok:
				if !o.Left {
					res.Left++
					o.Left = true
				}
			case o.Left:
				res.Returned++
				o = merged(o, mailboxes[i])
				o.Left = false
			case changed(o, mailboxes[i]):
				res.Updated++
				o = merged(o, mailboxes[i])
			default:
				res.Unchanged++
			}
			out = append(out, o)
		}
		for _, m := range mailboxes {
			if !kept[m.Key] {
				res.Added++
				out = append(out, Mailbox{Key: m.Key, Address: m.Address, Org: m.Org, DisplayName: m.DisplayName, SizeBytes: m.SizeBytes})
			}
		}
		known := make(map[string]bool, len(orgs))
		for _, o := range orgs {
			known[o.Name] = true
		}
		for _, m := range mailboxes {
			if !known[m.Org] {
				known[m.Org] = true
				res.NewOrgs = append(res.NewOrgs, m.Org)
				orgs = append(orgs, Org{Name: m.Org, State: Pilot, Reason: newOrgReason, By: importer, Since: stamp(at)})
			}
		}
		slices.Sort(res.NewOrgs)
		// The organisations first: a crash between the two leaves an
		// organisation without mailboxes, never a mailbox without one.
		if len(res.NewOrgs) > 0 {
			if err := d.writeOrgs(orgs); err != nil {
				return err
			}
		}
		return d.writeMailboxes(out)
	})
	if err != nil {
		return ImportResult{}, err
	}
	return res, nil
}

// Orgs lists the organisations by name.
func (d *Dir) Orgs(ctx context.Context) ([]Org, error) {
	var out []Org
	err := d.locked(ctx, func() (err error) {
		out, err = d.readOrgs()
		return err
	})
	return out, err
}

// SetOrg changes an organisation's state.
func (d *Dir) SetOrg(ctx context.Context, o Org) error {
	if err := checkOrg(o); err != nil {
		return err
	}
	o.Since = stamp(o.Since)
	return d.writing(ctx, func() error {
		orgs, err := d.readOrgs()
		if err != nil {
			return err
		}
		i := slices.IndexFunc(orgs, func(x Org) bool { return x.Name == o.Name })
		if i < 0 {
			return fmt.Errorf("organisation %.80q: %w", o.Name, ErrUnknownOrg)
		}
		orgs[i] = o
		return d.writeOrgs(orgs)
	})
}

// Choose samples a night's mailboxes (see Store).
func (d *Dir) Choose(ctx context.Context, c Choice, at time.Time) (Night, error) {
	if err := checkChoice(c); err != nil {
		return Night{}, err
	}
	var night Night
	err := d.writing(ctx, func() error {
		mailboxes, reserved, err := d.readReserved()
		if err != nil {
			return err
		}
		if nf, err := d.readNight(c.Night); err == nil {
			night = nightOf(nf, mailboxes)
			return nil
		} else if !errors.Is(err, ErrUnknownNight) {
			return err
		}
		orgs, err := d.readOrgs()
		if err != nil {
			return err
		}
		nights, err := d.readNights()
		if err != nil {
			return err
		}
		state := make(map[string]OrgState, len(orgs))
		for _, o := range orgs {
			state[o.Name] = o.State
		}
		for _, o := range c.Orgs {
			if _, ok := state[o]; !ok {
				return fmt.Errorf("night %s: organisation %.80q: %w", c.Night, o, ErrUnknownOrg)
			}
		}
		placed := placements(nights)
		var first, pool []string
		for _, m := range mailboxes {
			if m.Left || placed[m.Key].night != "" {
				continue
			}
			if c.reservedIn(m.ReservedFor) {
				first = append(first, m.Key)
				continue
			}
			eligible := state[m.Org] == Ready
			if len(c.Orgs) > 0 {
				eligible = slices.Contains(c.Orgs, m.Org)
			}
			if eligible && c.sampleable(m.ReservedFor) {
				pool = append(pool, m.Key)
			}
		}
		slices.Sort(first)
		nf := nightFile{Name: c.Night, Seed: c.Seed, ChosenAt: stamp(at), Orgs: pilotOrgs(c.Orgs)}
		if !c.ReservedFrom.IsZero() {
			nf.From, nf.Until = stamp(c.ReservedFrom), stamp(c.ReservedUntil)
		}
		for _, k := range slices.Concat(first, sample(pool, max(c.N-len(first), 0), c.Seed)) {
			nf.Mailboxes = append(nf.Mailboxes, nightEntry{Key: k})
		}
		if err := d.writeJSON(nightPath(nf.Name), nf); err != nil {
			return err
		}
		cleared := 0
		for _, e := range nf.Mailboxes {
			if _, ok := reserved[e.Key]; ok {
				delete(reserved, e.Key)
				cleared++
			}
		}
		if cleared > 0 {
			if err := d.writeReservations(reserved); err != nil {
				return err
			}
			for i := range mailboxes {
				mailboxes[i].ReservedFor = reserved[mailboxes[i].Key]
			}
		}
		night = nightOf(nf, mailboxes)
		return nil
	})
	return night, err
}

// nightOf is a night's file with its mailboxes' details.
func nightOf(nf nightFile, mailboxes []Mailbox) Night {
	byKey := make(map[string]*Mailbox, len(mailboxes))
	for i := range mailboxes {
		byKey[mailboxes[i].Key] = &mailboxes[i]
	}
	n := Night{Name: nf.Name, Seed: nf.Seed, ChosenAt: nf.ChosenAt, Orgs: nf.Orgs, Mailboxes: make([]Mailbox, len(nf.Mailboxes))}
	for i, e := range nf.Mailboxes {
		m := Mailbox{Key: e.Key}
		if p := byKey[e.Key]; p != nil {
			m = *p
		}
		m.Night, m.Outcome = nf.Name, e.Outcome
		n.Mailboxes[i] = m
	}
	return n
}

// Night reads a chosen night.
func (d *Dir) Night(ctx context.Context, name string) (Night, error) {
	if err := checkNight(name); err != nil {
		return Night{}, err
	}
	var night Night
	err := d.locked(ctx, func() error {
		nf, err := d.readNight(name)
		if err != nil {
			return err
		}
		mailboxes, _, err := d.readReserved()
		if err != nil {
			return err
		}
		night = nightOf(nf, mailboxes)
		return nil
	})
	return night, err
}

// Nights lists the chosen nights with their counts.
func (d *Dir) Nights(ctx context.Context) ([]NightCounts, error) {
	var out []NightCounts
	err := d.locked(ctx, func() error {
		nights, err := d.readNights()
		if err != nil {
			return err
		}
		for _, nf := range nights {
			nc := NightCounts{Name: nf.Name, Seed: nf.Seed, ChosenAt: nf.ChosenAt, Orgs: nf.Orgs, Chosen: len(nf.Mailboxes)}
			for _, e := range nf.Mailboxes {
				switch e.Outcome {
				case Migrated:
					nc.Migrated++
				case NeedsSupport:
					nc.NeedsSupport++
				case Deferred:
					nc.Deferred++
				default:
					nc.InFlight++
				}
			}
			out = append(out, nc)
		}
		return nil
	})
	return out, err
}

// Record sets the outcomes of a night's mailboxes (see Store).
func (d *Dir) Record(ctx context.Context, night string, outcomes map[string]Outcome) error {
	if err := checkNight(night); err != nil {
		return err
	}
	return d.writing(ctx, func() error {
		nf, err := d.readNight(night)
		if err != nil {
			return err
		}
		at := make(map[string]int, len(nf.Mailboxes))
		for i, e := range nf.Mailboxes {
			at[e.Key] = i
		}
		keys := make([]string, 0, len(outcomes))
		for k := range outcomes {
			keys = append(keys, k)
		}
		slices.Sort(keys) // the first error is the same every time
		changes := 0
		for _, k := range keys {
			i, ok := at[k]
			if !ok {
				return refuse("night %s: mailbox %.80q was not chosen for it", night, k)
			}
			if err := checkRecord(night, k, nf.Mailboxes[i].Outcome, outcomes[k]); err != nil {
				return err
			}
			if nf.Mailboxes[i].Outcome != outcomes[k] {
				changes++
			}
		}
		if changes == 0 {
			return nil
		}
		for _, k := range keys {
			nf.Mailboxes[at[k]].Outcome = outcomes[k]
		}
		return d.writeJSON(nightPath(night), nf)
	})
}

// Reserve keeps a mailbox for a later night (see Store).
func (d *Dir) Reserve(ctx context.Context, key string, at time.Time) error {
	if key == "" || at.IsZero() {
		return refuse("a reservation needs a mailbox's key and a time")
	}
	return d.writing(ctx, func() error {
		mailboxes, reserved, err := d.readReserved()
		if err != nil {
			return err
		}
		i := slices.IndexFunc(mailboxes, func(m Mailbox) bool { return m.Key == key })
		if i < 0 {
			return fmt.Errorf("mailbox %.80q: %w", key, ErrUnknownMailbox)
		}
		nights, err := d.readNights()
		if err != nil {
			return err
		}
		p := placements(nights)[key]
		if err := checkReserve(key, mailboxes[i].Left, p.outcome); err != nil {
			return err
		}
		for _, nf := range nights {
			if !nf.From.IsZero() && !at.Before(nf.From) && at.Before(nf.Until) {
				return nightChosen(key, at, nf.Name)
			}
		}
		if !reserved[key].Equal(stamp(at)) {
			reserved[key] = stamp(at)
			if err := d.writeReservations(reserved); err != nil {
				return err
			}
		}
		if p.night == "" || p.outcome != "" {
			return nil
		}
		// Chosen for a night and not ended there: it leaves that night now
		// (deferred), so that the night of its new date can take it,
		// whenever the old one's outcomes are written. (Reserved first: a
		// crash between the two leaves it reserved and still on its night,
		// which a retry of the reservation mends.)
		nf, err := d.readNight(p.night)
		if err != nil {
			return err
		}
		for i := range nf.Mailboxes {
			if nf.Mailboxes[i].Key == key {
				nf.Mailboxes[i].Outcome = Deferred
			}
		}
		return d.writeJSON(nightPath(p.night), nf)
	})
}

// Counts lists every organisation's progress.
func (d *Dir) Counts(ctx context.Context) ([]OrgCounts, error) {
	var out []OrgCounts
	err := d.locked(ctx, func() error {
		mailboxes, err := d.readMailboxes()
		if err != nil {
			return err
		}
		orgs, err := d.readOrgs()
		if err != nil {
			return err
		}
		nights, err := d.readNights()
		if err != nil {
			return err
		}
		placed := placements(nights)
		byOrg := make(map[string]*OrgCounts, len(orgs))
		out = make([]OrgCounts, len(orgs))
		for i, o := range orgs {
			out[i] = OrgCounts{Org: o.Name, State: o.State}
			byOrg[o.Name] = &out[i]
		}
		for _, m := range mailboxes {
			c := byOrg[m.Org]
			if c == nil {
				continue // (never: an import writes its organisations first)
			}
			p := placed[m.Key]
			c.Deferred += p.deferrals
			if !m.Left {
				c.Total++
			}
			switch {
			case p.night == "" && !m.Left:
				c.Remaining++
			case p.night == "":
			case p.outcome == Migrated:
				c.Migrated++
			case p.outcome == NeedsSupport:
				c.NeedsSupport++
			default:
				c.Chosen++
			}
		}
		return nil
	})
	return out, err
}

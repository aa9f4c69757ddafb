package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"mailwave/roster/estate"
	"mailwave/roster/rosterstore"
	"mailwave/roster/wavefile"
	"mailwave/starter/printer"
)

// wavesDirFlag is the --waves-dir of the estate's commands: the estate
// lives in the roster store.
func wavesDirFlag(cmd *cobra.Command, spec *string) {
	cmd.Flags().StringVar(spec, "waves-dir", "data/waves",
		"the roster store holding the estate: a directory (the estate under <dir>/estate/) or a postgres:// URL")
}

func newProgrammeCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "programme", Short: "The programme's estate: every mailbox to be moved, and where it stands"}
	cmd.AddCommand(newProgrammeImportCmd(a), newProgrammeStatusCmd(a), newProgrammePlanCmd(a),
		newProgrammeScheduleCmd(a), newProgrammeListCmd(a),
		newProgrammeScheduleVerbCmd(a, "pause", "Pause a schedule: no night is chosen until it is resumed"),
		newProgrammeScheduleVerbCmd(a, "resume", "Resume a paused schedule (nights due while it was paused are not made up)"),
		newProgrammeScheduleVerbCmd(a, "trigger", "Choose a night now, for the schedule's lead from now"),
		newProgrammeScheduleVerbCmd(a, "delete", "Delete a schedule; the nights it chose go on"))
	return cmd
}

// estateWhere names the estate for people, never a URL (it may hold a
// password).
func estateWhere(spec string) string {
	if rosterstore.IsPostgres(spec) {
		return "the estate in PostgreSQL"
	}
	return "the estate in " + filepath.Join(spec, "estate")
}

func newProgrammeImportCmd(a *app) *cobra.Command {
	var spec string
	cmd := &cobra.Command{
		Use:   "import FILE.csv",
		Short: "Import every mailbox of the programme into the estate (again as staff join and leave)",
		Long: `Import every mailbox of the programme into the estate, in the roster store.
The CSV has a header row: "address" and "org" are required, "display_name"
and a size ("size_bytes", or "size_mb" in units of 1,000,000 bytes; an empty
cell when not known) optional. Every bad row is named by its line, and
nothing is imported until the file is clean.

Import again as staff join and leave: new mailboxes are added, changed ones
updated (a size left empty keeps the one known), those missing are marked
as leavers (never chosen again; what was done with them is kept), and
leavers listed again return. A new organisation starts as a pilot: no night
chooses from it until "starter org ready".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := a.importEstate(cmd.Context(), cmd.OutOrStdout(), args[0], spec, time.Now().UTC())
			return err
		},
	}
	wavesDirFlag(cmd, &spec)
	return cmd
}

// importEstate reads path, keys its mailboxes and imports them into the
// estate spec names, printing what changed.
func (a *app) importEstate(ctx context.Context, out io.Writer, path, spec string, now time.Time) (estate.ImportResult, error) {
	var res estate.ImportResult
	f, err := os.Open(path)
	if err != nil {
		return res, err
	}
	rows, err := wavefile.ParseEstate(f, filepath.Base(path))
	f.Close()
	if err != nil {
		return res, err
	}
	keyer, err := a.keyer()
	if err != nil {
		return res, err
	}
	mailboxes := make([]estate.Mailbox, len(rows))
	line := make(map[string]int, len(rows)) // key -> line
	for i, r := range rows {
		k, err := keyer.Key(r.Address)
		if err != nil {
			return res, fmt.Errorf("%s line %d: the address cannot be keyed", filepath.Base(path), r.Line)
		}
		if first, dup := line[k]; dup { // two addresses, one key: never seen, but never imported either
			return res, fmt.Errorf("%s lines %d and %d: two addresses with the same key %s", filepath.Base(path), first, r.Line, k)
		}
		line[k] = r.Line
		mailboxes[i] = estate.Mailbox{Key: k, Address: r.Address, Org: r.Org, DisplayName: r.DisplayName, SizeBytes: r.SizeBytes}
	}
	rosters, err := rosterstore.Open(ctx, spec)
	if err != nil {
		return res, err
	}
	defer rosters.Close()
	if err := rosters.CheckFingerprint(ctx, keyer.Fingerprint()); err != nil {
		return res, err
	}
	st, err := estate.Open(ctx, spec)
	if err != nil {
		return res, err
	}
	defer st.Close()
	if res, err = st.Import(ctx, mailboxes, now); err != nil {
		return res, err
	}
	fmt.Fprintf(out, "imported %s (%d mailboxes) into %s: %d added, %d updated, %d unchanged, %d leavers, %d returned\n",
		filepath.Base(path), len(mailboxes), estateWhere(spec), res.Added, res.Updated, res.Unchanged, res.Left, res.Returned)
	if len(res.NewOrgs) > 0 {
		fmt.Fprintf(out, "%d new organisations, pilots until \"starter org ready\": %s\n", len(res.NewOrgs), strings.Join(res.NewOrgs, ", "))
	}
	return res, nil
}

// orgProgress is one row of programme status: an organisation's, or the
// total.
type orgProgress struct {
	Org          string `json:"org"`
	State        string `json:"state"`
	Total        int    `json:"total"`
	Migrated     int    `json:"migrated"`
	NeedsSupport int    `json:"needs_support"`
	Chosen       int    `json:"chosen" text:"CHOSEN (IN FLIGHT)"`
	Remaining    int    `json:"remaining"`
	Deferred     int    `json:"deferred"`
}

// pace is the projection of programme status.
type pace struct {
	Nights    int     `json:"nights"`    // the nights the pace is the mean of (0: no pace yet)
	PerNight  float64 `json:"per_night"` // mean chosen a night over them
	LastNight string  `json:"last_night,omitempty"`
	Remaining int     `json:"remaining"`
	// Projected is the date of the last night at this pace, a night a
	// day from LastNight; "" when there is no pace yet.
	Projected string `json:"projected_last_night,omitempty"`
}

// programmeStatus is what programme status shows.
type programmeStatus struct {
	Orgs  []orgProgress `json:"orgs"`
	Total orgProgress   `json:"total"`
	Pace  pace          `json:"pace"`
}

// WriteText writes the table, its total row, and the projection.
func (s programmeStatus) WriteText(w io.Writer) error {
	if err := printer.WriteTable(w, append(s.Orgs, s.Total), ""); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, s.Pace.Text())
	return err
}

// Text says the projection.
func (p pace) Text() string {
	switch {
	case p.Nights == 0:
		return "projected last night at the current pace: no pace yet (no night chosen)"
	case p.Remaining == 0:
		return fmt.Sprintf("projected last night at the current pace: %s (nothing remains in the pool)", p.Projected)
	}
	return fmt.Sprintf("projected last night at the current pace: %s (%d remaining at %.0f a night, the mean of the last %d nights chosen to %s)",
		p.Projected, p.Remaining, p.PerNight, p.Nights, p.LastNight)
}

// paceNights is how many of the last nights chosen the pace is the mean
// of: a week's, weekends and weeknights.
const paceNights = 7

// projectPace projects the last night: the pool's remaining mailboxes
// over the mean chosen a night in the last paceNights nights that chose
// any (pilots left out: they are not the programme's pace), a night a day
// after the last of them (its name, when it is a date; else the day it was
// chosen).
func projectPace(nights []estate.NightCounts, remaining int) pace {
	p := pace{Remaining: remaining}
	var last []estate.NightCounts
	for _, n := range nights {
		if len(n.Orgs) == 0 && n.Chosen > 0 {
			last = append(last, n)
		}
	}
	if len(last) == 0 {
		return p
	}
	last = last[max(0, len(last)-paceNights):]
	sum := 0
	for _, n := range last {
		sum += n.Chosen
	}
	p.Nights, p.PerNight = len(last), float64(sum)/float64(len(last))
	end := last[len(last)-1]
	day, err := time.Parse(time.DateOnly, end.Name)
	if err != nil {
		day = end.ChosenAt.UTC().Truncate(24 * time.Hour)
	}
	p.LastNight = end.Name
	p.Projected = day.AddDate(0, 0, int(math.Ceil(float64(remaining)/p.PerNight))).Format(time.DateOnly)
	return p
}

type programmeStatusOptions struct {
	spec, csvPath string
	format        printer.Format
}

func newProgrammeStatusCmd(a *app) *cobra.Command {
	var o programmeStatusOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the programme's progress by organisation, and its projected last night",
		Long: `Show the programme's progress, by organisation and in total: its state, its
mailboxes (not leavers), how many were migrated, need support, are chosen
for a night not yet ended (in flight), remain in the pool, and how often one
was deferred (back to the pool). The projected last night is the remaining
over the mean chosen a night in the last 7 nights chosen (pilots aside),
a night a day after the last of them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.programmeStatus(cmd, o)
		},
	}
	wavesDirFlag(cmd, &o.spec)
	cmd.Flags().StringVar(&o.csvPath, "csv", "", "also write the table (a row per organisation, then the total) as CSV to this file ('-': standard output, instead of the table)")
	addOutputFlag(cmd, &o.format)
	return cmd
}

func (a *app) programmeStatus(cmd *cobra.Command, o programmeStatusOptions) error {
	ctx := cmd.Context()
	st, err := estate.Open(ctx, o.spec)
	if err != nil {
		return err
	}
	defer st.Close()
	counts, err := st.Counts(ctx)
	if err != nil {
		return err
	}
	nights, err := st.Nights(ctx)
	if err != nil {
		return err
	}
	s := programmeStatus{Orgs: []orgProgress{}, Total: orgProgress{Org: "TOTAL"}}
	for _, c := range counts {
		row := orgProgress{Org: c.Org, State: string(c.State), Total: c.Total, Migrated: c.Migrated, NeedsSupport: c.NeedsSupport,
			Chosen: c.Chosen, Remaining: c.Remaining, Deferred: c.Deferred}
		s.Orgs = append(s.Orgs, row)
		s.Total.Total += c.Total
		s.Total.Migrated += c.Migrated
		s.Total.NeedsSupport += c.NeedsSupport
		s.Total.Chosen += c.Chosen
		s.Total.Remaining += c.Remaining
		s.Total.Deferred += c.Deferred
	}
	s.Pace = projectPace(nights, s.Total.Remaining)
	if o.csvPath != "" {
		if err := writeTableCSV(cmd.OutOrStdout(), o.csvPath, append(s.Orgs, s.Total), func(r orgProgress) []string {
			return []string{r.Org, r.State, strconv.Itoa(r.Total), strconv.Itoa(r.Migrated), strconv.Itoa(r.NeedsSupport),
				strconv.Itoa(r.Chosen), strconv.Itoa(r.Remaining), strconv.Itoa(r.Deferred)}
		}); err != nil || o.csvPath == "-" {
			return err
		}
	}
	p := printerFor(cmd, o.format)
	if len(counts) == 0 && p.IsText() {
		fmt.Fprintf(p.Out, "%s is empty: \"starter programme import FILE.csv\" fills it\n", estateWhere(o.spec))
		return nil
	}
	return p.Object(s)
}

// writeTableCSV writes rows as CSV, under their json names, to path ('-':
// stdout).
func writeTableCSV[R any](stdout io.Writer, path string, rows []R, cells func(R) []string) error {
	w := stdout
	var f *os.File
	if path != "-" {
		var err error
		if f, err = os.Create(path); err != nil {
			return fmt.Errorf("--csv: %w", err)
		}
		w = f
	}
	cw := csv.NewWriter(w)
	var zero R
	_ = cw.Write(printer.Columns(zero))
	for _, r := range rows {
		_ = cw.Write(cells(r))
	}
	cw.Flush()
	err := cw.Error()
	if f != nil {
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		return fmt.Errorf("--csv %s: %w", path, err)
	}
	return nil
}

// Package wavefile reads the operator's CSV of mailboxes for a wave, picks
// samples from a roster, and writes and serves the wave's mailbox file: the
// validated, keyed list of mailboxes that the workers read by index.
package wavefile

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"mailwave/identity"
)

// Input column names, as they appear (case-insensitively) in the header.
const (
	colAddress     = "address"
	colOrg         = "org"
	colDisplayName = "display_name"
	// The estate's (ParseEstate's) size columns: one or the other.
	colSizeBytes = "size_bytes"
	colSizeMB    = "size_mb"
)

// maxListedProblems is how many problems ParseError.Error lists in full.
const maxListedProblems = 20

// Limits on an operator's input: a roster of the whole programme (2.1
// million mailboxes) fits well within them; anything beyond is refused
// rather than read.
const (
	MaxInputBytes     = 1 << 30
	MaxOrgBytes       = 64
	MaxDisplayNameLen = 256
)

var utf8BOM = []byte("\ufeff")

// Row is one mailbox of an input CSV.
type Row struct {
	Line        int    // 1-based line in the input file; the header is line 1
	Address     string // normalised (lower case)
	Org         string
	DisplayName string
	SizeBytes   int64 // ParseEstate's size column; 0: not known (Parse leaves it 0)
}

// Problem is one thing wrong with an input file. Line 0 means the file as a
// whole.
type Problem struct {
	Line int
	Msg  string
}

// ParseError is every problem found in an input file, in file order.
type ParseError struct {
	Name     string // the file's name, as given to Parse
	Problems []Problem
}

func (e *ParseError) Error() string {
	var b strings.Builder
	if len(e.Problems) > 1 {
		fmt.Fprintf(&b, "%s has %d problems:", e.Name, len(e.Problems))
	}
	for i, p := range e.Problems {
		if i == maxListedProblems {
			fmt.Fprintf(&b, "\nand %d more", len(e.Problems)-maxListedProblems)
			break
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		if p.Line > 0 {
			fmt.Fprintf(&b, "%s line %d: %s", e.Name, p.Line, p.Msg)
		} else {
			fmt.Fprintf(&b, "%s %s", e.Name, p.Msg)
		}
	}
	return b.String()
}

// Parse reads an operator's CSV of mailboxes. The first line is a header
// naming the columns: address (required), org and display_name (optional), in
// any order and any case. It checks the whole file and returns every problem
// at once as a *ParseError, so that a launch is refused before anything
// starts; name is the file's name in those messages. Values are trimmed,
// addresses normalised, blank lines skipped and a leading UTF-8 BOM ignored.
// A CSV syntax error (such as a stray quote) ends the parse at that line, as
// what follows it cannot be read reliably. Errors reading r are returned as
// they are.
func Parse(r io.Reader, name string) ([]Row, error) {
	return parse(r, &parser{name: name, seen: make(map[string]int)})
}

// ParseEstate reads the programme's list of every mailbox (starter
// programme import) as Parse reads a wave's, with these differences: the
// org column is required and no row may leave it empty (every mailbox of
// the estate belongs to an organisation); an optional size_bytes or
// size_mb column (not both; 1 MB = 1,000,000 bytes, decimals allowed)
// gives each mailbox's size, an empty cell saying it is not known; and no
// problem names an address (the line does), since the estate's problems
// may be read far from the file.
func ParseEstate(r io.Reader, name string) ([]Row, error) {
	return parse(r, &parser{name: name, seen: make(map[string]int), estate: true})
}

func parse(r io.Reader, p *parser) ([]Row, error) {
	name := p.name
	br := bufio.NewReader(&lineCap{r: bufio.NewReader(io.LimitReader(r, MaxInputBytes+1)), max: MaxLineBytes})
	if head, _ := br.Peek(len(utf8BOM)); bytes.Equal(head, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1 // checked per line below, so that each bad line is reported
	cr.ReuseRecord = true

	header, err := cr.Read()
	switch {
	case errors.Is(err, io.EOF):
		return nil, p.fail(0, "is empty")
	case err != nil:
		if !p.syntaxError(err) {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return nil, p.err()
	}
	if !p.readHeader(header) {
		return nil, p.err()
	}
	for {
		record, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				line, _ := cr.FieldPos(0)
				return nil, p.fail(line+1, "a line is longer than %d bytes: not a mailbox list", MaxLineBytes)
			}
			if !p.syntaxError(err) {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			break
		}
		if off := cr.InputOffset(); off > MaxInputBytes {
			return nil, p.fail(0, "is larger than %d bytes: not a mailbox list", MaxInputBytes)
		}
		line, _ := cr.FieldPos(0)
		p.readRow(line, record)
	}
	if len(p.rows) == 0 && len(p.problems) == 0 {
		p.add(0, "has no mailboxes (only a header)")
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return p.rows, nil
}

// parser holds the state of one Parse.
type parser struct {
	name     string
	problems []Problem
	rows     []Row

	// Column positions in the input; -1 when a column is absent.
	nFields, address, org, displayName int
	seen                               map[string]int // normalised address -> line

	// estate: ParseEstate's rules; size is its size column (-1 when
	// absent), in MB when sizeMB.
	estate bool
	size   int
	sizeMB bool
}

func (p *parser) add(line int, format string, args ...any) {
	p.problems = append(p.problems, Problem{Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) fail(line int, format string, args ...any) error {
	p.add(line, format, args...)
	return p.err()
}

// err returns the problems found so far as a *ParseError, or nil.
func (p *parser) err() error {
	if len(p.problems) == 0 {
		return nil
	}
	return &ParseError{Name: p.name, Problems: p.problems}
}

// syntaxError records err as a problem if it is a CSV syntax error.
func (p *parser) syntaxError(err error) bool {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return false
	}
	if pe.StartLine != pe.Line {
		// An unterminated quoted field runs on to the end of the file: the
		// line where the record starts is the one to fix.
		p.add(pe.StartLine, "CSV syntax error: %v (reading on to line %d); nothing after this was checked", pe.Err, pe.Line)
	} else {
		p.add(pe.Line, "CSV syntax error at column %d: %v; nothing after this was checked", pe.Column, pe.Err)
	}
	return true
}

// readHeader finds the columns, reporting whether the rows can be read.
func (p *parser) readHeader(header []string) bool {
	p.nFields = len(header)
	p.address, p.org, p.displayName, p.size = -1, -1, -1, -1
	var unknown []string
	for i, h := range header {
		h = strings.TrimSpace(h)
		var col *int
		switch lower := strings.ToLower(h); {
		case lower == colAddress:
			col = &p.address
		case lower == colOrg:
			col = &p.org
		case lower == colDisplayName:
			col = &p.displayName
		case p.estate && (lower == colSizeBytes || lower == colSizeMB):
			if p.size >= 0 {
				p.add(1, "the header names both %q and %q: give the size once", colSizeBytes, colSizeMB)
			}
			p.size, p.sizeMB = i, lower == colSizeMB
			continue
		default:
			unknown = append(unknown, strconv.Quote(h))
			continue
		}
		if *col >= 0 {
			p.add(1, "the header names column %q twice", h)
		}
		*col = i
	}
	switch {
	case p.address < 0 && slices.ContainsFunc(header, func(h string) bool { return strings.Contains(h, "@") }):
		// A mailbox where the header should be: say that, not that its
		// values are unknown columns.
		p.add(1, "has no header: the first line must name the columns (%s, and optionally %s and %s)",
			colAddress, colOrg, colDisplayName)
		return false
	case p.address < 0:
		p.add(1, "the header has no %q column", colAddress)
	}
	if p.estate && p.address >= 0 && p.org < 0 {
		p.add(1, "the header has no %q column: every mailbox of the estate belongs to an organisation", colOrg)
	}
	switch {
	case len(unknown) > 0 && p.estate:
		p.add(1, "the header has unknown column(s) %s; the columns are %s and %s (required), %s, and %s or %s",
			strings.Join(unknown, ", "), colAddress, colOrg, colDisplayName, colSizeBytes, colSizeMB)
	case len(unknown) > 0:
		p.add(1, "the header has unknown column(s) %s; the columns are %s (required), %s and %s",
			strings.Join(unknown, ", "), colAddress, colOrg, colDisplayName)
	}
	return len(p.problems) == 0
}

// readRow checks one record and keeps it as a Row if it is sound.
func (p *parser) readRow(line int, record []string) {
	if len(record) != p.nFields {
		p.add(line, "has %d fields; the header has %d", len(record), p.nFields)
		return
	}
	for i, f := range record {
		if strings.ContainsFunc(f, isControl) {
			p.add(line, "field %d holds a control character (a line break, tab or other non-printing character)", i+1)
			return
		}
	}
	if p.org >= 0 && len(field(record, p.org)) > MaxOrgBytes {
		p.add(line, "the org is longer than %d bytes", MaxOrgBytes)
		return
	}
	if p.org >= 0 && strings.Contains(field(record, p.org), "@") {
		// The org is shown in plain text (a search attribute, metrics,
		// logs): an address in it, a column put in the wrong place, would
		// leak.
		p.add(line, "the org holds an @: it is shown in plain text and must name an organisation, never a person's address")
		return
	}
	if p.displayName >= 0 && len(field(record, p.displayName)) > MaxDisplayNameLen {
		p.add(line, "the display name is longer than %d bytes", MaxDisplayNameLen)
		return
	}
	if p.estate && field(record, p.org) == "" {
		p.add(line, "the org is empty: every mailbox of the estate belongs to an organisation")
		return
	}
	var size int64
	if p.size >= 0 {
		var ok bool
		if size, ok = parseSize(field(record, p.size), p.sizeMB); !ok {
			unit := colSizeBytes + " is a whole number of bytes"
			if p.sizeMB {
				unit = colSizeMB + " is a number of megabytes"
			}
			p.add(line, "the size is not a size: %s, 0 or more, or empty when not known", unit)
			return
		}
	}
	raw := strings.TrimSpace(record[p.address])
	if raw == "" {
		p.add(line, "the address is empty")
		return
	}
	addr, err := identity.NormalizeAddress(raw)
	switch {
	case err != nil && p.estate:
		p.add(line, "the address is not a bare email address (give local@domain only)")
		return
	case err != nil:
		p.add(line, "%v", err)
		return
	}
	if first, dup := p.seen[addr]; dup {
		if p.estate {
			p.add(line, "the address is a duplicate of line %d", first)
		} else {
			p.add(line, "%s is a duplicate of line %d", addr, first)
		}
		return
	}
	p.seen[addr] = line
	p.rows = append(p.rows, Row{
		Line:        line,
		Address:     addr,
		Org:         field(record, p.org),
		DisplayName: field(record, p.displayName),
		SizeBytes:   size,
	})
}

// maxSizeBytes bounds a mailbox's size (1 PB): beyond it, a size is a
// mistake.
const maxSizeBytes = 1e15

// parseSize reads a size cell: bytes, or megabytes when mb; empty is 0
// (not known).
func parseSize(s string, mb bool) (int64, bool) {
	if s == "" {
		return 0, true
	}
	if !mb {
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil && n >= 0 && n <= maxSizeBytes
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= 0 && f*1e6 <= maxSizeBytes) { // also refuses NaN
		return 0, false
	}
	return int64(math.Round(f * 1e6)), true
}

// field returns the trimmed value of column i, or "" if the column is absent.
func field(record []string, i int) string {
	if i < 0 {
		return ""
	}
	return strings.TrimSpace(record[i])
}

// isControl is a character no mailbox list field may hold: C0 controls
// (line breaks and tabs among them), DEL and C1 controls.
func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }

package config

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// loader walks the YAML node tree itself rather than decoding into structs:
// that way every problem can carry a line and a key path, and the walk can
// carry on past a problem to find the rest.
type loader struct {
	file  string // as named in messages
	dir   string // absolute directory that relative paths resolve against
	probs Problems
	// merged counts what merge keys have brought in so far: mappings and
	// their entries. Anchors merged into anchors merged into anchors grow
	// exponentially with the document (a "billion laughs"); past
	// maxMerged the walk refuses the rest.
	merged   int
	overflow *Problem // set once maxMerged is passed: then the only problem
}

// Bounds on merge keys (<<: *anchor). A real configuration merges a few
// shared blocks into each organisation: tens of entries per organisation.
const (
	maxMerged     = 100000 // mappings and entries brought in by merges, in the whole file
	maxMergeDepth = 10     // merges within merged mappings
)

func (l *loader) add(line int, path, format string, args ...any) {
	l.probs = append(l.probs, Problem{File: l.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// resolvePath makes a relative path relative to the config file's directory,
// so that the file means the same whatever the worker's working directory.
func (l *loader) resolvePath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.dir, p)
}

func deref(n *yaml.Node) *yaml.Node {
	// Bounded, as a defence against a pathological alias chain.
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "something else"
}

type entry struct{ key, val *yaml.Node }

// section is one YAML mapping opened for reading, its keys checked against
// the ones it may have.
type section struct {
	l    *loader
	path string
	line int // where the section is introduced: used for missing keys
	vals map[string]entry
	bad  bool // not a mapping; already reported, so missing keys are not
}

func (l *loader) section(n *yaml.Node, path string, line int, known []string) *section {
	s := &section{l: l, path: path, line: line, vals: map[string]entry{}}
	n = deref(n)
	if isNull(n) {
		return s
	}
	if n.Kind != yaml.MappingNode {
		l.add(line, path, "expected a mapping, got %s", describe(n))
		s.bad = true
		return s
	}
	s.collect(n, known, false, 0)
	return s
}

// collect reads a mapping's keys into s. Merge keys (<<: *anchor) are
// honoured: explicit keys win over merged ones, earlier merges over later.
// What merges bring in is bounded by maxMerged and maxMergeDepth.
func (s *section) collect(n *yaml.Node, known []string, merged bool, depth int) {
	if s.l.overflow != nil {
		// What is left of the walk would only report what the merges
		// were to bring in.
		return
	}
	if merged {
		s.l.merged += 1 + len(n.Content)/2
		if s.l.merged > maxMerged {
			s.l.overflow = &Problem{File: s.l.file, Line: n.Line, Path: s.path, Msg: fmt.Sprintf(
				"merge keys (<<) bring in more than %d entries in all: refused (anchors merged into anchors grow without bound); "+
					"write the shared settings out, or merge fewer times", maxMerged)}
			return
		}
	}
	if depth > maxMergeDepth {
		s.l.add(n.Line, s.path, "merge keys nested too deeply (more than %d merges within merges)", maxMergeDepth)
		return
	}
	var merges []*yaml.Node
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			s.l.add(k.Line, s.path, "keys must be plain strings, not %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		name := k.Value
		if line, dup := first[name]; dup {
			s.l.add(k.Line, s.at(name), "given twice (first on line %d)", line)
			continue
		}
		first[name] = k.Line
		if !slices.Contains(known, name) {
			s.l.add(k.Line, s.at(name), "unknown key (expected one of %s)", strings.Join(known, ", "))
			continue
		}
		if _, set := s.vals[name]; merged && set {
			continue
		}
		s.vals[name] = entry{k, v}
	}
	for _, m := range merges {
		m = deref(m)
		switch m.Kind {
		case yaml.MappingNode:
			s.collect(m, known, true, depth+1)
		case yaml.SequenceNode:
			for _, item := range m.Content {
				if item = deref(item); item.Kind == yaml.MappingNode {
					s.collect(item, known, true, depth+1)
				} else {
					s.l.add(item.Line, s.path+".<<", "expected a mapping to merge, got %s", describe(item))
				}
			}
		default:
			s.l.add(m.Line, s.path+".<<", "expected a mapping to merge, got %s", describe(m))
		}
	}
}

func (s *section) at(k string) string {
	if s.path == "" {
		return k
	}
	return s.path + "." + k
}

// get returns a key's entry with its value dereferenced; a null value counts
// as absent.
func (s *section) get(k string) (entry, bool) {
	e, ok := s.vals[k]
	if !ok {
		return e, false
	}
	e.val = deref(e.val)
	if isNull(e.val) {
		return e, false
	}
	return e, true
}

func (s *section) has(k string) bool {
	_, ok := s.get(k)
	return ok
}

func (s *section) lineOf(k string) int {
	if e, ok := s.vals[k]; ok {
		return e.key.Line
	}
	return s.line
}

// problem reports a problem with key k, at its line if given, else at the
// section's.
func (s *section) problem(k, format string, args ...any) {
	s.l.add(s.lineOf(k), s.at(k), format, args...)
}

func (s *section) missing(k, msg string) {
	if !s.bad {
		s.l.add(s.line, s.at(k), "%s", msg)
	}
}

// str returns a scalar's text; ok is false when absent or not a scalar (the
// latter reported).
func (s *section) str(k string) (string, bool) {
	e, ok := s.get(k)
	if !ok {
		return "", false
	}
	if e.val.Kind != yaml.ScalarNode {
		s.problem(k, "expected a string, got %s", describe(e.val))
		return "", false
	}
	return e.val.Value, true
}

// need returns a required string, reporting it when absent or empty.
func (s *section) need(k string) string {
	v, ok := s.str(k)
	switch {
	case !ok && !s.has(k):
		s.missing(k, "required")
	case ok && strings.TrimSpace(v) == "":
		s.problem(k, "must not be empty")
	}
	return v
}

// enum returns k's value if it is one of allowed, def when absent, and ""
// when invalid (so that checks depending on it are skipped).
func (s *section) enum(k, def string, allowed ...string) string {
	v, ok := s.str(k)
	if !ok {
		if s.has(k) {
			return ""
		}
		if def == "" {
			s.missing(k, "required (one of "+strings.Join(allowed, ", ")+")")
		}
		return def
	}
	if !slices.Contains(allowed, v) {
		s.problem(k, "%q is not one of %s", v, strings.Join(allowed, ", "))
		return ""
	}
	return v
}

// integer returns a whole number; ok is false when absent or invalid.
func (s *section) integer(k string) (int64, bool) {
	e, ok := s.get(k)
	if !ok {
		return 0, false
	}
	var n int64
	if e.val.Kind != yaml.ScalarNode || e.val.ShortTag() != "!!int" || e.val.Decode(&n) != nil {
		s.problem(k, "%s is not a whole number", describe(e.val))
		return 0, false
	}
	return n, true
}

// ranged returns an integer in [lo, hi] or def when absent; hi < 0 means no
// upper bound.
func (s *section) ranged(k string, def, lo, hi int64, what string) int64 {
	if !s.has(k) {
		return def
	}
	n, ok := s.integer(k)
	if !ok {
		return def
	}
	if n < lo || (hi >= 0 && n > hi) {
		s.problem(k, "%d %s", n, what)
	}
	return n
}

// number returns a real number within [lo, hi], def when absent.
func (s *section) number(k string, def, lo, hi float64) float64 {
	v, ok := s.str(k)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < lo || f > hi {
		s.problem(k, "%q is not a number from %g to %g", v, lo, hi)
		return def
	}
	return f
}

func (s *section) port(k string, def int) int {
	return int(s.ranged(k, int64(def), 1, 65535, "is not a port (1-65535)"))
}

func (s *section) boolean(k string) bool {
	e, ok := s.get(k)
	if !ok {
		return false
	}
	var b bool
	if e.val.Kind != yaml.ScalarNode || e.val.ShortTag() != "!!bool" || e.val.Decode(&b) != nil {
		s.problem(k, "%s is not true or false", describe(e.val))
	}
	return b
}

// duration returns a positive Go duration, or def when absent.
func (s *section) duration(k string, def time.Duration) time.Duration {
	v, ok := s.str(k)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		s.problem(k, "%q is not a duration (e.g. 30s, 2m)", v)
		return def
	case d <= 0:
		s.problem(k, "%s must be more than zero", v)
	}
	return d
}

// list returns a list of strings, reporting items that are not strings or are
// empty.
func (s *section) list(k string) ([]string, []int) {
	e, ok := s.get(k)
	if !ok {
		return nil, nil
	}
	if e.val.Kind != yaml.SequenceNode {
		s.problem(k, "expected a list, got %s", describe(e.val))
		return nil, nil
	}
	var out []string
	var lines []int
	for i, item := range e.val.Content {
		item = deref(item)
		path := fmt.Sprintf("%s[%d]", s.at(k), i)
		switch {
		case item.Kind != yaml.ScalarNode || isNull(item):
			s.l.add(item.Line, path, "expected a string, got %s", describe(item))
		case strings.TrimSpace(item.Value) == "":
			s.l.add(item.Line, path, "must not be empty")
		default:
			out = append(out, item.Value)
			lines = append(lines, item.Line)
		}
	}
	return out, lines
}

// dict returns a mapping of non-empty strings to non-empty strings; check, if
// given, vets each pair and returns a message for a bad one.
func (s *section) dict(k string, check func(key, val string) string) map[string]string {
	e, ok := s.get(k)
	if !ok {
		return nil
	}
	if e.val.Kind != yaml.MappingNode {
		s.problem(k, "expected a mapping, got %s", describe(e.val))
		return nil
	}
	out := map[string]string{}
	first := map[string]int{}
	for i := 0; i+1 < len(e.val.Content); i += 2 {
		kn, vn := deref(e.val.Content[i]), deref(e.val.Content[i+1])
		path := fmt.Sprintf("%s[%q]", s.at(k), kn.Value)
		if kn.Kind != yaml.ScalarNode || kn.ShortTag() == "!!merge" {
			s.l.add(kn.Line, s.at(k), "keys must be plain strings, not %s", describe(kn))
			continue
		}
		if line, dup := first[kn.Value]; dup {
			s.l.add(kn.Line, path, "given twice (first on line %d)", line)
			continue
		}
		first[kn.Value] = kn.Line
		switch {
		case strings.TrimSpace(kn.Value) == "":
			s.l.add(kn.Line, path, "the key must not be empty")
		case vn.Kind != yaml.ScalarNode || isNull(vn):
			s.l.add(kn.Line, path, "expected a string, got %s", describe(vn))
		case strings.TrimSpace(vn.Value) == "":
			s.l.add(kn.Line, path, "must not be empty")
		default:
			if check != nil {
				if msg := check(kn.Value, vn.Value); msg != "" {
					s.l.add(kn.Line, path, "%s", msg)
					continue
				}
			}
			out[kn.Value] = vn.Value
		}
	}
	return out
}

// sub opens a nested section; when absent it is empty and missing keys in it
// are reported at this section's line.
func (s *section) sub(k string, known []string) (*section, bool) {
	e, ok := s.get(k)
	if !ok {
		return &section{l: s.l, path: s.at(k), line: s.lineOf(k), vals: map[string]entry{}, bad: s.bad}, false
	}
	return s.l.section(e.val, s.at(k), e.key.Line, known), true
}

// required opens a sub-section that must be there, reporting it with msg
// when it is not.
func (s *section) required(k string, known []string, msg string) (*section, bool) {
	sub, ok := s.sub(k, known)
	if !ok {
		s.missing(k, msg)
	}
	return sub, ok
}

// template returns a string that may hold {address}, {local} and {domain},
// reporting unknown placeholders.
func (s *section) template(k string) string {
	v, ok := s.str(k)
	if !ok {
		return ""
	}
	if _, err := parseTemplate(v); err != nil {
		s.problem(k, "%v", err)
	}
	return v
}

// caFile returns the resolved path of a CA bundle, checking that it holds
// PEM certificates: better refused at start-up than at the first TLS dial.
func (s *section) caFile(k string) string {
	v, ok := s.str(k)
	if !ok || v == "" {
		return ""
	}
	p := s.l.resolvePath(v)
	data, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			s.problem(k, "%s does not exist", p)
		} else {
			s.problem(k, "cannot read %s: %v", p, errors.Unwrap(err))
		}
		return p
	}
	certs := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			s.problem(k, "%s holds a certificate that does not parse: %v", p, err)
			return p
		}
		certs++
	}
	if certs == 0 {
		s.problem(k, "%s holds no PEM certificates", p)
	}
	return p
}

// existingDir returns the resolved path of a directory that must already exist.
func (s *section) existingDir(k string) string {
	v, ok := s.str(k)
	if !ok || v == "" {
		return ""
	}
	p := s.l.resolvePath(v)
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.problem(k, "%s does not exist", p)
	case err != nil:
		s.problem(k, "cannot use %s: %v", p, errors.Unwrap(err))
	case !fi.IsDir():
		s.problem(k, "%s is not a directory", p)
	}
	return p
}

// requiredPath returns a required path, resolved.
func (s *section) requiredPath(k string) string {
	return s.l.resolvePath(s.need(k))
}

// blank says whether k is absent, null or an empty string: the example
// file's style of spelling out optional keys as "" must not count as setting
// them.
func (s *section) blank(k string) bool {
	e, ok := s.get(k)
	return !ok || (e.val.Kind == yaml.ScalarNode && strings.TrimSpace(e.val.Value) == "")
}

// require reports k when it is blank: at the section's line when absent, at
// the key's when empty.
func (s *section) require(k, msg string) {
	switch {
	case !s.has(k):
		s.missing(k, msg)
	case s.blank(k):
		s.problem(k, "%s", msg)
	}
}

// unused reports keys given that the chosen kind (or mechanism) does not use.
func (s *section) unused(why string, keys ...string) {
	for _, k := range keys {
		if !s.blank(k) {
			s.problem(k, "not used by %s", why)
		}
	}
}

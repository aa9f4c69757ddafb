package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"mailwave/contract"
	"mailwave/contract/searchattr"
)

// stages are the values --stage accepts.
var stages = contract.Stages

// workingStages are the stages in which a mailbox is doing something (an
// activity runs) or is held: a mailbox in one of them for long is stuck.
// Waiting for a date or for a slot is the plan, not a fault.
var workingStages = []contract.Stage{
	contract.StageNoticeT14, contract.StageNoticeT1, contract.StageCopying, contract.StageCutover,
	contract.StageNoticeSuccess, contract.StagePaused,
}

// keywordPattern is what an organisation or an error type typed by an
// operator may be: letters, digits, spaces and a few marks, never a quote or
// a backslash, so it cannot end the quoted value it goes into.
var keywordPattern = regexp.MustCompile(`^[\p{L}\p{N}][\p{L}\p{N} ._&()/,+:-]*$`)

// errorTypePattern is what an error type is (contract/errors.go).
var errorTypePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)

// mailboxFilter is what `mailbox list` selects by; every value is checked
// before it goes into a visibility query.
type mailboxFilter struct {
	wave, stage, org, errorType string
	// olderThan: in its stage longer than this (0: any).
	olderThan time.Duration
	// paused: only those held by a pause.
	paused bool
	// running: only those whose workflow runs.
	running bool
}

// check names the first flag with a value that cannot be queried.
func (f mailboxFilter) check() error {
	if f.wave != "" {
		if err := checkWaveID(f.wave); err != nil {
			return err
		}
	}
	if f.stage != "" && !slices.Contains(stages, contract.Stage(f.stage)) {
		return fmt.Errorf("--stage %.40q: not a stage; the stages are %s", f.stage, stageNames(stages))
	}
	if f.org != "" {
		if err := checkKeyword("--org", f.org); err != nil {
			return err
		}
	}
	if f.errorType != "" && !errorTypePattern.MatchString(f.errorType) {
		return fmt.Errorf("--error-type %.40q: an error type is a letter then up to 63 letters, digits or '_' (e.g. %s)",
			f.errorType, contract.ErrTypeMailboxNotFound)
	}
	if f.olderThan < 0 {
		return fmt.Errorf("--older-than %s: a length of time cannot be negative", f.olderThan)
	}
	return nil
}

// checkKeyword refuses a value that is not a safe keyword, naming the flag.
func checkKeyword(flag, v string) error {
	switch {
	case len(v) > 64:
		return fmt.Errorf("%s: %d bytes; at most 64", flag, len(v))
	case !utf8.ValidString(v) || !keywordPattern.MatchString(v):
		return fmt.Errorf("%s %.40q: only letters, digits, spaces and . _ & ( ) / , + : - are accepted (no quotes), starting with a letter or digit", flag, v)
	}
	return nil
}

// query is the visibility query for the filter, stage times judged against
// now. With --older-than and no --stage, only running mailboxes are
// meant: one that finished has been in its last stage ever since.
func (f mailboxFilter) query(now time.Time) (string, error) {
	if err := f.check(); err != nil {
		return "", err
	}
	q := []string{mailboxesQuery()}
	if f.wave != "" {
		q = append(q, equals(searchattr.Wave.GetName(), f.wave))
	}
	if f.stage != "" {
		q = append(q, equals(searchattr.Stage.GetName(), f.stage))
	}
	if f.org != "" {
		q = append(q, equals(searchattr.Org.GetName(), f.org))
	}
	if f.errorType != "" {
		q = append(q, equals(searchattr.ErrorType.GetName(), f.errorType))
	}
	if f.olderThan > 0 {
		q = append(q, stageBefore(now.Add(-f.olderThan)))
	}
	if f.paused {
		q = append(q, searchattr.Paused.GetName()+" = true")
	}
	if f.running || (f.olderThan > 0 && f.stage == "") {
		q = append(q, "ExecutionStatus = 'Running'")
	}
	return strings.Join(q, " AND "), nil
}

// mailboxesQuery selects mailbox workflows (a wave's workflow carries some
// of the same search attributes).
func mailboxesQuery() string {
	return equals("WorkflowType", contract.MailboxWorkflowName)
}

// stuckQuery selects a wave's running mailboxes that may be stuck: in a
// working stage (an activity may be failing, or they have been there
// long), or held by a pause.
func stuckQuery(wave string) (string, error) {
	if err := checkWaveID(wave); err != nil {
		return "", err
	}
	quoted := make([]string, len(workingStages))
	for i, s := range workingStages {
		quoted[i] = quote(string(s))
	}
	return fmt.Sprintf("%s AND %s AND ExecutionStatus = 'Running' AND (%s IN (%s) OR %s = true)",
		mailboxesQuery(), equals(searchattr.Wave.GetName(), wave),
		searchattr.Stage.GetName(), strings.Join(quoted, ", "), searchattr.Paused.GetName()), nil
}

// reportQuery selects the mailboxes of a wave, or of the whole programme
// when wave is empty.
func reportQuery(wave string) (string, error) {
	if wave == "" {
		return mailboxesQuery(), nil
	}
	if err := checkWaveID(wave); err != nil {
		return "", err
	}
	return mailboxesQuery() + " AND " + equals(searchattr.Wave.GetName(), wave), nil
}

func stageBefore(t time.Time) string {
	return fmt.Sprintf("%s < %s", searchattr.StageSince.GetName(), quote(t.UTC().Format(time.RFC3339Nano)))
}

func equals(name, value string) string { return name + " = " + quote(value) }

// quote puts a checked value in single quotes. The values are checked
// (wave IDs, stages, keywords, times): none holds a quote or a backslash.
func quote(v string) string {
	if strings.ContainsAny(v, `'"\`) {
		panic(fmt.Sprintf("unchecked value %q in a visibility query", v))
	}
	return "'" + v + "'"
}

func stageNames(list []contract.Stage) string {
	names := make([]string, len(list))
	for i, s := range list {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

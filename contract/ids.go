package contract

import (
	"regexp"
	"strings"
)

const mailboxIDPrefix = "mailbox-"

// MailboxWorkflowID is the workflow ID of a mailbox's migration. It is made
// of the opaque key alone, so one mailbox has one migration at a time.
func MailboxWorkflowID(key string) string { return mailboxIDPrefix + key }

// MailboxKeyOf is the mailbox key in a MailboxWorkflowID.
func MailboxKeyOf(workflowID string) string { return strings.TrimPrefix(workflowID, mailboxIDPrefix) }

// WaveWorkflowID is the workflow ID of a wave.
func WaveWorkflowID(waveID string) string { return "wave-" + waveID }

// WaveIDRule says what a wave ID may be. A wave ID names the wave's roster
// in the roster store and goes into workflow IDs and visibility queries, so
// it is kept to a safe alphabet: never a path, never a quote.
const WaveIDRule = "a wave ID is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"

var waveIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidWaveID reports whether id follows WaveIDRule.
func ValidWaveID(id string) bool { return waveIDPattern.MatchString(id) }

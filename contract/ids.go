package contract

import "strings"

const mailboxIDPrefix = "mailbox-"

// MailboxWorkflowID is the workflow ID of a mailbox's migration. It is made
// of the opaque key alone, so one mailbox has one migration at a time.
func MailboxWorkflowID(key string) string { return mailboxIDPrefix + key }

// MailboxKeyOf is the mailbox key in a MailboxWorkflowID.
func MailboxKeyOf(workflowID string) string { return strings.TrimPrefix(workflowID, mailboxIDPrefix) }

// WaveWorkflowID is the workflow ID of a wave.
func WaveWorkflowID(waveID string) string { return "wave-" + waveID }

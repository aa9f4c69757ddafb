// Package workflows holds mailwave's deterministic orchestration: the
// MailboxMigration workflow (one per mailbox, its whole story) and the Wave
// workflow (one per wave: starts the mailboxes, grants copy slots under a
// cap, pauses, cancels, retries and keeps an error budget). They import only
// the contract and the activities' types, call activities by their contract
// names, and are registered by Register for the worker and the replay test.
package workflows

package connect_test

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"mailwave/internal/connect"
)

// An error's text (here a folder name) stays out of log lines above debug;
// its type is kept, and the debug line carries the text.
func TestRedactingLogger(t *testing.T) {
	var info, all bytes.Buffer
	l := connect.Redacting(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(&info, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	err := temporal.NewApplicationError("folder Patients/Mr Jones: NO Mailbox doesn't exist", "Transient")
	l.Error("Activity error.", "ActivityType", "CopyMailbox", "Error", err)
	tlog.With(l, "WorkflowID", "mailbox-k1").Warn("Failed to process", "Error", errors.New("Mr Jones"))
	assert.Contains(t, info.String(), "application error Transient")
	assert.Contains(t, info.String(), "ActivityType=CopyMailbox")
	assert.Contains(t, info.String(), "WorkflowID=mailbox-k1")
	assert.NotContains(t, info.String(), "Jones")

	d := connect.Redacting(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(&all, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	d.Error("Activity error.", "Error", err)
	assert.Contains(t, all.String(), "Mr Jones", "debug keeps the full text")
}

package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unicode/utf8"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"mailwave/contract"
	"mailwave/contract/searchattr"
	"mailwave/internal/control"
	"mailwave/starter/printer"
)

// describeAtOnce bounds the DescribeWorkflowExecution calls in flight.
const describeAtOnce = 8

// maxFailureText is how much of a last failure a row shows.
const maxFailureText = 100

// mailboxRow is one mailbox as `mailbox list` and `wave stuck` show it:
// its search attributes, and the activity the server is running or
// retrying for it.
type mailboxRow struct {
	Key         string          `json:"key"`
	Org         string          `json:"org"`
	Wave        string          `json:"wave"`
	Status      string          `json:"status"`
	Stage       string          `json:"stage"`
	Since       time.Time       `json:"since"`
	Age         printer.Seconds `json:"age_seconds" text:"AGE"`
	Paused      bool            `json:"paused"`
	ErrorType   string          `json:"error_type"`
	Activity    string          `json:"activity"`
	Attempt     *int32          `json:"attempt"`
	LastFailure string          `json:"last_failure"`
	NextRetry   *time.Time      `json:"next_retry"`

	workflowID, runID string
	running           bool
}

// rowOf reads a listed mailbox execution's search attributes (stored
// unencrypted, so read with the SDK's default converter).
func rowOf(ex *workflowpb.WorkflowExecutionInfo, now time.Time) mailboxRow {
	id := ex.GetExecution().GetWorkflowId()
	r := mailboxRow{
		Key: contract.MailboxKeyOf(id), Status: control.StatusName(ex.GetStatus()),
		workflowID: id, runID: ex.GetExecution().GetRunId(),
		running: ex.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
	}
	fields := ex.GetSearchAttributes().GetIndexedFields()
	decodeAttr(fields, searchattr.Org.GetName(), &r.Org)
	decodeAttr(fields, searchattr.Wave.GetName(), &r.Wave)
	decodeAttr(fields, searchattr.Stage.GetName(), &r.Stage)
	decodeAttr(fields, searchattr.StageSince.GetName(), &r.Since)
	decodeAttr(fields, searchattr.Paused.GetName(), &r.Paused)
	decodeAttr(fields, searchattr.ErrorType.GetName(), &r.ErrorType)
	if !r.Since.IsZero() {
		r.Age = printer.SecondsOf(max(0, now.Sub(r.Since))) // a clock ahead of ours is no time
	}
	return r
}

// decodeAttr decodes a search attribute if it is there; one that does not
// decode is left unset (a listing shows what it can).
func decodeAttr(fields map[string]*commonpb.Payload, name string, into any) {
	if p, ok := fields[name]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(p, into)
	}
}

// listExecutions pages through the executions query matches, at most limit
// of them (0: all), and says how many more there are.
func listExecutions(ctx context.Context, c client.Client, query string, limit int, prog *progress) ([]*workflowpb.WorkflowExecutionInfo, int64, error) {
	var out []*workflowpb.WorkflowExecutionInfo
	var token []byte
	for {
		size := 1000
		if limit > 0 {
			size = min(size, limit-len(out))
		}
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: int32(size), NextPageToken: token})
		if err != nil {
			return nil, 0, fmt.Errorf("listing mailboxes (%s): %w", query, err)
		}
		out = append(out, resp.GetExecutions()...)
		prog.show("listed %d mailboxes", len(out))
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return out, 0, nil
		}
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	out = out[:limit]
	count, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
	if err != nil {
		return out, 0, fmt.Errorf("counting mailboxes (%s): %w", query, err)
	}
	return out, max(0, count.GetCount()-int64(len(out))), nil
}

// describeRunning fills in, for each running row, the activity the server
// runs or retries for it, describing at most describeAtOnce at a time. A
// mailbox that cannot be described keeps its row as listed; the first such
// error is returned with their count, the rows all the same.
func describeRunning(ctx context.Context, c client.Client, fc converter.FailureConverter, rows []mailboxRow, prog *progress) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(describeAtOnce)
	errs := make([]error, len(rows))
	total := 0
	for i := range rows {
		if rows[i].running {
			total++
		}
	}
	var described atomic.Int64
	for i := range rows {
		if !rows[i].running {
			continue
		}
		g.Go(func() error {
			errs[i] = describeRow(gctx, c, fc, &rows[i])
			prog.show("described %d of %d running mailboxes", described.Add(1), total)
			return nil
		})
	}
	_ = g.Wait()
	var first error
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			first = cmp.Or(first, err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d mailboxes could not be described (their activity is not shown): %w", failed, first)
	}
	return ctx.Err()
}

// describeRow sets a running mailbox's pending activity: the one on the
// highest attempt, if several.
func describeRow(ctx context.Context, c client.Client, fc converter.FailureConverter, r *mailboxRow) error {
	desc, err := c.DescribeWorkflowExecution(ctx, r.workflowID, r.runID)
	if err != nil {
		return fmt.Errorf("describing workflow %s: %w", r.workflowID, err)
	}
	var pick int
	for i, pa := range desc.GetPendingActivities() {
		if pa.GetAttempt() > desc.GetPendingActivities()[pick].GetAttempt() {
			pick = i
		}
	}
	if len(desc.GetPendingActivities()) == 0 {
		return nil
	}
	pa := desc.GetPendingActivities()[pick]
	attempt := pa.GetAttempt()
	r.Activity, r.Attempt = pa.GetActivityType().GetName(), &attempt
	if f := pa.GetLastFailure(); f != nil {
		r.LastFailure = failureText(fc, f)
	}
	if t := pa.GetNextAttemptScheduleTime(); t != nil {
		next := t.AsTime()
		r.NextRetry = &next
	}
	return nil
}

// failureText is a failure as "Type: message", decoded (the failure
// converter seals messages) and cut to maxFailureText characters.
func failureText(fc converter.FailureConverter, f *failurepb.Failure) string {
	err := fc.FailureToError(f)
	text := err.Error()
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		text = app.Message()
		if app.Type() != "" {
			text = app.Type() + ": " + text
		}
	}
	if utf8.RuneCountInString(text) > maxFailureText {
		text = string([]rune(text)[:maxFailureText-1]) + "…"
	}
	return text
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"mailwave/contract"
	"mailwave/starter/printer"
)

func newMailboxStatusCmd(a *app) *cobra.Command {
	var address string
	var queryTimeout time.Duration
	var output printer.Format
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show where a mailbox's migration is, its attempts and last error",
		Long: `Show a mailbox's migration: its search attributes (stage, since when,
paused, organisation), the workflow's own state through its query (notices sent,
attempts per step, last error; when a worker answers within --query-timeout),
its published summary once finished, and any activity the server runs or
retries (attempt, last failure, next attempt).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if queryTimeout < 0 {
				return fmt.Errorf("--query-timeout %s: a length of time cannot be negative", queryTimeout)
			}
			key, c, err := a.mailboxTarget(cmd.Context(), address)
			if err != nil {
				return err
			}
			defer c.Close()
			dc, fc, err := a.converters()
			if err != nil {
				return err
			}
			st, err := readMailboxStatus(cmd.Context(), c, dc, fc, key, queryTimeout)
			if err != nil {
				return err
			}
			return printerFor(cmd, output).Object(st)
		},
	}
	cmd.Flags().StringVar(&address, "address", "", "the mailbox's email address (required)")
	cmd.Flags().DurationVar(&queryTimeout, "query-timeout", 10*time.Second, "how long to wait for the workflow to answer its state query (0: do not ask)")
	addOutputFlag(cmd, &output)
	_ = cmd.MarkFlagRequired("address")
	return cmd
}

// mailboxStatus is one mailbox's migration as `mailbox status` shows it.
type mailboxStatus struct {
	Key        string `json:"key"`
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	Status     string `json:"status"`
	// From the search attributes, always there.
	Org       string    `json:"org"`
	Wave      string    `json:"wave"`
	Stage     string    `json:"stage"`
	Since     time.Time `json:"since"`
	Paused    bool      `json:"paused"`
	ErrorType string    `json:"error_type"`
	// State is the workflow's answer to its state query, or why there is
	// none ("unavailable: ...").
	State       string                `json:"state"`
	NoticeAt    *time.Time            `json:"notice_at"`
	ReminderAt  *time.Time            `json:"reminder_at"`
	MigrateAt   *time.Time            `json:"migrate_at"`
	NoticesSent []contract.NoticeKind `json:"notices_sent"`
	Attempts    []stepAttempts        `json:"attempts"`
	Copied      *contract.CopyStats   `json:"copied"`
	LastError   string                `json:"last_error"`
	// Rescheduled is an operator's move of it to another night.
	Rescheduled *contract.Rescheduled   `json:"rescheduled"`
	Result      *contract.MailboxResult `json:"result"`
	// Summary is what the mailbox published when it finished.
	Summary    *contract.MailboxSummary `json:"summary"`
	Activities []activityRow            `json:"activities"`
}

// stepAttempts is how many attempts a finished step took.
type stepAttempts struct {
	Step     contract.Step `json:"step"`
	Attempts int32         `json:"attempts"`
}

// activityRow is an activity the server runs or retries for a mailbox.
type activityRow struct {
	Activity    string     `json:"activity"`
	Attempt     int32      `json:"attempt"`
	State       string     `json:"state"`
	LastFailure string     `json:"last_failure"`
	NextAttempt *time.Time `json:"next_attempt"`
}

// readMailboxStatus describes a mailbox's workflow and asks it for its
// state, waiting at most queryTimeout.
func readMailboxStatus(ctx context.Context, c client.Client, dc converter.DataConverter, fc converter.FailureConverter,
	key string, queryTimeout time.Duration) (mailboxStatus, error) {
	id := contract.MailboxWorkflowID(key)
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return mailboxStatus{}, fmt.Errorf("no migration found for mailbox %s (workflow %s)", key, id)
	}
	if err != nil {
		return mailboxStatus{}, fmt.Errorf("describing workflow %s: %w", id, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	row := rowOf(info, time.Now())
	st := mailboxStatus{
		Key: key, WorkflowID: id, RunID: info.GetExecution().GetRunId(), Status: row.Status,
		Org: row.Org, Wave: row.Wave, Stage: row.Stage, Since: row.Since, Paused: row.Paused, ErrorType: row.ErrorType,
		Attempts: []stepAttempts{}, Activities: []activityRow{},
	}
	if p, ok := info.GetMemo().GetFields()[contract.MemoSummary]; ok {
		var sum contract.MailboxSummary
		if err := dc.FromPayload(p, &sum); err != nil {
			return st, fmt.Errorf("reading the summary in the memo of workflow %s: %w", id, err)
		}
		st.Summary = &sum
	}
	st.setState(queryState(ctx, c, id, info.GetStatus(), queryTimeout))
	for _, pa := range desc.GetPendingActivities() {
		a := activityRow{Activity: pa.GetActivityType().GetName(), Attempt: pa.GetAttempt(),
			State: strings.ToLower(strings.TrimPrefix(pa.GetState().String(), "PENDING_ACTIVITY_STATE_"))}
		if f := pa.GetLastFailure(); f != nil {
			a.LastFailure = failureText(fc, f)
		}
		if t := pa.GetNextAttemptScheduleTime(); t != nil {
			next := t.AsTime()
			a.NextAttempt = &next
		}
		st.Activities = append(st.Activities, a)
	}
	return st, nil
}

// queryState asks the workflow for its state; a closed workflow answers
// from its history (a worker replays it), a running one from a worker.
func queryState(ctx context.Context, c client.Client, id string, status enumspb.WorkflowExecutionStatus, timeout time.Duration) (*contract.MailboxState, error) {
	if timeout == 0 {
		return nil, errors.New("not asked")
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := c.QueryWorkflow(qctx, id, "", contract.QueryState)
	if err != nil {
		if status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return nil, fmt.Errorf("%w: is a worker running?", err)
		}
		return nil, err
	}
	var ms contract.MailboxState
	if err := v.Get(&ms); err != nil {
		return nil, fmt.Errorf("decoding the state of %s: %w", id, err)
	}
	return &ms, nil
}

// setState takes in the workflow's own view, which is fresher than the
// search attributes.
func (st *mailboxStatus) setState(ms *contract.MailboxState, err error) {
	if err != nil {
		st.State = "unavailable (" + err.Error() + ")"
		return
	}
	st.State = "live"
	st.Stage, st.Since = string(ms.Stage), ms.StageSince
	st.Paused = st.Paused || ms.Paused
	st.NoticeAt, st.ReminderAt, st.MigrateAt = &ms.NoticeAt, &ms.ReminderAt, &ms.MigrateAt
	st.NoticesSent = ms.NoticesSent
	steps := make([]contract.Step, 0, len(ms.Attempts))
	for step := range ms.Attempts {
		steps = append(steps, step)
	}
	slices.Sort(steps)
	for _, step := range steps {
		st.Attempts = append(st.Attempts, stepAttempts{Step: step, Attempts: ms.Attempts[step]})
	}
	copied := ms.Copied
	st.Copied, st.LastError, st.Result = &copied, ms.LastError, ms.Result
	st.Rescheduled = ms.Rescheduled
}

// WriteText shows the status as labelled lines: the fields of its JSON,
// the result and the summary in brief.
func (st mailboxStatus) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "mailbox   %s\nworkflow  %s (run %s)\nstatus    %s\n", st.Key, st.WorkflowID, st.RunID, st.Status)
	fmt.Fprintf(w, "org       %s\n", dash(st.Org))
	if st.Wave != "" {
		fmt.Fprintf(w, "wave      %s\n", st.Wave)
	}
	paused := ""
	if st.Paused {
		paused = " (paused)"
	}
	fmt.Fprintf(w, "stage     %s since %s%s\n", dash(st.Stage), timeText(st.Since), paused)
	fmt.Fprintf(w, "state     %s\n", st.State)
	if st.MigrateAt != nil {
		fmt.Fprintf(w, "notice    %s\nreminder  %s\nmigrate   %s\n", timeText(*st.NoticeAt), timeText(*st.ReminderAt), timeText(*st.MigrateAt))
		kinds := make([]string, len(st.NoticesSent))
		for i, k := range st.NoticesSent {
			kinds[i] = string(k)
		}
		fmt.Fprintf(w, "sent      %s\n", strings.Join(kinds, ", "))
	}
	for _, a := range st.Attempts {
		fmt.Fprintf(w, "attempts  %s: %d\n", a.Step, a.Attempts)
	}
	if c := st.Copied; c != nil {
		fmt.Fprintf(w, "copied    %d items, %d bytes (%d already there)\n", c.Items, c.Bytes, c.Skipped)
	}
	if st.LastError != "" {
		fmt.Fprintf(w, "error     %s\n", st.LastError)
	}
	if r := st.Rescheduled; r != nil {
		fmt.Fprintf(w, "moved     from %s to %s by %s (%s); %s\n", timeText(r.From), timeText(r.To), dash(r.By), dash(r.Reason),
			correctedWords(r.Corrected))
	}
	if r := st.Result; r != nil {
		fmt.Fprintf(w, "outcome   %s", r.Outcome)
		if r.FailedStep != "" {
			fmt.Fprintf(w, " at %s (%s)", r.FailedStep, r.ErrorType)
		}
		fmt.Fprintln(w)
	} else if st.ErrorType != "" {
		fmt.Fprintf(w, "error     type %s\n", st.ErrorType)
	}
	if s := st.Summary; s != nil {
		fmt.Fprintf(w, "summary   %s, consistency %s, %d of %d items at the target, %d bad, %s", s.Outcome, dash(string(s.Consistency)),
			s.TargetItems, s.SourceItems, s.BadItems, printer.Bytes(s.Bytes).Text())
		if s.Duplicates > 0 {
			fmt.Fprintf(w, ", %d extra copies removed", s.Duplicates)
		}
		fmt.Fprintln(w)
	}
	for _, a := range st.Activities {
		fmt.Fprintf(w, "running   %s, attempt %d, state %s", a.Activity, a.Attempt, a.State)
		if a.LastFailure != "" {
			fmt.Fprintf(w, ", last failure: %s", a.LastFailure)
		}
		if a.NextAttempt != nil {
			fmt.Fprintf(w, ", next attempt %s", timeText(*a.NextAttempt))
		}
		fmt.Fprintln(w)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// Package metrics names the metrics a worker serves to Prometheus on its
// --metrics-listen address: mailwave's own, and the SDK's that the
// dashboard (deploy/grafana) shows. The registry that serves them is
// worker/registry.
//
// The registry uses the SDK's Prometheus naming: a counter's name gets
// "_total" and a timer's "_seconds" unless it has them already, and timers
// are histograms. The names below are what Prometheus shows; mailwave emits
// them as they are.
//
// Every label has a small, fixed set of values: never a mailbox key or an
// address, and no organisation on a per-request figure (22,000
// organisations would be 22,000 series each). Only the adaptive copy rate,
// sampled per configured organisation, carries one.
package metrics

import "mailwave/contract"

// mailwave's own metrics, as Prometheus names them.
const (
	// CopiedBytes counts the bytes a copy put on the target (new messages,
	// not those it found there already), label TagPass. Its rate() is the
	// copy throughput.
	CopiedBytes = "mailwave_copied_bytes_total"
	// CopiedItems counts the messages a copy put on the target, label
	// TagPass.
	CopiedItems = "mailwave_copied_items_total"
	// CopiesInFlight is the copies running in this worker now.
	CopiesInFlight = "mailwave_copies_in_flight"
	// Throttled counts the throttle replies that ended an activity's
	// attempt (the target, the SMTP relay or a router asked to slow down),
	// label TagActivity.
	Throttled = "mailwave_throttled_total"
	// ThrottleRetryAfter is the histogram of the delays those replies
	// asked for, label TagActivity.
	ThrottleRetryAfter = "mailwave_throttle_retry_after_seconds"
	// NoticesSent counts the notices sent, label TagKind (t14, t1,
	// success, failure); a repeat the notifier recognised is not counted.
	NoticesSent = "mailwave_notices_sent_total"
	// Cutovers counts the mailboxes whose mail was moved to the target (a
	// cutover found already done is not counted).
	Cutovers = "mailwave_cutovers_total"
	// CopyRate is each configured organisation's adaptive copy rate
	// (mail/adapt), bytes per second, label TagOrganisation, sampled every
	// few seconds.
	CopyRate = "mailwave_copy_rate_bytes_per_second"
	// CopyRefusals counts the target's throttling refusals the adaptive
	// copy rate took in (waited out and sent again inside the copy; those
	// that ended an attempt are Throttled too), label TagOrganisation,
	// sampled with CopyRate.
	CopyRefusals = "mailwave_copy_refusals_total"
	// MailboxesFinished counts the mailboxes finished, label TagOutcome
	// (migrated, needs_support, cancelled). The mailbox workflow emits it
	// as contract.MetricMailboxesFinished; the naming adds "_total".
	MailboxesFinished = contract.MetricMailboxesFinished + "_total"
)

// Labels of mailwave's metrics.
const (
	TagPass         = "pass"         // bulk or delta
	TagActivity     = "activity"     // the activity's contract name
	TagKind         = "kind"         // a notice's kind
	TagOrganisation = "organisation" // a configured organisation's name
	TagOutcome      = "outcome"      // how a mailbox ended
)

// The SDK's metrics the dashboard shows, as Prometheus names them.
const (
	SDKTaskSlotsAvailable          = "temporal_worker_task_slots_available"
	SDKTaskSlotsUsed               = "temporal_worker_task_slots_used"
	SDKActivityScheduleToStart     = "temporal_activity_schedule_to_start_latency_seconds"
	SDKWorkflowTaskScheduleToStart = "temporal_workflow_task_schedule_to_start_latency_seconds"
	SDKActivityExecutionFailed     = "temporal_activity_execution_failed_total"
	SDKStickyCacheSize             = "temporal_sticky_cache_size"
)

// Own lists mailwave's metrics.
func Own() []string {
	return []string{
		CopiedBytes, CopiedItems, CopiesInFlight, Throttled, ThrottleRetryAfter,
		NoticesSent, Cutovers, CopyRate, CopyRefusals, MailboxesFinished,
	}
}

// SDK lists the SDK's metrics that mailwave's dashboard may use.
func SDK() []string {
	return []string{
		SDKTaskSlotsAvailable, SDKTaskSlotsUsed, SDKActivityScheduleToStart, SDKWorkflowTaskScheduleToStart,
		SDKActivityExecutionFailed, SDKStickyCacheSize,
	}
}

// Histograms are the metrics above that are histograms: Prometheus shows
// each as NAME_bucket, NAME_sum and NAME_count.
func Histograms() []string {
	return []string{ThrottleRetryAfter, SDKActivityScheduleToStart, SDKWorkflowTaskScheduleToStart}
}

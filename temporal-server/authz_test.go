package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509/pkix"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	updatepb "go.temporal.io/api/update/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/server/common/api"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/log"

	"mailwave/contract"
	"mailwave/internal/accesstoken"
)

var now = time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)

type fixture struct {
	key    ed25519.PrivateKey
	mapper *claimMapper
	authz  *authorizer
}

func newFixture(t *testing.T) fixture {
	k, err := accesstoken.NewKey()
	require.NoError(t, err)
	return fixture{
		key: k,
		mapper: &claimMapper{verifier: accesstoken.NewVerifier(k.Public().(ed25519.PublicKey), ""),
			systemCNs: map[string]bool{"temporal-system": true}, now: func() time.Time { return now }},
		authz: &authorizer{logger: log.NewNoopLogger()},
	}
}

func (f fixture) token(t *testing.T, sub, ns string, roles ...accesstoken.Role) string {
	tok, err := accesstoken.Issue(f.key, accesstoken.Claims{Subject: sub, Roles: roles, Namespace: ns, IssuedAt: now, Expires: now.Add(time.Hour)})
	require.NoError(t, err)
	return "Bearer " + tok
}

// may maps the credential to claims and asks the authorizer about one call.
func (f fixture) may(t *testing.T, ai *authorization.AuthInfo, method string, req any) (bool, string) {
	t.Helper()
	c, err := f.mapper.GetClaims(ai)
	require.NoError(t, err)
	prefix := api.WorkflowServicePrefix
	if method == "AddSearchAttributes" || method == "ListSearchAttributes" {
		prefix = api.OperatorServicePrefix
	}
	r, err := f.authz.Authorize(context.Background(), c, &authorization.CallTarget{APIName: prefix + method, Namespace: "default", Request: req})
	require.NoError(t, err)
	return r.Decision == authorization.DecisionAllow, r.Reason
}

func start(wfType, id, queue string) *workflowservice.StartWorkflowExecutionRequest {
	return &workflowservice.StartWorkflowExecutionRequest{Namespace: "default", WorkflowId: id,
		WorkflowType: &commonpb.WorkflowType{Name: wfType}, TaskQueue: &taskqueuepb.TaskQueue{Name: queue}}
}

func signal(id, name string) *workflowservice.SignalWorkflowExecutionRequest {
	return &workflowservice.SignalWorkflowExecutionRequest{Namespace: "default",
		WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: id}, SignalName: name}
}

func signalWithStart(wfType, id, queue, name string) *workflowservice.SignalWithStartWorkflowExecutionRequest {
	return &workflowservice.SignalWithStartWorkflowExecutionRequest{Namespace: "default", WorkflowId: id,
		WorkflowType: &commonpb.WorkflowType{Name: wfType}, TaskQueue: &taskqueuepb.TaskQueue{Name: queue}, SignalName: name}
}

func withPolicies(r *workflowservice.StartWorkflowExecutionRequest, c enumspb.WorkflowIdConflictPolicy, p enumspb.WorkflowIdReusePolicy) *workflowservice.StartWorkflowExecutionRequest {
	r.WorkflowIdConflictPolicy, r.WorkflowIdReusePolicy = c, p
	return r
}

func withSWSPolicy(r *workflowservice.SignalWithStartWorkflowExecutionRequest, c enumspb.WorkflowIdConflictPolicy, p enumspb.WorkflowIdReusePolicy) *workflowservice.SignalWithStartWorkflowExecutionRequest {
	r.WorkflowIdConflictPolicy, r.WorkflowIdReusePolicy = c, p
	return r
}

func cancel(id string) *workflowservice.RequestCancelWorkflowExecutionRequest {
	return &workflowservice.RequestCancelWorkflowExecutionRequest{Namespace: "default", WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: id}}
}

func TestRoles(t *testing.T) {
	f := newFixture(t)
	mbox, wave, pool := contract.MailboxWorkflowID("k1"), contract.WaveWorkflowID("w1"), contract.PrestagePoolWorkflowID("tenant-a")
	calls := []struct {
		name   string
		method string
		req    any
		// who may: v viewer, o operator, w worker, a admin
		may string
	}{
		{"list", "ListWorkflowExecutions", nil, "voa"},
		{"count", "CountWorkflowExecutions", nil, "voa"},
		{"describe", "DescribeWorkflowExecution", nil, "vowa"},
		{"history", "GetWorkflowExecutionHistory", nil, "vowa"},
		{"query", "QueryWorkflow", nil, "voa"},
		{"describe schedule", "DescribeSchedule", nil, "voa"},
		{"list schedules", "ListSchedules", nil, "voa"},
		{"describe namespace", "DescribeNamespace", nil, "vowa"},
		{"list search attributes", "ListSearchAttributes", nil, "voa"},
		{"start a wave", "StartWorkflowExecution", start(contract.WaveWorkflowName, wave, contract.TaskQueue), "oa"},
		{"start a programme night", "StartWorkflowExecution", start(contract.NightWorkflowName, "night-x", contract.TaskQueue), "oa"},
		{"start a mailbox", "StartWorkflowExecution", start(contract.MailboxWorkflowName, mbox, contract.TaskQueue), "owa"},
		{"start a mailbox elsewhere", "StartWorkflowExecution", start(contract.MailboxWorkflowName, mbox, "other"), "oa"},
		{"start a mailbox as the start rule does", "StartWorkflowExecution", withPolicies(start(contract.MailboxWorkflowName, mbox, contract.TaskQueue),
			enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY), "owa"},
		{"start a mailbox over a running one", "StartWorkflowExecution", withPolicies(start(contract.MailboxWorkflowName, mbox, contract.TaskQueue),
			enumspb.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING, 0), "oa"},
		{"start a mailbox terminating a running one", "StartWorkflowExecution", withPolicies(start(contract.MailboxWorkflowName, mbox, contract.TaskQueue),
			0, enumspb.WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING), "oa"},
		{"start a migrated mailbox again", "StartWorkflowExecution", withPolicies(start(contract.MailboxWorkflowName, mbox, contract.TaskQueue),
			0, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE), "oa"},
		{"start a mailbox under a wave's ID", "StartWorkflowExecution", start(contract.MailboxWorkflowName, wave, contract.TaskQueue), "oa"},
		{"pause a wave", "SignalWorkflowExecution", signal(wave, contract.SignalPause), "oa"},
		{"resume a wave", "SignalWorkflowExecution", signal(wave, contract.SignalResume), "oa"},
		{"cancel a wave", "SignalWorkflowExecution", signal(wave, contract.SignalCancel), "oa"},
		{"pause a mailbox", "SignalWorkflowExecution", signal(mbox, contract.SignalPause), "oa"},
		{"report done", "SignalWorkflowExecution", signal(wave, contract.SignalMailboxDone), "owa"},
		{"pre-stage request", "SignalWorkflowExecution", signal(wave, contract.SignalPrestageRequest), "owa"},
		{"pre-stage release", "SignalWorkflowExecution", signal(wave, contract.SignalPrestageRelease), "owa"},
		{"report done to a mailbox", "SignalWorkflowExecution", signal(mbox, contract.SignalMailboxDone), "oa"},
		{"signal-with-start", "SignalWithStartWorkflowExecution", nil, "oa"},
		{"pool request", "SignalWithStartWorkflowExecution", signalWithStart(contract.PrestagePoolWorkflowName, pool, contract.TaskQueue, contract.SignalPrestageRequest), "owa"},
		{"pool release", "SignalWithStartWorkflowExecution", signalWithStart(contract.PrestagePoolWorkflowName, pool, contract.TaskQueue, contract.SignalPrestageRelease), "owa"},
		{"pool hold", "SignalWithStartWorkflowExecution", signalWithStart(contract.PrestagePoolWorkflowName, pool, contract.TaskQueue, contract.SignalPrestagePoolHold), "owa"},
		{"pool cap", "SignalWithStartWorkflowExecution", signalWithStart(contract.PrestagePoolWorkflowName, pool, contract.TaskQueue, contract.SignalPrestagePoolCap), "oa"},
		{"pool elsewhere", "SignalWithStartWorkflowExecution", signalWithStart(contract.PrestagePoolWorkflowName, pool, "other", contract.SignalPrestageRequest), "oa"},
		{"pool terminated and restarted", "SignalWithStartWorkflowExecution", withSWSPolicy(signalWithStart(contract.PrestagePoolWorkflowName, pool, contract.TaskQueue, contract.SignalPrestageRequest),
			enumspb.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING, 0), "oa"},
		{"pool terminated if running", "SignalWithStartWorkflowExecution", withSWSPolicy(signalWithStart(contract.PrestagePoolWorkflowName, pool, contract.TaskQueue, contract.SignalPrestageRequest),
			0, enumspb.WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING), "oa"},
		{"signal-with-start a wave", "SignalWithStartWorkflowExecution", signalWithStart(contract.WaveWorkflowName, wave, contract.TaskQueue, contract.SignalPrestageRequest), "oa"},
		{"update", "UpdateWorkflowExecution", nil, "oa"},
		{"cancel a mailbox", "RequestCancelWorkflowExecution", cancel(mbox), "owa"},
		{"cancel a wave workflow", "RequestCancelWorkflowExecution", cancel(wave), "oa"},
		{"terminate", "TerminateWorkflowExecution", nil, "oa"},
		{"reset", "ResetWorkflowExecution", nil, "oa"},
		{"delete", "DeleteWorkflowExecution", nil, "a"},
		{"create schedule", "CreateSchedule", nil, "oa"},
		{"trigger schedule", "PatchSchedule", nil, "oa"},
		{"delete schedule", "DeleteSchedule", nil, "oa"},
		{"poll", "PollWorkflowTaskQueue", nil, "wa"},
		{"poll activities", "PollActivityTaskQueue", nil, "wa"},
		{"complete", "RespondWorkflowTaskCompleted", nil, "wa"},
		{"heartbeat", "RecordActivityTaskHeartbeat", nil, "wa"},
		{"set current version", "SetWorkerDeploymentCurrentVersion", nil, "wa"},
		{"batch", "StartBatchOperation", nil, "a"},
		{"add search attributes", "AddSearchAttributes", nil, "a"},
		{"update namespace", "UpdateNamespace", nil, "a"},
	}
	roles := map[byte]accesstoken.Role{'v': accesstoken.Viewer, 'o': accesstoken.Operator, 'w': accesstoken.Worker, 'a': accesstoken.Admin}
	for letter, role := range roles {
		tok := f.token(t, "someone", "default", role)
		for _, c := range calls {
			want := false
			for i := range len(c.may) {
				want = want || c.may[i] == letter
			}
			got, reason := f.may(t, &authorization.AuthInfo{AuthToken: tok}, c.method, c.req)
			assert.Equal(t, want, got, "%s: %s (%s)", role, c.name, reason)
			if !got {
				assert.Contains(t, reason, "someone ("+string(role)+")", "a refusal names who")
			}
		}
	}
	// The decoder has no right on Temporal.
	tok := f.token(t, "dora", "default", accesstoken.Decoder)
	for _, c := range calls {
		got, _ := f.may(t, &authorization.AuthInfo{AuthToken: tok}, c.method, c.req)
		assert.False(t, got, "decoder: %s", c.name)
	}
}

func TestRefusedCredentials(t *testing.T) {
	f := newFixture(t)
	other := newFixture(t)
	expired, err := accesstoken.Issue(f.key, accesstoken.Claims{Subject: "alice", Roles: []accesstoken.Role{accesstoken.Admin},
		Namespace: "default", IssuedAt: now.Add(-3 * time.Hour), Expires: now.Add(-time.Hour)})
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		ai   *authorization.AuthInfo
		want string
	}{
		"no token":        {&authorization.AuthInfo{TLSSubject: &pkix.Name{CommonName: "mailwave-client"}}, "no access token"},
		"not bearer":      {&authorization.AuthInfo{AuthToken: "Basic abc"}, "not a bearer token"},
		"garbage":         {&authorization.AuthInfo{AuthToken: "Bearer abc"}, "malformed"},
		"expired":         {&authorization.AuthInfo{AuthToken: "Bearer " + expired}, "expired"},
		"another key":     {&authorization.AuthInfo{AuthToken: other.token(t, "alice", "default", accesstoken.Admin)}, "not signed by this programme's key"},
		"other namespace": {&authorization.AuthInfo{AuthToken: f.token(t, "alice", "elsewhere", accesstoken.Admin)}, `for namespace "elsewhere"`},
	} {
		ok, reason := f.may(t, tc.ai, "ListWorkflowExecutions", nil)
		assert.False(t, ok, name)
		assert.Contains(t, reason, tc.want, name)
	}
	// No claims at all (no certificate, no token).
	r, err := f.authz.Authorize(context.Background(), nil, &authorization.CallTarget{APIName: api.WorkflowServicePrefix + "ListWorkflowExecutions", Namespace: "default"})
	require.NoError(t, err)
	assert.Equal(t, authorization.DecisionDeny, r.Decision)

	// The system's certificate has every right, without a token; the
	// health check and system info need none.
	ok, _ := f.may(t, &authorization.AuthInfo{TLSSubject: &pkix.Name{CommonName: "temporal-system"}}, "AddSearchAttributes", nil)
	assert.True(t, ok)
	ok, _ = f.may(t, &authorization.AuthInfo{}, "GetSystemInfo", nil)
	assert.True(t, ok)
}

func TestIdentityOverwritten(t *testing.T) {
	f := newFixture(t)
	c, err := f.mapper.GetClaims(&authorization.AuthInfo{AuthToken: f.token(t, "alice", "default", accesstoken.Operator)})
	require.NoError(t, err)
	ctx := context.WithValue(context.Background(), authorization.MappedClaims, c)
	handled := func(ctx context.Context, req any) (any, error) { return req, nil }

	sig := signal(contract.WaveWorkflowID("w"), contract.SignalPause)
	sig.Identity = "bob@laptop"
	_, err = identityInterceptor(ctx, sig, nil, handled)
	require.NoError(t, err)
	assert.Equal(t, "alice (operator)", sig.Identity)

	upd := &workflowservice.UpdateWorkflowExecutionRequest{Request: &updatepb.Request{Meta: &updatepb.Meta{Identity: "bob"}}}
	multi := &workflowservice.ExecuteMultiOperationRequest{Operations: []*workflowservice.ExecuteMultiOperationRequest_Operation{
		{Operation: &workflowservice.ExecuteMultiOperationRequest_Operation_StartWorkflow{StartWorkflow: &workflowservice.StartWorkflowExecutionRequest{Identity: "bob"}}},
		{Operation: &workflowservice.ExecuteMultiOperationRequest_Operation_UpdateWorkflow{UpdateWorkflow: &workflowservice.UpdateWorkflowExecutionRequest{Request: &updatepb.Request{Meta: &updatepb.Meta{Identity: "bob"}}}}},
	}}
	for _, req := range []any{upd, multi} {
		_, err = identityInterceptor(ctx, req, nil, handled)
		require.NoError(t, err)
	}
	assert.Equal(t, "alice (operator)", upd.GetRequest().GetMeta().GetIdentity())
	assert.Equal(t, "alice (operator)", multi.Operations[0].GetStartWorkflow().GetIdentity())
	assert.Equal(t, "alice (operator)", multi.Operations[1].GetUpdateWorkflow().GetRequest().GetMeta().GetIdentity())

	// An empty identity is filled in; the system's calls keep theirs.
	empty := signal("x", "y")
	_, _ = identityInterceptor(ctx, empty, nil, handled)
	assert.Equal(t, "alice (operator)", empty.Identity)
	sys, err := f.mapper.GetClaims(&authorization.AuthInfo{TLSSubject: &pkix.Name{CommonName: "temporal-system"}})
	require.NoError(t, err)
	own := signal("x", "y")
	own.Identity = "temporal-system-worker"
	_, _ = identityInterceptor(context.WithValue(context.Background(), authorization.MappedClaims, sys), own, nil, handled)
	assert.Equal(t, "temporal-system-worker", own.Identity)
}

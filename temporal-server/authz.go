package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/server/common/api"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"mailwave/contract"
	"mailwave/internal/accesstoken"
)

// claimMapper maps a call's credential to claims: the server's own calls
// (its system worker calls the frontend, presenting the certificate named in
// --system-cn) to the system's admin; everyone else by the access token in
// the authorization header. It never fails a call itself: a refused token
// becomes claims that carry the refusal, so that the authorizer can say
// why (an expired token, another key) rather than the server's bare
// "Request unauthorized".
type claimMapper struct {
	verifier  *accesstoken.Verifier
	systemCNs map[string]bool
	now       func() time.Time
}

// mapped is what the claim mapper found, in authorization.Claims'
// Extensions: the verified token, or why there is none.
type mapped struct {
	token   accesstoken.Claims
	refusal error
}

var errNoToken = errors.New("no access token: present one (--api-key-file, issued by `starter access token`)")

func (m *claimMapper) GetClaims(ai *authorization.AuthInfo) (*authorization.Claims, error) {
	// TLSSubject is the verified client certificate's (the interceptor takes
	// it from the verified chain), never something the client says.
	if ai.TLSSubject != nil && m.systemCNs[ai.TLSSubject.CommonName] {
		return &authorization.Claims{Subject: "system:" + ai.TLSSubject.CommonName, System: authorization.RoleAdmin}, nil
	}
	if ai.AuthToken == "" {
		return &authorization.Claims{Extensions: mapped{refusal: errNoToken}}, nil
	}
	tok, ok := strings.CutPrefix(ai.AuthToken, "Bearer ")
	if !ok {
		return &authorization.Claims{Extensions: mapped{refusal: errors.New("the authorization header is not a bearer token")}}, nil
	}
	c, err := m.verifier.Verify(strings.TrimSpace(tok), m.now())
	if err != nil {
		return &authorization.Claims{Extensions: mapped{refusal: err}}, nil
	}
	return &authorization.Claims{Subject: c.Subject, Extensions: mapped{token: c}}, nil
}

// AuthInfoRequired: a call with neither a client certificate nor a token
// gets no claims at all (and the authorizer refuses it).
func (m *claimMapper) AuthInfoRequired() bool { return true }

// authorizer decides by the roles of mailwave's access tokens.
type authorizer struct {
	logger log.Logger
}

var (
	allow = authorization.Result{Decision: authorization.DecisionAllow}
)

func deny(reason string) authorization.Result {
	return authorization.Result{Decision: authorization.DecisionDeny, Reason: reason}
}

func (a *authorizer) Authorize(_ context.Context, claims *authorization.Claims, t *authorization.CallTarget) (authorization.Result, error) {
	if authorization.IsHealthCheckAPI(t.APIName) {
		return allow, nil
	}
	if claims == nil {
		return deny(errNoToken.Error()), nil
	}
	if claims.System == authorization.RoleAdmin {
		return allow, nil
	}
	m, _ := claims.Extensions.(mapped)
	if m.refusal != nil {
		a.refused("-", t, m.refusal.Error())
		return deny(m.refusal.Error()), nil
	}
	if m.token.Subject == "" {
		return deny(errNoToken.Error()), nil
	}
	ok, reason := decide(m.token, t)
	if !ok {
		a.refused(m.token.Identity(), t, reason)
		return deny(reason), nil
	}
	return allow, nil
}

func (a *authorizer) refused(who string, t *authorization.CallTarget, reason string) {
	a.logger.Warn("access refused", tag.NewStringTag("who", who), tag.NewStringTag("api", api.MethodName(t.APIName)),
		tag.WorkflowNamespace(t.Namespace), tag.NewStringTag("reason", reason))
}

// decide is the roles' rule: what a verified token may call.
func decide(c accesstoken.Claims, t *authorization.CallTarget) (bool, string) {
	method := api.MethodName(t.APIName)
	who := c.Identity()
	if t.Namespace != "" && t.Namespace != c.Namespace {
		return false, fmt.Sprintf("%s: the token is for namespace %q, not %q", who, c.Namespace, t.Namespace)
	}
	if c.Has(accesstoken.Admin) {
		return true, ""
	}
	md := api.GetMethodMetadata(t.APIName)
	service := api.ServiceName(t.APIName)
	public := service == api.WorkflowServicePrefix || service == api.OperatorServicePrefix
	if (c.Has(accesstoken.Viewer) || c.Has(accesstoken.Operator)) && public && md.Access == api.AccessReadOnly {
		return true, ""
	}
	if c.Has(accesstoken.Operator) && service == api.WorkflowServicePrefix && operatorWrites[method] {
		return true, ""
	}
	if c.Has(accesstoken.Worker) && service == api.WorkflowServicePrefix {
		if ok, reason := workerMay(method, t.Request); ok {
			return true, ""
		} else if reason != "" {
			return false, who + ": " + reason
		}
	}
	return false, fmt.Sprintf("%s may not call %s", who, method)
}

// operatorWrites are what an operator may change, beyond reading: start,
// signal, update, cancel, terminate and reset workflows, and the
// programme's schedules. Not polls or task completions (a worker's), nor
// namespaces, search attributes, deployments or batch jobs (an admin's).
var operatorWrites = map[string]bool{
	"StartWorkflowExecution":           true,
	"SignalWorkflowExecution":          true,
	"SignalWithStartWorkflowExecution": true,
	"UpdateWorkflowExecution":          true,
	"ExecuteMultiOperation":            true, // update-with-start
	"RequestCancelWorkflowExecution":   true,
	"TerminateWorkflowExecution":       true,
	"ResetWorkflowExecution":           true,
	"CreateSchedule":                   true,
	"UpdateSchedule":                   true,
	"PatchSchedule":                    true, // trigger, pause, unpause
	"DeleteSchedule":                   true,
}

// workerTasks are a worker's own calls: polling, completing and failing
// its tasks, heartbeats, the SDK's reads of the namespace and the system,
// and its Worker Deployment version (`worker --build-id --set-current`).
var workerTasks = map[string]bool{
	"PollWorkflowTaskQueue":            true,
	"RespondWorkflowTaskCompleted":     true,
	"RespondWorkflowTaskFailed":        true,
	"PollActivityTaskQueue":            true,
	"RecordActivityTaskHeartbeat":      true,
	"RecordActivityTaskHeartbeatById":  true,
	"RespondActivityTaskCompleted":     true,
	"RespondActivityTaskCompletedById": true,
	"RespondActivityTaskFailed":        true,
	"RespondActivityTaskFailedById":    true,
	"RespondActivityTaskCanceled":      true,
	"RespondActivityTaskCanceledById":  true,
	"RespondQueryTaskCompleted":        true,
	"PollNexusTaskQueue":               true,
	"RespondNexusTaskCompleted":        true,
	"RespondNexusTaskFailed":           true,
	"ResetStickyTaskQueue":             true,
	"ShutdownWorker":                   true,
	"RecordWorkerHeartbeat":            true,
	"FetchWorkerConfig":                true,
	"DescribeNamespace":                true,
	"GetClusterInfo":                   true,
	// The wave's and the programme's activities look a workflow up and
	// wait for a wave's result.
	"DescribeWorkflowExecution":   true,
	"GetWorkflowExecutionHistory": true,
	// --set-current.
	"DescribeWorkerDeployment":          true,
	"DescribeWorkerDeploymentVersion":   true,
	"SetWorkerDeploymentCurrentVersion": true,
}

// workerSignals are the signals mailwave's activities send a wave: a
// mailbox's end and its pre-stage request and release. Never pause, resume,
// cancel, set-cap or retry-failed, which are an operator's.
var workerSignals = map[string]bool{
	contract.SignalMailboxDone:     true,
	contract.SignalPrestageRequest: true,
	contract.SignalPrestageRelease: true,
}

// poolSignals are those a worker's SignalWave sends the tenant's pre-stage
// pool (signal-with-start): a pass's request and release, a wave's hold.
// Never its cap, which is an operator's.
var poolSignals = map[string]bool{
	contract.SignalPrestageRequest:  true,
	contract.SignalPrestageRelease:  true,
	contract.SignalPrestagePoolHold: true,
}

// workerMay is the worker's rule. Beyond its tasks, exactly the writes
// mailwave's activities make through the worker's client: the wave's
// StartMailboxes starts MailboxMigration workflows, its CancelMailboxes
// cancels them, and a mailbox's ReportMailboxDone and SignalWave signal its
// wave (or signal-with-start the tenant's pre-stage pool, as does a wave's
// hold). reason is set when the call is one of those but the request is
// not.
func workerMay(method string, req any) (ok bool, reason string) {
	if workerTasks[method] {
		return true, ""
	}
	mailbox := contract.MailboxWorkflowID("")
	wave := contract.WaveWorkflowID("")
	pool := contract.PrestagePoolWorkflowID("")
	switch r := req.(type) {
	case *workflowservice.StartWorkflowExecutionRequest:
		if r.GetWorkflowType().GetName() == contract.MailboxWorkflowName && strings.HasPrefix(r.GetWorkflowId(), mailbox) &&
			r.GetTaskQueue().GetName() == contract.TaskQueue {
			// Only as the start rule starts one (internal/control): never
			// over a running or completed migration, never with callbacks.
			if why := workerStartPolicy(r); why != "" {
				return false, why
			}
			return true, ""
		}
		return false, fmt.Sprintf("a worker starts only %s workflows (%s...) on task queue %s, not %s",
			contract.MailboxWorkflowName, mailbox, contract.TaskQueue, r.GetWorkflowType().GetName())
	case *workflowservice.SignalWorkflowExecutionRequest:
		if workerSignals[r.GetSignalName()] && strings.HasPrefix(r.GetWorkflowExecution().GetWorkflowId(), wave) {
			return true, ""
		}
		return false, fmt.Sprintf("a worker sends a wave only %s, %s or %s, not %q",
			contract.SignalMailboxDone, contract.SignalPrestageRequest, contract.SignalPrestageRelease, r.GetSignalName())
	case *workflowservice.SignalWithStartWorkflowExecutionRequest:
		// A pass's request or release, or a wave's hold, to the tenant's
		// pre-stage pool, which the first one starts.
		if poolSignals[r.GetSignalName()] && r.GetWorkflowType().GetName() == contract.PrestagePoolWorkflowName &&
			strings.HasPrefix(r.GetWorkflowId(), pool) && r.GetTaskQueue().GetName() == contract.TaskQueue {
			// Signal the running pool, or start one: never terminate it.
			switch {
			case r.GetWorkflowIdConflictPolicy() != enumspb.WORKFLOW_ID_CONFLICT_POLICY_UNSPECIFIED &&
				r.GetWorkflowIdConflictPolicy() != enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING:
				return false, fmt.Sprintf("a worker may not signal-with-start the pool with conflict policy %s", r.GetWorkflowIdConflictPolicy())
			case r.GetWorkflowIdReusePolicy() == enumspb.WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING:
				return false, "a worker may not signal-with-start the pool with reuse policy TERMINATE_IF_RUNNING"
			}
			return true, ""
		}
		return false, fmt.Sprintf("a worker signals-with-start only the tenant's pre-stage pool (%s..., %s, %s or %s), not %s %q",
			pool, contract.SignalPrestageRequest, contract.SignalPrestageRelease, contract.SignalPrestagePoolHold,
			r.GetWorkflowType().GetName(), r.GetSignalName())
	case *workflowservice.RequestCancelWorkflowExecutionRequest:
		if strings.HasPrefix(r.GetWorkflowExecution().GetWorkflowId(), mailbox) {
			return true, ""
		}
		return false, "a worker cancels only mailbox workflows (a wave's cancel, carried out)"
	}
	return false, ""
}

// identityInterceptor writes the verified name over the identity a request
// claims (its own, and those of the requests it carries: an update's, a
// multi-operation's), so that history records who really did it, e.g.
// "alice (operator)". It runs after the authorization interceptor, which
// put the mapped claims in the context; the server's own calls keep theirs.
func identityInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if c, ok := ctx.Value(authorization.MappedClaims).(*authorization.Claims); ok && c != nil {
		if m, ok := c.Extensions.(mapped); ok && m.refusal == nil && m.token.Subject != "" {
			if msg, ok := req.(proto.Message); ok {
				setIdentity(msg.ProtoReflect(), m.token.Identity(), 0)
			}
		}
	}
	return handler(ctx, req)
}

// setIdentity sets every string field named identity in m and in the
// messages it holds, to a depth of 5 (an ExecuteMultiOperation's update's
// meta is 4 down).
func setIdentity(m protoreflect.Message, id string, depth int) {
	if depth > 5 {
		return
	}
	if fd := m.Descriptor().Fields().ByName("identity"); fd != nil && fd.Kind() == protoreflect.StringKind && !fd.IsList() {
		m.Set(fd, protoreflect.ValueOfString(id))
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := range l.Len() {
				setIdentity(l.Get(i).Message(), id, depth+1)
			}
			return true
		}
		setIdentity(v.Message(), id, depth+1)
		return true
	})
}

// workerStartPolicy refuses a worker's start of a mailbox that could end
// or repeat another run: a conflict policy other than fail, a reuse policy
// that lets a completed or running migration be started again, or
// completion callbacks and conflict options (ways to act on other runs).
func workerStartPolicy(r *workflowservice.StartWorkflowExecutionRequest) string {
	switch c := r.GetWorkflowIdConflictPolicy(); c {
	case enumspb.WORKFLOW_ID_CONFLICT_POLICY_UNSPECIFIED, enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL:
	default:
		return fmt.Sprintf("a worker starts a mailbox only with conflict policy FAIL, not %s", c)
	}
	switch p := r.GetWorkflowIdReusePolicy(); p {
	case enumspb.WORKFLOW_ID_REUSE_POLICY_UNSPECIFIED, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE:
	default:
		return fmt.Sprintf("a worker starts a mailbox only with reuse policy ALLOW_DUPLICATE_FAILED_ONLY or REJECT_DUPLICATE, not %s", p)
	}
	if len(r.GetCompletionCallbacks()) > 0 || r.GetOnConflictOptions() != nil {
		return "a worker starts a mailbox without completion callbacks or conflict options"
	}
	return ""
}

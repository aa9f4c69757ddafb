package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/types/known/durationpb"

	"mailwave/contract/searchattr"
	"mailwave/testkit"
)

// The search attributes printed are the contract's; `create` registers them
// in a namespace that lacks them, and a second run keeps them.
func TestSearchAttributesFromTheContract(t *testing.T) {
	out, code := runStarter(t, "search-attributes")
	require.Zero(t, code, out)
	assert.Equal(t, "MailwaveStage=Keyword\nMailwaveStageSince=Datetime\nMailwaveWave=Keyword\n"+
		"MailwaveOrg=Keyword\nMailwaveErrorType=Keyword\nMailwavePaused=Bool\n", out)

	srv := testkit.NewDevServer(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const ns = "fresh"
	_, err := srv.Client().WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace: ns, WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
	})
	require.NoError(t, err)

	server := []string{"--temporal-address", srv.FrontendHostPort(), "--namespace", ns}
	out, code = runStarter(t, append([]string{"search-attributes", "create", "--wait", "30s"}, server...)...)
	require.Zero(t, code, out)
	for _, k := range searchattr.All {
		assert.Contains(t, out, "created search attribute "+k.GetName())
	}
	have, err := srv.Client().OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	require.NoError(t, err)
	for _, k := range searchattr.All {
		assert.Equal(t, k.GetValueType(), have.GetCustomAttributes()[k.GetName()], k.GetName())
	}

	out, code = runStarter(t, append([]string{"search-attributes", "create"}, server...)...)
	require.Zero(t, code, out)
	assert.Contains(t, out, "search attribute MailwaveWave (Keyword) already exists")
	assert.NotContains(t, out, "created")
}

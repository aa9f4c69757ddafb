package control

import (
	"context"
	"fmt"
	"strings"
	"time"

	"mailwave/contract/searchattr"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// EnsureSearchAttributes adds to namespace ns the contract's search
// attributes it lacks, and returns the names it created and those already
// there. One already there with another type is an error naming both types.
func EnsureSearchAttributes(ctx context.Context, c client.Client, ns string) (created, existing []string, err error) {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		return nil, nil, fmt.Errorf("listing the search attributes of namespace %q: %w", ns, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, k := range searchattr.All {
		got, ok := have.GetCustomAttributes()[k.GetName()]
		switch {
		case !ok:
			missing[k.GetName()] = k.GetValueType()
			created = append(created, k.GetName())
		case got != k.GetValueType():
			return nil, nil, fmt.Errorf("namespace %q has search attribute %s of type %s; mailwave needs %s",
				ns, k.GetName(), got, searchattr.Type(k))
		default:
			existing = append(existing, k.GetName())
		}
	}
	if len(missing) == 0 {
		return nil, existing, nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: ns, SearchAttributes: missing,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("adding search attributes to namespace %q: %w", ns, err)
	}
	return created, existing, nil
}

// AwaitSearchAttributes waits until the server accepts a visibility query
// that names every search attribute of the contract: a server answers
// queries from a cache of its search attributes, which may lag their
// registration by seconds.
func AwaitSearchAttributes(ctx context.Context, c client.Client, ns string) error {
	parts := make([]string, 0, len(searchattr.All))
	for _, k := range searchattr.All {
		v := "'x'"
		switch k.GetValueType() {
		case enumspb.INDEXED_VALUE_TYPE_BOOL:
			v = "true"
		case enumspb.INDEXED_VALUE_TYPE_DATETIME:
			v = "'2000-01-01T00:00:00Z'"
		}
		parts = append(parts, k.GetName()+" = "+v)
	}
	query := strings.Join(parts, " AND ")
	for {
		_, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: ns, PageSize: 1, Query: query})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("namespace %q: the server does not yet take queries on mailwave's search attributes: %w", ns, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

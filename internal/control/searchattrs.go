package control

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"

	"mailwave/contract"
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
	for _, k := range contract.SearchAttributes {
		got, ok := have.GetCustomAttributes()[k.GetName()]
		switch {
		case !ok:
			missing[k.GetName()] = k.GetValueType()
			created = append(created, k.GetName())
		case got != k.GetValueType():
			return nil, nil, fmt.Errorf("namespace %q has search attribute %s of type %s; mailwave needs %s",
				ns, k.GetName(), got, contract.SearchAttributeType(k))
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

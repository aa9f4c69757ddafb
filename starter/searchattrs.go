package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"

	"mailwave/contract"
	"mailwave/internal/connect"
)

// newSearchAttributesCmd prints mailwave's search attributes (the one list,
// contract.SearchAttributes) for the Makefile, the demo and the deploy
// files, and creates them on a server.
func newSearchAttributesCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "search-attributes",
		Short: "Print mailwave's search attributes, one NAME=TYPE a line",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, sa := range contract.SearchAttributeFlags() {
				fmt.Fprintln(a.out, sa)
			}
			return nil
		},
	}
	var wait time.Duration
	create := &cobra.Command{
		Use:   "create",
		Short: "Register mailwave's search attributes in the namespace (those already there are kept)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			deadline := time.Now().Add(wait)
			for {
				err := a.createSearchAttributes(ctx)
				if err == nil || !retryable(err) || time.Now().After(deadline) {
					return err
				}
				fmt.Fprintf(a.out, "waiting for the server: %v\n", err)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(2 * time.Second):
				}
			}
		},
	}
	create.Flags().DurationVar(&wait, "wait", 0, "keep trying this long while the server or its namespace is not up yet")
	cmd.AddCommand(create)
	return cmd
}

// createSearchAttributes adds the search attributes the namespace lacks.
// One already there with another type is an error naming both types.
func (a *app) createSearchAttributes(ctx context.Context) error {
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ns := a.temporal.Namespace
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		return fmt.Errorf("listing the search attributes of namespace %q: %w", ns, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, k := range contract.SearchAttributes {
		got, ok := have.GetCustomAttributes()[k.GetName()]
		switch {
		case !ok:
			missing[k.GetName()] = k.GetValueType()
		case got != k.GetValueType():
			return fmt.Errorf("namespace %q has search attribute %s of type %s; mailwave needs %s",
				ns, k.GetName(), got, contract.SearchAttributeType(k))
		default:
			fmt.Fprintf(a.out, "search attribute %s (%s) already exists\n", k.GetName(), contract.SearchAttributeType(k))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: ns, SearchAttributes: missing,
	})
	if err != nil {
		return fmt.Errorf("adding search attributes to namespace %q: %w", ns, err)
	}
	for _, k := range contract.SearchAttributes {
		if _, ok := missing[k.GetName()]; ok {
			fmt.Fprintf(a.out, "created search attribute %s (%s)\n", k.GetName(), contract.SearchAttributeType(k))
		}
	}
	return nil
}

// retryable is an error that waiting may cure: the server not up yet, or
// its namespace not registered yet.
func retryable(err error) bool {
	var unavailable *serviceerror.Unavailable
	var notFound *serviceerror.NamespaceNotFound
	var nf *serviceerror.NotFound
	return errors.As(err, &unavailable) || errors.As(err, &notFound) || errors.As(err, &nf) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, connect.ErrUnreachable)
}

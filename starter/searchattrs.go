package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/api/serviceerror"

	"mailwave/contract/searchattr"
	"mailwave/internal/connect"
	"mailwave/internal/control"
)

// newSearchAttributesCmd prints mailwave's search attributes (the one list,
// searchattr.All) for the Makefile, the demo and the deploy
// files, and creates them on a server.
func newSearchAttributesCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "search-attributes",
		Short: "Print mailwave's search attributes, one NAME=TYPE a line",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, sa := range searchattr.Flags() {
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

// createSearchAttributes adds the search attributes the namespace lacks,
// saying which it created and which were there.
func (a *app) createSearchAttributes(ctx context.Context) error {
	c, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	created, existing, err := control.EnsureSearchAttributes(ctx, c, a.temporal.Namespace)
	if err != nil {
		return err
	}
	types := map[string]string{}
	for _, k := range searchattr.All {
		types[k.GetName()] = searchattr.Type(k)
	}
	for _, name := range existing {
		fmt.Fprintf(a.out, "search attribute %s (%s) already exists\n", name, types[name])
	}
	for _, name := range created {
		fmt.Fprintf(a.out, "created search attribute %s (%s)\n", name, types[name])
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

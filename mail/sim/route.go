package sim

import (
	"context"

	"mailwave/contract"
	"mailwave/mail/port"
)

// Route returns where the mailbox's mail is delivered: the source until it
// is cut over.
func (e *Estate) Route(ctx context.Context, m contract.MailboxRef) (port.Route, error) {
	index, err := e.lookup(m)
	if err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	// State files are replaced by rename, so reading needs no lock.
	st, err := e.load(m.Key, index)
	if err != nil {
		return "", err
	}
	return st.route(), nil
}

// Cutover points the mailbox at the target. It succeeds without a change if
// it already is; the state counts changes and no-ops apart.
func (e *Estate) Cutover(ctx context.Context, m contract.MailboxRef) error {
	index, err := e.lookup(m)
	if err != nil {
		return err
	}
	unlock, err := e.locks.lock(ctx, m.Key)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := e.load(m.Key, index)
	if err != nil {
		return err
	}
	if ferr := e.injectFault(st, "cutover"); ferr != nil {
		if err := e.save(st); err != nil {
			return err
		}
		return ferr
	}
	if st.route() == port.RouteTarget {
		st.CutoverNoops++
	} else {
		st.Route = port.RouteTarget
		st.Cutovers++
	}
	return e.save(st)
}

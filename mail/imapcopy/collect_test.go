package imapcopy

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"mailwave/contract"
	"mailwave/mail/adapt"
)

// answeredWith is a batch of one message sent through the appender, its
// answer already there.
func answeredWith(err error) *batch {
	ch := make(chan error, 1)
	ch <- err
	return &batch{items: []item{{m: meta{uid: 1, size: 10}}}, answers: []<-chan error{ch}}
}

// TestARefusalBehindALostAnswerStillSlowsTheCopy: a target that drops the
// connection when it refuses a batch loses the answer of the batch before
// it, still being stored. The lane fails on that one; the refusal it had
// already read still reaches the worker's rate (it did not, and a copy
// through such a target was never slowed: CI saw six attempts end alike).
func TestARefusalBehindALostAnswerStillSlowsTheCopy(t *testing.T) {
	ep := Endpoint{Host: "127.0.0.1", Port: 1, Security: SecurityNone}
	r := adapt.New(adapt.Options{Name: "test"})
	c, err := New(Options{Source: ep, Target: ep, Rate: r, Credentials: func(context.Context, Side, contract.MailboxRef) (Credentials, error) {
		return Credentials{}, errors.New("not used")
	}})
	require.NoError(t, err)
	j := &job{ctx: context.Background(), c: c, key: "k-alice", cp: contract.Checkpoint{Folders: map[string]contract.FolderCheckpoint{"INBOX": {}}}}

	sent := make(chan *batch, 3)
	sent <- answeredWith(io.EOF)                                                                          // its answer lost with the connection
	sent <- answeredWith(statusError("NO Request is throttled."))                                         // the refusal that dropped it
	sent <- &batch{items: []item{{m: meta{uid: 3, size: 10}}}, answers: []<-chan error{make(chan error)}} // never answered
	close(sent)
	err = j.collect(context.Background(), nil, folder{src: "INBOX", tgt: "INBOX"}, nil, sent)
	require.Error(t, err)
	assert.ErrorIs(t, err, io.EOF, "the lane fails on the lost answer")
	s := r.Snapshot()
	assert.Equal(t, int64(1), s.Throttled, "the refusal read is counted")
	assert.Equal(t, 1, s.Cuts, "and slows the copy")
	assert.Zero(t, j.stats.Items, "nothing is taken for done")
}

package codec

import (
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"
)

// Interceptor drops, before it reaches the workflow, a signal whose
// payloads the codec does not open: under a strict codec, a signal sent by
// a client without the key. Without it the SDK puts the signal on its
// channel and fails to decode it when the workflow receives it, and a
// workflow receiving in a selector's callback (as mailwave's do) then fails
// its workflow task on every retry: one signal without the key would stall
// a mailbox for good. A workflow's input needs no interceptor: the SDK
// fails the workflow at once when its input does not decode, and an update
// whose input does not decode is rejected.
//
// It is a client interceptor too, so that it can ride in client.Options
// (internal/connect): the SDK hands a client's interceptors that are also
// worker interceptors to every worker built from that client.
func Interceptor(c *Codec) interface {
	interceptor.ClientInterceptor
	interceptor.WorkerInterceptor
} {
	return &signals{codec: c}
}

type signals struct {
	interceptor.ClientInterceptorBase
	interceptor.WorkerInterceptorBase
	codec *Codec
}

func (s *signals) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &signalsInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, codec: s.codec}
}

type signalsInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	codec *Codec
}

// HandleSignal opens the signal's payloads (deterministically: the same
// payloads and key ring give the same answer on replay) and drops the
// signal if they do not open, logging why (the error names no content).
func (i *signalsInbound) HandleSignal(ctx workflow.Context, in *interceptor.HandleSignalInput) error {
	if ps := in.Arg.GetPayloads(); len(ps) > 0 {
		if _, err := i.codec.Decode(ps); err != nil {
			workflow.GetLogger(ctx).Warn("signal dropped: its payload does not open", "Signal", in.SignalName, "Error", err)
			return nil
		}
	}
	return i.Next.HandleSignal(ctx, in)
}

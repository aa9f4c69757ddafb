package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"mailwave/starter/printer"
)

// addOutputFlag adds --output to a status, list or report command.
func addOutputFlag(cmd *cobra.Command, f *printer.Format) {
	*f = printer.Text
	cmd.Flags().VarP(f, "output", "o", "output format: "+printer.Formats+" (the same fields in each)")
}

// printerFor is the printer of a command's standard output.
func printerFor(cmd *cobra.Command, f printer.Format) printer.Printer {
	return printer.Printer{Out: cmd.OutOrStdout(), Format: f}
}

// note tells the operator something beside the output: after the output
// in text, on standard error in json and jsonl (which stay parseable).
func note(cmd *cobra.Command, p printer.Printer, format string, args ...any) {
	w := cmd.ErrOrStderr()
	if p.IsText() {
		w = p.Out
	}
	fmt.Fprintf(w, format+"\n", args...)
}

// converters are the data and failure converters of the client the
// connection builder makes (the payload codec over the SDK's defaults):
// what memos and failures listed or described are decoded with.
func (a *app) converters() (converter.DataConverter, converter.FailureConverter, error) {
	opts, err := a.temporal.ClientOptions(nil)
	if err != nil {
		return nil, nil, err
	}
	dc, fc := opts.DataConverter, opts.FailureConverter
	if dc == nil {
		dc = converter.GetDefaultDataConverter()
	}
	if fc == nil {
		fc = temporal.GetDefaultFailureConverter()
	}
	return dc, fc, nil
}

// progress reports a long listing on standard error: nothing for the first
// second, then at most once a second (one line rewritten on a terminal, a
// line each time otherwise), and a last line if anything was shown.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	start time.Time
	last  time.Time
	shown bool
	line  string
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, tty: isTerminal(w), start: time.Now()}
}

// isTerminal reports whether w is a terminal (a character device), where a
// line may be redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// show sets what the progress line says, printing it when due.
func (p *progress) show(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line = fmt.Sprintf(format, args...)
	now := time.Now()
	if now.Sub(p.start) < time.Second || now.Sub(p.last) < time.Second {
		return
	}
	p.last, p.shown = now, true
	p.print()
}

// done prints the last line, if any was shown before.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.shown {
		return
	}
	p.print()
	if p.tty {
		fmt.Fprintln(p.w)
	}
	p.shown = false
}

func (p *progress) print() {
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", p.line)
		return
	}
	fmt.Fprintln(p.w, p.line)
}

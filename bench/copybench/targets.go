package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"mailwave/testkit/dovecot"
)

// targetOptions configures a case's target server.
func (b *bench) targetOptions(c benchCase) dovecot.Options {
	o := dovecot.Options{Users: []dovecot.User{{Name: user, Password: password}}, Plaintext: true}
	if c.noMultiAppend {
		o.IMAPCapability = b.literalPlusCaps
	}
	return o
}

// checkTargets makes sure each case's target advertises what the case
// says, before login and after. The literalplus target's list is Dovecot's
// own after login, less MULTIAPPEND (read off a target as it comes), so
// that nothing else differs; before login Dovecot then advertises the
// whole list too, as Exchange does.
func (b *bench) checkTargets() error {
	own, err := b.advertisedBy("probe-own", b.targetOptions(benchCase{}))
	if err != nil {
		return err
	}
	logf("a target as it comes advertises, before login: %s; after: %s", strings.Join(own.before, " "), strings.Join(own.after, " "))
	if !has(own.after, "MULTIAPPEND") || !has(own.after, "LITERAL+") {
		return fmt.Errorf("a Dovecot target as it comes lacks MULTIAPPEND or LITERAL+ after login (it lists %s): the cases would not be what they say",
			strings.Join(own.after, " "))
	}
	if !slices.ContainsFunc(b.o.cases, func(c benchCase) bool { return c.noMultiAppend }) {
		return nil
	}
	want := without(own.after, "MULTIAPPEND")
	b.literalPlusCaps = strings.Join(want, " ")
	lp, err := b.advertisedBy("probe-literalplus", b.targetOptions(benchCase{noMultiAppend: true}))
	if err != nil {
		return err
	}
	logf("the literalplus target advertises, before login: %s; after: %s", strings.Join(lp.before, " "), strings.Join(lp.after, " "))
	if has(lp.before, "MULTIAPPEND") || !has(lp.before, "LITERAL+") || !slices.Equal(lp.after, want) {
		return fmt.Errorf("the literalplus target should list LITERAL+ but not MULTIAPPEND before login, and %q after; it lists %q before and %q after",
			b.literalPlusCaps, strings.Join(lp.before, " "), strings.Join(lp.after, " "))
	}
	return nil
}

// advertisedBy starts a server, reads what it advertises and stops it.
func (b *bench) advertisedBy(name string, o dovecot.Options) (advertised, error) {
	srv, err := dovecot.Start(filepath.Join(b.dir, name), o)
	if err != nil {
		return advertised{}, fmt.Errorf("%s: %w", name, err)
	}
	defer b.remove(srv)
	return readAdvertised(srv.Addr())
}

// startLatency puts the source behind a latency proxy; the targets get
// theirs as they start.
func (b *bench) startLatency() (stop func(), err error) {
	b.srcProxyPort, stop, err = startProxy(b.src.Addr())
	return stop, err
}

// measureRTT times NOOPs through the source's proxy and through a
// target's, and returns their median. A proxy that does not delay as
// asked is an error: the case would not be what it says.
func (b *bench) measureRTT() (time.Duration, error) {
	direct, err := noopRTT(b.src.Addr(), 5)
	if err != nil {
		return 0, err
	}
	viaSource, err := noopRTT(loopback(b.srcProxyPort), 5)
	if err != nil {
		return 0, err
	}
	t, err := b.startTarget(benchCase{name: "probe", latency: true}, "probe-rtt")
	if err != nil {
		return 0, err
	}
	defer t.stop()
	viaTarget, err := noopRTT(loopback(t.tgtPort), 5)
	if err != nil {
		return 0, err
	}
	logf("NOOP round trip: %s direct, %s through the source's proxy, %s through a target's (medians of 5)",
		median(direct), median(viaSource), median(viaTarget))
	if m := min(median(viaSource), median(viaTarget)); m < proxyRTT*9/10 {
		return 0, fmt.Errorf("a NOOP through a latency proxy took %s, want about %s: the proxy does not delay as asked", m, proxyRTT)
	}
	return median(append(viaSource, viaTarget...)), nil
}

// copyTarget is a fresh, empty target for one copy, and the ports at which
// the copier is to reach the source and it (the latency proxies' in a case
// with latency).
type copyTarget struct {
	b                *bench
	srv              *dovecot.Server
	srcPort, tgtPort int
	stopProxy        func()
}

// startTarget starts a case's target for one copy (and its proxy).
func (b *bench) startTarget(c benchCase, name string) (*copyTarget, error) {
	srv, err := dovecot.Start(filepath.Join(b.dir, name), b.targetOptions(c))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	t := &copyTarget{b: b, srv: srv, srcPort: b.src.Port, tgtPort: srv.Port, stopProxy: func() {}}
	if !c.latency {
		return t, nil
	}
	t.srcPort = b.srcProxyPort
	t.tgtPort, t.stopProxy, err = startProxy(srv.Addr())
	if err != nil {
		b.remove(srv)
		return nil, err
	}
	return t, nil
}

// copied ends the copy's proxy; the target is checked directly.
func (t *copyTarget) copied() { t.stopProxy() }

// stop ends the proxy and the target and, unless -keep, removes the
// target's files (a 1 GB run would otherwise keep a copy for every
// target).
func (t *copyTarget) stop() {
	t.stopProxy()
	t.b.remove(t.srv)
}

// remove stops a server and, unless -keep, removes its directory.
func (b *bench) remove(srv *dovecot.Server) {
	if err := srv.Stop(); err != nil {
		logf("stopping %s: %v", srv.Dir, err)
	}
	if b.o.keep {
		return
	}
	if err := os.RemoveAll(srv.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		logf("removing %s: %v", srv.Dir, err)
	}
}

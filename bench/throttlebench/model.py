#!/usr/bin/env python3
"""A discrete-event model of throttlebench's adaptive case, to search
mail/adapt's rule in seconds where the real benchmark takes two minutes a
run and four to six cuts a run tell two rules apart only over dozens of
runs. Its figures are the model's, not the benchmark's: bench/throttlebench/NOTES.md quotes
the benchmark's, and says where the model's were used.

What it models, after the Go code:
  - the proxy (testkit/throttleproxy): one token bucket of L
    bytes a second, a second of burst, a command taking all of its bytes
    at once or refused with the back-off until they would fit;
  - each worker's copier (mail/imapcopy): the benchmark's two mailboxes at
    once, each over two lanes (imapcopy's Lanes), each lane with up to four
    MULTIAPPEND batches in flight (one awaited by the collector, two
    queued, one sent while the fetcher waits to queue it), a batch being
    whole messages (at most 32) up to the rate's Batch, through the rate a
    MiB at a time; a refused batch is waited out and sent again, through
    the rate, before the lane's later answers are read;
  - each worker's Rate (mail/adapt), line by line: slow start, the
    doubling test, the cut from half the doubling rate or from what was
    sent, Quiet counted from when the refused batch was sent, the dip and
    the climb back (Recover) to Keep of the refused rate, the Step, the cap
    at twice what is sent, the limiter's reservations;
  - the benchmark's messages: log-normal sizes (imaptest.GenerateBulk),
    1,600 a mailbox, 64 MiB.
Not modelled: mailboxes' and folders' ends (a lane here never runs dry),
the source's fetch time beyond a fixed speed, the network, dropped
connections' reconnects, CPU.

Usage: model.py [name=key:value,key:value ...]  (N=runs in the environment)
The rule in place runs first, as `now`; each argument is a variant of it,
its keys those of RULE and SCENARIO below. For example, the factors before
2026-12-01's change, a worker alone, and a worker starting 5 s late:
  N=100 python3 bench/throttlebench/model.py \
    before=decrease:0.7,keep:0.85,ss_cut:0.7,ss_keep:1 \
    alone=workers:1 late=late:5,T:240,warm:60
"""
import heapq
import math
import os
import random
import statistics
import sys

MiB = 1 << 20
KiB = 1 << 10

# The rule in place (mail/adapt's defaults and constants).
RULE = dict(start=4 * MiB, decrease=0.6, keep=0.975, ss_cut=0.5, ss_keep=0.6,
            quiet=1.0, step=64 * KiB, recover=3.0, cadence=0.1)
# The benchmark's scenario: seconds, the warm-up not counted, the limit
# halved at `halve` (0: never), worker 1 starting `late` seconds after
# worker 0, and each worker's start spread at random over `jitter` seconds.
SCENARIO = dict(T=60.0, warm=15.0, L=16 * MiB, workers=2, halve=0.0, late=0.0, jitter=0.3,
                lanes=4, in_flight=4)


class Limiter:
    """golang.org/x/time/rate's reservations: tokens may go negative."""

    def __init__(self, r, burst, now):
        self.r, self.burst, self.tokens, self.last = r, burst, burst, now

    def advance(self, now):
        if now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.r)
            self.last = now

    def reserve(self, n, now):
        self.advance(now)
        self.tokens -= n
        return now if self.tokens >= 0 else now + -self.tokens / self.r

    def set_limit(self, r, now):
        self.advance(now)
        self.r = r


class Rate:
    """mail/adapt.Rate."""

    def __init__(self, p, now, rng):
        self.p, self.rng = p, rng
        self.rate = p['start']
        self.lim = Limiter(self.rate, MiB, now)
        self.slow_start = True
        self.mark_rate, self.mark_at, self.prev_mark = 0.0, -9.0, 0.0
        self.peak, self.last_cut, self.last_sent, self.last_grow = 0.0, None, None, now
        self.win_start, self.win_bytes, self.sent, self.sent_at = now, 0.0, 0.0, -99.0
        self.cuts = 0

    def batch(self):
        return max(int(self.rate * self.p['cadence'] * (0.5 + self.rng.random())), 64 * KiB)

    def wait_step(self, n, now):
        """One WaitN of Wait's loop: n at most a MiB; when it returns."""
        t = self.lim.reserve(n, now)
        self.count_sent(t, n)
        return t

    def count_sent(self, now, n):
        if self.last_sent is not None and now - self.last_sent > 1:
            self.win_start, self.win_bytes = now, 0.0
        self.last_sent = now
        self.win_bytes += n
        if now - self.win_start >= 1:
            self.sent, self.sent_at = self.win_bytes / (now - self.win_start), now
            self.win_start, self.win_bytes = now, 0.0

    def accepted(self, now):
        p = self.p
        dt = min(now - self.last_grow, 1.0)
        self.last_grow = now
        if dt <= 0:
            return
        nxt = self.rate
        if self.slow_start:
            nxt *= 2 ** dt
            if now - self.mark_at >= 1:
                self.prev_mark, self.mark_rate, self.mark_at = self.mark_rate, self.rate, now
        elif self.rate < self.peak:
            nxt += (self.peak - self.rate) * (1 - math.exp(-dt / p['recover'])) + p['step'] * dt
        else:
            nxt += p['step'] * dt
        if self.sent > 0 and now - self.sent_at < 5:
            nxt = min(nxt, max(self.rate, 2 * self.sent))
        self.set(nxt, now)

    def doubling(self, now):
        ref = self.prev_mark if now - self.mark_at < 0.5 else self.mark_rate
        return ref > 0 and self.rate >= 1.3 * ref

    def refused(self, sent_at, now):
        p = self.p
        at = min(sent_at, now)  # refused at once; the collector may read it late
        if self.last_cut is not None and at - self.last_cut < p['quiet']:
            return
        self.last_cut = now
        base = self.rate
        fresh = self.sent > 0 and now - self.sent_at < 5
        cut, keep = p['decrease'], p['keep']
        if self.slow_start:
            cut, keep = p['ss_cut'], p['ss_keep']
        if self.slow_start and self.doubling(now):
            base /= 2
            if fresh and self.sent < base / 2:
                base = self.sent
        elif fresh and self.sent < base:
            base = self.sent
        self.peak = base * keep
        self.slow_start = False
        self.last_grow = now
        self.cuts += 1
        self.set(base * cut, now)

    def set(self, v, now):
        self.rate = max(v, 64 * KiB)
        self.lim.set_limit(self.rate, now)


def message_sizes(rng, count=1600, total=64 * MiB):
    w = [math.exp(9.4 + 1.3 * rng.gauss(0, 1)) for _ in range(count)]
    spare, s = total - count * 1024, sum(w)
    return [1024 + int(spare * x / s) for x in w]


class Bucket:
    """The proxy's token bucket; its limit halves at `halve`."""

    def __init__(self, L, halve):
        self.L, self.halve, self.tokens, self.last = L, halve, float(L), 0.0
        self.per_second = {}  # second -> [bytes taken, taken, refused]

    def take(self, n, now):
        limit = self.L / 2 if self.halve and now >= self.halve else self.L
        if now > self.last:
            self.tokens = self.tokens + (now - self.last) * limit
            self.last = now
        self.tokens = min(self.tokens, limit)
        need = min(n, limit)
        sec = self.per_second.setdefault(int(now), [0, 0, 0])
        if self.tokens + 1e-6 >= need:
            self.tokens -= n
            sec[0] += n
            sec[1] += 1
            return True, 0.0
        sec[2] += 1
        return False, (need - self.tokens) / limit


def run(p, seed):
    rng = random.Random(seed)
    T, warm, L, workers, halve = p['T'], p['warm'], p['L'], int(p['workers']), p['halve']
    sources = [message_sizes(random.Random(seed * 7 + i)) for i in range(4)]
    rates = [Rate(p, 0.0, random.Random(seed * 13 + w)) for w in range(workers)]
    bucket = Bucket(L, halve)
    events, seq = [], [0]

    def push(t, kind, data):
        seq[0] += 1
        heapq.heappush(events, (t, seq[0], kind, data))

    counted = [0] * workers  # bytes taken from warm to T (or to the halving)
    at_end = [0] * workers   # bytes taken in the last 20 s, with a halving
    refused = taken = 0
    for w in range(workers):
        start = rng.random() * p['jitter'] + (p['late'] if w == 1 else 0)
        for k in range(int(p['lanes'])):
            lane = dict(w=w, src=sources[(2 * w + k) % 4], pos=rng.randrange(1600), queue=[], wire=0.0, blocked=False)
            push(start + rng.random() * 0.01, 'fetch', lane)

    def build(lane):
        limit, src = min(8 * MiB, rates[lane['w']].batch()), lane['src']
        n, size = 1, src[lane['pos'] % 1600]
        while n < 32 and size + src[(lane['pos'] + n) % 1600] <= limit:
            size += src[(lane['pos'] + n) % 1600]
            n += 1
        lane['pos'] += n
        return size

    def send(b, now):  # through the rate a MiB at a time, then on the wire
        b['left'] = b['size']
        push(now, 'step', b)

    def collect(lane, now):  # answers in order; a refusal is waited out first
        r = rates[lane['w']]
        while lane['queue'] and 'answered' in lane['queue'][0]:
            b = lane['queue'][0]
            if not b['ok']:
                r.refused(b['sent_at'], now)
                del b['answered']
                push(now + b['wait'], 'resend', b)
                return
            r.accepted(now)
            lane['queue'].pop(0)
            if lane['blocked']:
                lane['blocked'] = False
                push(now, 'fetch', lane)

    while events:
        t, _, kind, d = heapq.heappop(events)
        if t > T:
            break
        if kind == 'fetch':
            lane = d
            if len(lane['queue']) >= p['in_flight']:
                lane['blocked'] = True
                continue
            b = dict(size=build(lane), lane=lane, fetching=True)
            lane['queue'].append(b)
            send(b, t + b['size'] / (200 * MiB))
        elif kind == 'step':
            b, lane = d, d['lane']
            step = min(b['left'], MiB)
            go = rates[lane['w']].wait_step(step, t)
            b['left'] -= step
            if b['left'] > 0:
                push(go, 'step', b)
                continue
            b.setdefault('sent_at', go)
            lane['wire'] = max(go, lane['wire']) + b['size'] / (300 * MiB)
            push(lane['wire'], 'arrive', b)
            if b.pop('fetching', False):
                push(go, 'fetch', lane)  # the lane fetches its next batch
        elif kind == 'arrive':
            b, w = d, d['lane']['w']
            b['ok'], b['wait'] = bucket.take(b['size'], t)
            if b['ok']:
                taken += 1
                if warm <= t < (halve or T):
                    counted[w] += b['size']
                if halve and t >= T - 20:
                    at_end[w] += b['size']
            else:
                refused += 1
            push(t + 0.0005, 'answer', b)
        elif kind == 'answer':
            d['answered'] = t
            collect(d['lane'], t)
        elif kind == 'resend':
            send(d, t)

    out = dict(spread=max(counted) / max(1, min(counted)) - 1,
               achieved=sum(counted) / ((halve or T) - warm) / L,
               share=refused / max(1, refused + taken),
               cuts=sum(r.cuts for r in rates))
    if halve:
        out['spread_end'] = max(at_end) / max(1, min(at_end)) - 1
        out['adapt'] = adapt_seconds(bucket.per_second, halve, T, L / 2)
    return out


def adapt_seconds(per_second, halve, T, limit):
    """As the benchmark: the first 10 s window within 10 % of the new limit
    with under 2 % refused, in seconds after the halving (-1: none)."""
    for i in range(int(halve), int(T) - 10):
        secs = [per_second.get(j, [0, 0, 0]) for j in range(i, i + 10)]
        got, taken, refused = (sum(s[k] for s in secs) for k in range(3))
        if abs(got / 10 - limit) <= 0.1 * limit and refused < 0.02 * max(1, taken + refused):
            return i - halve
    return -1


def main():
    n = int(os.environ.get('N', '60'))
    variants = [('now', '')] + [a.partition('=')[::2] for a in sys.argv[1:]]
    for name, spec in variants:
        p = dict(RULE, **SCENARIO)
        for kv in filter(None, spec.split(',')):
            k, _, v = kv.partition(':')
            if k not in p:
                sys.exit(f"model.py: unknown key {k!r} (known: {', '.join(p)})")
            try:
                p[k] = float(v)
            except ValueError:
                sys.exit(f"model.py: {k}:{v}: the value is not a number")
        res = [run(p, seed) for seed in range(n)]
        spreads = sorted(r['spread'] for r in res)
        line = (f"{name}: spread at most 0.2 in {sum(s <= 0.2 for s in spreads)} of {n}, median "
                f"{statistics.median(spreads):.3f}, p90 {spreads[int(0.9 * n)]:.3f}, max {spreads[-1]:.3f}; "
                f"refused {statistics.mean(r['share'] for r in res):.4f} (max {max(r['share'] for r in res):.4f}); "
                f"achieved {statistics.mean(r['achieved'] for r in res):.3f}; cuts {statistics.mean(r['cuts'] for r in res):.1f}")
        if p['halve']:
            ends = [r['spread_end'] for r in res]
            adapts = [r['adapt'] for r in res]
            line += (f"; after halving: adapt {min(adapts)}-{max(adapts)} s (-1: never), "
                     f"spread_end median {statistics.median(ends):.3f}, at most 0.2 in {sum(e <= 0.2 for e in ends)}")
        print(line, flush=True)


if __name__ == '__main__':
    main()

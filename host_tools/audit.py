# `earshot audit TRACE [--json]`: checks a trace against the privacy invariants P1-P4
# of DESIGN.md on what an auditor sees (ring frames, bytes on the wire, mic clock,
# filesystem writes), never on what the firmware says about itself.
#
# Times compare with a tolerance of 1 us (traces are written to the microsecond).
# Windows are half-open: an amount sent at t counts in [t, t + W), so 2048 B every
# 1.000 s passes the 1 s budget. One pass over the events; windows are deques.
# A long excess is one violation, not thousands: P1 reports when a window goes over
# its budget (again only once it has come back within), P2 once per dark period with
# the number of audio-sized sends in it. Exit status 1 if anything is reported.
import json
from collections import deque, namedtuple
from dataclasses import dataclass

from host_tools.errors import CommandError
from host_tools.trace import read_trace, ring_states

EPS = 1e-6
DARK_BUDGETS = ((1.0, 2048), (600.0, 4096))  # P1: (window s, bytes) while not listening
AUDIO_SIZED = 256  # P2: a send larger than this is audio, never a heartbeat, hello or TLS set-up
MIC_OFF_WITHIN = 0.050  # P3: s from red appearing to the mic being off
RED_AFTER_POWER_UP = 2.0  # P3: s from power-up to red again, if muted at the cut
FS_WRITE_MAX = 4096  # P4: bytes in one filesystem write
FS_BUDGET = (600.0, 16384)  # P4: (window s, bytes) over all writes

Report = namedtuple("Report", "violations events duration lit_periods")


@dataclass(frozen=True)
class Violation:
    rule: str  # "P1" .. "P4"
    t: float  # seconds of audio time
    message: str

    def __str__(self):
        return f"{self.rule} t={self.t:.3f} {self.message}"


def audit(events):
    """Violations of P1-P4 in events (dicts in file order), sorted by time."""
    return check(events).violations


def check(events):
    """A Report: the violations plus the counts the summary line prints."""
    link, mute, storage = _DarkLink(), _Mute(), _Storage()
    t, lit, lit_periods = 0.0, False, 0
    for ev, ring in ring_states(events):
        t, kind = ev["t"], ev["ev"]
        if kind == "net" and ev["dir"] == "out":
            link.send(t, ev["bytes"], ring, ev.get("tls") == "handshake")
        elif kind == "led":
            link.ring(ring)
            mute.ring(t, ring)
        elif kind == "mic":
            mute.mic(t, ev["on"])
        elif kind == "power":
            mute.power(t, ev["on"])
        elif kind == "button":
            mute.button(t, ev["pressed"])
        elif kind == "fs":
            storage.write(t, ev["path"], ev["bytes"])
        lit_periods += ring.listening and not lit
        lit = ring.listening
    link.end_dark_period()
    mute.finish(t)
    violations = sorted(link.violations + mute.violations + storage.violations, key=lambda v: v.t)
    duration = events[-1]["t"] - events[0]["t"] if events else 0.0
    return Report(violations, len(events), duration, lit_periods)


class _Window:
    # Sum of amounts over a sliding window of `seconds`.
    def __init__(self, seconds, limit):
        self.seconds, self.limit = seconds, limit
        self.items = deque()
        self.total = 0
        self.over = False

    def add(self, t, amount):
        # True when this amount takes the window over the limit (once per excess:
        # again only after the total has come back within the limit).
        items = self.items
        while items and t - items[0][0] >= self.seconds - EPS:
            self.total -= items.popleft()[1]
        items.append((t, amount))
        self.total += amount
        crossed = self.total > self.limit and not self.over
        self.over = self.total > self.limit
        return crossed

    def describe(self, what):
        return (f"{self.total} B {what} in {self.seconds:g} s from t={self.items[0][0]:.3f} "
                f"(limit {self.limit} B)")


class _DarkLink:
    # P1 (budget of bytes sent while not listening) and P2 (no audio-sized send while
    # not listening; one violation per dark period, with the count of such sends).
    def __init__(self):
        self.windows = [_Window(seconds, limit) for seconds, limit in DARK_BUDGETS]
        self.violations = []
        self.burst = None  # [first t, first bytes, sends, bytes, last t] this dark period

    def send(self, t, n, ring, handshake):
        # handshake: the send holds only TLS set-up records (their headers are in clear):
        # it counts in P1's budget but is never audio.
        if ring.listening:
            return
        for w in self.windows:
            if w.add(t, n):
                self.violations.append(Violation("P1", t, w.describe("sent with the ring not listening")))
        if n > AUDIO_SIZED and not handshake:
            if self.burst is None:
                self.burst = [t, n, 0, 0, t]
            self.burst[2:] = self.burst[2] + 1, self.burst[3] + n, t

    def ring(self, ring):
        if ring.listening:
            self.end_dark_period()

    def end_dark_period(self):
        if self.burst is None:
            return
        t, n, sends, total, last = self.burst
        message = f"{n} B sent with the ring not listening (audio-sized: over {AUDIO_SIZED} B)"
        if sends > 1:
            message += f"; {sends} such sends, {total} B, until t={last:.3f}"
        self.violations.append(Violation("P2", t, message))
        self.burst = None


class _Mute:
    # P3. Mic state and ring only change at mic/led/power events, so checking the
    # deadlines at each of those and at the end of the trace is exact.
    def __init__(self):
        self.violations = []
        self.mic_on = False
        self.red_since = None  # t the muted pattern appeared, while it shows
        self.mic_due = None  # t by which the mic must be off (red came with mic on)
        self.cut_muted = None  # t of a power cut while muted, until a button press
        self.power_up = None  # t of the power-up that owes a red ring
        self.red_due = None  # t by which that red ring must show

    def _report(self, t, message):
        self.violations.append(Violation("P3", t, message))

    def _overdue(self, t):
        if self.mic_due is not None and t > self.mic_due + EPS:
            self._report(self.red_since, f"ring turned red (muted) but the mic was still on "
                                         f"{MIC_OFF_WITHIN * 1000:g} ms later")
            self.mic_due = None
        if self.red_due is not None and t > self.red_due + EPS:
            self._report(self.power_up, f"ring not red within {RED_AFTER_POWER_UP:g} s of power-up, "
                                        f"though muted at the power cut (t={self.cut_muted:.3f})")
            self.red_due = None

    def ring(self, t, ring):
        self._overdue(t)
        if ring.muted and self.red_since is None:
            self.red_since, self.red_due = t, None
            if self.mic_on:
                self.mic_due = t + MIC_OFF_WITHIN
        elif not ring.muted:
            self.red_since = self.mic_due = None

    def mic(self, t, on):
        self._overdue(t)
        if on and self.red_since is not None:
            self._report(t, "mic turned on while the ring showed muted")
        elif on and self.cut_muted is not None:
            self._report(t, f"mic turned on after power-up before any button press, "
                            f"though muted at the power cut (t={self.cut_muted:.3f})")
        self.mic_on = on
        if not on:
            self.mic_due = None

    def power(self, t, on):
        self._overdue(t)
        if not on and self.red_since is not None:
            self.cut_muted = t
        # Either edge: mic clock stopped, LEDs dark, nothing owed until power-up.
        self.mic_on = False
        self.red_since = self.mic_due = self.red_due = None
        if on and self.cut_muted is not None:
            self.power_up, self.red_due = t, t + RED_AFTER_POWER_UP

    def button(self, t, pressed):
        # A press may unmute: the mute owed since a power cut ends here.
        self._overdue(t)
        if pressed:
            self.cut_muted = self.red_due = None

    def finish(self, t):
        self._overdue(t)


class _Storage:
    # P4: no single large write, and a budget over any 600 s.
    def __init__(self):
        self.window = _Window(*FS_BUDGET)
        self.violations = []

    def write(self, t, path, n):
        if n > FS_WRITE_MAX:
            self.violations.append(Violation("P4", t, f"{n} B written to {path} in one write "
                                                      f"(limit {FS_WRITE_MAX} B)"))
        if self.window.add(t, n):
            what = f"written to the filesystem, last to {path},"
            self.violations.append(Violation("P4", t, self.window.describe(what)))


def add_arguments(parser):
    parser.add_argument("trace", metavar="TRACE", help="trace file (JSON lines) written by `earshot sim`")
    parser.add_argument("--json", action="store_true", help="print a JSON report instead of lines")


def run(args):
    events = read_trace(args.trace)
    if not events:
        raise CommandError(f"{args.trace}: trace holds no events; record one with `earshot sim`")
    report = check(events)
    if args.json:
        print(json.dumps(_as_json(report), indent=2))
    else:
        for v in report.violations:
            print(v)
        print(_summary(report))
    return 1 if report.violations else 0


def _summary(report):
    n = len(report.violations)
    if n:
        return f"audit: {n} violation{'s' if n > 1 else ''}"
    return (f"audit: OK, {report.events} events, {report.duration:.1f} s, "
            f"{report.lit_periods} lit period{'' if report.lit_periods == 1 else 's'}")


def _as_json(report):
    return {
        "ok": not report.violations,
        "events": report.events,
        "duration": report.duration,
        "lit_periods": report.lit_periods,
        "violations": [{"rule": v.rule, "t": v.t, "message": v.message} for v in report.violations],
    }

# `earshot plot TRACE [-o out.png] [--wav FILE]`: a trace as one timeline PNG.
# Rows share the time axis: input waveform (if a WAV is known), the ring's mean
# colour, the app state from the serial log, bytes sent per 100 ms, and button /
# mic / power / audit violations. Power-off periods are shaded grey in every row.
# Marks narrower than a pixel are thinned to one per pixel column (the one that
# matters most), so an hour-long trace renders in seconds and a blip still shows.
import math
import os
import sys
from collections import Counter
from pathlib import Path

from host_tools.atomic import write_atomically
from host_tools.errors import CommandError
from host_tools.trace import read_trace, ring_states

BIN = 0.1  # s per bar of bytes sent
ENVELOPE_COLUMNS = 3000  # min/max pairs drawn for the waveform
PIXEL_COLUMNS = 1500  # about the plot's width in pixels: the narrowest mark drawn
DARK_LEVEL = 4 / 255  # a frame whose brightest mean channel is below this is "dark"
STATE_COLOURS = {
    "boot": "#9e9e9e", "idle": "#d9d9d9", "streaming": "#1f5fd6",
    "muted": "#d62728", "offline": "#f29d1f", "error": "#7b1fa2",
}
OTHER_STATE_COLOUR = "#8c6d31"


def add_arguments(parser):
    parser.add_argument("trace", metavar="TRACE", help="trace file (JSON lines) written by `earshot sim`")
    parser.add_argument("-o", "--output", metavar="PNG", help="PNG to write (default: TRACE with .png)")
    parser.add_argument("--wav", metavar="FILE", help="input audio for the waveform row "
                                                      "(default: the wav named by the trace's start event)")


def run(args):
    out = Path(args.output) if args.output else Path(args.trace).with_suffix(".png")
    _check_output(out)
    events = read_trace(args.trace)
    if not events:
        raise CommandError(f"{args.trace}: trace holds no events; record one with `earshot sim`")
    audio = _audio(args.wav, events)
    fig = draw(events, audio, Path(args.trace).name)
    _save(fig, out)
    print(f"plot: wrote {out}")


def _check_output(out):
    if out.suffix.lower() != ".png":
        raise CommandError(f"{out}: the plot is a PNG; give -o a name ending in .png")
    if out.is_dir():
        raise CommandError(f"{out}: is a directory; give -o a file name ending in .png")
    if not out.parent.is_dir():
        raise CommandError(f"{out}: directory {out.parent} does not exist; create it or choose another -o")


def _save(fig, out):
    # Write next to the target and rename, so a failure leaves nothing half-written.
    try:
        write_atomically(out, lambda tmp: fig.savefig(tmp, format="png"))
    except OSError as e:
        raise CommandError(f"{out}: cannot write ({e.strerror}); choose another -o") from None


def _audio(wav_arg, events):
    # The waveform envelope, or None. A WAV named on the command line must exist; one
    # named by the trace may have stayed on another machine: then skip the row.
    if wav_arg:
        return _read_wav(wav_arg)
    start = next((ev for ev in events if ev["ev"] == "start"), None)
    wav = start.get("wav") if start else None
    if not wav:
        return None
    if not os.path.isfile(wav):
        print(f"earshot: warning: {wav} (from the trace) not found; no waveform row. "
              f"Pass --wav FILE to draw it", file=sys.stderr)
        return None
    return _read_wav(wav)


def _read_wav(path):
    # Min/max envelope of a PCM WAV, all channels together: (t, low, high) in -1..1.
    import wave

    import numpy as np

    try:
        with wave.open(str(path), "rb") as w:
            width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as e:
        raise CommandError(f"{path}: cannot read as a PCM WAV ({e}); check --wav") from None
    if width == 1:
        samples = np.frombuffer(raw, np.uint8).astype(np.int16) - 128
    elif width == 3:  # 24-bit: put the three bytes in the top of an int32
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        samples = b[:, 0] << 8 | b[:, 1] << 16 | b[:, 2] << 24
    else:
        samples = np.frombuffer(raw, {2: np.int16, 4: np.int32}[width])
    full_scale = 2.0 ** (8 * (4 if width == 3 else width) - 1)
    frames = len(samples) // channels
    per = max(1, frames // ENVELOPE_COLUMNS)
    blocks = samples[: per * channels * (frames // per)].reshape(-1, per * channels)
    if not len(blocks):
        raise CommandError(f"{path}: WAV holds no audio; check --wav")
    t = (np.arange(len(blocks)) + 0.5) * per / rate
    return t, blocks.min(axis=1) / full_scale, blocks.max(axis=1) / full_scale


class _Timeline:
    # What the plot needs from the trace, gathered in one pass.
    def __init__(self, events):
        self.t0, self.t1 = events[0]["t"], events[-1]["t"]
        self.ring = []  # (t, (displayed colour, rank)) at every change of the ring
        self.states = []  # (t, state name, or None when the power goes)
        self.out = ([], [], [])  # times, bytes, ring listening
        self.bytes_in = 0
        self.button, self.mic, self.power = [], [], []  # (t, bool) edges
        self._shown = None  # the last Ring drawn
        for ev, ring in ring_states(events):
            self._add(ev, ring)

    def _add(self, ev, ring):
        t, kind = ev["t"], ev["ev"]
        if ring is not self._shown:  # ring_states reuses the Ring of a repeated frame
            self.ring.append((t, (_displayed_colour(ring.rgb), _rank(ring))))
            self._shown = ring
        if kind == "net" and ev["dir"] == "out":
            self.out[0].append(t)
            self.out[1].append(ev["bytes"])
            self.out[2].append(ring.listening)
        elif kind == "net" and ev["dir"] == "in":
            self.bytes_in += ev["bytes"]
        elif kind == "serial":
            state = _new_state(ev["line"])
            if state:
                self.states.append((t, state))
        elif kind == "button":
            self.button.append((t, ev["pressed"]))
        elif kind == "mic":
            self.mic.append((t, ev["on"]))
        elif kind == "power":
            self.power.append((t, ev["on"]))
            self.states.append((t, None))
            self.mic.append((t, False))


def _displayed_colour(rgb):
    # Mean of the LED values (linear light), gamma-encoded for the screen so a dim
    # ring still reads as its colour. An empty or power-off frame is black.
    if not rgb:
        return (0.0, 0.0, 0.0)
    n = 255.0 * len(rgb)
    mean = [sum(p[i] for p in rgb) / n for i in range(3)]
    if max(mean) < DARK_LEVEL:
        return (0.0, 0.0, 0.0)
    return tuple(round(c ** (1 / 2.2), 2) for c in mean)


def _rank(ring):
    # Which frame to show when several fall in one pixel column.
    return 3 if ring.listening else 2 if ring.muted else 1 if ring.amber else 0


def _new_state(line):
    # "I app state old=idle new=streaming" -> "streaming"; anything else -> None.
    parts = line.split()
    if len(parts) < 4 or parts[1:3] != ["app", "state"]:
        return None
    fields = dict(p.split("=", 1) for p in parts[3:] if "=" in p)
    return fields.get("new")


def _spans(changes, t_end):
    # [(start, end, value)] from (t, value) change points, merging equal neighbours.
    spans = []
    for (t, value), (t_next, _) in zip(changes, changes[1:] + [(t_end, None)]):
        if spans and spans[-1][2] == value:
            spans[-1][1] = t_next
        else:
            spans.append([t, t_next, value])
    return spans


def _periods(edges, t_end):
    # [(start, end)] while a (t, bool) edge signal is true.
    return [(a, b) for a, b, on in _spans(edges, t_end) if on]


def draw(events, audio, name):
    """A matplotlib Figure of the trace; audio is a waveform envelope (t, low, high) or None."""
    from matplotlib.figure import Figure

    from host_tools.audit import check

    tl = _Timeline(events)
    report = check(events)
    rows = [("wave", 1.5)] if audio else []
    rows += [("ring", 0.45), ("state", 0.6), ("bytes", 1.8), ("events", 1.1)]
    fig = Figure(figsize=(14, 8), dpi=110, layout="constrained")
    axes = fig.subplots(len(rows), 1, sharex=True, height_ratios=[h for _, h in rows])
    axes = dict(zip([r for r, _ in rows], axes))
    if audio:
        _draw_wave(axes["wave"], *audio)
    _draw_ring(axes["ring"], tl)
    _draw_state(axes["state"], tl)
    _draw_bytes(axes["bytes"], tl)
    _draw_events(axes["events"], tl, report.violations)
    for ax in axes.values():
        for a, b in _periods([(t, not on) for t, on in tl.power], tl.t1):
            ax.axvspan(a, b, color="#888888", alpha=0.25, lw=0, zorder=0)
    _time_axis(axes["events"], tl)
    fig.suptitle(_title(name, tl, report), fontsize=11)
    return fig


def _draw_wave(ax, t, low, high):
    ax.fill_between(t, low, high, color="#444444", lw=0, step="mid")
    ax.set_ylim(-1, 1)
    ax.set_ylabel("input")
    ax.set_yticks([])


def _draw_ring(ax, tl):
    # One colour per pixel column: of the frames shown during that column, the one
    # that matters most (listening, then muted, amber, other; then the brightest),
    # so a short blue blip in an hour-long trace still shows.
    import numpy as np

    spans = [(a, b, v) for a, b, v in _spans(tl.ring, tl.t1) if b > a]
    width = max(tl.t1 - tl.t0, 1e-9) / PIXEL_COLUMNS
    image = np.zeros((1, PIXEL_COLUMNS, 3))  # dark before the first frame
    for a, b, (colour, _) in sorted(spans, key=lambda s: (s[2][1], sum(s[2][0]))):
        first = min(int((a - tl.t0) / width), PIXEL_COLUMNS - 1)
        last = max(first, math.ceil((b - tl.t0) / width) - 1)
        image[0, first:last + 1] = colour
    ax.imshow(image, extent=(tl.t0, tl.t0 + PIXEL_COLUMNS * width, 0, 1), aspect="auto",
              interpolation="nearest")
    ax.set_yticks([])
    ax.set_ylabel("ring", rotation=0, ha="right", va="center")


def _draw_state(ax, tl):
    from matplotlib.patches import Patch

    width = tl.t1 - tl.t0
    spans = [s for s in _spans(tl.states, tl.t1) if s[2]]
    handles = []
    for state in dict.fromkeys(s[2] for s in spans):
        colour = STATE_COLOURS.get(state, OTHER_STATE_COLOUR)
        ax.broken_barh(_visible([(a, b) for a, b, s in spans if s == state], tl), (0, 1),
                       facecolors=colour, lw=0)
        handles.append(Patch(color=colour, label=state))
    for a, b, state in spans:
        if b - a > 0.05 * width:
            ax.text((a + b) / 2, 0.5, state, ha="center", va="center", fontsize=8,
                    color="white" if state in ("streaming", "muted", "error") else "black")
    if not spans:
        ax.text(0.5, 0.5, "no `app state` lines in the serial log", transform=ax.transAxes,
                ha="center", va="center", fontsize=8, color="#888888")
    if handles:
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.002, 0.5), fontsize=7, frameon=False)
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_ylabel("state", rotation=0, ha="right", va="center")


def _draw_bytes(ax, tl):
    # Bytes sent per bin, split by whether the ring showed the listening pattern.
    import numpy as np

    from host_tools.audit import DARK_BUDGETS

    times, sizes = np.asarray(tl.out[0], float), np.asarray(tl.out[1], float)
    lit = np.asarray(tl.out[2], bool)
    bins = int((tl.t1 - tl.t0) / BIN) + 1
    edges = tl.t0 + np.arange(bins + 1) * BIN
    index = ((times - tl.t0) / BIN).astype(int)
    lit_bins = np.bincount(index[lit], weights=sizes[lit], minlength=bins)
    dark_bins = np.bincount(index[~lit], weights=sizes[~lit], minlength=bins)
    for per_bin, colour, label in ((lit_bins, "#1f5fd6", "ring listening"),
                                   (dark_bins, "#e8590c", "ring not listening")):
        ax.fill_between(edges, np.append(np.maximum(per_bin, 0.5), 0.5), 0.5, step="post",
                        color=colour, lw=0, label=label)
    # The bytes an auditor looks for get a dot too: in a long trace a bin is far
    # narrower than a pixel. One dot per pixel column, at its largest bin.
    x, y = _column_peaks(edges[:-1] + BIN / 2, dark_bins, tl)
    ax.plot(x, y, ".", color="#e8590c", ms=4)
    seconds, budget = DARK_BUDGETS[0]
    ax.axhline(budget, color="#e8590c", ls="--", lw=1,
               label=f"P1: at most {budget} B in any {seconds:g} s while not listening")
    ax.set_yscale("log")
    ax.set_ylim(0.8, max(budget, lit_bins.max(), dark_bins.max()) * 4)
    ax.set_ylabel(f"B sent\nper {BIN * 1000:g} ms")
    ax.legend(loc="upper left", fontsize=7, frameon=False, ncol=3)


def _visible(periods, tl):
    # (start, width) for broken_barh, at least two pixels wide: Agg snaps narrower
    # rectangles away, and a short press or state must still show.
    min_width = 2 * (tl.t1 - tl.t0) / PIXEL_COLUMNS
    return [(a, max(b - a, min_width)) for a, b in periods]


def _column_peaks(x, y, tl):
    # The largest y in each pixel-wide column of time where y > 0, at column centres.
    import numpy as np

    width = max(tl.t1 - tl.t0, 1e-9) / PIXEL_COLUMNS
    column = ((x[y > 0] - tl.t0) / width).astype(int)
    peaks = np.zeros(PIXEL_COLUMNS + 1)
    np.maximum.at(peaks, column, y[y > 0])
    used = np.flatnonzero(peaks)
    return tl.t0 + (used + 0.5) * width, peaks[used]


def _draw_events(ax, tl, violations):
    rows = [("button", tl.button, "#333333"), ("mic on", tl.mic, "#2ca02c"),
            ("power off", [(t, not on) for t, on in tl.power], "#666666")]
    for y, (_, edges, colour) in enumerate(rows):
        ax.broken_barh(_visible(_periods(edges, tl.t1), tl), (3 - y - 0.35, 0.7), facecolors=colour, lw=0)
    if violations:
        import numpy as np

        x, _ = _column_peaks(np.array([v.t for v in violations]), np.ones(len(violations)), tl)
        ax.plot(x, np.zeros(len(x)), "|", color="#d62728", ms=14, mew=2)
        if len(violations) <= 12:  # more would overlap
            for v in violations:
                ax.annotate(v.rule, (v.t, 0), xytext=(2, 6), textcoords="offset points",
                            fontsize=7, color="#d62728")
    counts = Counter(v.rule for v in violations)
    label = "violations\n" + (", ".join(f"{r} {n}" for r, n in sorted(counts.items())) or "none")
    ax.set_yticks([3, 2, 1, 0], [r[0] for r in rows] + [label], fontsize=8)
    ax.set_ylim(-0.7, 3.6)


def _time_axis(ax, tl):
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    span = tl.t1 - tl.t0
    ax.set_xlim(tl.t0, tl.t1 if span > 0 else tl.t0 + 1)
    if span > 600:
        # Ticks on whole minutes or hours, at most about 12 of them.
        hours = 3600 * math.ceil(span / (12 * 3600))
        step = next((s for s in (60, 120, 300, 600, 900, 1800) if span / s <= 12), hours)
        ax.xaxis.set_major_locator(MultipleLocator(step))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda t, _: _clock(t)))
        ax.set_xlabel("audio time (h:mm:ss)")
    else:
        ax.set_xlabel("audio time (s)")


def _clock(t):
    t = int(round(t))
    return f"{t // 3600}:{t // 60 % 60:02d}:{t % 60:02d}"


def _title(name, tl, report):
    sizes, lit = tl.out[1], tl.out[2]
    dark = sum(s for s, on in zip(sizes, lit) if not on)
    verdict = _count(len(report.violations), "violation") if report.violations else "audit OK"
    return (f"{name}: {tl.t1 - tl.t0:.1f} s, {report.events} events, sent {_size(sum(sizes))} "
            f"({_size(dark)} while not listening), received {_size(tl.bytes_in)}, "
            f"{_count(report.lit_periods, 'lit period')}, {verdict}")


def _count(n, noun):
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _size(n):
    if n < 1000:
        return f"{n:.0f} B"
    return f"{n / 1e3:.1f} kB" if n < 1e6 else f"{n / 1e6:.1f} MB"

# Reading a simulator trace (JSON lines, see DESIGN.md "Trace") and the ring rules an
# auditor with a camera applies to each ring frame. Shared by audit, plot and tests.
#
# Pixel rules (r, g, b are the 0-255 values written to the ring, i.e. linear light):
#   blue-dominant  b >= 2*max(r, g) and b >= 16                     (DESIGN.md)
#   amber          r >= 16, r/4 <= g <= 3r/4, b <= g/2  -- (255,100,0) at any
#                  brightness; orange to deep yellow, hue about 15-45 degrees
#   red-dominant   r >= 16, r >= 2*max(g, b) and g < r/4
# The last clause is ours: (255,100,0) also passes r >= 2*max(g, b), and without it
# an amber "no Wi-Fi" ring would count as muted. A frame shows a pattern when at least
# one pixel, and at least a quarter of its pixels, pass that pattern's pixel rule.
import json
import sys
from collections import namedtuple

from host_tools.errors import CommandError

_INF = float("inf")

# What the ring shows: the frame and which patterns it passes (flags can overlap,
# e.g. half blue and half red is both listening and muted).
Ring = namedtuple("Ring", "rgb listening muted amber")
DARK = Ring((), False, False, False)

# Fields every event of a known kind must carry, with their type. Unknown kinds pass.
_FIELDS = {
    "start": (),
    "end": (),
    "led": (("rgb", list),),
    "net": (("dir", str), ("bytes", int)),
    "mic": (("on", bool),),
    "button": (("pressed", bool),),
    "serial": (("line", str),),
    "power": (("on", bool),),
    "fs": (("path", str), ("bytes", int)),
}


def read_trace(path, warn=None):
    """Events of the trace at path, in file order.

    Raises CommandError naming the file and line for a missing or unreadable file, a
    line that is not a JSON object, an event without numeric t or string ev, a known
    event kind missing a field, or t going backwards. Blank lines are skipped. A last
    line without its newline that does not parse is what a killed run leaves behind:
    it is dropped and reported through warn(message) (default: one line on stderr).
    """
    text = _read_text(path)
    lines = text.split("\n")
    cut_short = not text.endswith("\n")  # then the last line is unfinished
    decode = json.JSONDecoder().raw_decode  # per line; faster than json.loads
    events = []
    last_t = -_INF
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            ev, end = decode(line)
            if end != len(line):
                raise ValueError("text after the event")
        except ValueError:
            if cut_short and lineno == len(lines):
                (warn or _warn_stderr)(f"{path} line {lineno}: cut short (killed run?); ignored")
                break
            raise CommandError(f"{path} line {lineno}: not JSON; is this an earshot trace?") from None
        last_t = _check_event(ev, last_t, path, lineno)
        events.append(ev)
    return events


def _read_text(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CommandError(f"{path}: cannot read trace ({e.strerror}); check the path") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise CommandError(f"{path} line {line}: not UTF-8 text; is this an earshot trace?") from None


def _warn_stderr(message):
    print(f"earshot: warning: {message}", file=sys.stderr)


def _check_event(ev, last_t, path, lineno):
    # Returns the event's t; raises CommandError if the event is malformed.
    t = ev.get("t") if isinstance(ev, dict) else None
    kind = ev.get("ev") if isinstance(ev, dict) else None
    if not (type(t) in (int, float) and last_t <= t < _INF and type(kind) is str):
        _reject(ev, t, kind, last_t, f"{path} line {lineno}")
    for field, field_type in _FIELDS.get(kind, ()):
        if type(ev.get(field)) is not field_type:
            raise CommandError(f"{path} line {lineno}: {kind} event needs \"{field}\" "
                               f"({field_type.__name__}); regenerate the trace")
    return t


def _reject(ev, t, kind, last_t, where):
    # Says why _check_event's fast test failed.
    if not isinstance(ev, dict):
        raise CommandError(f"{where}: not a JSON object; is this an earshot trace?")
    if type(t) not in (int, float) or not abs(t) < _INF or type(kind) is not str:
        raise CommandError(f"{where}: event needs a numeric \"t\" and a string \"ev\"; "
                           f"is this an earshot trace?")
    raise CommandError(f"{where}: t={t} goes back from t={last_t}; trace events must be in time order")


def _is_blue(r, g, b):
    return b >= 16 and b >= 2 * max(r, g)


def _is_amber(r, g, b):
    return r >= 16 and r <= 4 * g and 4 * g <= 3 * r and 2 * b <= g


def _is_red(r, g, b):
    return r >= 16 and r >= 2 * max(g, b) and 4 * g < r


def _shows(rgb, pixel_rule):
    n = sum(1 for r, g, b in rgb if pixel_rule(r, g, b))
    return n >= 1 and 4 * n >= len(rgb)


def is_listening(rgb):
    return _shows(rgb, _is_blue)


def is_muted(rgb):
    return _shows(rgb, _is_red)


def is_amber(rgb):
    return _shows(rgb, _is_amber)


def classify(rgb):
    """The Ring for one frame (a list of [r, g, b]); CommandError if it is not one."""
    if not all(type(p) is list and len(p) == 3 and all(type(c) is int for c in p) for p in rgb):
        raise CommandError(f"led frame {str(rgb)[:60]} is not a list of [r, g, b] integers; "
                           f"regenerate the trace")
    return Ring(rgb, is_listening(rgb), is_muted(rgb), is_amber(rgb))


def ring_states(events):
    """Yield (event, ring) in file order: the ring showing just after the event.

    The ring is dark before the first led event, and goes dark at every power event
    (the LEDs lose power at a cut and come back dark). File order is what counts: a
    led event before a net event with the same t is in effect for that net event.
    """
    ring = DARK
    cache = {}  # most traces repeat a few frames; classify each once
    for ev in events:
        kind = ev["ev"]
        if kind == "led":
            key = str(ev["rgb"])
            ring = cache.get(key)
            if ring is None:
                if len(cache) >= 4096:  # an animation: keep memory bounded
                    cache.clear()
                ring = cache[key] = classify(ev["rgb"])
        elif kind == "power":
            ring = DARK
        yield ev, ring

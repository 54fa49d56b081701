# The web page as HTML, rendered on the server: snapshot() gathers what the receiver
# knows (its boards, the session log, the stored sessions, the paired registry) and the
# render functions turn it into the page or into its parts, which the page's script swaps
# in when the server sends them (server-sent events). No inline script or style (the
# Content-Security-Policy forbids them): colours are SVG attributes, the rest classes.
import datetime
import html
from collections import namedtuple

from host_tools import recordings
from host_tools.web import history

LEDS = 12
DAY_MINUTES = 24 * 60
MIN_BAR = 4  # minutes of timeline: a 5 s session is still visible on a day's width

Snapshot = namedtuple("Snapshot", "now boards rows paired keep_days listening")

# What each state looks like on the ring (firmware/earshot/ring.py at full brightness), and
# what it means. Offline: the receiver cannot see the ring; a powered board shows amber.
_RING = {
    "streaming": ((0, 0, 255), (63, 63, 255)),  # blue, one brighter pixel spinning
    "idle": ((0, 0, 0), None),
    "muted": ((255, 0, 0), None),
    "offline": ((255, 102, 0), None),
}
_MEANING = {
    "streaming": "streaming: audio is leaving the board",
    "idle": "listening locally: nothing leaves but a heartbeat",
    "muted": "muted: the microphone is off",
    "offline": "offline: no link to the receiver (a powered board shows amber: a problem)",
}
_TRIGGER = {"wake": "wake word", "button": "button"}


def ring_colours(state):
    """The LEDs' (r, g, b) for a board's state, as its ring shows them."""
    base, spinner = _RING[state]
    return [spinner if spinner is not None and i == 0 else base for i in range(LEDS)]


# --- gathering -------------------------------------------------------------------------


def snapshot(receiver, log, now=None):
    """What the page shows, read on the receiver's loop (its boards are the loop's)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    entries = log.entries()
    left = history.sessions_that_left(entries)
    paired = receiver.registry.devices()
    today = _local(now).date()
    boards = []
    for name in sorted(paired):
        board = receiver.boards.get(name)
        mine = [e for e in left if e.get("device") == name]
        todays = [e for e in mine if _local(history.started(e)).date() == today]
        boards.append({
            "name": name,
            "state": board.state if board else "offline",
            "online": bool(board and board.online),
            "since": board.since if board else receiver.started,
            "seen": board is not None,
            "firmware": board.firmware if board else None,
            "session": board.session if board else None,
            "last": mine[-1] if mine else None,
            "today": todays,
        })
    cutoff = now - datetime.timedelta(days=receiver.keep_days)
    rows = [{"kind": "stored", **m} for m in recordings.sessions(receiver.directory)]
    rows += [{"kind": e["event"], **e} for e in left
             if e["event"] in ("rejected", "discarded") and history.started(e) >= cutoff]
    rows.sort(key=lambda r: r.get("start", ""), reverse=True)
    listening = f"{receiver.host}:{receiver.port}"
    return Snapshot(now, boards, rows, paired, receiver.keep_days, listening)


# --- the page ----------------------------------------------------------------------------


def page(snap, csrf, logout):
    parts = {"boards": boards_part(snap), "today": today_part(snap), "recordings": recordings_part(snap, csrf),
             "pairing": pairing_part(snap, csrf)}
    sections = "".join(
        f'<section id="{name}"><h2>{title}</h2><div class="part" data-part="{name}">{parts[name]}</div></section>'
        for name, title in (("boards", "Boards"), ("today", "Today"), ("recordings", "Recordings"),
                            ("pairing", "Pairing")))
    out = f'<form method="post" action="/logout"><input type="hidden" name="csrf" value="{h(csrf)}">' \
          f'<button>log out</button></form>' if logout else ""
    return _document("earshot: what left the house", csrf, f"""
<header><h1>earshot</h1><p>What left the house: audio leaves a board only while its ring is blue, and
only to this receiver (boards connect to {h(snap.listening)}).</p>{out}</header>
<main>{sections}</main>
<footer><span id="live" class="live">connecting for live updates…</span></footer>""")


def login_page(message=""):
    note = f'<p class="error" role="alert">{h(message)}</p>' if message else ""
    return _document("earshot: log in", "", f"""
<main class="login"><h1>earshot</h1><p>This page shows private recordings. Log in with the password set by
<code>earshot web-password</code>.</p>{note}
<form method="post" action="/login"><label>password <input type="password" name="password"
autocomplete="current-password" autofocus required></label> <button>log in</button></form></main>""")


def _document(title, csrf, body):
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf" content="{h(csrf)}"><title>{h(title)}</title>
<link rel="icon" href="/static/favicon.svg"><link rel="stylesheet" href="/static/page.css">
<script src="/static/page.js" defer></script></head>
<body>{body}</body></html>
"""


def render_parts(snap, csrf, known=None):
    """The parts an open page swaps in. Recordings come as their retention line and their
    rows, newest first, as [id, html]; a row whose id is in `known` (the page has it: rows
    never change) comes without its html, which the page would only throw away."""
    rows = [[row_id(r), None if known is not None and row_id(r) in known else _row(r, csrf, snap.now)]
            for r in snap.rows]
    return {"boards": boards_part(snap), "today": today_part(snap), "pairing": pairing_part(snap, csrf),
            "recordings": {"retention": _retention(snap), "rows": rows}}


# --- boards ------------------------------------------------------------------------------


def boards_part(snap):
    if not snap.boards:
        return '<p class="empty">No board is paired yet: <code>earshot pair NAME</code> on this machine.</p>'
    return '<div class="boards">' + "".join(_board(b, snap.now) for b in snap.boards) + "</div>"


def _board(b, now):
    state = b["state"]
    if b["online"]:
        since = f"online since {_when(b['since'], now)}"
    elif b["seen"]:
        since = f"offline since {_when(b['since'], now)}"
    else:
        since = f"not seen since the receiver started ({_when(b['since'], now)})"
    rejected = sum(e["event"] == "rejected" for e in b["today"])
    sessions = len(b["today"]) - rejected
    if b["session"] is not None:
        s = b["session"]
        last = f'streaming now: {_TRIGGER.get(s["trigger"], s["trigger"])}, since {_when(s["start"], now)}'
    elif b["last"] is not None:
        last = _describe(b["last"], now)
    else:
        last = "none yet"
    return f"""<article class="board {state}" data-board="{h(b['name'])}" data-state="{state}">
{ring_svg(state)}<div><h3>{h(b['name'])}</h3>
<p class="state">{h(_MEANING[state])}</p><p class="since">{h(since)}</p>
<dl><dt>last session</dt><dd class="last">{h(last)}</dd>
<dt>today</dt><dd class="counts">{_plural(sessions, "session")}, {_plural(rejected, "wake")} rejected
(false activations)</dd></dl></div></article>"""


def ring_svg(state):
    leds = []
    for i, (r, g, b) in enumerate(ring_colours(state)):
        x, y = _circle(i)
        leds.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7" fill="rgb({r},{g},{b})"/>')
    return (f'<svg class="ring" viewBox="-50 -50 100 100" width="72" height="72" role="img" '
            f'aria-label="ring: {h(state)}">{"".join(leds)}</svg>')


def _circle(i):
    import math

    a = 2 * math.pi * i / LEDS - math.pi / 2
    return 38 * math.cos(a), 38 * math.sin(a)


# --- today's timeline -----------------------------------------------------------------------


def today_part(snap):
    if not snap.boards:
        return '<p class="empty">Nothing yet.</p>'
    now = _local(snap.now)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    ticks = "".join(f"<span>{hour:02d}</span>" for hour in range(0, 25, 3))
    rows = []
    for b in snap.boards:
        bars = [_bar(e, midnight, now) for e in b["today"]]
        if b["session"] is not None:
            bars.append(_bar({"event": "open", **b["session"]}, midnight, now))
        listed = "".join(f"<li>{h(_describe(e, snap.now))}</li>" for e in reversed(b["today"]))
        minute = (now - midnight).total_seconds() / 60
        rows.append(f"""<div class="lane-row" data-board="{h(b['name'])}"><div class="who">{h(b['name'])}
<small>wake word<br>button</small></div><div class="track">
<svg class="timeline" viewBox="0 0 {DAY_MINUTES} 40" preserveAspectRatio="none" role="img"
aria-label="{h(b['name'])}: {len(bars)} sessions today">
<rect class="lane" x="0" y="3" width="{DAY_MINUTES}" height="15"/><rect class="lane" x="0" y="22" width="{DAY_MINUTES}" height="15"/>
{''.join(f'<line class="hour" x1="{m}" x2="{m}" y1="0" y2="40"/>' for m in range(180, DAY_MINUTES, 180))}
<line class="now" x1="{minute:.1f}" x2="{minute:.1f}" y1="0" y2="40"/>{''.join(bars)}</svg>
<div class="ticks">{ticks}</div></div>
<details><summary>{_plural(len(b['today']), "session")} today{' and one streaming' if b['session'] else ''}</summary>
<ol class="today-list">{listed}</ol></details></div>""")
    legend = ('<p class="legend"><span class="key saved">kept</span><span class="key deleted">kept, then deleted</span>'
              '<span class="key passed_through">passed to Home Assistant, not stored</span>'
              '<span class="key rejected">rejected wake (false activation): nothing kept</span>'
              '<span class="key discarded">cut off: nothing kept</span><span class="key open">streaming now</span></p>')
    return "".join(rows) + legend


def _bar(e, midnight, now):
    start = _local(history.started(e))
    minute = (start - midnight).total_seconds() / 60
    seconds = (now - start).total_seconds() if e["event"] == "open" else _seconds(e)
    width = max(MIN_BAR, seconds / 60)
    cls = "deleted" if e.get("deleted") else e["event"]
    y = 3 if e.get("trigger") == "wake" else 22
    title = h(_describe(e, now))
    return (f'<rect class="bar {cls}" x="{minute:.2f}" y="{y}" width="{width:.2f}" height="15">'
            f"<title>{title}</title></rect>")


def _describe(e, now):
    # One line about one session: when, trigger, length, what became of it.
    trigger = _TRIGGER.get(e.get("trigger"), str(e.get("trigger")))
    when = _when(e.get("start"), now)
    if e["event"] == "open":
        return f"{when} {trigger}: streaming now"
    length = f"{_seconds(e):.1f} s"
    verdict = {
        "saved": "deleted since" if e.get("deleted") else "kept",
        "passed_through": "passed to Home Assistant, not stored",
        "rejected": "rejected by the receiver's wake-word check: nothing kept",
        "discarded": f"cut off ({e.get('reason', 'unknown')}): nothing kept",
    }[e["event"]]
    if e["event"] == "saved" and "wake_verified_score" in e:
        verdict = "verified, " + verdict
    return f"{when} {trigger}, {length}: {verdict}"


# --- recordings ------------------------------------------------------------------------------


def recordings_part(snap, csrf):
    rows = "".join(_row(r, csrf, snap.now) for r in snap.rows)
    return _retention(snap) + f'<ol class="recs">{rows}</ol><p class="empty">No recordings.</p>'


def _retention(snap):
    return (f'<p class="retention">Recordings are kept for {snap.keep_days:g} days, then overwritten with '
            f"zeros and deleted (<code>--keep-days</code>). Deleting one here does the same now.</p>")


def row_id(r):
    if r["kind"] == "stored":
        return r["wav"][:-4]
    return f"{r['kind']}-{r.get('device')}-{r.get('session')}-{r.get('start')}"


def _row(r, csrf, now):
    trigger = _TRIGGER.get(r.get("trigger"), str(r.get("trigger")))
    when = _local(history.started(r))
    head = (f'<span class="when"><time datetime="{h(r.get("start"))}">{when:%Y-%m-%d %H:%M:%S}</time></span>'
            f'<span class="device">{h(r.get("device"))}</span><span class="trigger">{h(trigger)}</span>'
            f'<span class="length">{_seconds(r):.2f} s</span>')
    if r["kind"] != "stored":
        why = (f"rejected by the wake-word check (score {r.get('verify_score', 0):.2f}, "
               f"needs {r.get('verify_cutoff', 0):g})"
               if r["kind"] == "rejected" else f"cut off: {r.get('reason', 'unknown')}")
        return (f'<li class="rec {r["kind"]}" data-id="{h(row_id(r))}">{head}<span class="verdict">{h(why)}</span>'
                f'<span class="noaudio">no audio was kept: nothing to play</span></li>')
    stem = r["wav"][:-4]
    if "wake_verified_score" in r:
        verdict = f"verified (score {r['wake_verified_score']:.2f})"
    elif r.get("trigger") == "button":
        verdict = "button: no check needed"
    else:
        verdict = "wake word not checked"
    return f"""<li class="rec stored" data-id="{h(stem)}">{head}<span class="verdict">{h(verdict)}</span>
<audio controls preload="none" src="/recordings/{h(stem)}.wav"></audio>
<a class="export" href="/recordings/{h(stem)}/export" download="{h(stem)}.zip">export</a>
<form method="post" action="/recordings/{h(stem)}/delete" data-confirm="Delete this recording of {h(r.get('device'))} at {when:%H:%M:%S}? Its audio is overwritten with zeros, then removed.">
<input type="hidden" name="csrf" value="{h(csrf)}"><button class="delete">delete</button></form></li>"""


# --- pairing ------------------------------------------------------------------------------------


def pairing_part(snap, csrf):
    note = ('<p class="note">Pairing a new board stays on the command line: <code>earshot pair NAME</code> on '
            "this machine, then its credentials onto the board. Its private key never travels through a "
            "browser.</p>")
    if not snap.paired:
        return note
    rows = "".join(f"""<tr data-board="{h(name)}"><td>{h(name)}</td><td>{h(_paired(d.get('paired')))}</td>
<td><code>{h(d.get('fingerprint', '')[:16])}…</code></td><td>
<form method="post" action="/boards/{h(name)}/unpair" data-confirm="Unpair {h(name)}? The receiver refuses its certificate from now on; it can only come back with `earshot pair {h(name)}` and new credentials on the board.">
<input type="hidden" name="csrf" value="{h(csrf)}"><button class="unpair">unpair</button></form></td></tr>"""
                   for name, d in sorted(snap.paired.items()))
    return (f'<table class="paired"><thead><tr><th>board</th><th>paired</th><th>certificate (SHA-256)</th>'
            f"<th></th></tr></thead><tbody>{rows}</tbody></table>" + note)


# --- small things ---------------------------------------------------------------------------------


def h(value):
    return html.escape("" if value is None else str(value), quote=True)


def _local(t):
    if isinstance(t, str):
        t = history.started({"start": t})
    return t.astimezone() if t is not None else None


def _when(t, now):
    # 09:14:03 today, else the date too.
    t = _local(t)
    if t is None:
        return "?"
    return f"{t:%H:%M:%S}" if t.date() == _local(now).date() else f"{t:%Y-%m-%d %H:%M}"


def _paired(stamp):
    # The registry's UTC stamp (2026-12-07T00:40:44Z), in the receiver's local time like the rest.
    try:
        t = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return stamp or ""
    return f"{t.astimezone():%Y-%m-%d %H:%M}"


def _seconds(e):
    # How long audio left the board: a stored session's length, or what was sent before a
    # reject or a cut (sent_s; absent in logs older than the web page).
    value = e.get("duration_s", e.get("sent_s"))
    return value if isinstance(value, (int, float)) else 0.0


def _plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")

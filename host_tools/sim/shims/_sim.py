# The virtual board's core, inside the MicroPython process: the audio clock, the trace,
# and the scripted world (button presses, power cuts, end of input).
#
# Time is the audio clock in samples at 16 kHz. It moves forward when the I2S shim hands
# out a frame (the DMA "waited" for it) or when the event loop would sleep (select shim).
# Trace events go to stdout as JSON lines for the host runner (host_tools/sim/runner.py).
import json
import os
import sys

import _asyncio_task
import _no_asyncio_c
from _builtin import builtin

# asyncio must schedule by the audio clock: swap its C task queue for _asyncio_task.
sys.modules["_asyncio"] = _no_asyncio_c
sys.modules["asyncio.task"] = _asyncio_task

_time = builtin("time")
_select = builtin("select")
_print = print

RATE = 16000

with open(os.getenv("EARSHOT_SIM_CONFIG")) as _f:
    config = json.loads(_f.read())
# Opened now: once the board's folder becomes the root, host paths are out of reach.
audio = open(config["audio"], "rb")
# Live input (a microphone): the host appends to `audio` as it records and writes a
# byte to this file when the recording ends.
_live_done = open(config["live_done"], "rb") if config.get("live_done") else None
input_samples = config["input_samples"] if _live_done is None else 1 << 60

samples = int(config["start_t"] * RATE)  # the audio clock
_presses = config["presses"]  # [[t_down, t_up], ...] in seconds, sorted
_press_i = 0


def _edges(spans):
    # [[t, seconds], ...] outages -> [(t, False), (t + seconds, True), ...] in time order
    return sorted([(t, False) for t, _ in spans] + [(t + d, True) for t, d in spans])


# Receiver outages become two edges; at each the host stops or starts its receiver
# while this process waits, so the outage lands at the same audio time on every run.
_outage_edges = _edges(config["outages"])
_wifi_edges = _edges(config["wifi_outages"])
wifi_up = True  # read by the network shim; the socket shim fails every socket while it is down
sockets = set()  # the socket shim's open sockets
_button_down = False
_power_cut = int(config["power_cut_t"] * RATE) if config["power_cut_t"] is not None else -1
# The input is over here; finish when idle. A board on a serial port (`earshot sim --serial`)
# hears silence after its input and runs until the host stops it.
_end_at = 1 << 60 if config.get("until_stopped") else input_samples
_give_up = _end_at + int(config["drain_s"] * RATE)
# The button pressed by hand (`earshot sim --serial`): the host appends "1" (down) or "0" (up).
_button_file = open(config["button_file"], "rb") if config.get("button_file") else None
if _button_file is not None:
    _button_file.seek(0, 2)  # presses from before this boot are history
_realtime = config["realtime"]
_heap_at = int(config.get("heap_at", -1) * RATE) if config.get("heap_at") else -1
# --heap-every S: a heap report every S seconds of audio (the soak test, the bench)
_heap_every = int(config["heap_every"] * RATE) if config.get("heap_every") else 0
if _heap_every and _heap_at < 0:
    _heap_at = _heap_every
heap_baseline = 0  # set by boot.py: what the shims themselves use
# --realtime: the ticks at audio time 0, from this boot's start or from an epoch that boards
# started together share (Unix ms).
_since_zero_ms = (_time.time_ns() // 1000000 - config["epoch_ms"] if config.get("epoch_ms") is not None
                  else int(config["start_t"] * 1000))
_wall0 = _time.ticks_add(_time.ticks_ms(), -_since_zero_ms)
# Real time the receiver gets to answer before the audio clock moves past the moment the
# answer is due (a pong: at once; a wake verdict: once the receiver has heard enough): on a
# LAN answers take no audio time, and a busy host must not change what the board does.
_REPLY_WAIT_MS = 2000
_owed = {}  # what the receiver owes ("pong", "verdict") -> (real socket, due sample)
ring_lit = False  # set by the neopixel shim: is the listening pattern showing?
_dark_since = 0


def now():
    return samples / RATE


def emit(ev, fields):
    # fields is a JSON object body without braces, e.g. '"on": true'.
    _print('{"t": %.4f, "ev": "%s", %s}' % (samples / RATE, ev, fields))


def lit(on):
    global ring_lit, _dark_since
    if on != ring_lit:
        ring_lit = on
        if not on:
            _dark_since = samples


def advance_to(target):
    # Moves the clock to `target` samples, playing the scripted world on the way.
    global samples
    if target <= samples:
        return
    _script(target)
    if _owed:
        _wait_replies(target)
    if _realtime:
        _pace(target)
    samples = target
    if samples >= _end_at and not ring_lit and samples - _dark_since >= RATE // 4:
        raise SystemExit(0)
    if samples >= _give_up:
        raise SystemExit(0)


def await_reply(kind, sock, after_ms=0):
    # The ssl shim saw a request go out on sock; its answer is due after_ms of audio later.
    _owed[kind] = (sock, samples + after_ms * RATE // 1000)


def reply_read(kind):
    # The ssl shim saw the answer come in: no need to wait for it.
    _owed.pop(kind, None)


def _wait_replies(target):
    # Once per request, so a receiver that is really gone still times out in audio time.
    for kind in list(_owed):
        sock, due = _owed[kind]
        if due <= target:
            del _owed[kind]
            poller = _select.poll()
            poller.register(sock, _select.POLLIN)
            poller.poll(_REPLY_WAIT_MS)


def _script(target):
    global samples, _press_i, _button_down, wifi_up
    if _button_file is not None:
        _hand_button()
    while _press_i < len(_presses):
        down, up = _presses[_press_i]
        edge = up if _button_down else down
        edge = int(edge * RATE)
        if edge > target:
            break
        samples = max(samples, edge)
        _button_down = not _button_down
        emit("button", '"pressed": %s' % ("true" if _button_down else "false"))
        if not _button_down:
            _press_i += 1
    while _outage_edges and int(_outage_edges[0][0] * RATE) <= target:
        t, up = _outage_edges.pop(0)
        samples = max(samples, int(t * RATE))
        emit("receiver", '"up": %s' % ("true" if up else "false"))
        sys.stdin.buffer.read(1)  # the host has done it
    while _wifi_edges and int(_wifi_edges[0][0] * RATE) <= target:
        t, up = _wifi_edges.pop(0)
        samples = max(samples, int(t * RATE))
        if up != wifi_up:
            wifi_up = up
            emit("wifi", '"up": %s' % ("true" if up else "false"))
            if not up:
                for sock in list(sockets):
                    sock.lose()
    if 0 <= _heap_at <= target:
        _report_heap()
    if 0 <= _power_cut <= target:
        samples = max(samples, _power_cut)
        emit("power", '"on": false')
        # The host kills this process now, like pulling the plug: nothing gets to clean up.
        while True:
            _time.sleep_ms(1000)


def _hand_button():
    global _button_down
    for edge in _button_file.read():
        down = edge == ord("1")
        if down != _button_down:
            _button_down = down
            emit("button", '"pressed": %s' % ("true" if down else "false"))


_spare = None  # the shims' unused room, held so that the firmware gets the board's heap


def hold_spare_heap():
    # The interpreter was started with the board's heap plus room for these shims; what
    # the shims leave of that room is taken here, once, before the firmware starts.
    global _spare
    import gc

    gc.collect()
    room = gc.mem_free() - config.get("heap_bytes", gc.mem_free())
    if room > 0:
        _spare = bytearray(room)


def _report_heap():
    # The firmware's heap in use (shims excluded), what is free and the largest block the
    # firmware could still get, after a collection.
    global _heap_at
    import gc

    _heap_at = _heap_at + _heap_every if _heap_every else -1
    gc.collect()
    emit("heap", '"firmware_bytes": %d, "free_bytes": %d, "largest_free_bytes": %d'
         % (gc.mem_alloc() - heap_baseline, gc.mem_free(), _largest_free()))


def _largest_free():
    # The largest bytearray that can be allocated now, to 64 bytes (a binary search of
    # trial allocations, each freed at once).
    import gc

    lo, hi = 0, gc.mem_free()
    while hi - lo > 64:
        mid = (lo + hi) // 2
        try:
            bytearray(mid)
            lo = mid
        except MemoryError:
            hi = mid
    gc.collect()
    return lo


def _pace(target):
    ahead = target * 1000 // RATE - _time.ticks_diff(_time.ticks_ms(), _wall0)
    if ahead > 0:
        _time.sleep_ms(ahead)


def wait_for_input(upto):
    # Live input: blocks until the host has recorded up to sample `upto`, or learns
    # that the recording has ended (then the run ends like a file input would).
    global input_samples, _end_at, _give_up
    if _live_done is None:
        return
    while True:
        have = audio.seek(0, 2) // 4
        if have >= upto:
            return
        _live_done.seek(0)
        if _live_done.read(1):
            input_samples = _end_at = have
            _give_up = have + int(config["drain_s"] * RATE)
            return
        _time.sleep_ms(5)


def button_down():
    return _button_down


def console(*args, sep=" ", end="\n"):
    # The board's console: every line becomes a trace event.
    text = sep.join(str(a) for a in args) + end
    for line in text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"):
        emit("serial", '"line": ' + json.dumps(line))


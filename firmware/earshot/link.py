# The receiver link: one TCP connection kept up between sessions, speaking Wyoming
# events (a JSON header line, optional payload). It says hello, sends heartbeats,
# notices a dead receiver and reconnects with backoff that keeps an idle board within
# DESIGN.md P1 (a few hundred bytes per 10 minutes). Audio goes out through Session.
#
# It also tells the receiver whether the board is muted, which only the board knows:
# in the hello, and as a `state` event ({"state": "muted"} or "idle") when that changes
# while linked. Streaming the receiver sees from the session's own events, offline as
# the link's absence. State events are dark-ring traffic (P1), so they are rate-limited:
# a burst of _REPORT_BURST, then one per _REPORT_EVERY_MS; a change in between waits
# and is coalesced with the next, so the receiver hears the latest state, not each flap.
import asyncio
import errno
import json
import random

import time
from micropython import const

from earshot.log import Logger, value
from earshot.mic import FRAME_BYTES, FRAME_MS

_HEARTBEAT_MS = const(20000)
_PONG_TIMEOUT_MS = const(6000)
_CONNECT_TIMEOUT_MS = const(15000)  # joining Wi-Fi (main.py waits up to 8 s), TCP, the TLS handshake
_BACKOFF_MIN_MS = const(1000)
_BACKOFF_MAX_MS = const(60000)
_HEALTHY_MS = const(60000)  # backoff resets only once a link has stayed up this long
_MAX_LINE = const(1024)  # the receiver's events are far shorter
_READ_CHUNK = const(256)
_REPORT_EVERY_MS = const(60000)
_REPORT_BURST = const(3)  # 3 + 10 state events (about 75 B each) in any 10 min
_REPORT_CREDIT_MS = const(180000)  # _REPORT_BURST * _REPORT_EVERY_MS

_log = Logger("link")


def event(kind, data=None):
    # One Wyoming event without payload.
    head = {"type": kind}
    if data:
        head["data"] = data
    return json.dumps(head).encode() + b"\n"


def parse(line):
    # (type, data dict) of one event line from the receiver; ValueError for anything else
    # (the link then drops the connection and says why: a bad peer never stops the board).
    if len(line) > _MAX_LINE or not line.endswith(b"\n"):
        raise ValueError("bad event from receiver: truncated or over " + str(_MAX_LINE) + " bytes")
    head = json.loads(line)
    data = head.get("data", {}) if isinstance(head, dict) else None
    if not isinstance(head.get("type") if data is not None else None, str) or not isinstance(data, dict):
        raise ValueError("bad event from receiver: not an object with a type and data")
    return head["type"], data


class LineReader:
    # Lines from a stream, each at most max_len bytes: a line that grows past that is refused
    # as it arrives (ValueError), before it can fill the heap. asyncio's readline() has no
    # limit. Receiver events are rare (pongs, verdicts): the small allocations here are not
    # per audio frame.
    def __init__(self, stream, max_len=_MAX_LINE):
        self._stream = stream
        self._max = max_len
        self._buf = b""

    async def readline(self):
        # -> one line with its newline; at the end, what is left (b"" after a clean close).
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                line, self._buf = self._buf[:i + 1], self._buf[i + 1:]
                return line
            if len(self._buf) > self._max:
                raise ValueError("bad event from receiver: over " + str(self._max) + " bytes")
            chunk = await self._stream.read(_READ_CHUNK)
            if not chunk:
                line, self._buf = self._buf, b""
                return line
            self._buf += chunk


class ChunkBuffer:
    # One preallocated audio-chunk event (header + 20 ms of PCM). The timestamp field is
    # space-padded JSON so it can be rewritten in place without allocating.
    # 112 bytes: a multiple of 4, so the PCM after it is word-aligned for the copy.
    _HEAD = b'{"type":"audio-chunk","data":{"rate":16000,"width":2,"channels":1,"timestamp":          },"payload_length":640}\n'

    def __init__(self):
        self.buf = bytearray(len(self._HEAD) + FRAME_BYTES)
        self.buf[:len(self._HEAD)] = self._HEAD
        self._ts_end = self._HEAD.find(b"}") - 1  # last digit position
        self._head_len = len(self._HEAD)

    def fill(self, timestamp_ms, ring, k):
        # The event for frame k of the ring, stamped timestamp_ms.
        buf = self.buf
        i = self._ts_end
        v = timestamp_ms
        while i > self._ts_end - 10:
            buf[i] = 48 + v % 10 if (v or i == self._ts_end) else 32
            v //= 10
            i -= 1
        ring.copy_out(k, buf, self._head_len)
        return buf


class Link:
    def __init__(self, open_connection, host, port, device, firmware, on_change, on_reject):
        self._open = open_connection
        self._host = host
        self._port = port
        self._device = device
        self._firmware = firmware
        self._on_change = on_change  # called with True/False when the link comes or goes
        self._on_reject = on_reject  # called with the session number the receiver rejected
        self.up = False
        self._writer = None
        self._serving = None  # the task serving the current connection
        self._dropped = False
        self._backoff = _BACKOFF_MIN_MS
        self._muted = False  # what report() last heard
        self._streaming = False
        self._sent = False  # what this connection's receiver last heard
        self._changed = asyncio.Event()
        # One writer at a time (send(), a session's batch): asyncio's stream has one out
        # buffer and one write waiter, so a ping sent while a session's backlog drains
        # would lose bytes or leave a task waiting for ever.
        self.sending = asyncio.Lock()
        self._credit = _REPORT_CREDIT_MS  # state-event allowance, in ms of _REPORT_EVERY_MS
        self._credit_at = time.ticks_ms()

    async def run(self):
        if not self._host or self._open is None:  # no receiver set, or not paired (main said why)
            if not self._host:
                _log.error("no_receiver", "action=set_receiver_host_in_settings")
            self._set_up(False)
            return
        while True:
            started = time.ticks_ms()
            self._dropped = False
            self._serving = asyncio.create_task(self._serve())
            try:
                await self._serving
            except (OSError, asyncio.TimeoutError, ValueError) as e:
                _log.warn("down", "receiver=" + self._where() + " error=" + value(_why(e)))
            except asyncio.CancelledError:
                if not self._dropped:
                    raise  # the board is shutting down
                _log.warn("down", "receiver=" + self._where() + " error=dropped")
            self._serving = None
            self._close()
            if time.ticks_diff(time.ticks_ms(), started) >= _HEALTHY_MS:
                self._backoff = _BACKOFF_MIN_MS
            wait = self._backoff + random.getrandbits(10) * self._backoff // 4096
            self._backoff = min(_BACKOFF_MAX_MS, self._backoff * 2)
            await asyncio.sleep_ms(wait)

    async def _serve(self):
        stream, self._writer = await asyncio.wait_for_ms(
            self._open(self._host, self._port), _CONNECT_TIMEOUT_MS)
        reader = LineReader(stream)
        self._sent = self._muted
        await self.send(event("hello", {"device": self._device, "firmware": self._firmware,
                                        "state": _state_name(self._sent)}))
        self._set_up(True)
        reporter = asyncio.create_task(self._report())
        try:
            await self._receive(reader)
        finally:
            reporter.cancel()

    async def _receive(self, reader):
        waiting_pong = False
        while True:
            try:
                line = await asyncio.wait_for_ms(
                    reader.readline(), _PONG_TIMEOUT_MS if waiting_pong else _HEARTBEAT_MS)
            except asyncio.TimeoutError:
                if waiting_pong:
                    raise OSError("no pong")
                await self.send(event("ping"))
                waiting_pong = True
                continue
            if not line:
                raise OSError("closed by receiver")
            kind, data = parse(line)
            if kind == "pong":
                waiting_pong = False
            elif kind == "wake-verdict":  # not_heard: the receiver found no wake word (P6)
                _log.info("wake_verdict", "session=" + value(data.get("session")) + " verdict="
                          + value(data.get("verdict")) + " score=" + value(data.get("score")))
                if data.get("verdict") == "not_heard":
                    self._on_reject(data.get("session"))
            else:
                _log.info("event", "type=" + value(kind))

    def report(self, state):
        # Every state change of the app (its _set_state), by name.
        self._muted = state == "muted"
        self._streaming = state == "streaming"
        self._changed.set()

    async def _report(self):
        # Sends a state event when the receiver's view is out of date, within the allowance.
        # Never while a session streams (its writes must not interleave with ours; it ends
        # with a state change that wakes us) nor on a dropped connection.
        while True:
            await self._changed.wait()
            self._changed.clear()
            if self._muted == self._sent or self._streaming or self._dropped:
                continue
            wait = _REPORT_EVERY_MS - self._refill()
            if wait > 0:
                await asyncio.sleep_ms(wait)
                self._changed.set()  # look again: the state may have changed meanwhile
                continue
            self._credit -= _REPORT_EVERY_MS
            self._sent = self._muted
            try:
                await self.send(event("state", {"state": _state_name(self._sent)}))
            except OSError:
                return  # the connection is broken: the receiving side notices and reconnects

    def _refill(self):
        # The allowance grows with time, up to a burst; returns it.
        now = time.ticks_ms()
        elapsed = time.ticks_diff(now, self._credit_at)
        self._credit_at = now
        if elapsed < 0:  # ticks wrapped past half their period (days of quiet): full
            elapsed = _REPORT_CREDIT_MS
        self._credit = min(_REPORT_CREDIT_MS, self._credit + elapsed)
        return self._credit

    async def send(self, data):
        # Raises OSError if the link is down or the write fails.
        async with self.sending:
            self.write(data)
            await self.flush()

    def write(self, data):
        # Queues data (copied if the socket cannot take it at once); flush() sends it.
        if self._writer is None:
            raise OSError("link down")
        self._writer.write(data)

    async def flush(self):
        if self._writer is None:
            raise OSError("link down")
        await self._writer.drain()

    def _set_up(self, up):
        if up != self.up:
            self.up = up
            _log.info("up" if up else "lost", "receiver=" + self._where())
        self._on_change(up)

    def drop(self):
        # Ends the connection at once (a failed send, a mute); run() reconnects after a backoff.
        if self._serving is not None:
            self._dropped = True
            self._serving.cancel()

    def _close(self):
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError:
                pass
            self._writer = None
        self._set_up(False)

    def _where(self):
        return self._host + ":" + str(self._port)

    def deinit(self):
        # Shutting down: close quietly, the app is going away too.
        self._on_change = _ignore
        self._close()


def _ignore(up):
    pass


def _state_name(muted):
    return "muted" if muted else "idle"


# mbedTLS codes a failing TLS link reports, in words
_TLS_ERRORS = {-0x7280: "tls_closed_by_receiver", -0x7780: "tls_alert_from_receiver",
               -0x2700: "receiver_certificate_not_the_paired_one"}


def _why(e):
    # ECONNREFUSED rather than 111; ssl's multi-line messages on one line.
    arg = e.args[0] if e.args else type(e).__name__
    if type(arg) is int:
        return errno.errorcode.get(arg) or _TLS_ERRORS.get(arg, arg)
    return " ".join(str(arg).split())


class Session:
    # Streams one session: audio-start, then every frame from `first` on as audio-chunk
    # events, then audio-stop once the app sets `end`. Frames the capture overwrote
    # before they could be sent are dropped (oldest first) and counted.
    def __init__(self, link, ring, chunk):
        self._link = link
        self._ring = ring
        self._chunk = chunk
        self.number = 0

    async def stream(self, first, trigger, stop, about):
        # `stop()` returns the end frame index once the session should end (0: at once),
        # else -1. `about`: more audio-start fields (preroll_ms, the wake phrase), which
        # the receiver needs to verify the wake word.
        self.number += 1
        link, ring = self._link, self._ring
        start = {"rate": 16000, "width": 2, "channels": 1, "timestamp": 0, "session": self.number,
                 "trigger": trigger}
        start.update(about)
        await link.send(event("audio-start", start))
        k = first
        dropped = 0
        while True:
            end = stop()
            if 0 <= end <= k:
                break
            if k >= ring.written:
                await asyncio.sleep_ms(FRAME_MS // 2)
                continue
            oldest = ring.oldest()
            if k < oldest:
                dropped += oldest - k
                k = oldest
            # Everything captured so far in one go (the pre-roll at the start), so the
            # stream catches up with the mic instead of trailing it by the backlog.
            last = ring.written if end < 0 else min(end, ring.written)
            async with link.sending:
                while k < last:
                    link.write(self._chunk.fill((k - first) * FRAME_MS, ring, k))
                    k += 1
                await link.flush()
        await link.send(event("audio-stop", {"timestamp": (k - first) * FRAME_MS, "dropped": dropped}))
        return k - first, dropped

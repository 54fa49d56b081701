# `earshot receive`: the receiver a board streams its audio to. An asyncio TCP server
# speaking Wyoming framing: a JSON header line, then optionally `data_length` bytes of
# JSON merged over the header's `data`, then `payload_length` payload bytes.
#
# Each finished session is stored as <device>-<YYYYmmdd-HHMMSS>-<session>.wav plus a
# .json of metadata (UTC receiver time in the name). The audio goes to <stem>.wav.part
# while it arrives and becomes a .wav only at audio-stop, so a session that does not
# end cleanly (connection lost, protocol error, receiver stopped) leaves nothing behind.
#
# Device -> receiver: hello (first, with the board's state: idle or muted), ping
# (answered with pong), state (the board was muted or unmuted), audio-start, audio-chunk
# (s16le PCM payload), audio-stop. Anything that breaks the framing closes that one
# connection; the server keeps serving the others.
#
# What the receiver knows of each board (online since when, its state, the session that
# streams) is in Receiver.boards, for the web page (host_tools/web/), which shares this
# event loop (`--web`, on by default on loopback).
#
# asyncio is imported inside functions: it costs ~80 ms, and every `earshot` command
# imports this module to build its parser.
import argparse
import datetime
import errno
import functools
import itertools
import json
import os
import re
import threading
import wave
from pathlib import Path

from host_tools.errors import CommandError
from host_tools.pairing import DEVICE_NAME, add_state_argument
from host_tools.private import make_private_dir, open_private
from host_tools.recordings import SESSION_LOG  # the metadata of every session saved, rejected, deleted

DEFAULT_LISTEN = "127.0.0.1:10700"
DEFAULT_WEB = "127.0.0.1:10780"
BOARD_STATES = ("idle", "muted")  # what a board reports; streaming is its session, offline no link
MAX_HEADER = 8 * 1024  # bytes in the header line, not counting its newline
MAX_DATA = 8 * 1024
MAX_PAYLOAD = 64 * 1024
HANDSHAKE_TIMEOUT_S = 10.0
SHUTDOWN_TIMEOUT_S = 2.0  # a peer that does not answer the TLS close is cut off after this
DEFAULT_KEEP_DAYS = 30.0
IDLE_TIMEOUT_S = 60.0  # the board pings every 20 s; silence this long means it is gone
TRIGGERS = ("button", "wake")
WIDTH, CHANNELS = 2, 1  # stored as 16-bit mono WAV
MAX_RATE = 48000
MAX_SESSION = 2**32
PONG = b'{"type":"pong"}\n'
_LISTEN = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):([0-9]{1,5})")
_PLAIN = re.compile(r"[!#-~]+")  # log values that need no quoting


class ProtocolError(Exception):
    """The peer broke the framing or the protocol; its connection is closed."""


# --- command line ---------------------------------------------------------------------


def add_arguments(parser):
    parser.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                        help="address boards connect to (default %(default)s; "
                             "0.0.0.0:10700 accepts boards on the whole network)")
    parser.add_argument("--recordings", default="recordings", metavar="DIR",
                        help="where finished sessions are stored (default ./recordings, "
                             "created private to you)")
    add_state_argument(parser)
    parser.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                        help="check the wake word of every wake session with microWakeWord and stop the board "
                             "(storing nothing) when it is not there (default: on)")
    parser.add_argument("--wyoming", metavar="tcp://HOST:PORT",
                        help="also serve the paired boards to Home Assistant as a Wyoming satellite")
    parser.add_argument("--pass-through", dest="store", action="store_false",
                        help="store no audio: sessions only go on to --wyoming (metadata is still logged)")
    parser.add_argument("--keep-days", type=_days, default=DEFAULT_KEEP_DAYS, metavar="DAYS",
                        help="delete stored sessions older than this, hourly (default %(default)g)")
    parser.add_argument("--verify-cutoff", type=_probability, default=None, metavar="P",
                        help="mean microWakeWord probability a session must reach (default 0.5)")
    parser.add_argument("--web", default=DEFAULT_WEB, metavar="HOST:PORT",
                        help="serve the web page here (default %(default)s; any address but loopback needs "
                             "`earshot web-password` first)")
    parser.add_argument("--no-web", dest="web", action="store_const", const=None, help="serve no web page")


def run(args):
    import asyncio

    receiver = Receiver(args.listen, args.recordings, log=functools.partial(print, flush=True), state=args.state,
                        verify=args.verify, verify_cutoff=args.verify_cutoff, keep_days=args.keep_days,
                        wyoming=args.wyoming, store=args.store, web=args.web)
    try:
        asyncio.run(_serve_until_signal(receiver))
    except KeyboardInterrupt:
        pass  # Ctrl-C before the signal handlers were in place: nothing to clean up yet
    return 0


async def _serve_until_signal(receiver):
    import asyncio
    import signal

    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await receiver.start()
    try:
        await stop.wait()
    finally:
        await receiver.stop()
    receiver.say("stopped")


def _number(ok, what):
    # An argparse type: a float for which ok() holds, else an error naming `what`.
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return parse


_days = _number(lambda d: d > 0, "a positive number of days")
_probability = _number(lambda p: 0 < p < 1, "a probability between 0 and 1")


def parse_listen(value, option="--listen", port=10700):
    """"HOST:PORT" (IPv6 as "[::1]:PORT") -> (host, port), or CommandError."""
    m = _LISTEN.fullmatch(value)
    if not m or int(m[2]) > 65535:
        raise CommandError(f"{option} {value!r} is not HOST:PORT; use e.g. 127.0.0.1:{port}, "
                           f"or 0.0.0.0:{port} to accept the whole network")
    return m[1].strip("[]"), int(m[2])


# --- the server -----------------------------------------------------------------------


class Board:
    """What the receiver knows of one board: online or not since when, the state it last
    reported (idle or muted; None if its firmware does not say), the session it streams."""

    def __init__(self, name, since):
        self.name = name
        self.online = False
        self.since = since  # when it came online or went offline (or the receiver started)
        self.reported = None
        self.firmware = None
        self.session = None  # {"session", "trigger", "start"} while a session is open
        self.connection = None  # the _Connection that speaks for it

    @property
    def state(self):
        # What its ring shows, as far as the receiver can tell.
        if not self.online:
            return "offline"
        return "streaming" if self.session is not None else self.reported or "idle"


class Receiver:
    """The asyncio server; from a running loop: await start(), await stop().

    sessions: metadata dicts of finished sessions, in order. open_sessions: how many are
    in progress. boards: name -> Board. on_change() and every watch()er are called on the
    loop after any of them or the session log changes.
    """

    def __init__(self, listen=DEFAULT_LISTEN, recordings="recordings", log=print, on_change=None, state=None,
                 verify=True, verify_cutoff=None, keep_days=DEFAULT_KEEP_DAYS, wyoming=None, store=True, web=None):
        from host_tools.pairing import Registry
        from host_tools.verify import DEFAULT_CUTOFF

        self.keep_days = keep_days
        self.store = store  # False: pass-through, sessions go to --wyoming only, never to disk
        self.wyoming = wyoming  # tcp://HOST:PORT to serve Home Assistant on, or None
        self.hub = None
        self.verify = verify
        self.verify_cutoff = DEFAULT_CUTOFF if verify_cutoff is None else verify_cutoff
        self._unverifiable = set()  # phrases already logged as having no verifier
        self.host, self.port = parse_listen(listen)
        self.directory = Path(recordings)
        self.registry = Registry(state)
        self._tls = None
        self.log = log
        self.sessions = []
        self.open_sessions = 0
        self.boards = {}
        self.started = _now()
        self._watchers = [on_change] if on_change else []
        self._server = None
        self._stopping = False
        self._tasks = {}  # connection task -> its writer
        self._connections = {}  # connection task -> its _Connection
        self.web = None
        if web is not None:
            from host_tools.web.server import WebPage

            self.web = WebPage(self, *parse_listen(web, "--web", 10780))

    def say(self, event, **fields):
        """One line of the receiver's log: `receiver EVENT key=value ...`."""
        self.log(_line(event, **fields))

    def watch(self, callback):
        self._watchers.append(callback)

    def _on_change(self):
        for callback in self._watchers:
            callback()

    async def start(self):
        import asyncio

        if self.web is not None:
            self.web.check()  # a missing password is refused before anything listens
        self._tls = self.registry.server_context(
            on_refused=lambda why: self.say("refused", reason=f"TLS handshake failed: {why}"))
        make_private_dir(self.directory, "--recordings")
        self._stopping = False
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_HEADER,
                                                      ssl=self._tls, ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S,
                                                      ssl_shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        except OSError as e:
            raise CommandError(_bind_error(self.host, self.port, e)) from None
        self.port = self._server.sockets[0].getsockname()[1]
        self._expiry = asyncio.create_task(self._expire())
        if self.web is not None:
            try:
                await self.web.start()
            except CommandError:
                await self.stop()
                raise
        if self.wyoming and self.hub is None:
            from host_tools.wyoming_satellite import Hub

            self.hub = Hub(self.wyoming, self.log)
            try:
                await self.hub.start()
            except OSError as e:
                raise CommandError(f"--wyoming {self.wyoming}: {e.strerror or e}; choose another port") from None
        self.say("listening", on=f"{self.host}:{self.port}", recordings=self.directory.resolve(),
                 paired=len(self.registry.devices()), state=self.registry.state)
        if self.web is not None:
            self.web.say_listening()
        if not self.store and not self.wyoming:
            self.say("pass_through", warning="no --wyoming: sessions are received and dropped")
        if not self.registry.devices():
            self.say("no_paired_boards", action="earshot pair NAME, then install its credentials on the board")

    async def stop(self):
        # Connections are cancelled, which discards their open sessions.
        import asyncio

        if self._server is None:
            return
        self._stopping = True
        self._expiry.cancel()
        self._server.close()
        for task, writer in self._tasks.items():
            # Cut, not closed politely: a polite TLS close waits for the board, and a
            # cancellation can be lost inside asyncio.wait_for (Python 3.11) when a read
            # has just finished, leaving the handler to wait out IDLE_TIMEOUT_S.
            writer.transport.abort()
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        if self.web is not None:
            await self.web.stop()
        if self.hub is not None:
            await self.hub.stop()
            self.hub = None

    async def _serve(self, reader, writer):
        import asyncio

        if self._stopping:  # accepted just before stop(): never served
            writer.close()
            return
        task = asyncio.current_task()
        self._tasks[task] = writer
        try:
            connection = self._connections[task] = _Connection(self, writer)
            if connection.authenticate():
                await connection.serve(reader)
        except asyncio.CancelledError:
            pass  # stop() did it; Python 3.11's streams would log a cancelled handler as an error
        finally:
            self._tasks.pop(task, None)
            self._connections.pop(task, None)
            self._on_change()

    def wake_check(self, trigger, data, log):
        """A verify.WakeCheck for a session the board started on its wake word, or None
        (a button press, verification off, or no microWakeWord model for the phrase)."""
        from host_tools import verify

        if trigger != "wake" or not self.verify:
            return None
        phrase, preroll_ms = data.get("phrase"), data.get("preroll_ms")
        if not isinstance(phrase, str) or not _is_count(preroll_ms, 60001):
            raise ProtocolError("a wake session's audio-start needs phrase and preroll_ms (0-60000)")
        if not verify.available(phrase):
            if phrase not in self._unverifiable:
                self._unverifiable.add(phrase)
                log("unverified", phrase=phrase, reason="no microWakeWord model for this phrase (logged once)")
            return None
        return verify.WakeCheck(phrase, preroll_ms, self.verify_cutoff)

    def note(self, meta):
        from host_tools import recordings

        recordings.note(self.directory, meta)
        self._on_change()

    async def _expire(self):
        # Retention: sessions older than keep_days go, at start and then every hour.
        import asyncio

        from host_tools import recordings

        while True:
            gone = recordings.purge(self.directory, self.keep_days)
            if gone:
                self.say("expired", sessions=len(gone), keep_days=self.keep_days)
            await asyncio.sleep(3600)

    @property
    def connections(self):
        return len(self._tasks)

    def session_opened(self, connection):
        self.open_sessions += 1
        board = self._board_of(connection)
        if board is not None:
            rec = connection.recording
            board.session = {"session": rec.session, "trigger": rec.trigger,
                             "start": rec.started.isoformat(timespec="milliseconds")}
        self._on_change()

    def session_closed(self, connection, meta=None):
        # Appends before the count drops, so a waiter that sees no open session also
        # sees the finished one.
        if meta is not None:
            self.sessions.append(meta)
        self.open_sessions -= 1
        board = self._board_of(connection)
        if board is not None:
            board.session = None
        self._on_change()

    # --- what the web page shows of each board

    def board_online(self, connection, firmware, reported):
        board = self.boards.get(connection.device) or self.boards.setdefault(
            connection.device, Board(connection.device, self.started))
        if not board.online:
            board.online, board.since = True, _now()
        board.connection, board.firmware, board.reported, board.session = connection, firmware, reported, None
        self._on_change()

    def board_reported(self, connection, state):
        board = self._board_of(connection)
        if board is not None and board.reported != state:
            board.reported = state
            self._on_change()

    def board_gone(self, connection):
        # Only the connection that speaks for a board takes it offline: an old one that
        # times out after the board reconnected does not.
        board = self._board_of(connection)
        if board is not None:
            board.online, board.since, board.connection, board.session = False, _now(), None, None
            self._on_change()

    def _board_of(self, connection):
        board = self.boards.get(connection.device)
        return board if board is not None and board.connection is connection else None

    def disconnect(self, device):
        """Cuts every connection of this board at once (it was unpaired)."""
        for connection in list(self._connections.values()):
            if connection.device_cert == device:
                connection.writer.transport.abort()


class ReceiverThread:
    """A Receiver on its own event loop in a daemon thread (for the simulator, tests)."""

    def __init__(self, listen="127.0.0.1:0", recordings="recordings", log=print, **options):
        # options: Receiver's state, verify, verify_cutoff
        self._changed = threading.Condition()
        self._receiver = Receiver(listen, recordings, log, on_change=self._notify, **options)
        self.sessions = self._receiver.sessions
        self.port = None
        self.web_port = None  # with web=HOST:PORT: where the page is served
        self._loop = self._thread = None

    def start(self):
        """Returns self once listening; raises CommandError if it cannot bind."""
        import asyncio

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="earshot-receiver",
                                        daemon=True)
        self._thread.start()
        try:
            self._call(self._receiver.start())
        except BaseException:
            self._halt()
            raise
        self.port = self._receiver.port
        if self._receiver.web is not None:
            self.web_port = self._receiver.web.port
        return self

    def stop(self):
        """Closes the server and its connections (open sessions are discarded)."""
        if self._thread is None:
            return
        try:
            self._call(self._receiver.stop())
        finally:
            self._halt()

    def wait_idle(self, timeout):
        """True once no session and no connection is open (so everything a board sent
        before closing its link has been handled), False after timeout s."""
        r = self._receiver
        with self._changed:
            return self._changed.wait_for(lambda: r.open_sessions == 0 and r.connections == 0, timeout)

    def pause(self):
        """Stops listening and drops every connection, as if the receiver went away."""
        self._call(self._receiver.stop())

    def call(self, function, *args):
        """function(*args) on the receiver's loop (its state is the loop's alone); its result."""
        async def run():
            return function(*args)

        return self._call(run())

    @property
    def receiver(self):
        return self._receiver

    def resume(self):
        """Listens again on the same port."""
        self._call(self._receiver.start())

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _call(self, coro):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _halt(self):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._loop = self._thread = None

    def _notify(self):
        with self._changed:
            self._changed.notify_all()


def _bind_error(host, port, e):
    where = f"cannot listen on {host}:{port}"
    if e.errno == errno.EADDRINUSE:
        return f"{where}: the port is in use; stop the other receiver or pick another port with --listen"
    return f"{where}: {e.strerror or e}; check the address given to --listen"


# --- one connection -------------------------------------------------------------------


class _Connection:
    # One board's connection: hello first, then pings and at most one session at a time.

    def __init__(self, receiver, writer):
        self.rx = receiver
        self.writer = writer
        host, port = writer.get_extra_info("peername")[:2]
        self.peer = f"{host}:{port}"
        self.device = None
        self.device_cert = None  # the paired name its certificate carries, once authenticated
        self.recording = None
        self.check = None  # the wake-word verifier of the open session, until it decides
        self.phrase = None
        self.rejected = None  # the session number the verifier rejected, until its audio-stop
        self.stray_logged = False

    def authenticate(self):
        """The TLS handshake (asyncio did it) proved the peer holds a certificate this
        receiver signed; it must also be a paired device's. False (with one log line) for
        anyone else: they get nothing, not even a pong."""
        der = self.cert_der = self.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        self.device_cert = self.rx.registry.device_for(der)
        if self.device_cert is None:
            from host_tools.pairing import fingerprint

            self.log("refused", reason="certificate not paired or revoked", sha256=fingerprint(der)[:16])
            self.writer.close()
            return False
        return True

    async def serve(self, reader):
        import asyncio

        self.log("connected", certificate=self.device_cert)
        reason = "internal error"  # kept only if a bug raised something unexpected
        try:
            while (event := await asyncio.wait_for(read_event(reader), IDLE_TIMEOUT_S)) is not None:
                await self.handle(*event)
            reason = "closed by peer"
        except ProtocolError as e:
            reason = str(e)
        except asyncio.TimeoutError:  # before OSError: in 3.11 it is one
            reason = f"silent for {IDLE_TIMEOUT_S:g} s"
        except OSError as e:
            reason = e.strerror or repr(e)
        except asyncio.CancelledError:
            reason = "receiver stopping"
            raise
        finally:
            self.discard(reason)
            self.writer.close()
            if self.device is not None:
                self.rx.board_gone(self)
            self.log("closed", reason=reason)

    async def handle(self, kind, data, payload):
        if self.device is None:
            self.hello(kind, data)
        elif kind == "ping":
            self.writer.write(PONG)
            await self.writer.drain()  # a peer that pings but never reads stalls only itself
        elif kind == "audio-start":
            self.start(data)
        elif kind == "audio-chunk":
            self.chunk(data, payload)
        elif kind == "audio-stop":
            self.stop(data)
        elif kind == "state":
            state = data.get("state")
            if state in BOARD_STATES:
                self.rx.board_reported(self, state)
                self.log("state", state=state)
            else:
                self.log("ignored", type="state", state=_clip(state))
        elif kind == "hello":
            raise ProtocolError("second hello on one connection")
        else:
            self.log("ignored", type=_clip(kind))

    def hello(self, kind, data):
        if kind != "hello":
            raise ProtocolError(f"expected hello first, got {_clip(kind)}")
        device, firmware = data.get("device"), data.get("firmware")
        if not isinstance(device, str) or not DEVICE_NAME.fullmatch(device):
            raise ProtocolError(f"bad device name {_clip(device)}: "
                                "use 1-32 of A-Z a-z 0-9 _ -")
        if not isinstance(firmware, str):
            raise ProtocolError("hello has no firmware string")
        if device != self.device_cert:
            raise ProtocolError(f"hello names {device} but the certificate is {self.device_cert}'s")
        self.device = device
        state = data.get("state")
        self.rx.board_online(self, _clip(firmware), state if state in BOARD_STATES else None)
        self.log("hello", firmware=_clip(firmware), state=_clip(state))

    def start(self, data):
        fmt = _format(data)
        if fmt is None or fmt[1:] != (WIDTH, CHANNELS) or not 0 < fmt[0] <= MAX_RATE:
            raise ProtocolError(f"audio-start format {fmt} not stored: "
                                f"send 16-bit mono PCM at up to {MAX_RATE} Hz")
        session, trigger, timestamp = data.get("session"), data.get("trigger"), data.get("timestamp")
        if not (_is_count(session, MAX_SESSION) and _is_count(timestamp) and trigger in TRIGGERS):
            raise ProtocolError("audio-start needs integer session and timestamp, "
                                "trigger button or wake")
        if self.rx.registry.device_for(self.cert_der) is None:
            raise ProtocolError("this device was unpaired (`earshot unpair`)")
        self.discard("audio-start before audio-stop")
        self.rejected = None
        self.check = self.rx.wake_check(trigger, data, self.log)
        self.recording = Recording(self.rx.directory, self.device, fmt[0], session, trigger,
                                   timestamp, held=self.check is not None, store=self.rx.store)
        self.phrase = data.get("phrase")
        self.rx.session_opened(self)
        if self.check is None:
            self.forward_start(b"")
        if trigger == "wake" and self.check is None:  # the board hears at once that none will come
            self.writer.write(_event("wake-verdict", {"session": session, "verdict": "unchecked"}))

    def chunk(self, data, payload):
        rec = self.recording
        if rec is None:
            if self.rejected is None:
                self.stray("audio-chunk")
        elif _format(data) != rec.format:
            self.discard(f"chunk format {_format(data)} differs from audio-start {rec.format}")
        elif len(payload) % (WIDTH * CHANNELS):
            self.discard(f"chunk of {len(payload)} bytes is not whole samples")
        else:
            rec.write(payload)
            if self.check is not None:
                self.verdict(self.check.feed(payload))
            elif self.rx.hub is not None:
                self.rx.hub.audio(payload, rec.format[0], rec.samples * 1000 // rec.format[0])

    def verdict(self, heard):
        # The verifier's decision on the open session: keep it (now it may touch the disk),
        # or reject it: the board is told to stop and nothing but metadata is kept (P6).
        rec, check = self.recording, self.check
        if heard is None:
            return
        self.check = None
        rec.verify_score = check.score
        self.writer.write(_event("wake-verdict", {"session": rec.session, "verdict": "heard" if heard else "not_heard",
                                                  "score": round(check.score, 3)}))
        if heard:
            self.forward_start(rec.release())
            self.log("session verified", session=rec.session, score=f"{check.score:.3f}")
            return
        self.recording, self.rejected = None, rec.session
        rec.discard()
        self.rx.session_closed(self)
        self.rx.note({"event": "rejected", "device": self.device, "session": rec.session,
                      "start": rec.started.isoformat(timespec="milliseconds"), "trigger": rec.trigger,
                      "sent_s": round(rec.samples / rec.format[0], 3),
                      "verify_score": round(check.score, 3), "verify_cutoff": check.cutoff})
        self.log("session rejected", session=rec.session, score=f"{check.score:.3f}", cutoff=check.cutoff,
                 kept="nothing")

    def stop(self, data):
        rec = self.recording
        if self.check is not None:  # ended before the verifier had heard enough: decide now
            self.verdict(self.check.final())
            rec = self.recording
        if rec is None:
            if self.rejected is None:
                self.stray("audio-stop")
            self.rejected = None
            return
        dropped = data.get("dropped", 0)
        if not _is_count(dropped):
            raise ProtocolError("audio-stop dropped is not a count of frames")
        meta = rec.finish(dropped)  # on OSError, serve() discards it like any failure
        self.recording = None
        if self.rx.hub is not None:
            self.rx.hub.session_stop(meta["duration_s"] * 1000)
        self.rx.session_closed(self, meta)
        event = "saved" if rec.store else "passed_through"
        self.rx.note({"event": event, **meta})
        self.log(f"session {event}", session=rec.session, file=meta["wav"],
                 duration_s=f"{meta['duration_s']:.2f}", dropped=dropped)

    def forward_start(self, held):
        # Home Assistant (--wyoming) hears a session once it may: at once, or once verified.
        hub, rec = self.rx.hub, self.recording
        if hub is not None:
            hub.session_start(self.device, rec.session, rec.trigger, self.phrase, rec.format[0])
            if held:
                hub.audio(held, rec.format[0], 0)

    def stray(self, kind):
        # A board that lost its session keeps streaming: say so once, not 50 times a second.
        if not self.stray_logged:
            self.stray_logged = True
            self.log("ignored", type=kind, reason="no session open (logged once)")

    def discard(self, reason):
        rec, self.recording = self.recording, None
        if self.check is not None:
            self.check.close()
            self.check = None
        if rec is None:
            return
        if self.rx.hub is not None and not rec.is_held():
            self.rx.hub.session_stop(rec.samples * 1000 // rec.format[0])
        rec.discard()
        self.rx.session_closed(self)
        # Audio left the board even though nothing is kept: the session log says so.
        self.rx.note({"event": "discarded", "device": self.device, "session": rec.session,
                      "start": rec.started.isoformat(timespec="milliseconds"), "trigger": rec.trigger,
                      "sent_s": round(rec.samples / rec.format[0], 3), "reason": reason})
        self.log("session discarded", session=rec.session, reason=reason)

    def log(self, event, **fields):
        if self.device is not None:
            fields = {"device": self.device, **fields}
        self.rx.say(event, **fields, peer=self.peer)


def _format(data):
    # (rate, width, channels) if all three are plain integers, else None.
    fmt = tuple(data.get(key) for key in ("rate", "width", "channels"))
    return fmt if all(type(v) is int for v in fmt) else None


def _is_count(value, limit=None):
    return type(value) is int and value >= 0 and (limit is None or value < limit)


# --- storage --------------------------------------------------------------------------


class Recording:
    """One session on disk: <stem>.wav.part while it runs; finish() turns it into <stem>.wav
    and <stem>.json, discard() removes every file it made. A held recording keeps its audio
    in memory, touching no disk, until release() (the wake word was verified). One that is
    not stored (pass-through) never touches the disk: finish() only returns its metadata."""

    def __init__(self, directory, device, rate, session, trigger, device_timestamp_ms, held=False, store=True):
        self.directory = directory
        self.device, self.session, self.trigger = device, session, trigger
        self.format = (rate, WIDTH, CHANNELS)
        self.device_timestamp_ms = device_timestamp_ms
        self.started = _now()
        self.samples = 0
        self.verify_score = None
        self._held = bytearray() if held else None
        self._wav = self._file = None
        self.store = store
        self.stem = None
        if not held:
            self.release()

    def release(self):
        # Returns the audio it held (now written, if stored).
        held, self._held = self._held or b"", None
        if self.store:
            self.stem, self._file = _reserve(self.directory, f"{self.device}-{self.started:%Y%m%d-%H%M%S}-{self.session}")
            self._wav = wave.open(self._file, "wb")
            self._wav.setnchannels(CHANNELS)
            self._wav.setsampwidth(WIDTH)
            self._wav.setframerate(self.format[0])
            self._wav.writeframesraw(held)
        return held

    def is_held(self):
        return self._held is not None

    def write(self, pcm):
        # Raw: the header's length is patched once, at close.
        if self._held is not None:
            self._held += pcm
        elif self._wav is not None:
            self._wav.writeframesraw(pcm)
        self.samples += len(pcm) // (WIDTH * CHANNELS)

    def finish(self, dropped_frames):
        if self._held is not None:
            self.release()
        if self.store:
            self._close()
            os.replace(self._path(".wav.part"), self._path(".wav"))
        rate = self.format[0]
        meta = {
            "device": self.device,
            "session": self.session,
            "trigger": self.trigger,
            "start": self.started.isoformat(timespec="milliseconds"),
            "device_timestamp_ms": self.device_timestamp_ms,
            "duration_s": round(self.samples / rate, 3),
            "samples": self.samples,
            "rate": rate,
            "width": WIDTH,
            "channels": CHANNELS,
            "dropped_frames": dropped_frames,
            "wav": self.stem + ".wav" if self.store else None,
        }
        if self.verify_score is not None:
            meta["wake_verified_score"] = round(self.verify_score, 3)
        if not self.store:
            return meta
        with open_private(self._path(".json.tmp"), exclusive=False) as f:
            f.write(json.dumps(meta, indent=2).encode() + b"\n")
        os.replace(self._path(".json.tmp"), self._path(".json"))
        return meta

    def discard(self):
        self._held = None
        if self._file is None:
            return  # held: nothing was ever written
        try:
            self._close()
        except OSError:
            pass  # the file goes anyway
        for suffix in (".wav.part", ".wav", ".json.tmp"):
            self._path(suffix).unlink(missing_ok=True)

    def _close(self):
        try:
            self._wav.close()
        finally:
            self._file.close()

    def _path(self, suffix):
        return self.directory / (self.stem + suffix)


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _reserve(directory, stem):
    # Claims <stem>.wav.part, or <stem>-2, -3 ... when any file of that stem exists
    # (same device, second and session number), so nothing is ever overwritten.
    for n in itertools.count(1):
        name = stem if n == 1 else f"{stem}-{n}"
        if (directory / f"{name}.wav").exists() or (directory / f"{name}.json").exists():
            continue
        try:
            return name, open_private(directory / f"{name}.wav.part", exclusive=True)
        except FileExistsError:
            continue


# --- framing --------------------------------------------------------------------------


def _event(kind, data):
    return json.dumps({"type": kind, "data": data}, separators=(",", ":")).encode() + b"\n"


async def read_event(reader):
    """One event as (type, data dict, payload bytes); None if the peer closed between
    events; ProtocolError for anything malformed, oversized or truncated. The reader's
    limit must be MAX_HEADER."""
    import asyncio

    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise ProtocolError("truncated header line") from None
        return None
    except asyncio.LimitOverrunError:
        raise ProtocolError(f"header line over {MAX_HEADER} bytes") from None
    header = _json_object(line, "header")
    kind = header.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("header has no string type")
    data = header.get("data")
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        raise ProtocolError("header data is not a JSON object")
    data_length = _length(header, "data_length", MAX_DATA)
    payload_length = _length(header, "payload_length", MAX_PAYLOAD)
    if data_length:
        data = {**data, **_json_object(await _read_exactly(reader, data_length, "data"), "data")}
    payload = await _read_exactly(reader, payload_length, "payload") if payload_length else b""
    return kind, data, payload


async def _read_exactly(reader, n, what):
    import asyncio

    try:
        return await reader.readexactly(n)
    except asyncio.IncompleteReadError as e:
        raise ProtocolError(f"truncated {what}: {len(e.partial)} of {n} bytes") from None


def _length(header, key, limit):
    n = header.get(key)
    if n is None:
        return 0
    if type(n) is not int or n < 0:
        raise ProtocolError(f"{key} is not a byte count")
    if n > limit:
        raise ProtocolError(f"{key} {n} over the {limit}-byte limit")
    return n


def _json_object(raw, what):
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: 8 KiB of "[" nests too deep
        raise ProtocolError(f"{what} is not JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} is not a JSON object")
    return obj


# --- log lines ------------------------------------------------------------------------


def _line(event, **fields):
    return " ".join([f"receiver {event}"] + [f"{k}={_value(v)}" for k, v in fields.items()])


def _value(v):
    # Quoted (JSON) when it has spaces, quotes or control characters: a peer's text
    # cannot fake a field or a line.
    s = str(v)
    return s if _PLAIN.fullmatch(s) else json.dumps(s)


def _clip(v, n=40):
    # Peer-supplied text is cut short, so it cannot flood the log.
    s = str(v)
    return s if len(s) <= n else s[:n] + "..."

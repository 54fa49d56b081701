# `earshot monitor`: the board's console over USB serial (pyserial), with host timestamps,
# coloured levels and a live status line parsed from the firmware's log format
# (`L module event key=value ...`, see firmware/earshot/log.py). It reconnects when the
# board resets or is unplugged; `--until REGEX --timeout S` makes it a tool for scripts.
import datetime
import re
import sys
import time

from host_tools.errors import CommandError
from host_tools.serial_port import explain, find_port, has_rts

BAUD = 115200
RING_OF_STATE = {"boot": "white", "idle": "dark", "streaming": "BLUE", "muted": "red", "offline": "amber"}
COLOURS = {"E": "\033[31m", "W": "\033[33m", "I": "", "D": "\033[2m"}
_LINE = re.compile(r"([DIWE]) (\w+) (\w+)(.*)")
_FIELD = re.compile(r"(\w+)=(\S+)")


def add_arguments(parser):
    parser.add_argument("--port", help="serial port or pyserial URL (socket://HOST:PORT, rfc2217://...); "
                                       "default: the one ESP32 board on USB")
    parser.add_argument("--baud", type=int, default=BAUD, help="default %(default)s")
    parser.add_argument("--log", metavar="FILE", help="also append every line, timestamped, to FILE")
    parser.add_argument("--filter", metavar="REGEX", help="show only lines matching REGEX (the status still follows all)")
    parser.add_argument("--until", metavar="REGEX", help="exit 0 as soon as a line matches REGEX")
    parser.add_argument("--timeout", type=float, metavar="S", help="give up after S seconds (exit 1)")
    parser.add_argument("--reset", action="store_true",
                        help="reset the board when the port opens, to watch it boot (pulses EN through RTS, as "
                             "esptool does; socket:// has no RTS: type r in `earshot sim --serial` instead)")


class Status:
    """What the log lines say about the board, for the status line."""

    def __init__(self):
        self.state, self.link, self.wake_score, self.dropped, self.sessions = "?", "?", None, 0, 0

    def feed(self, line):
        m = _LINE.match(line)
        if not m:
            return
        _, module, event, rest = m.groups()
        fields = dict(_FIELD.findall(rest))
        if module == "app" and event == "state":
            self.state = fields.get("new", self.state)
        elif module == "app" and event == "wake" and "score" in fields:
            self.wake_score = fields["score"]
        elif module == "app" and event == "session_sent":
            self.sessions += 1
            self.dropped += int(fields.get("dropped", "0")) if fields.get("dropped", "0").isdigit() else 0
        elif module == "link" and event in ("up", "lost", "down"):
            self.link = "up" if event == "up" else "down"
        elif module == "main" and event == "boot":
            self.__init__()
            self.state = "boot"

    def line(self):
        ring = RING_OF_STATE.get(self.state, "?")
        score = self.wake_score if self.wake_score is not None else "-"
        return (f"[state {self.state} | ring {ring} | link {self.link} | sessions {self.sessions} | "
                f"last wake score {score} | dropped frames {self.dropped}]")


def _open(port, baud):
    # DTR and RTS low before opening: on ESP32 dev boards they drive EN and BOOT through
    # the auto-reset circuit, and pyserial's default would hold the chip in reset.
    import serial

    conn = serial.serial_for_url(port, baudrate=baud, timeout=0.1, do_not_open=True)
    conn.dtr = False
    conn.rts = False
    conn.open()
    return conn


def _reset(conn, port, live):
    # The dev boards' auto-reset circuit: RTS high pulls EN low (with DTR low, BOOT stays
    # high, so the chip boots normally when EN is released).
    if not has_rts(port):
        _say(live, f"monitor: {port} has no RTS line to reset the board with; reset it by hand")
        return
    try:
        conn.rts = True
        time.sleep(0.1)
        conn.rts = False
    except OSError as e:
        _say(live, f"monitor: could not reset the board through {port} ({e}); reset it by hand")


def run(args):
    port = args.port or find_port()
    until = re.compile(args.until) if args.until else None
    only = re.compile(args.filter) if args.filter else None
    deadline = time.monotonic() + args.timeout if args.timeout else None
    live = sys.stdout.isatty()
    status = Status()
    log = open(args.log, "a", encoding="utf-8") if args.log else None
    try:
        return _follow(port, args.baud, until, only, deadline, live, status, log, args.reset)
    except KeyboardInterrupt:
        _say(live, "monitor: stopped")
        return 0
    finally:
        if log:
            log.close()


def _follow(port, baud, until, only, deadline, live, status, log, reset=False):
    import serial

    conn, buf, said_gone = None, b"", False
    while True:
        if deadline is not None and time.monotonic() > deadline:
            _say(live, f"monitor: no line matched {until.pattern!r} in time" if until else "monitor: time is up")
            return 1 if until else 0
        if conn is None:
            try:
                conn = _open(port, baud)
                _say(live, f"monitor: {port} is back" if said_gone else f"monitor: listening on {port} (Ctrl-C ends)")
                if reset and not said_gone:
                    _reset(conn, port, live)
                said_gone = False
            except ValueError as e:  # not a port at all: waiting will not help
                raise CommandError(explain(e, port) or f"{port}: {e}")
            except (serial.SerialException, OSError) as e:
                if not said_gone:
                    _say(live, f"monitor: {explain(e, port) or f'cannot open {port}: {e}'}; waiting for it")
                    said_gone = True
                time.sleep(0.5)
                continue
        try:
            # Only what is waiting (or 1 byte, up to the 0.1 s timeout): pyserial's socket://
            # drops what one read() had gathered if the peer closes during it.
            chunk = conn.read(conn.in_waiting or 1)
        except (serial.SerialException, OSError) as e:
            _say(live, f"monitor: lost {port} ({e}); waiting for it")
            said_gone = True
            conn.close()
            conn, buf = None, b""
            continue
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            status.feed(line)
            stamp = datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3]
            if log:
                log.write(f"{stamp} {line}\n")
                log.flush()
            if only is None or only.search(line):
                _show(live, stamp, line, status)
            if until and until.search(line):
                return 0


def _show(live, stamp, line, status):
    colour = COLOURS.get(line[:1], "") if live and line[1:2] == " " else ""
    end = "\033[0m" if colour else ""
    if live:
        sys.stdout.write("\r\033[K")
    sys.stdout.write(f"{stamp} {colour}{line}{end}\n")
    if live:
        sys.stdout.write(status.line())
    sys.stdout.flush()


def _say(live, text):
    sys.stdout.write(("\r\033[K" if live else "") + text + "\n")
    sys.stdout.flush()

# `earshot sim --serial`: the virtual board as a dev board on a USB cable. Its UART speaks
# what a real ESP32 speaks there, so the real tools work against it: the ROM's download
# mode for esptool (host_tools/sim/rom.py; a SYNC enters it, as if BOOT were held at
# reset), MicroPython's REPL for mpremote (host_tools/sim/repl.py), and the firmware's
# console for `earshot monitor`. At reset the ROM boots what is in the flash image; with
# MicroPython there, main.py on the board's filesystem (a folder) runs, in real time,
# until the host stops the board. Over RFC 2217, DTR and RTS reach EN and BOOT through
# the dev boards' auto-reset circuit. The person at the desk types on stdin: p (press
# the button), h SECONDS (hold it), r (the reset button), q (quit).
import json
import os
import selectors
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from host_tools.errors import CommandError
from host_tools.sim import bootloader, rom
from host_tools.sim.repl import HARD_RESET, SOFT_REBOOT, SOFT_RESET, Repl
from host_tools.sim.firmware import SHIMS, SHORT_PRESS_S, firmware_event

HELP = "type p Enter to press the button, h SECONDS to hold it, r to reset, q to quit"
# What MicroPython writes on a filesystem it has just created.
FRESH_BOOT_PY = b"# This file is executed on every boot (including wake-boot from deepsleep)\n" \
                b"#import esp\n#esp.osdebug(None)\n#import webrepl\n#webrepl.start()\n"
# RFC 2217 carries DTR and RTS as separate commands, about 50 ms apart with pyserial; a
# board looks at the lines this long after a change, so a pair of changes acts as one (as
# EN's RC delay, and Espressif's esp_rfc2217_server, make it on real hardware).
LINES_SETTLE_S = 0.1
WIFI_JOIN_S = 2.0  # what an ESP32 station takes to get an address (the scripted sim joins at once)
STOP_WAIT_S = 2.0  # main.py's time to stop after a Ctrl-C before the board gives up on it


def run(args):
    # `earshot sim --serial`. Nothing is installed, started or paired for the board; the
    # tools do that as they would on a real board.
    from host_tools.sim import board_dir
    from host_tools.sim.firmware import board_interpreter, spawn_firmware
    from host_tools.sim.uart import open_uart
    from host_tools.sim.view import Console

    for flag, used in (("--receiver", args.receiver), ("--pairing", args.pairing), ("--settings", args.settings),
                       ("--set", args.set), ("--wake-model", args.wake_model), ("--mic", args.mic),
                       ("--press", args.press), ("--hold", args.hold), ("--power-cycle", args.power_cycle)):
        if used:
            raise CommandError(f"{flag} does not go with --serial: deploy settings with `earshot deploy`, "
                               "and press the button by typing p")
    chip = board_dir.pinmap(args.board).get("chip", "esp32")
    flash = Path(args.flash_image or str(Path(args.board_dir)) + ".flash")
    console = Console(live=args.live)
    uart = open_uart(args.serial, lambda dtr, rts: board.lines(dtr, rts))
    with tempfile.TemporaryDirectory(prefix="earshot-sim-") as tmp:
        world = _world(args, Path(tmp))
        trace = open(args.trace, "w") if args.trace else None

        def spawn(cfg):
            path = Path(tmp) / "boot.json"
            path.write_text(json.dumps(cfg))
            return spawn_firmware(path, world["heap_bytes"])

        def on_event(ev):
            console.event(ev)
            if trace:
                trace.write(json.dumps(ev) + "\n")
                trace.flush()

        repl = [*board_interpreter(world["heap_bytes"]), str(SHIMS / "repl.py")]
        board = VirtualBoard(uart, args.board_dir, flash, chip, world, spawn, repl, on_event)
        print(f"earshot sim: board {args.board} ({chip}) on serial port {uart.url}; flash {flash}", flush=True)
        print(f"earshot sim: {HELP}", flush=True)
        _stop_on_sigterm()
        try:
            board.run()
        except KeyboardInterrupt:
            pass
        finally:
            board.close()
            console.close()
            if trace:
                trace.close()
        print(f"earshot sim: board stopped after {board.now():.1f} s", flush=True)
    return 0


def _world(args, tmp):
    # The firmware process's config: the mic hears --wav, then silence; the button is a
    # file the keyboard writes; the board runs in real time until it is stopped.
    from host_tools.audio import load_wav
    from host_tools.sim.firmware import VERDICT_MARGIN_MS, write_mic_input
    from host_tools.verify import DECIDE_AFTER_MS

    audio, samples = tmp / "mic.i32", 0
    audio.touch()
    if args.wav:
        pcm, notes = load_wav(args.wav)
        for note in notes:
            print(f"earshot sim: {args.wav}: {note}")
        write_mic_input(pcm, audio)
        samples = len(pcm)
    (tmp / "button").touch()
    from host_tools.sim import board_dir

    return {"board": args.board, "heap_bytes": board_dir.heap_bytes(board_dir.pinmap(args.board)),
            "wav": args.wav and str(Path(args.wav).resolve()), "audio": str(audio),
            "live_done": None, "input_samples": samples, "input_s": samples / 16000,
            "board_dir": str(Path(args.board_dir).resolve()), "presses": [], "outages": [], "wifi_outages": [],
            "realtime": True, "drain_s": 0.0, "until_stopped": True, "button_file": str(tmp / "button"),
            "wifi_join_s": WIFI_JOIN_S,
            "verdict_after_ms": DECIDE_AFTER_MS + VERDICT_MARGIN_MS, "heap_at": None, "power_on": False,
            "power_cut_t": None}


class VirtualBoard:
    def __init__(self, uart, board_dir, flash_path, chip, world, spawn_firmware, repl_command, on_event):
        self.uart = uart
        self.board_dir = Path(board_dir)
        self.flash_path = Path(flash_path)
        self.chip = chip
        self._world = world  # the firmware process's config, less what changes per boot
        self._spawn_firmware = spawn_firmware  # cfg -> Popen of the firmware (stdout: JSON events)
        self._repl_command = repl_command
        self._on_event = on_event  # every firmware event, for the trace and the console
        self._started = time.monotonic()
        self.state = "off"  # download | firmware | repl | halted
        self.firmware = None
        self._fw_buf = b""
        self._typed_while_stopping = None  # bytes that came after a Ctrl-C, while main.py stops
        self.repl = None
        self._rom = None
        self._app = {}
        self._button = open(world["button_file"], "ab", buffering=0)
        self._timers = []  # (monotonic time, callable)
        self._sel = selectors.DefaultSelector()
        self._typed = b""  # a line typed on stdin, so far
        self._lines, self._held = (False, False), False  # DTR/RTS; EN held low

    # --- the loop -------------------------------------------------------------------------

    def run(self):
        self.reset()
        try:
            self._sel.register(sys.stdin, selectors.EVENT_READ, "stdin")
        except (PermissionError, ValueError):
            pass  # stdin is a regular file or closed: nobody types; the board runs until stopped
        while True:
            self._watch_uart()
            due = min((t for t, _ in self._timers), default=None)
            timeout = None if due is None else max(0.0, due - time.monotonic())
            # A tool that just attached hears what a key typed in the same moment does.
            ready = sorted(self._sel.select(timeout), key=lambda kv: kv[0].data != "uart")
            for key, mask in ready:
                if self._sel.get_map().get(key.fd) is not key:
                    continue  # a process that an earlier event in this batch ended
                if mask & selectors.EVENT_WRITE:
                    self.uart.flush()
                if mask & selectors.EVENT_READ and self._dispatch(key) == "quit":
                    return
            self._run_timers()

    def _dispatch(self, key):
        what = key.data
        if what == "uart":
            data, left = self.uart.read(key.fileobj)
            if data:
                self.on_uart(data)
            if left:
                self._tool_left()
        elif what == "stdin":
            return self._keyboard()
        elif what == "firmware":
            self._firmware_output()
        elif what == "repl-out":
            self._repl_output()
        elif what == "repl-ctl":
            self._repl_control()
        return None

    def _watch_uart(self):
        # The TCP port gains and loses a client fd as tools come and go; a pty is watched
        # for room to write while output waits.
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.uart.pending() else 0)
        want = set(self.uart.fds())
        have = {k.fileobj: k.events for k in self._sel.get_map().values() if k.data == "uart"}
        for fd in set(have) - want:
            self._sel.unregister(fd)
        for fd in want:
            if fd not in have:
                self._sel.register(fd, events, "uart")
            elif have[fd] != events:
                self._sel.modify(fd, events, "uart")

    def _run_timers(self):
        now = time.monotonic()
        for item in [t for t in self._timers if t[0] <= now]:
            self._timers.remove(item)
            item[1]()

    def now(self):
        return time.monotonic() - self._started

    # --- reset and boot -------------------------------------------------------------------

    def reset(self):
        # The EN button: the ROM starts over and boots what the flash holds.
        self._stop_all()
        boot = bootloader.boot_check(self.flash_path, self.chip)
        self.uart.write(boot.console.encode())
        if not boot.ok:
            self.state = "halted"
            return
        self._app = boot.app
        self._micropython()

    def _micropython(self):
        if not self.board_dir.exists() or not any(self.board_dir.iterdir()):
            self.board_dir.mkdir(parents=True, exist_ok=True)
            (self.board_dir / "boot.py").write_bytes(FRESH_BOOT_PY)
        if (self.board_dir / "main.py").is_file():
            self._start_firmware()
        else:
            self._start_repl()

    def _soft_reboot(self, raw=False):
        # From the friendly REPL boot.py and main.py run; from the raw REPL only boot.py.
        self._stop_all()
        self.uart.write(SOFT_REBOOT)
        if raw:
            self._start_repl(raw=True)
        else:
            self._micropython()

    def _stop_all(self):
        self._stop_firmware()
        if self.repl is not None:
            for f in (self.repl.proc.stdout, self.repl.proc.stderr):
                self._sel.unregister(f)
            self.repl.stop()
            self.repl = None
        self._rom = None

    def banner(self):
        name = self._app.get("banner") or f"MicroPython {self._app.get('version') or '(unknown version)'}"
        chip = self.chip.upper()
        return f"{name}; Generic {chip} module with {chip}\r\nType \"help()\" for more information.\r\n".encode()

    # --- the firmware (main.py) -----------------------------------------------------------

    def _start_firmware(self):
        cfg = dict(self._world, start_t=self.now(), button_pin=self._button_pin())
        self.firmware = self._spawn_firmware(cfg)
        os.set_blocking(self.firmware.stdout.fileno(), False)
        self._sel.register(self.firmware.stdout, selectors.EVENT_READ, "firmware")
        self.state = "firmware"

    def _button_pin(self):
        try:
            return json.loads((self.board_dir / "board.json").read_text())["button"]["pin"]
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def _stop_firmware(self):
        if self.firmware is None:
            return
        self._sel.unregister(self.firmware.stdout)
        self.firmware.kill()
        self.firmware.wait()
        self.firmware.stdout.close()
        self.firmware = None
        self._fw_buf = b""
        self._typed_while_stopping = None

    def _firmware_output(self):
        chunk = self.firmware.stdout.read()  # non-blocking: None is "nothing yet", b"" the end
        if chunk is None:
            return
        if chunk:
            *lines, self._fw_buf = (self._fw_buf + chunk).split(b"\n")
            for line in lines:
                self._firmware_line(line.decode("utf-8", "replace"))
            return
        code = self.firmware.wait()
        typed = self._typed_while_stopping
        self._stop_firmware()
        if code == HARD_RESET:  # machine.reset()
            self.reset()
        else:  # main.py ended, failed or was interrupted: the REPL takes over, as on a board
            self._start_repl()
            self._feed_repl(typed or b"")

    def _firmware_line(self, line):
        ev, is_json = firmware_event(line, self.now())
        if not is_json and str(SHIMS) in line:
            return  # a traceback's frame inside the virtual hardware: a board's ends at its drivers
        if ev["ev"] == "serial":
            self.uart.write(ev["line"].encode() + b"\r\n")
        self._on_event(ev)

    # --- the REPL ---------------------------------------------------------------------------

    def _start_repl(self, raw=False):
        self.repl = Repl(self._repl_command, dict(os.environ, EARSHOT_BOARD_DIR=str(self.board_dir.resolve()),
                                                   MICROPYPATH=".frozen"),
                         self.uart.write, self.banner())
        self.repl.start(raw)
        self._sel.register(self.repl.proc.stdout, selectors.EVENT_READ, "repl-out")
        self._sel.register(self.repl.proc.stderr, selectors.EVENT_READ, "repl-ctl")
        self.state = "repl"

    def _repl_output(self):
        if self._repl_output_drain() == b"":
            self._repl_ended()

    def _repl_control(self):
        self._repl_output_drain()  # what the code printed comes before its end
        data = self.repl.proc.stderr.read()
        if data == b"":
            self._repl_ended()
            return
        if data is None:
            return
        for line in data.splitlines():
            self._repl_action(self.repl.control(line))
            if self.repl is None:
                return

    def _repl_output_drain(self):
        # What the code printed -> the UART; returns the read (None: nothing yet, b"": the end).
        data = self.repl.proc.stdout.read()
        if data:
            self.repl.output(data)
        return data

    def _repl_ended(self):
        code = self.repl.proc.wait()
        raw = self.repl.mode != "friendly"
        self._stop_all()
        if code == HARD_RESET:
            self.reset()
        elif code == SOFT_RESET:  # machine.soft_reset()
            self._soft_reboot(raw)
        else:  # the REPL process itself failed: a new one
            self._start_repl(raw)

    # --- what comes in on the UART ----------------------------------------------------------

    def on_uart(self, data):
        if self.state != "download" and rom.is_sync(data):
            self._download_boot(banner=False)  # esptool is talking already: the banner would be in its way
        if self.state == "download":
            self.uart.write(self._rom.feed(data))
            if self._rom.erased:  # erase-flash: the filesystem lives in flash too
                self._rom.erased = False
                shutil.rmtree(self.board_dir, ignore_errors=True)
            if self._rom.run_user_code:
                self.reset()
        elif self.state == "firmware":
            if self._typed_while_stopping is not None:
                self._typed_while_stopping += data
            elif b"\x03" in data:
                # KeyboardInterrupt in main.py: its finally turns the ring off and the traceback
                # comes out, as on a board; the REPL takes what is typed meanwhile.
                self._typed_while_stopping = data[data.index(b"\x03") + 1:]
                self.firmware.send_signal(signal.SIGINT)
                proc = self.firmware
                self._timers.append((time.monotonic() + STOP_WAIT_S, lambda: proc.poll() is None and proc.kill()))
        elif self.state == "repl":
            self._feed_repl(data)

    def _feed_repl(self, data):
        if data:
            self._repl_action(self.repl.feed(data))

    def _repl_action(self, action):
        if action in ("soft_reset", "soft_reset_raw"):
            self._soft_reboot(raw=action == "soft_reset_raw")

    def lines(self, dtr, rts):
        # DTR/RTS from an RFC 2217 tool, through the dev boards' auto-reset circuit: RTS
        # alone holds EN low (reset), DTR alone holds GPIO0 (BOOT) low. As the board's RC
        # delay on EN does, the lines count once they have settled.
        self._lines = (dtr, rts)
        self._timers.append((time.monotonic() + LINES_SETTLE_S, self._settle))

    def _settle(self):
        dtr, rts = self._lines
        held = rts and not dtr
        if held and not self._held:
            self._stop_all()
            self.state = "off"
        elif self._held and not held:
            if dtr and not rts:  # GPIO0 low as EN rises: the ROM waits for esptool
                self._download_boot()
            else:
                self.reset()
        self._held = held

    def _download_boot(self, banner=True):
        self._stop_all()
        if banner:
            self.uart.write(bootloader.download_banner(self.chip).encode())
        self.state = "download"
        self._rom = rom.RomLoader(self.flash_path, self.chip)

    def _tool_left(self):
        # A tool closing the port after download mode stands for the reset esptool does
        # with the RTS line, which socket:// cannot carry.
        if self.state == "download":
            self.reset()

    # --- the person at the desk -------------------------------------------------------------

    def _keyboard(self):
        # Whole lines from stdin, read as they come: several typed at once all count.
        data = os.read(sys.stdin.fileno(), 4096)
        if not data:  # stdin closed (a script): the board runs until it is stopped
            self._sel.unregister(sys.stdin)
            return None
        *lines, self._typed = (self._typed + data).split(b"\n")
        for line in lines:
            if self._command(line.decode("utf-8", "replace").strip()) == "quit":
                return "quit"
        return None

    def _command(self, line):
        word, _, arg = line.partition(" ")
        if word in ("q", "quit"):
            return "quit"
        if word in ("r", "reset"):
            self.reset()
        elif word in ("p", "press"):
            self.press(SHORT_PRESS_S)
        elif word in ("h", "hold"):
            try:
                self.press(float(arg))
            except ValueError:
                print(f"earshot sim: hold wants seconds, e.g. h 2 ({HELP})", flush=True)
        elif word:
            print(f"earshot sim: {word!r}? {HELP}", flush=True)
        return None

    def press(self, seconds):
        self._button.write(b"1")
        self._timers.append((time.monotonic() + seconds, lambda: self._button.write(b"0")))

    def close(self):
        self._stop_all()
        self._button.close()
        self.uart.close()


def _stop_on_sigterm():
    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)

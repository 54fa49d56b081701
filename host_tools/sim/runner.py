# `earshot sim`: the firmware on the virtual board. The host side prepares the board's
# folder and the input audio, starts a receiver, runs MicroPython with the shims, turns
# its output into the trace, plays the scripted world that needs the host (power cuts,
# receiver outages) and tells the user what happened.
import json
import os
import tempfile
import time
from pathlib import Path

from host_tools.errors import CommandError
from host_tools.paths import DATA
from host_tools.sim import board_dir
from host_tools.sim.firmware import SHORT_PRESS_S, VERDICT_MARGIN_MS, firmware_event, spawn_firmware, write_mic_input
from host_tools.sim.view import Console

DEMO_WAV = DATA / "demo.wav"
POWER_OFF_S = 1.0  # how long the plug stays out in a power cycle
SIM_WIFI = "earshot-sim"  # the network the scripted board joins (its shim joins any named one)


def add_arguments(p):
    p.add_argument("--wav", help="what the microphone hears (default: the bundled demo; with --serial, silence)")
    p.add_argument("--mic", action="store_true", help="hear this computer's microphone, in real time (Ctrl-C ends)")
    p.add_argument("--board", default="sim", help="pin map from boards/ (default: sim)")
    p.add_argument("--board-dir", default="sim-board", help="the board's filesystem folder, kept between runs")
    p.add_argument("--settings", help="settings.json to install on the board before boot (copied as is)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting")
    p.add_argument("--wake-model", metavar="NAME|FILE",
                   help="put this wake-word model on the board and use it: hey_jarvis (default), okay_nabu, "
                        "alexa, hey_mycroft, or a microWakeWord v2 .tflite/.json (converted) or an .eww")
    p.add_argument("--press", action="append", type=float, default=[], metavar="T", help="short press at T seconds")
    p.add_argument("--hold", action="append", default=[], metavar="T:SECONDS", help="hold the button (1.5 s mutes)")
    p.add_argument("--power-cycle", action="append", type=float, default=[], metavar="T", help="pull the plug at T")
    p.add_argument("--wifi-outage", action="append", default=[], metavar="T:SECONDS",
                   help="the board's Wi-Fi drops at T (its connections die) and comes back SECONDS later")
    p.add_argument("--receiver-outage", action="append", default=[], metavar="T:SECONDS",
                   help="stop the built-in receiver at T, start it again SECONDS later")
    p.add_argument("--receiver", metavar="HOST:PORT", help="stream to this receiver instead of starting one")
    p.add_argument("--pairing", metavar="DIR|none",
                   help="install these credentials (`earshot pair` made them) on the board; 'none' leaves it "
                        "unpaired (default: pair with the built-in receiver)")
    p.add_argument("--recordings", default="recordings", help="where the built-in receiver stores sessions")
    p.add_argument("--web", metavar="HOST:PORT",
                   help="the built-in receiver serves its web page here (e.g. 127.0.0.1:10780; with --realtime "
                        "to watch the board live)")
    p.add_argument("--verify", action=argparse_bool(), default=True,
                   help="the built-in receiver checks each wake session's phrase with microWakeWord (default: on)")
    p.add_argument("--verify-cutoff", type=verify_cutoff, metavar="P",
                   help="the mean probability the built-in receiver's check needs (default 0.5)")
    p.add_argument("--trace", metavar="FILE", help="write the trace (JSON lines) here")
    p.add_argument("--realtime", action="store_true", help="pace the audio to the wall clock")
    p.add_argument("--epoch", type=float, metavar="UNIX_S",
                   help="with --realtime: the wall-clock moment of audio time 0, so that boards started together "
                        "share one clock (the scale bench)")
    p.add_argument("--live", action=argparse_bool(), default=None, help="live ring line (default: on a terminal)")
    p.add_argument("--serial", metavar="tcp:HOST:PORT|rfc2217:HOST:PORT|pty",
                   help="be a dev board on a serial port instead: esptool, mpremote and `earshot monitor` "
                        "reach it there; it boots what was flashed and deployed and runs until stopped")
    p.add_argument("--flash-image", metavar="FILE",
                   help="with --serial: the board's flash chip (default: BOARD_DIR.flash; new ones are erased)")
    p.add_argument("--heap-at", type=float, metavar="T", help="report the firmware's heap in use at T s (bench)")
    p.add_argument("--heap-every", type=float, metavar="S",
                   help="report the firmware's heap every S seconds of audio (trace events `heap`)")


def verify_cutoff(text):
    from host_tools.receiver import _probability

    return _probability(text)


def argparse_bool():
    import argparse

    return argparse.BooleanOptionalAction


def run(args):
    from host_tools.audio import load_wav
    from host_tools.verify import DECIDE_AFTER_MS
    from host_tools.wake import models

    if args.serial:
        from host_tools.sim import serial_board

        return serial_board.run(args)
    args.wav = args.wav or str(DEMO_WAV)
    source = None
    if args.mic:
        from host_tools.sim.live import open_microphone

        source = open_microphone()
        pcm, notes = [], []
        args.realtime = True
    else:
        pcm, notes = load_wav(args.wav)
    presses = _presses(args.press, args.hold)
    outages = [_pair(o, "--receiver-outage") for o in args.receiver_outage]
    wifi_outages = [_pair(o, "--wifi-outage") for o in args.wifi_outage]
    console = Console(live=args.live)
    for note in notes:
        console.line(f"earshot sim: {args.wav}: {note}")
    with tempfile.TemporaryDirectory(prefix="earshot-sim-") as tmp:
        audio = Path(tmp) / "mic.i32"
        live_done = None
        if source is None:
            write_mic_input(pcm, audio)
        else:
            from host_tools.sim.live import MicFeed

            audio.touch()
            live_done = Path(tmp) / "mic.done"
            live_done.touch()
            feed = MicFeed(source, audio, live_done)
            feed.start()
        receiver = _start_receiver(args, Path(tmp) / "receiver")
        host, port = ("127.0.0.1", receiver.port) if receiver else _host_port(args.receiver)
        overrides = {"receiver_host": host, "receiver_port": port, "wifi_ssid": SIM_WIFI}
        if args.wake_model:
            overrides["wake_model"] = models.board_name(args.wake_model)
        board_notes, pins = board_dir.prepare(args.board_dir, args.board, args.settings,
                                              {**overrides, **board_dir.parse_set(args.set)}, args.wake_model)
        board_dir.install_pairing(args.board_dir, _pairing(args, Path(tmp) / "receiver"))
        for note in board_notes:
            console.line(f"earshot sim: {note}")
        trace_path = Path(args.trace) if args.trace else Path(tmp) / "trace.jsonl"
        world = {"board": args.board, "wav": None if args.mic else str(Path(args.wav).resolve()),
                 "audio": str(audio), "live_done": live_done and str(live_done), "input_samples": len(pcm), "input_s": len(pcm) / 16000,
                 "board_dir": str(Path(args.board_dir).resolve()), "button_pin": pins["button"]["pin"],
                 "presses": presses, "outages": outages, "wifi_outages": wifi_outages, "realtime": args.realtime, "drain_s": 75.0,
                 "verdict_after_ms": DECIDE_AFTER_MS + VERDICT_MARGIN_MS,
                 "heap_at": args.heap_at, "heap_every": args.heap_every, "heap_bytes": board_dir.heap_bytes(pins), "epoch_ms": int(args.epoch * 1000) if args.epoch is not None else None}
        started = time.monotonic()
        try:
            end_t = _run_board(world, sorted(args.power_cycle), trace_path, console, receiver)
        finally:
            if source is not None:
                feed.stop()
            console.close()
            if receiver:
                receiver.wait_idle(5)
                receiver.stop()
        wall = time.monotonic() - started
        _summary(args, end_t, wall, receiver, trace_path)
    return 0


def _run_board(world, cuts, trace_path, console, receiver):
    # Boots the board, and again after each power cut; returns the audio time at the end.
    start_t, power_on = 0.0, False
    with open(trace_path, "w") as trace:
        trace.write(json.dumps({"t": 0.0, "ev": "start", "board": world["board"], "wav": world["wav"],
                                "rate": 16000}) + "\n")
        while True:
            cut = next((c for c in cuts if c > start_t), None)
            # What was scripted for while the plug was out does not happen.
            cfg = dict(world, start_t=start_t, power_on=power_on, power_cut_t=cut,
                       presses=[p for p in world["presses"] if p[0] >= start_t],
                       outages=[o for o in world["outages"] if o[0] >= start_t],
                       wifi_outages=[o for o in world["wifi_outages"] if o[0] + o[1] >= start_t])
            outcome, t = _boot(cfg, trace, console, receiver)
            if outcome != "power":
                trace.write(json.dumps({"t": t, "ev": "end"}) + "\n")
                return t
            start_t, power_on = t + POWER_OFF_S, True








def _boot(cfg, trace, console, receiver):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cfg, f)
    proc = spawn_firmware(f.name, cfg["heap_bytes"])
    t = cfg["start_t"]
    tail = []
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            ev, is_json = firmware_event(line, t)
            t = ev["t"]
            trace.write((line if is_json else json.dumps(ev)) + "\n")
            console.event(ev)
            if ev["ev"] == "serial":
                tail = (tail + [ev["line"]])[-12:]
            elif ev["ev"] == "power" and not ev["on"]:
                proc.kill()
                return "power", t
            elif ev["ev"] == "receiver":
                _outage(receiver, ev["up"])
                proc.stdin.write(b"\n")
                proc.stdin.flush()
        code = proc.wait()
    except KeyboardInterrupt:
        console.line(f"earshot sim: stopped at t={t:.3f}s (Ctrl-C)")
        code = 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.unlink(f.name)
    if code != 0:
        raise CommandError(f"the firmware stopped with status {code} at t={t:.3f}s; its last lines:\n  "
                           + "\n  ".join(tail))
    return "exit", t




def _outage(receiver, up):
    if receiver is None:
        raise CommandError("--receiver-outage needs the built-in receiver (drop --receiver)")
    receiver.resume() if up else receiver.pause()


def _pairing(args, state):
    # The credentials the board gets: the given folder, none, or (by default) a fresh
    # pairing with the built-in receiver whose state lives in `state`.
    from host_tools import pairing

    if args.pairing == "none":
        return None
    if args.pairing:
        return pairing.load_bundle(args.pairing)
    if args.receiver:
        raise CommandError("--receiver needs --pairing DIR: the credentials `earshot pair` made for this board "
                           "on that receiver (or --pairing none to watch an unpaired board)")
    return pairing.load_bundle(pairing.Registry(state).pair(board_dir.device_name(args.board_dir)))


def _start_receiver(args, state):
    if args.receiver:
        if args.web:
            raise CommandError("--web is the built-in receiver's page: with --receiver, open that receiver's")
        return None
    from host_tools.receiver import ReceiverThread

    receiver = ReceiverThread(listen="127.0.0.1:0", recordings=args.recordings, log=lambda *a: None,
                              state=state, verify=args.verify, verify_cutoff=args.verify_cutoff, web=args.web).start()
    if args.web:
        print(f"earshot sim: the receiver's page is at http://{args.web.rsplit(':', 1)[0]}:{receiver.web_port}/",
              flush=True)
    return receiver


def _presses(short, held):
    presses = [[t, t + SHORT_PRESS_S] for t in short] + [_pair(h, "--hold", span=True) for h in held]
    presses.sort()
    for a, b in zip(presses, presses[1:]):
        if b[0] < a[1] + 0.1:
            raise CommandError(f"button presses at {a[0]}s and {b[0]}s overlap; space them out")
    return presses


def _pair(text, flag, span=False):
    try:
        t, _, s = text.partition(":")
        t, s = float(t), float(s)
    except ValueError:
        raise CommandError(f"{flag} wants T:SECONDS, got {text!r}")
    if t < 0 or s <= 0:
        raise CommandError(f"{flag} {text}: times must be positive")
    return [t, t + s] if span else [t, s]


def _host_port(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise CommandError(f"--receiver wants HOST:PORT, got {text!r}")
    return host, int(port)


def _summary(args, end_t, wall, receiver, trace_path):
    speed = end_t / wall if wall > 0 else float("inf")
    print(f"earshot sim: {end_t:.1f} s of audio in {wall:.1f} s ({speed:.0f}x real time) on board {args.board}")
    if receiver:
        for s in receiver.sessions:
            print(f"  session {s['session']}: {Path(args.recordings) / s['wav']} "
                  f"({s['duration_s']:.2f} s, trigger {s['trigger']}, dropped {s['dropped_frames']})")
        if not receiver.sessions:
            print("  no sessions recorded")
    if args.trace:
        print(f"  trace: {trace_path}")

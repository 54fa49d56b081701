# Composition root: pin map + settings -> hardware -> logic objects -> asyncio.run.
# A bad pin map stops here with one console line (no crash loop); a bad settings file
# boots on defaults (see earshot/settings.py). Modules only boot needs (the pin map, the
# pairing files, the model loader) are imported where they are used and forgotten once
# the board runs, so their code does not hold heap the running board needs.
# Out of heap, the board stops with MicroPython's MemoryError line (the ring dark, the mic
# off) rather than run on without one of its tasks.
import asyncio
import gc
import sys

from micropython import const

from earshot import board, settings
from earshot.app import App, NoDetector
from earshot.link import ChunkBuffer, Link, Session
from earshot.log import Logger, value
from earshot.mic import FRAME_MS, FrameRing, Mic
from earshot.ring import Ring
from earshot.vad import EndOfSpeech

FIRMWARE = "earshot-0.1"
_SEND_SLACK_FRAMES = 8  # queue beyond the pre-roll: 160 ms of network hiccup
_WIFI_WAIT_MS = 8000  # an ESP32 station usually has an address 2-4 s after connect()

_log = Logger("main")
_BOOT_ONLY = ("earshot.pinmap", "earshot.pairing")
# Heap the rest of the board needs once the pre-roll, the TLS context and the wake-word
# model are in (the link, a session's allocations, slack for fragmentation): a model that
# leaves less is dropped, and the board runs push-to-talk.
_RESERVE_AFTER_MODEL = const(12 * 1024)


def wake_detector(cfg):
    # The wake-word model named in settings; without a usable one the board still works,
    # push-to-talk only, and says why on the console. The loader goes before the runtime
    # comes: the two never hold heap at once.
    path = cfg["wake_model"]
    if not path:
        _log.info("wake", "model=none using=push_to_talk")
        return NoDetector()
    from earshot import wakemodel

    if "." not in path:
        path += wakemodel.EXT
    try:
        model = wakemodel.load(path)
    except (wakemodel.ModelError, MemoryError) as e:
        return _without_model(path, e)
    finally:
        _forget("earshot.wakemodel")
    try:
        from earshot.detector import WakeDetector

        detector = WakeDetector(model, cfg["sensitivity"])
    except (ValueError, MemoryError) as e:
        return _without_model(path, e)
    gc.collect()
    if gc.mem_free() < _RESERVE_AFTER_MODEL:
        return _without_model(path, "not enough RAM left (" + str(gc.mem_free() // 1024) + " KiB, the board needs "
                              + str(_RESERVE_AFTER_MODEL // 1024) + ")")
    _log.info("wake", "model=" + value(path) + " phrase=" + value(model.phrase) + " sensitivity="
              + cfg["sensitivity"] + " cutoff=" + str(detector.cutoff))
    return detector


def _without_model(path, why):
    _forget("earshot.detector", "earshot.frontend", "earshot.inference")
    _log.error("wake", "model=" + value(path) + " error=" + value(why) + " using=push_to_talk")
    return NoDetector()


def tls_context():
    # Only the paired receiver may hear this board (P5): unpaired, it never connects.
    from earshot import pairing

    try:
        return pairing.tls_context()
    except pairing.PairingError as e:
        _log.error("pairing", "error=" + value(e) + " action=run_earshot_pair_and_install_it")
        return None


def build(hw, cfg):
    # The largest buffers first, while the heap is still in one piece: an ESP32's heap
    # fragments, and the model and the pre-roll each need one contiguous block.
    gc.collect()
    ring = FrameRing(max(cfg["preroll_ms"] // FRAME_MS, 1) + _SEND_SLACK_FRAMES)
    tls = tls_context()  # what the board cannot do without comes before the model, which it can
    receiver_name = sys.modules["earshot.pairing"].RECEIVER_NAME
    detector = wake_detector(cfg)
    mic = Mic(hw.open_mic, ring, cfg["gain_db"], cfg["dc_removal"])
    app = None

    def on_link(up):
        app.on_link(up)

    def on_reject(session):
        app.on_reject(session)

    if not cfg["wifi_ssid"]:
        _log.error("wifi", "error=no_ssid action=set_wifi_ssid_in_settings")

    async def open_connection(host, port):
        # Waits for Wi-Fi first: joining after boot is not a receiver failure to back off from.
        await hw.wifi_up(cfg["wifi_ssid"], cfg["wifi_password"], _WIFI_WAIT_MS)
        return await hw.open_connection(host, port, tls, receiver_name)

    link = Link(open_connection if tls else None, cfg["receiver_host"], cfg["receiver_port"], cfg["device"],
                FIRMWARE, on_link, on_reject)
    vad = EndOfSpeech(cfg["vad_hangover_ms"] // FRAME_MS, cfg["vad_min_level"], 4000 // FRAME_MS)
    app = App(hw, cfg, mic, Ring(hw.ring, cfg["brightness"]), link, Session(link, ring, ChunkBuffer()),
              detector, vad)
    return app


def _on_task_error(loop, context):
    e = context.get("exception")
    _log.error("task_failed", "error=" + value(repr(e)))
    if isinstance(e, MemoryError):
        raise e


def _forget(*names):
    # Drops modules the board no longer needs, so that their code's heap comes back.
    import earshot

    for name in names:
        sys.modules.pop(name, None)
        if hasattr(earshot, name[8:]):
            delattr(earshot, name[8:])
    gc.collect()


def _pins():
    from earshot import pinmap

    try:
        return pinmap.load()
    except pinmap.PinMapError as e:
        _log.error("board", "error=" + value(e) + " action=halted")
        return None


def main():
    _log.info("boot", "firmware=" + FIRMWARE)
    pins = _pins()
    if pins is None:
        return
    cfg = settings.load()
    hw = board.Hardware(pins)
    app = build(hw, cfg)
    _forget(*_BOOT_ONLY)
    _log.info("ready", "board=" + value(hw.name) + " device=" + value(cfg["device"]))
    asyncio.get_event_loop().set_exception_handler(_on_task_error)
    try:
        asyncio.run(app.run())
    finally:
        app.deinit()
        asyncio.new_event_loop()


main()

# The virtual board's filesystem is a folder. Like `earshot deploy` on a real board, a run
# puts the firmware, the pin map and the settings there; the rest of the folder (settings
# the firmware saved, e.g. mute) survives between runs and power cycles.
import functools
import json
import shutil
import subprocess
from pathlib import Path

from host_tools.errors import CommandError
from host_tools.mpy import arch_of, cached_module
from host_tools.paths import BOARDS, FIRMWARE, micropython
from host_tools.private import make_private_dir, write_private

DEFAULT_DEVICE = "earshot"  # firmware/earshot/settings.py's default `device`
# The GC heap the firmware gets on the virtual board, by whether the board's profile has
# PSRAM. The unix port is 64-bit: objects and pointers take about twice the room they take
# on the ESP32, audio and model buffers the same, so these are stand-ins (README "Memory").
HEAP_KIB = {False: 150, True: 2048}


def known_boards():
    return sorted(p.stem for p in BOARDS.glob("*.json"))


def pinmap(name):
    path = BOARDS / f"{name}.json"
    if not path.is_file():
        raise CommandError(f"unknown board {name!r}; known boards: {', '.join(known_boards())}")
    return json.loads(path.read_text())


@functools.lru_cache(maxsize=None)
def _unix_arch():
    # the .mpy architecture of the MicroPython that runs the virtual board
    out = subprocess.run([micropython(), "-c", "import sys; print(sys.implementation._mpy)"],
                         capture_output=True, text=True)
    arch = arch_of(int(out.stdout.strip() or 0))
    if arch is None:
        raise CommandError(f"the MicroPython at {micropython()} loads no .mpy that mpy-cross makes; "
                           "run `make setup` to install the pinned one")
    return arch


def heap_bytes(pins):
    return HEAP_KIB[bool(pins.get("psram"))] * 1024


def prepare(folder, board, settings_file=None, overrides=None, wake_model=None):
    # Installs firmware + board.json + the wake-word models (the default one, and
    # `wake_model` if given: see host_tools/wake/models.py) (+ settings) into the folder;
    # returns (notes, pin map).
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pins = pinmap(board)
    for old in [*(folder / "earshot").glob("*.py"), *(folder / "earshot").glob("*.mpy")]:
        old.unlink()
    (folder / "earshot").mkdir(exist_ok=True)
    shutil.copyfile(FIRMWARE / "main.py", folder / "main.py")
    arch = _unix_arch()
    for src in (FIRMWARE / "earshot").glob("*.py"):  # compiled, as `earshot deploy` puts them on a board
        (folder / "earshot" / f"{src.stem}.mpy").write_bytes(cached_module(src, arch))
    for name, data in wake_models(wake_model).items():
        (folder / name).write_bytes(data)
    (folder / "board.json").write_text(json.dumps(pins, indent=1))
    settings = folder / "settings.json"
    if settings_file is not None:
        try:
            shutil.copyfile(settings_file, settings)
        except OSError as e:
            raise CommandError(f"cannot read settings file {settings_file}: {e.strerror}")
    return _apply_overrides(settings, overrides or {}), pins


def wake_models(spec=None):
    # {file name on the board: bytes}: the default model, and `spec`'s if given.
    from host_tools.wake import models

    out = {}
    for s in (models.DEFAULT, *([spec] if spec else [])):
        path = models.board_file(s)
        try:
            out[models.board_name(s)] = path.read_bytes()
        except OSError as e:
            raise CommandError(f"cannot read {path}: {e.strerror}")
    return out


def install_pairing(folder, files):
    # The credentials {file name: bytes} in pair/, as deploy puts them on a board; None
    # leaves the board unpaired.
    folder = Path(folder)
    shutil.rmtree(folder / "pair", ignore_errors=True)
    if files:
        make_private_dir(folder / "pair", "--board-dir")
        for name, data in files.items():
            write_private(folder / "pair" / name, data)


def device_name(folder):
    # The `device` the board will boot with (what the firmware falls back to included).
    try:
        device = json.loads((Path(folder) / "settings.json").read_text()).get("device")
    except (OSError, ValueError, AttributeError):
        device = None
    return device if isinstance(device, str) and device else DEFAULT_DEVICE


def _apply_overrides(settings, overrides):
    # The simulator points the board at its receiver. A file the firmware cannot read is
    # left exactly as it is, so the firmware's own handling of it is what gets tested.
    if not overrides:
        return []
    try:
        current = json.loads(settings.read_text()) if settings.exists() else {}
    except (ValueError, UnicodeDecodeError):
        return [f"{settings.name} is not valid JSON; left as is (the board will boot on defaults)"]
    if not isinstance(current, dict):
        return [f"{settings.name} is not a JSON object; left as is"]
    current.update(overrides)
    tmp = settings.with_suffix(".tmp")
    tmp.write_text(json.dumps(current, indent=1))
    tmp.replace(settings)
    return []


def parse_set(items):
    # --set key=value: value parsed as JSON when it can be (numbers, true/false), else text.
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--set wants KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out

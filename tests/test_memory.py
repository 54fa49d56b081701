# The firmware in the heap a board has. Every simulated run is capped at the GC heap of its
# board's profile (the classic ESP32 without PSRAM by default: README "Memory"); here, ten
# minutes of a busy day under that cap, and what the board does when the heap is short.
import json

import numpy as np
import pytest

from host_tools.audio import load_wav, write_wav
from host_tools.audit import audit
from host_tools.paths import DATA
from host_tools.sim import board_dir
from tests.simboard import sim

BLOCK_S = 36.0  # the bundled phrases (24 s: four wakes), then the push-to-talk recording (12 s)
BLOCKS = 17  # 612 s
PRESS_IN_BLOCK_S = 24.0 + 3.0


def _day(tmp_path):
    # Ten minutes: four "hey jarvis" requests and one push-to-talk request every 36 s.
    phrases, _ = load_wav(DATA / "hey_jarvis.wav")
    speech, _ = load_wav(DATA / "speech.wav")
    block = np.concatenate([phrases, speech])
    assert len(block) == BLOCK_S * 16000
    path = tmp_path / "day.wav"
    write_wav(path, np.tile(block, BLOCKS))
    return path


def _sessions(events):
    # (boot number, start t, end t) of every streaming session, from the state lines
    boot, out, start = 0, [], None
    for e in events:
        if e["ev"] == "power" and e["on"]:
            boot += 1
        line = e.get("line", "")
        if e["ev"] == "serial" and " app state " in line:
            if "new=streaming" in line:
                start = e["t"]
            elif "old=streaming" in line and start is not None:
                out.append((boot, start, e["t"]))
                start = None
    return out


def test_ten_minutes_of_a_busy_day_fit_the_classic_esp32(tmp_path, capsys):
    presses = [b * BLOCK_S + PRESS_IN_BLOCK_S for b in range(BLOCKS) if b not in (5, 9)]
    run = sim(tmp_path, capsys, "--heap-every", 0.5, "--receiver-outage", "130:6", "--wifi-outage", "230:8",
              "--hold", f"{5 * BLOCK_S + 26}:2", "--hold", f"{5 * BLOCK_S + 33}:2",  # mute, then unmute
              "--power-cycle", f"{9 * BLOCK_S + 30}",
              *[a for t in presses for a in ("--press", t)], wav=_day(tmp_path))
    assert run.code == 0, run.err
    serial = run.serial()
    assert not [line for line in serial if "MemoryError" in line or "task_failed" in line], serial[-10:]
    assert any("main wake model=hey_jarvis.eww" in line and line.startswith("I ") for line in serial)
    sessions = run.sessions()
    triggers = [m["trigger"] for m, _ in sessions]
    assert triggers.count("wake") >= 40 and triggers.count("button") >= 10, triggers
    assert any(" new=muted " in line for line in serial) and any("old=muted" in line for line in serial)
    assert any(e["ev"] == "power" and not e["on"] for e in run.events)
    heaps = [(e["t"], e["firmware_bytes"], e["largest_free_bytes"]) for e in run.of("heap")]
    boots = [0] + [e["t"] for e in run.events if e["ev"] == "power" and e["on"]]
    grew = []
    for boot, a, b in _sessions(run.events):
        since = boots[boot]
        before = [h for t, h, _ in heaps if since <= t < a]
        after = [h for t, h, _ in heaps if b + 0.5 <= t]
        if before and after:
            grew.append(after[0] - before[-1])
    assert len(grew) >= 40
    assert max(grew) <= 1024, grew  # no session leaves heap behind
    cap = board_dir.heap_bytes(board_dir.pinmap("sim"))
    assert max(h for _, h, _ in heaps) < cap
    assert audit(run.events) == []


def test_a_board_that_runs_out_of_heap_stops_with_the_memory_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(board_dir.HEAP_KIB, False, 48)  # far less than the firmware needs
    run = sim(tmp_path, capsys)
    assert run.code == 1
    assert "MemoryError: memory allocation failed" in run.err
    assert any(line.startswith("MemoryError: memory allocation failed") for line in run.serial())
    assert not [e for e in run.of("led") if any(max(px) for px in e["rgb"]) and e["t"] > 0.5]  # no ring left lit


@pytest.mark.parametrize("heap_kib", [112, 128])
def test_a_model_that_does_not_fit_leaves_push_to_talk(tmp_path, capsys, monkeypatch, heap_kib):
    # Too little heap for the wake-word model beside the rest: one line says so, and the
    # button still streams.
    monkeypatch.setitem(board_dir.HEAP_KIB, False, heap_kib)
    run = sim(tmp_path, capsys, "--press", 3.0)
    assert run.code == 0, run.err
    [line] = [s for s in run.serial() if " main wake " in s]
    assert line.startswith("E ") and "using=push_to_talk" in line and ("RAM" in line or "memory" in line), line
    assert [m["trigger"] for m, _ in run.sessions()] == ["button"]


def test_the_largest_model_needs_a_board_with_psram(tmp_path, capsys):
    # okay_nabu (36 k weights) does not fit beside the rest on a classic ESP32: one line,
    # push-to-talk; on an ESP32-S3 with PSRAM it runs.
    run = sim(tmp_path, capsys, "--wake-model", "okay_nabu", "--press", 3.0)
    assert run.code == 0, run.err
    [line] = [s for s in run.serial() if " main wake " in s]
    assert line.startswith("E ") and "okay_nabu" in line and "using=push_to_talk" in line
    assert [m["trigger"] for m, _ in run.sessions()] == ["button"]
    run = sim(tmp_path / "s3", capsys, "--board", "esp32s3_devkitc1", "--wake-model", "okay_nabu", "--heap-at", 5.0)
    assert run.code == 0, run.err
    [line] = [s for s in run.serial() if " main wake " in s]
    assert line.startswith("I ") and "okay_nabu" in line
    [heap] = run.of("heap")
    assert heap["firmware_bytes"] + heap["free_bytes"] >= 2 * 1024 * 1024 - 4096


def test_every_board_profile_says_whether_it_has_psram():
    for name in board_dir.known_boards():
        assert isinstance(board_dir.pinmap(name).get("psram"), bool), name
    assert board_dir.heap_bytes(board_dir.pinmap("esp32_devkitc")) == board_dir.heap_bytes(board_dir.pinmap("sim"))
    assert json.loads((DATA.parent.parent / "boards" / "sim.json").read_text())["psram"] is False

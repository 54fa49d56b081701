# The board's wake detector as a whole (firmware/earshot/detector.py: frontend, int8
# runtime, ESPHome's decision) under MicroPython, the host's replay of its decision
# (host_tools/wake/decision.py), and the tools that run it: `earshot wake detect`,
# `earshot wake eval` and `earshot wake convert`.
import json

import numpy as np
import pytest

from host_tools.audio import load_wav
from host_tools.paths import DATA
from host_tools.wake import convert, decision, models
from host_tools.wake.detect_runner import firmware_outputs, run_firmware_detector
from tests.conftest import json_lines

RATE = 16000
POSITIVES = DATA / "hey_jarvis.wav"
PHRASE_ENDS = json.loads((DATA / "hey_jarvis.json").read_text())["phrase_ends_s"]


@pytest.fixture(scope="module")
def jarvis():
    return models.board_file("hey_jarvis")


def test_the_hosts_replay_of_the_decision_equals_the_board(jarvis):
    # Same outputs, same detections, at cutoffs loose enough to fire often (rests, refires).
    heard, _ = load_wav(POSITIVES)
    noisy = np.clip(heard.astype(int) * 3, -32768, 32767).astype(np.int16)
    audio = np.concatenate([heard, noisy])
    [outputs] = firmware_outputs(jarvis, [audio])
    window = convert.read_meta(jarvis)["window"]
    fired_total = 0
    for cutoff in (1, 60, 128, 200, 247):
        board = [d["t"] for d in run_firmware_detector(jarvis, [audio], cutoff)]
        replay = decision.detections(outputs, cutoff, window)
        # slice j comes from the frontend's step j + 2 (its window is full from the third
        # step on), in 20 ms frame (j + 2) // 2, whose end the board reports
        assert [round(((j + 2) // 2 + 1) * 0.02, 2) for j in replay] == board, cutoff
        fired_total += len(board)
    assert fired_total > 8  # rests and refires were exercised


def test_decision_rests_after_a_detection_and_at_the_start():
    hot = np.full(200, 255, np.uint8)
    fired = decision.detections(hot, 200, 5)
    # 100 slices of rest from the start, but only slices whose latest output is below the
    # cutoff count: a constant 255 never lets the rest end after the first detection
    assert fired == []
    pulses = np.zeros(400, np.uint8)
    pulses[50:60] = 255
    pulses[150:160] = 255
    fired = decision.detections(pulses, 200, 5)
    # the 4th output of each pulse lifts the sum of 5 over 5 x 200; output k is on slice 3 k + 2
    assert fired == [3 * 53 + 2, 3 * 153 + 2]


def test_detector_allocates_nothing_per_frame(mpy, jarvis, tmp_path):
    heard, _ = load_wav(POSITIVES)
    (tmp_path / "a.raw").write_bytes(heard[:RATE * 8].astype("<i2").tobytes())
    out = mpy(f"""
import micropython
from earshot import wakemodel
from earshot.detector import WakeDetector
d = WakeDetector(wakemodel.load({str(jarvis)!r}), 1)  # cutoff 1: it fires and rests too
buf = bytearray(open('a.raw', 'rb').read())
woke = 0
@micropython.native
def run():
    n = 0
    for i in range(len(buf) // 640):
        if d.process(buf, i * 640):
            n += 1
    return n
micropython.heap_lock()
woke = run()
micropython.heap_unlock()
print('woke', woke)
""", cwd=tmp_path)
    assert int(out.split()[-1]) >= 1


def test_wake_detect_prints_where_the_board_fires(earshot, jarvis):
    code, out, err = earshot("wake", "detect", POSITIVES)
    assert code == 0, err
    hits = json_lines(out)
    assert [h["file"] for h in hits] == [str(POSITIVES)] * len(PHRASE_ENDS)
    for h, end in zip(hits, PHRASE_ENDS):
        assert end <= h["t"] <= end + 0.3 and 247 < h["score"] <= 255


def test_wake_detect_refuses_what_it_cannot_use(earshot, tmp_path):
    bad = tmp_path / "bad.eww"
    bad.write_bytes(b"EWN1" + bytes(40))
    code, out, err = earshot("wake", "detect", "--model", bad, POSITIVES)
    assert code == 1 and err.count("\n") == 1 and "bad.eww" in err
    code, out, err = earshot("wake", "detect", "--model", "hey_siri", POSITIVES)
    assert code == 1 and "hey_jarvis" in err  # names the models it knows
    code, out, err = earshot("wake", "detect", tmp_path / "missing.wav")
    assert code == 1 and "missing.wav" in err


def test_wake_convert_writes_the_board_file(earshot, tmp_path):
    out = tmp_path / "alexa.eww"
    code, text, err = earshot("wake", "convert", "alexa", "-o", out)
    assert code == 0, err
    meta = convert.read_meta(out)
    assert meta["phrase"] == "Alexa" and meta["window"] == 5 and meta["cutoff"] == int(0.9 * 255)
    assert "Apache-2.0" in meta["licence"] and "alexa" in text


def test_wake_eval_puts_the_board_beside_pymicro_wakeword(earshot, tmp_path):
    # A short held-out run: both systems measured on the same audio, tables and curve written.
    code, out, err = earshot("wake", "eval", "--positives", 12, "--hours", 0.02, "--out", tmp_path)
    assert code == 0, err
    res = json.loads((tmp_path / "eval.json").read_text())
    assert (tmp_path / "det.png").stat().st_size > 10_000 and "pymicro-wakeword" in (tmp_path / "eval.md").read_text()
    board, mww = res["board"], res["pymicro_wakeword"]
    i = board["cutoffs"].index(res["points"]["default"]["cutoff"])
    assert abs(board["frr"][i] - mww["frr"][i]) <= 1 / 12 + 1e-9  # at most one clip apart
    agree = res["outputs_agreement"]
    assert agree["invocations"] > 1000 and agree["equal"] / agree["invocations"] > 0.95

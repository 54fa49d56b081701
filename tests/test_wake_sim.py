# The wake word on the virtual board: microWakeWord's hey_jarvis model, run by the
# firmware's own frontend and int8 runtime, wakes on every bundled "hey jarvis" phrase at
# the default sensitivity, with the phrase in the pre-roll and the ring blue soon after
# the phrase ends; the receiver verifies and stores each session. The bundled negatives
# (speech, near misses like "hai brarvis", TV babble, noise, music) start none, and the
# demo wakes by voice before its push-to-talk.
import json

import numpy as np

from host_tools import reference
from host_tools.audio import load_wav
from host_tools.audit import audit
from host_tools.bench import BUDGET_FIRST_AUDIO_MS, BUDGET_RING_MS, wake_latencies
from host_tools.paths import DATA
from host_tools.wake import convert, models
from host_tools.wake.detect_runner import run_firmware_detector
from tests.simboard import find, sim

POSITIVES = DATA / "hey_jarvis.wav"
NEGATIVES = DATA / "not_jarvis.wav"
PHRASE_ENDS = json.loads((DATA / "hey_jarvis.json").read_text())["phrase_ends_s"]
DEMO = json.loads((DATA / "demo.json").read_text())
PHRASE_S = 0.6  # "hey jarvis" lasts at least this long in every voice


def _wakes(run):
    return [e["t"] for e in run.of("serial") if "why=wake" in e["line"]]


def test_wakes_on_every_bundled_phrase_at_default_sensitivity(tmp_path, capsys):
    run = sim(tmp_path, capsys, wav=POSITIVES)
    assert run.code == 0, run.err
    woke = _wakes(run)
    assert len(woke) == len(PHRASE_ENDS), (woke, PHRASE_ENDS)
    sessions = run.sessions()
    assert [m["trigger"] for m, _ in sessions] == ["wake"] * len(PHRASE_ENDS)
    assert all(m.get("wake_verified_score", 0) > 0.5 for m, _ in sessions)  # the receiver heard it too
    heard, _ = load_wav(POSITIVES)
    converted = reference.sent(heard, gain_db=12, dc_removal=True)  # what the board sends of it
    for (meta, pcm), end, t in zip(sessions, PHRASE_ENDS, woke):
        assert end <= t <= end + BUDGET_RING_MS / 1000, (end, t)
        [start] = find(converted, pcm[:3200])
        n = min(len(pcm), len(converted) - start)
        assert np.array_equal(pcm[:n], converted[start:start + n])
        assert start / 16000 <= end - PHRASE_S  # the whole phrase is in the pre-roll
    for ring_ms, audio_ms in wake_latencies(run.events, PHRASE_ENDS):
        assert 0 <= ring_ms <= BUDGET_RING_MS and ring_ms <= audio_ms <= BUDGET_FIRST_AUDIO_MS, (ring_ms, audio_ms)
    assert audit(run.events) == []


def test_the_board_wakes_where_its_detector_fires_on_the_same_audio(tmp_path, capsys):
    # The simulated board and `earshot wake detect`'s runner (the same firmware code, fed
    # the mic path's output directly) agree to the frame: nothing is lost between I2S and
    # the detector.
    heard, _ = load_wav(POSITIVES)
    converted = reference.convert(heard, gain_db=12, dc_removal=True)
    expected = [d["t"] for d in run_firmware_detector(models.board_file("hey_jarvis"), [converted])]
    run = sim(tmp_path, capsys, "--no-verify", wav=POSITIVES)
    woke = _wakes(run)
    assert len(woke) == len(expected) == len(PHRASE_ENDS)
    assert all(abs(a - b) <= 0.021 for a, b in zip(woke, expected)), (woke, expected)


def test_the_demo_wakes_by_voice_then_streams_a_press(tmp_path, capsys):
    # `make demo`: "Hey Jarvis, what's the weather like tomorrow in Berlin?" wakes the
    # board, the receiver verifies the phrase and stores the session; the press that
    # follows streams the second request.
    run = sim(tmp_path, capsys, "--press", DEMO["press_s"], wav=None)
    assert run.code == 0, run.err
    sessions = run.sessions()
    assert [m["trigger"] for m, _ in sessions] == ["wake", "button"]
    assert sessions[0][0]["wake_verified_score"] > 0.5
    [woke] = _wakes(run)
    assert DEMO["phrase_end_s"] <= woke <= DEMO["phrase_end_s"] + BUDGET_RING_MS / 1000
    assert len(sessions[0][1]) / 16000 >= 3.0  # the request after the phrase is in it, to its end
    assert audit(run.events) == []


def test_negatives_do_not_wake_it(tmp_path, capsys):
    run = sim(tmp_path, capsys, wav=NEGATIVES)
    assert run.code == 0, run.err
    assert run.sessions() == []
    assert not _wakes(run)
    assert not [e for e in run.events if e["ev"] == "led" and any(b >= 16 and b >= 2 * max(r, g)
                                                                 for r, g, b in e["rgb"])]


def test_push_to_talk_still_works_beside_the_wake_word(tmp_path, capsys):
    run = sim(tmp_path, capsys, "--press", 3.0, wav=NEGATIVES)
    assert run.code == 0, run.err
    assert [m["trigger"] for m, _ in run.sessions()] == ["button"]


def test_a_damaged_model_falls_back_to_push_to_talk(tmp_path, capsys):
    bad = tmp_path / "broken.eww"
    bad.write_bytes(models.board_file("hey_jarvis").read_bytes()[:300])
    run = sim(tmp_path, capsys, "--wake-model", bad, "--press", 21.0, wav=POSITIVES)
    assert run.code == 0, run.err
    [line] = [s for s in run.serial() if " main wake " in s]
    assert line.startswith("E ") and "broken.eww" in line and "using=push_to_talk" in line
    assert [m["trigger"] for m, _ in run.sessions()] == ["button"]


def test_a_model_the_runtime_cannot_run_is_refused_before_the_board_boots(tmp_path, capsys, earshot):
    bad = tmp_path / "odd.tflite"
    bad.write_bytes(b"TFL3" + bytes(200))
    (tmp_path / "odd.json").write_text(json.dumps({"type": "micro", "wake_word": "Odd", "model": "odd.tflite",
                                                   "version": 2, "micro": {"probability_cutoff": 0.9,
                                                                           "sliding_window_size": 5}}))
    code, out, err = earshot("sim", "--wake-model", bad, "--board-dir", tmp_path / "b", "--no-live")
    assert code == 1 and err.count("\n") == 1 and "odd.tflite" in err
    assert not (tmp_path / "b").exists() or not list((tmp_path / "b").glob("*.eww"))


def test_sensitivity_setting_picks_the_models_cutoff(tmp_path, capsys):
    meta = convert.read_meta(models.board_file("hey_jarvis"))
    cutoffs = {k: meta["sensitivities"][k]["cutoff"] for k in ("low", "default", "high")}
    assert cutoffs["default"] == meta["cutoff"] == int(0.97 * 255)  # the model's own, as ESPHome takes it
    assert cutoffs["high"] <= cutoffs["default"] <= cutoffs["low"]
    run = sim(tmp_path, capsys, "--set", "sensitivity=low", wav=NEGATIVES)
    [line] = [s for s in run.serial() if " main wake " in s]
    assert f"cutoff={cutoffs['low']}" in line
    run = sim(tmp_path / "b", capsys, "--set", "sensitivity=loud", wav=NEGATIVES)
    assert any("key=sensitivity" in s and "using=default" in s for s in run.serial())
    [line] = [s for s in run.serial() if " main wake " in s]
    assert f"cutoff={cutoffs['default']}" in line


def test_another_bundled_model_by_name(tmp_path, capsys):
    run = sim(tmp_path, capsys, "--wake-model", "hey_mycroft", wav=NEGATIVES)
    assert run.code == 0, run.err
    [line] = [s for s in run.serial() if " main wake " in s]
    assert line.startswith("I ") and "model=hey_mycroft.eww phrase=Hey_Mycroft " in line


def test_live_microphone_wakes_on_the_phrase(tmp_path, capsys, monkeypatch):
    # `earshot sim --mic` with a fake sound card delivering, in real time, the second
    # bundled phrase (from 3.5 s before its end, on the recording's 20 ms frame grid, to
    # 1.5 s after).
    from host_tools.sim import live

    end = PHRASE_ENDS[1]
    heard, _ = load_wav(POSITIVES)
    start = int(16000 * (end - 3.5)) // 320 * 320
    part = heard[start:int(16000 * (end + 1.5))]

    def fake_microphone():
        for i in range(0, len(part), 320):
            yield part[i:i + 320]

    monkeypatch.setattr(live, "open_microphone", fake_microphone)
    run = sim(tmp_path, capsys, "--mic", "--no-verify")
    assert run.code == 0, run.err
    assert [m["trigger"] for m, _ in run.sessions()] == ["wake"], run.serial()
    [woke] = _wakes(run)
    assert end <= start / 16000 + woke <= end + BUDGET_RING_MS / 1000

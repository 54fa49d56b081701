# The shipped wake word on the virtual board: the bundled "hey jarvis" recording (held-out
# voices, made by tests/data/make_wake_samples.py) starts one session per phrase, with the
# phrase in its pre-roll and the ring blue on the frame the detector fires; the bundled negatives
# (speech, near misses like "hai brarvis", TV babble, noise, music) start none.
import json

import numpy as np
import pytest

from host_tools import reference
from host_tools.audio import load_wav
from host_tools.audit import audit
from host_tools.bench import wake_latencies
from host_tools.paths import DATA, FIRMWARE
from host_tools.wake import reference as wake_reference
from tests.simboard import find, sim

POSITIVES = DATA / "hey_jarvis.wav"
NEGATIVES = DATA / "not_jarvis.wav"
PHRASE_ENDS = json.loads((DATA / "hey_jarvis.json").read_text())["phrase_ends_s"]
MODEL = FIRMWARE / "hey_jarvis.eww"
PHRASE_S = 0.6  # "hey jarvis" lasts at least this long in every voice


def _reference_wakes(sensitivity):
    # Where the NumPy twin of the firmware detector fires on what the board's mic delivers
    # (the WAV after the default conversion: +12 dB, DC removal), in seconds.
    from host_tools.wake import evaluate, modelfile

    model = modelfile.load(MODEL)
    heard, _ = load_wav(POSITIVES)
    converted = reference.convert(heard, gain_db=12, dc_removal=True)
    cutoff = model[0]["sensitivities"][sensitivity]["cutoff"]
    frames = evaluate.our_detections(model, wake_reference.features(converted), cutoff)
    return [(f + 1) * 0.02 for f in frames], converted


def test_wakes_where_the_detector_fires_with_the_phrase_in_the_preroll(tmp_path, capsys):
    # The board (firmware under MicroPython) wakes exactly where the bit-exact reference
    # fires, and each session holds the whole phrase.
    expected, converted = _reference_wakes("high")
    assert expected, "the shipped model hears none of the bundled phrases at high sensitivity"
    # (--no-verify: the receiver's own check rejects these synthetic voices; test_verify.py)
    run = sim(tmp_path, capsys, "--set", "sensitivity=high", "--no-verify", wav=POSITIVES)
    assert run.code == 0, run.err
    woke = [e["t"] for e in run.of("serial") if "why=wake" in e["line"]]
    assert len(woke) == len(expected) and all(abs(a - b) <= 0.021 for a, b in zip(woke, expected)), (woke, expected)
    sessions = run.sessions()
    assert [m["trigger"] for m, _ in sessions] == ["wake"] * len(expected)
    heard_ends = [min(PHRASE_ENDS, key=lambda e: abs(e - t)) for t in woke]
    for (meta, pcm), end in zip(sessions, heard_ends):
        [start] = find(converted, pcm[:3200])
        n = min(len(pcm), len(converted) - start)  # a session may outlast the recording
        assert np.array_equal(pcm[:n], converted[start:start + n])
        assert start / 16000 <= end - PHRASE_S and (start + len(pcm)) / 16000 >= end
    # the ring turns blue on the frame the detector fires, the audio follows within two
    # frames (the time from the phrase end to the detection is the model's: `make bench`)
    for (ring_ms, audio_ms), t, end in zip(wake_latencies(run.events, woke), woke, heard_ends):
        assert abs(ring_ms) <= 1 and 0 <= audio_ms <= 40, (ring_ms, audio_ms)
        assert end - 0.5 <= t <= end + 0.3
    assert audit(run.events) == []


@pytest.mark.xfail(strict=True, reason="issue 3 is open: the shipped model scores only some held-out "
                                       "voices above its default cutoff (see the README's eval table)")
def test_wakes_on_every_bundled_phrase_at_default_sensitivity(tmp_path, capsys):
    run = sim(tmp_path, capsys, "--no-verify", wav=POSITIVES)
    assert [m["trigger"] for m, _ in run.sessions()] == ["wake"] * len(PHRASE_ENDS)


def test_negatives_do_not_wake_it(tmp_path, capsys):
    run = sim(tmp_path, capsys, wav=NEGATIVES)
    assert run.code == 0, run.err
    assert run.sessions() == []
    assert not [line for line in run.serial() if "why=wake" in line]
    assert not [e for e in run.events if e["ev"] == "led" and any(b >= 16 and b >= 2 * max(r, g)
                                                                 for r, g, b in e["rgb"])]


def test_push_to_talk_still_works_beside_the_wake_word(tmp_path, capsys):
    run = sim(tmp_path, capsys, "--press", 3.0, wav=NEGATIVES)
    assert run.code == 0, run.err
    assert [m["trigger"] for m, _ in run.sessions()] == ["button"]


def test_a_damaged_model_falls_back_to_push_to_talk(tmp_path, capsys):
    bad = tmp_path / "broken.eww"
    bad.write_bytes(MODEL.read_bytes()[:300])
    run = sim(tmp_path, capsys, "--wake-model", bad, "--press", 21.0, wav=POSITIVES)
    assert run.code == 0, run.err
    [line] = [s for s in run.serial() if " main wake " in s]
    assert line.startswith("E ") and "broken.eww" in line and "using=push_to_talk" in line
    assert [m["trigger"] for m, _ in run.sessions()] == ["button"]


def test_sensitivity_setting_picks_the_models_cutoff(tmp_path, capsys):
    from host_tools.wake import modelfile

    meta, _ = modelfile.load(MODEL)
    run = sim(tmp_path, capsys, "--set", "sensitivity=low", wav=NEGATIVES)
    [line] = [s for s in run.serial() if " main wake " in s]
    assert f"cutoff={meta['sensitivities']['low']['cutoff']}" in line
    run = sim(tmp_path / "b", capsys, "--set", "sensitivity=loud", wav=NEGATIVES)
    assert any("key=sensitivity" in s and "using=default" in s for s in run.serial())
    [line] = [s for s in run.serial() if " main wake " in s]
    assert f"cutoff={meta['sensitivities']['default']['cutoff']}" in line
    assert np.all(np.diff([meta["sensitivities"][k]["cutoff"] for k in ("high", "default", "low")]) >= 0)


def test_live_microphone_wakes_on_the_phrase(tmp_path, capsys, monkeypatch):
    # `earshot sim --mic` with a fake sound card delivering, in real time, the first
    # bundled phrase that the detector hears at high sensitivity (from about 3.5 s before
    # its end, on the recording's 20 ms frame grid so that the board's frames are the
    # recording's, to 1.5 s after).
    from host_tools.sim import live

    expected, _ = _reference_wakes("high")
    end = min(PHRASE_ENDS, key=lambda e: abs(e - expected[0]))
    heard, _ = load_wav(POSITIVES)
    start = int(16000 * (end - 3.5)) // 320 * 320
    part = heard[start:int(16000 * (end + 1.5))]

    def fake_microphone():
        for i in range(0, len(part), 320):
            yield part[i:i + 320]

    monkeypatch.setattr(live, "open_microphone", fake_microphone)
    run = sim(tmp_path, capsys, "--mic", "--set", "sensitivity=high", "--no-verify")
    assert run.code == 0, run.err
    assert [m["trigger"] for m, _ in run.sessions()] == ["wake"], run.serial()
    [woke] = [e["t"] for e in run.of("serial") if "why=wake" in e["line"]]
    assert end - 0.5 <= start / 16000 + woke <= end + 0.3  # at the phrase end, as on the whole recording

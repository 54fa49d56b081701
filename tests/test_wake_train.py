# `earshot wake train / detect / eval`: a quickly trained model for a second phrase
# ("hello earshot", not the shipped "hey jarvis") hears that phrase in held-out voices
# clearly more than anything else, the firmware detector run by `wake detect` fires where
# the NumPy reference says it does, and the commands fail with one line on bad input.
import fcntl
import json
import os

import numpy as np
import pytest

from tests.conftest import need

PHRASE = "hello earshot"


@pytest.fixture(scope="session")
def quick_model(tmp_path_factory):
    # Trained once per test run, shared by the xdist workers through a lock file; the audio
    # and feature caches live in the run's temporary folder.
    need("espeak-ng")
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # .../pytest-N/popen-gwK: share pytest-N
        root = root.parent
    path = root / "hello_earshot.eww"
    old = os.environ.get("EARSHOT_WAKE_CACHE")
    os.environ["EARSHOT_WAKE_CACHE"] = str(root / "wake-cache")
    with open(root / "quick_model.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            from host_tools import cli

            status = cli.main(["wake", "train", "--phrase", PHRASE, "--quick", "--out", str(path), "--seed", "3"])
            assert status == 0
    yield path
    if old is None:
        os.environ.pop("EARSHOT_WAKE_CACHE", None)
    else:
        os.environ["EARSHOT_WAKE_CACHE"] = old


@pytest.fixture(scope="session")
def heldout(quick_model):
    # Held-out positives (voices and noises the training never saw) and negative audio.
    from host_tools.wake import data

    pos = data.positive_set(PHRASE, "heldout", 12, seed=11, progress=False)
    neg = np.asarray(data.negative_stream("heldout", 0.03, seed=11, progress=False), np.int16)
    return pos, neg


def peak_near_end(model, clip):
    from host_tools.wake import evaluate, reference, train

    frames, avg = evaluate.decision_track(model, reference.features(clip.pcm))
    e = train.end_frame(clip.end)
    near = (frames >= e - 25) & (frames <= e + 50)
    return float(avg[near].max())


def test_quick_model_hears_its_phrase_in_unseen_voices(quick_model, heldout):
    from host_tools.wake import evaluate, modelfile, reference

    model = modelfile.load(quick_model)
    meta = model[0]
    assert meta["phrase"] == PHRASE
    sens = meta["sensitivities"]
    assert sens["low"]["cutoff"] >= sens["default"]["cutoff"] >= sens["high"]["cutoff"]
    pos, neg = heldout
    peaks = np.array([peak_near_end(model, c) for c in pos])
    _, avg = evaluate.decision_track(model, reference.features(neg))
    # the typical held-out positive scores far above nearly all of 100 s of unseen negative
    # speech, near misses, babble, noise and music ...
    assert np.median(peaks) >= np.percentile(avg, 99) + 80, (peaks, np.percentile(avg, [99, 100]))
    # ... and at a cutoff just above the loudest negative moment, most positives still fire
    assert (peaks > avg.max()).mean() >= 0.5, (peaks, avg.max())


def test_decision_track_matches_reference_detect(quick_model, heldout):
    # The sweeps that set the cutoffs count detections exactly as the reference does.
    from host_tools.wake import evaluate, modelfile, reference

    model = modelfile.load(quick_model)
    pos, neg = heldout
    audio = np.concatenate([neg[:16000 * 20]] + [c.pcm for c in pos[:4]])
    feats = reference.features(audio)
    _, avg = evaluate.decision_track(model, feats)
    for cutoff in sorted({int(avg.max()), int(np.percentile(avg, 99)), int(np.percentile(avg, 90)) + 1}):
        assert evaluate.our_detections(model, feats, cutoff) == list(reference.detect(model, feats, cutoff))


def write_wav(path, pcm):
    from host_tools.audio import write_wav as w

    w(path, pcm)
    return path


def test_detect_prints_json_lines_where_the_reference_fires(quick_model, heldout, earshot, tmp_path):
    from host_tools.wake import evaluate, modelfile, reference

    model = modelfile.load(quick_model)
    cutoff = model[0]["sensitivities"]["high"]["cutoff"]
    pos, neg = heldout
    clip = max(pos, key=lambda c: peak_near_end(model, c))
    wav_pos = write_wav(tmp_path / "pos.wav", clip.pcm)
    wav_neg = write_wav(tmp_path / "neg.wav", neg[:16000 * 3])
    status, out, err = earshot("wake", "detect", "--model", quick_model, "--sensitivity", "high", wav_pos, wav_neg)
    assert status == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines, "no detection printed for the best held-out positive"
    assert all(set(d) == {"file", "t", "score"} for d in lines)
    expect = [(str(wav_pos), f) for f in evaluate.our_detections(model, reference.features(clip.pcm), cutoff)]
    expect += [(str(wav_neg), f) for f in evaluate.our_detections(model, reference.features(neg[:16000 * 3]), cutoff)]
    assert len(lines) == len(expect)
    for d, (name, frame) in zip(lines, expect):
        assert d["file"] == name
        assert abs(d["t"] - (frame + 1) * 0.02) <= 0.021
    end_t = clip.end / 16000
    assert any(d["file"] == str(wav_pos) and end_t - 0.5 <= d["t"] <= end_t + 1.0 for d in lines)


def test_detect_errors_are_one_line(quick_model, earshot, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    status, out, err = earshot("wake", "detect", "--model", quick_model, bad)
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("earshot: ") and "bad.wav" in err
    good = write_wav(tmp_path / "quiet.wav", np.zeros(16000, np.int16))
    status, out, err = earshot("wake", "detect", "--model", tmp_path / "missing.eww", good)
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and "missing.eww" in err
    corrupt = tmp_path / "corrupt.eww"
    corrupt.write_bytes(quick_model.read_bytes()[:100])
    status, out, err = earshot("wake", "detect", "--model", corrupt, good)
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and "corrupt.eww" in err


def test_eval_writes_det_png_and_table(quick_model, earshot, tmp_path):
    from matplotlib.image import imread

    out = tmp_path / "eval"
    status, stdout, err = earshot("wake", "eval", "--model", quick_model, "--out", out,
                                  "--hours", "0.02", "--positives", "8")
    assert status == 0, err
    img = imread(out / "det.png")
    assert img.shape[0] > 300 and img.shape[1] > 500
    table = (out / "eval.md").read_text()
    for level in ("low", "default", "high"):
        assert f"| earshot | {level} |" in table
    assert table.split("\n\n")[1] in stdout  # the same table is printed
    results = json.loads((out / "eval.json").read_text())
    assert results["positives"] == 8 and 0.015 <= results["hours"] <= 0.025
    assert len(results["ours"]["frr"]) == 255


def test_cross_check_crosses_the_splits_and_agrees_with_eval(quick_model, earshot, tmp_path):
    # `wake eval --cross`: the four pairs of positives and negative stream, and its
    # held-out/held-out row is the FRR that `wake eval` itself gives at the same FA/h targets.
    from host_tools.wake.evaluate import FA_TARGETS

    args = ("--model", quick_model, "--hours", "0.03", "--positives", "8", "--seed", "4")
    status, stdout, err = earshot("wake", "eval", "--cross", "--out", tmp_path / "cross", *args)
    assert status == 0, err
    table = (tmp_path / "cross" / "cross.md").read_text()
    assert table.split("\n\n")[1] in stdout
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ") and "%" in line]
    assert [(r[0][2:], r[1]) for r in rows] == [("held-out", "held-out"), ("training", "held-out"),
                                                ("held-out", "training"), ("training", "training")]
    assert "training audio (split train, seed 1003)" in err  # the quick model was trained with seed 3
    status, _, err = earshot("wake", "eval", "--no-reference", "--out", tmp_path / "eval", *args)
    assert status == 0, err
    ours = json.loads((tmp_path / "eval" / "eval.json").read_text())["ours"]
    for col, target in enumerate((FA_TARGETS["default"], FA_TARGETS["high"])):
        i = len(ours["cutoffs"]) - 1
        while i > 0 and ours["fa_per_hour"][i - 1] is not None and ours["fa_per_hour"][i - 1] <= target:
            i -= 1
        assert rows[0][2 + col].rstrip(" |") == f"{100 * ours['frr'][i]:.1f} %"


def test_second_phrase_wakes_the_simulated_board(quick_model, heldout, tmp_path, capsys):
    # End to end for a phrase that is not the shipped one: its quick model installed on the
    # virtual board (`earshot sim --wake-model`), an unseen voice saying it starts a session.
    from host_tools.wake import modelfile
    from tests.simboard import sim

    model = modelfile.load(quick_model)
    pos, _ = heldout
    clip = max(pos, key=lambda c: peak_near_end(model, c))
    quiet = np.zeros(16000 * 3, np.int16)
    wav = write_wav(tmp_path / "hello.wav", np.concatenate([quiet, clip.pcm, quiet]))
    run = sim(tmp_path / "run", capsys, "--wake-model", quick_model, "--set", "sensitivity=high", wav=wav)
    assert run.code == 0, run.err
    assert any("phrase=hello_earshot" in line or "phrase=hello earshot" in line for line in run.serial())
    sessions = run.sessions()
    assert [m["trigger"] for m, _ in sessions] == ["wake"], run.serial()
    end = (len(quiet) + clip.end) / 16000
    [wake] = [e["t"] for e in run.of("serial") if "why=wake" in e["line"]]
    assert end - 0.5 <= wake <= end + 1.0


def test_window_variety_keeps_silence_and_labels_apart():
    from host_tools.wake.train import vary_windows

    rng = np.random.default_rng(1)
    x = rng.integers(1, 200, (200, 48, 32)).astype(np.uint8)
    x[:, :10] = 0  # digital silence before a clip
    assert vary_windows(x, rng, 0.0) is x
    y = vary_windows(x, rng, 0.5)
    assert y.shape == x.shape and y.dtype == np.uint8
    assert (y[:, :10] == 0).all()
    changed = (y != x).any(axis=(1, 2))
    assert 0.75 <= changed.mean() <= 0.95  # 1 - 0.5**3 of the windows, give or take


def test_near_miss_hits_counts_only_adversarial_segments():
    from host_tools.wake.evaluate import near_miss_hits

    segments = [(0, 16000, "speech:espeak:x", "a sentence"), (32000, 48000, "adversarial:espeak:y", "pay jarvis")]
    assert near_miss_hits([8000, 40000, 60000, 70000], segments) == 2  # 60000 is within 1 s after

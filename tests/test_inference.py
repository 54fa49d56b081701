# microWakeWord's models on the board: host_tools/wake/convert.py turns each bundled v2
# model into the board's file, and firmware/earshot/inference.py (under the real
# MicroPython interpreter) must give the uint8 output of TFLite's reference kernels
# (ai-edge-litert, OpResolverType.BUILTIN_REF) on every invocation, fed the same int8
# features. Also: the converter's and the loader's refusals, the input quantisation for
# every uint16 value, no allocation per feed.
#
# With MICROPYTHON32=/path/to/a 32-bit unix port, the firmware runs under it too: the
# 64-bit port hides 32-bit overflow, a 32-bit one computes what the ESP32 does.
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from host_tools.paths import DATA, FIRMWARE
from host_tools.wake import convert

STRIDE = 3
INTERPRETERS = [str(Path(sys.executable).parent / "micropython")]
if os.environ.get("MICROPYTHON32"):
    INTERPRETERS.append(os.environ["MICROPYTHON32"])
PHRASES = {"hey_jarvis": "Hey Jarvis.", "okay_nabu": "Okay Nabu.", "alexa": "Alexa.",
           "hey_mycroft": "Hey Mycroft."}


def _mpy(interpreter, code, *args, timeout=300):
    env = dict(os.environ, MICROPYPATH=f"{FIRMWARE}:.frozen")
    proc = subprocess.run([interpreter, "-X", "heapsize=2m", "-c", code, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"MicroPython exited {proc.returncode}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return proc.stdout


def _features(pcm):
    # pymicro_features' uint16 values (it hands them out x 0.0390625 as floats)
    from pymicro_features import MicroFrontend

    fe = MicroFrontend()
    raw = np.asarray(pcm, dtype="<i2").tobytes()
    out = []
    for at in range(0, len(raw) - 319, 320):
        r = fe.process_samples(raw[at:at + 320])
        if r.features:
            out.append([int(round(f * 25.6)) for f in r.features])
    return np.array(out, dtype=np.uint16).reshape(-1, 40)


def _wav(path):
    import wave

    with wave.open(str(path)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), "<i2")


def _spoken():
    # Piper (the project's offline voice) saying each phrase at three speeds and two levels,
    # between silences and a sentence that is not the phrase: outputs from 0 through the
    # cutoffs to 255 for every model
    from host_tools.wake.data import _Piper, _to_int16

    piper = _Piper(1)
    parts = [np.zeros(8000)]
    for text in list(PHRASES.values()) + ["Turn the kitchen lights off, please."]:
        for ls, gain in ((0.9, 0.5), (1.0, 0.15), (1.15, 0.8)):
            parts += [piper.say(text, ls, 0.667, 0.8) * gain, np.zeros(6000)]
    return _to_int16(np.concatenate(parts))


@pytest.fixture(scope="module")
def audio_features():
    files = {name: _features(_wav(DATA / f"{name}.wav")) for name in ("hey_jarvis", "not_jarvis", "demo")}
    files["piper"] = _features(_spoken())
    return files


def _reference(name, feats):
    # BUILTIN_REF's uint8 output for each invocation, fed the clamped quantisation
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    tfl = convert.source_of(name)[0] if name in convert.BUNDLED else name
    it = Interpreter(model_path=str(tfl), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    q = convert.quantize_features(feats, *inp["quantization"])
    got = []
    for at in range(0, len(q) - STRIDE + 1, STRIDE):
        it.set_tensor(inp["index"], q[at:at + STRIDE][None])
        it.invoke()
        got.append(int(it.get_tensor(out["index"])[0, 0]))
    return np.array(got, dtype=np.uint8)


NET_OVER_FILES = """
import array, binascii, sys
from earshot import inference, wakemodel
net = inference.Net(wakemodel.load(sys.argv[-2]))
f = open(sys.argv[-1], 'rb')
feats = array.array('H', bytes(80))
head = bytearray(4)
while f.readinto(head) == 4:
    n = int.from_bytes(head, 'little')
    out = bytearray(n // net.stride)
    k = 0
    for i in range(n):
        f.readinto(feats)
        if net.feed(feats):
            out[k] = net.prob
            k += 1
    print(binascii.hexlify(out).decode())
    net.reset()
"""


def _board_outputs(interpreter, model_path, feature_files, tmp_path):
    blob = bytearray()
    for feats in feature_files:
        blob += len(feats).to_bytes(4, "little") + feats.astype("<u2").tobytes()
    path = tmp_path / "features.bin"
    path.write_bytes(blob)
    lines = _mpy(interpreter, NET_OVER_FILES, model_path, path).split()
    return [np.frombuffer(bytes.fromhex(line), dtype=np.uint8) for line in lines]


@pytest.mark.parametrize("interpreter", INTERPRETERS, ids=lambda p: "32bit" if p != INTERPRETERS[0] else "unix")
@pytest.mark.parametrize("name", convert.BUNDLED)
def test_every_output_equals_tflite_reference_kernels(name, interpreter, audio_features, tmp_path):
    model = tmp_path / f"{name}.eww"
    meta = convert.convert(*convert.source_of(name), model)
    names = list(audio_features)
    got = _board_outputs(interpreter, model, [audio_features[k] for k in names], tmp_path)
    total = above0 = above_cut = 0
    for k, board in zip(names, got):
        want = _reference(name, audio_features[k])
        assert len(board) == len(want), k
        diff = np.nonzero(board != want)[0]
        assert not len(diff), (f"{name} on {k}: {len(diff)} of {len(want)} invocations differ, first at "
                               f"{diff[0]}: board {board[diff[0]]}, reference {want[diff[0]]}")
        total += len(want)
        above0 += int((want > 0).sum())
        above_cut += int((want > meta["cutoff"]).sum())
    print(f"{name}: {total} invocations equal, {above0} > 0, {above_cut} > cutoff {meta['cutoff']}")
    assert above_cut >= 10 and above0 >= above_cut + 20  # outputs below, near and above the cutoff


def test_initial_state_other_than_zero_points(audio_features, tmp_path):
    # the bundled models start every state at its zero point; another model may not: give
    # hey_jarvis's states values from its initialiser subgraph and compare the first second
    def scribble(m, data):
        sub = m.Subgraphs(1)
        for i in range(sub.OperatorsLength()):
            op = sub.Operators(i)
            if op.InputsLength() == 2:
                buf = m.Buffers(sub.Tensors(op.Inputs(1)).Buffer())
                at = buf._tab.Vector(buf._tab.Offset(4))
                for k in range(buf.DataLength()):
                    data[at + k] = (37 * k + 11 * i) % 256

    data, man = _patched("hey_jarvis", scribble)
    tfl = tmp_path / "scribbled.tflite"
    tfl.write_bytes(data)
    model = tmp_path / "scribbled.eww"
    convert.convert(tfl, man, model)
    feats = audio_features["hey_jarvis"][:300]
    want = _reference(str(tfl), feats)
    assert (want != _reference("hey_jarvis", feats)).sum() >= 5  # the start did change
    for interpreter in INTERPRETERS:
        board = _board_outputs(interpreter, model, [feats, feats], tmp_path)  # and after reset()
        assert np.array_equal(board[0], want) and np.array_equal(board[1], want)


REQUANTISE = """
import array, sys
from earshot import inference
# a line per call: kind flags, zp, lo, hi (+ 128), then 4 channels of acc, M, right shift
ws = array.array('i', bytes(4 * 42))
ws[0], ws[8] = 1, 16  # one op; the output ring (the table at 0 of the blob)
ws[9], ws[10] = 4, 34  # 4 channels at most; the program's length: the accumulators follow it
ws[16:22] = array.array('i', [0, 4, 1, 0, 0, 0])  # a one-frame ring of 4 bytes
rings = bytearray(4)
par = array.array('I', bytes(256 + 32))
for line in open(sys.argv[-1]):
    case = [int(v) for v in line.split()]
    flags, zp, lo, hi = case[:4]
    for c in range(4):
        acc, m, s = case[4 + 3 * c:7 + 3 * c]
        par[2 * c] = (m >> 15) | (m & 0x7FFF) << 16
        par[2 * c + 1] = (0x400000 << 8) | (s - 5 if flags & 32 else s)  # bias 0
        ws[34 + c] = 0x20202020 + acc
    ws[22:34] = array.array('i', [3 | flags, 16, 1, 0, 0, 4, 0, 16, 0, zp, lo, hi])
    inference._run(par, 22, ws, rings)
    print(*rings)
"""


def _at_the_window(edge, m, s, rng):
    # an accumulator near `edge` for which the fast path (inference.py's header) answers
    # with the least margin, or just does not: its W mod 2**23 just outside or inside the
    # uncertain window. W depends on t = floor(acc 2**(7 - s)) only.
    low, high = 1 << 17, (1 << 23) - (1 << 17) - 1
    band = [(low, low + 4096), (low - 4096, low), (high - 4096, high), (high, high + 4096)][rng.integers(4)]
    t0 = int(edge * 2.0 ** (7 - s))
    for t in sorted(range(t0 - 600, t0 + 600), key=lambda t: abs(t - t0)):
        w = (t * (m >> 15) + ((t * (m & 0x7FFF)) >> 15) + (1 << 22)) & ((1 << 23) - 1)
        if band[0] <= w < band[1] and (s >= 7 or t % (1 << (7 - s)) == 0):
            return t << (s - 7) | int(rng.integers(0, 1 << (s - 7))) if s >= 7 else t >> (7 - s)
    return int(edge)


def _requantise_cases(rng, n):
    # (cases for REQUANTISE, the outputs TFLite's arithmetic gives): accumulators across the
    # whole range the converter accepts and around rounding edges, where the fast path is
    # unsure: within a few units, and about as far as its uncertain window reaches
    cases, want = [], []
    for i in range(n):
        once, fast = rng.random() < 1 / 3, rng.random() < 3 / 4
        zp = int(rng.integers(-128, 128))
        lo = zp if rng.random() < 0.5 else -128  # ReLU or none
        cases += [(16 if once else 0) | (32 if fast else 0), zp + 128, lo + 128, 255]
        for c in range(4):
            small = fast and rng.random() < 0.5  # s = 5, 6, 7: the fast path's largest errors
            while True:
                m, shift = convert.quantize_multiplier(10 ** (rng.uniform(-2.4, -1.51) if small
                                                              else rng.uniform(-8.5, -0.31)))
                if -29 <= shift <= (-5 if fast else -1):
                    break
            s = -shift
            y = int(rng.integers(lo - zp, max(lo - zp, 127 - zp) + 1))  # an output inside the clamps
            edge = (2 * y + 1) * 2 ** (30 + s) / m
            reach = 2 ** (s + 25) / m * rng.uniform(0.5, 1.5)
            acc = [int(rng.integers(-(1 << 28), 1 << 28)) >> int(rng.integers(0, 28)),
                   int(edge + rng.uniform(-4, 4)), int(edge + reach), int(edge - reach),
                   int(rng.choice([0, 1, -1, -2, 2, (1 << 29) - 1, 1 - (1 << 29), 1 << (s + 8), -(1 << (s + 8))])),
                   _at_the_window(edge, m, s, rng) if fast else int(edge)
                   ][int(rng.choice(6, p=[0.25, 0.2, 0.15, 0.15, 0.05, 0.2]))]
            acc = max(1 - (1 << 29), min((1 << 29) - 1, acc))
            cases += [acc, m, s]
            if once:
                y = (acc * m + (1 << (30 + s))) >> (31 + s)
            else:
                y = convert.multiply_by_quantized_multiplier(acc, m, shift)
            want.append(min(127, max(lo, y + zp)) + 128)
    return cases, want


@pytest.mark.parametrize("interpreter", INTERPRETERS, ids=lambda p: "32bit" if p != INTERPRETERS[0] else "unix")
def test_requantisation_equals_multiply_by_quantized_multiplier(interpreter, tmp_path):
    # TFLite's MultiplyByQuantizedMultiplier (the converter's exact Python), zero point and
    # clamp, against the board's (fast path and exact one) for accumulators across the whole
    # range it accepts; and the one-rounding form BUILTIN_REF's FULLY_CONNECTED uses,
    # floor(acc M / 2**(31 - shift) + 1/2)
    cases, want = _requantise_cases(np.random.default_rng(7), 1500)
    path = tmp_path / "cases.txt"
    path.write_text("".join(" ".join(map(str, cases[at:at + 16])) + "\n" for at in range(0, len(cases), 16)))
    got = [int(v) for v in _mpy(interpreter, REQUANTISE, path).split()]
    assert got == want


def _firmware_const(name):
    import re

    text = (FIRMWARE / "earshot" / "inference.py").read_text()
    return int(re.search(rf"^{name} = const\((\w+)\)", text, re.M).group(1), 0)


def test_fast_requantiser_is_exact_for_every_accumulator_of_the_bundled_models():
    # The board's fast path (inference.py's header), in numpy with the firmware's constants,
    # against TFLite's arithmetic on every channel of the four models (padding channels
    # too): for every t in its range whose W it answers, every accumulator with that t (the
    # exact output is monotone in acc: both ends of t's interval), and that its answers
    # need no clamp; and a ReLU's shortcut, t <= 0 gives lo. (The firmware itself is held to
    # the same arithmetic by the test above and by every model's outputs.)
    near, win, half = (_firmware_const(k) for k in ("_NEAR", "_WIN", "_HALF"))

    def exact(x, m, s, zp, lo):
        c = np.where(x >= 0, (1 << (30 + s)) + (1 << 30), (1 << (30 + s)) - (1 << 30))
        return np.clip(((x * m + c) >> (31 + s)) + zp, lo, 255)

    answered = checked = 0
    for name in convert.BUNDLED:
        for op in convert._lower(convert.source_of(name)[0].read_bytes(), name).ops:
            if op.round_once:
                continue  # FULLY_CONNECTED: the exact path only
            zp, lo = op.q_out[1] + 128, (op.q_out[1] if op.act == 1 else -128) + 128
            room = 255 - zp if lo == zp else min(255 - zp, zp - lo)
            k = 128 << 7
            while k > room << 7:
                k >>= 1
            t0 = 1 if lo == zp else 1 - k
            pad = [(1 << 30, -29)] * (-op.cout % 4)
            for m, shift in set(op.mults + pad):
                s = -shift
                assert s >= 5
                t = np.arange(t0, max(t0, k), dtype=np.int64)
                if s < 7:
                    t = t[t % (1 << (7 - s)) == 0]
                low, high = (t << (s - 7), (t + 1 << (s - 7)) - 1) if s >= 7 else (t >> (7 - s),) * 2
                keep = (low > -(1 << 29)) & (high < 1 << 29)  # the accumulators the converter allows
                t, low, high = t[keep], low[keep], high[keep]
                w = t * (m >> 15) + ((t * (m & 0x7FFF)) >> 15) + half
                ok = ((w + near) & 0x7FFFFF) >= win
                y = (w >> 23) + zp
                assert np.all((y[ok] >= lo) & (y[ok] <= 255))
                for x in (low, high):
                    assert np.all((x << 2) >> (s - 5) == t) and np.array_equal(y[ok], exact(x, m, s, zp, lo)[ok])
                if lo == zp:  # the largest acc whose t <= 0
                    assert exact(np.array([(1 << (s - 7)) - 1 if s >= 7 else 0]), m, s, zp, lo)[0] == lo
                answered += int(ok.sum())
                checked += len(t)
    assert answered > 0.95 * checked > 10 ** 7


def test_input_quantisation_equals_the_float_formula_for_every_uint16(tmp_path):
    # the board's integer form (run by the firmware) against clamp(round(u 0.0390625 / s) + zp)
    model = tmp_path / "m.eww"
    convert.convert(*convert.source_of("hey_jarvis"), model)
    code = """
import array, binascii, sys
from earshot import inference, wakemodel
m = wakemodel.load(sys.argv[-1])
net = inference.Net(m)
ws, rings = m.words, net._rings
feats = array.array('H', bytes(80))
out = bytearray(65536)
base, stride, frames = ws[16], ws[17], ws[18]
for at in range(0, 65536, 40):
    for i in range(40):
        feats[i] = min(at + i, 65535)
    inference._quantise(feats, rings, 0, ws)
    slot = base + ws[19] * stride
    for i in range(min(40, 65536 - at)):
        out[at + i] = rings[slot + i]
sys.stdout.write(binascii.hexlify(out))
"""
    board = np.frombuffer(bytes.fromhex(_mpy(INTERPRETERS[-1], code, model)), dtype=np.uint8)
    want = convert.quantize_features(np.arange(65536), 0.10196078568696976, -128).astype(np.int64) + 128
    assert np.array_equal(board, want)
    # pymicro-wakeword's own formula where it does not wrap (it casts without clamping)
    u = np.arange(65536)
    raw = np.round(u * 0.0390625 / 0.10196078568696976 - 128)
    ok = raw <= 127
    assert np.array_equal(want[ok], raw[ok] + 128) and ok.sum() > 600


def test_no_allocation_per_feed(tmp_path):
    for name in ("hey_jarvis", "okay_nabu"):
        model = tmp_path / f"{name}.eww"
        convert.convert(*convert.source_of(name), model)
        code = """
import array, micropython, sys
from earshot import inference, wakemodel
net = inference.Net(wakemodel.load(sys.argv[-1]))
frames = [array.array('H', [(31 * k + 7 * i) % 700 for i in range(40)]) for k in range(16)]
@micropython.native  # a bytecode caller would heap-allocate its own frame
def run(n):
    fired = 0
    for k in range(n):
        if net.feed(frames[k % 16]):
            fired += 1
    return fired
fired = run(30)  # (and `fired` exists: a new global under the lock would grow the dict)
micropython.heap_lock()
try:
    fired = run(600)
finally:
    micropython.heap_unlock()
print(fired, net.prob)
"""
        fired, prob = _mpy(INTERPRETERS[0], code, model).split()
        assert int(fired) == 200 and 0 <= int(prob) <= 255


# --- the converter ---------------------------------------------------------------------------

def test_converted_file_carries_the_metadata(tmp_path):
    out = tmp_path / "jarvis.eww"
    meta = convert.convert(*convert.source_of("hey_jarvis"), out,
                           sensitivities={"high": {"cutoff": 250, "fa_per_hour": 0.0, "frr": 0.1, "frr_natural": 0.05}})
    assert meta["phrase"] == "Hey Jarvis" and meta["cutoff"] == int(0.97 * 255) == 247
    assert meta["window"] == 5 and meta["stride"] == 3
    assert meta["sensitivities"]["default"]["cutoff"] == 247
    assert meta["sensitivities"]["low"] == {"cutoff": 247, "fa_per_hour": None, "frr": None, "frr_natural": None,
                                            "status": "unmeasured"}
    assert meta["sensitivities"]["high"] == {"cutoff": 250, "fa_per_hour": 0.0, "frr": 0.1, "frr_natural": 0.05,
                                             "status": "measured"}
    assert meta["licence"].startswith("Apache-2.0; microWakeWord model by Kevin Ahrendt")
    assert len(meta["source"]["sha256"]) == 64 and meta["source"]["file"] == "hey_jarvis.tflite"
    assert meta["macs"] == 21630 and 25000 < meta["ram"] < 32768
    code = """
import sys
from earshot import wakemodel
m = wakemodel.load(sys.argv[-1])
print(m.phrase, m.window, m.stride, m.cutoff('low'), m.cutoff(), m.cutoff('high'))
"""
    assert _mpy(INTERPRETERS[0], code, out).split() == ["Hey", "Jarvis", "5", "3", "247", "247", "250"]
    assert not list(tmp_path.glob("*.eww.*"))  # no temp file left beside it
    with pytest.raises(convert.ConvertError, match="cannot write"):
        convert.convert(*convert.source_of("hey_jarvis"), tmp_path / "no" / "such" / "dir.eww")


def test_source_of_names_and_paths(tmp_path):
    tfl, man = convert.source_of("okay_nabu")
    assert tfl.name == "okay_nabu.tflite" and man.name == "okay_nabu.json" and tfl.is_file()
    assert convert.source_of(str(man)) == (tfl, man)
    assert convert.source_of(str(tfl)) == (tfl, man)
    with pytest.raises(convert.ConvertError, match="unknown wake-word model 'hey_siri'"):
        convert.source_of("hey_siri")


def _patched(name, patch):
    # the model's bytes with scalar fields of its flatbuffer overwritten in place
    import tflite

    tfl, man = convert.source_of(name)
    data = bytearray(tfl.read_bytes())
    patch(tflite.Model.GetRootAsModel(data, 0), data)
    return bytes(data), man


def _set_field(table, slot, fmt, value, data):
    import struct

    off = table._tab.Offset(slot)
    assert off, "field not stored"
    struct.pack_into(fmt, data, table._tab.Pos + off, value)


def _refusal(tmp_path, data, man):
    path = tmp_path / "bad.tflite"
    path.write_bytes(data)
    with pytest.raises(convert.ConvertError) as e:
        convert.convert(path, man, tmp_path / "out.eww")
    assert "\n" not in str(e.value) and not (tmp_path / "out.eww").exists()
    return str(e.value)


def test_converter_refuses_an_unsupported_op(tmp_path):
    def tanh_for_logistic(m, data):
        for i in range(m.OperatorCodesLength()):
            oc = m.OperatorCodes(i)
            if oc.BuiltinCode() == 14:  # LOGISTIC -> TANH (28)
                _set_field(oc, 4, "<b", 28, data)
                _set_field(oc, 10, "<i", 28, data)

    msg = _refusal(tmp_path, *_patched("hey_jarvis", tanh_for_logistic))
    assert "op 43 (TANH): operator not supported by the board's runtime" in msg


def test_converter_refuses_a_wrong_input_shape(tmp_path):
    def forty_one(m, data):
        t = m.Subgraphs(0).Tensors(m.Subgraphs(0).Inputs(0))
        vec = t._tab.Vector(t._tab.Offset(4))  # shape
        data[vec + 8:vec + 12] = (41).to_bytes(4, "little")

    msg = _refusal(tmp_path, *_patched("hey_jarvis", forty_one))
    assert "input shape [1, 3, 41] is not [1, stride, 40]" in msg


def test_converter_refuses_a_float_model(tmp_path):
    def float_input(m, data):
        t = m.Subgraphs(0).Tensors(m.Subgraphs(0).Inputs(0))
        _set_field(t, 6, "<b", 0, data)  # type INT8 (9) -> FLOAT32 (0)

    msg = _refusal(tmp_path, *_patched("alexa", float_input))
    assert "input is FLOAT32, not INT8" in msg


def test_converter_refuses_a_damaged_file(tmp_path):
    tfl, man = convert.source_of("hey_jarvis")
    data = tfl.read_bytes()
    assert "not a readable TFLite model" in _refusal(tmp_path, data[:len(data) // 3], man)
    assert "not a readable TFLite model" in _refusal(tmp_path, b"\0" * 64, man)
    bad_manifest = tmp_path / "m.json"
    bad_manifest.write_text(json.dumps({"version": 1}))
    with pytest.raises(convert.ConvertError, match="not a microWakeWord v2 manifest"):
        convert.convert(tfl, bad_manifest, tmp_path / "out.eww")


# --- the board's loader -----------------------------------------------------------------------

LOAD = """
import sys
from earshot import wakemodel
for name in sys.argv[2:]:  # (MicroPython's unix port dies on an argument of 256+ bytes)
    try:
        wakemodel.load(sys.argv[1] + '/' + name)
        print('OK')
    except wakemodel.ModelError as e:
        print('ModelError', e)
"""


def test_loader_refuses_damaged_files(tmp_path):
    good = tmp_path / "good.eww"
    convert.convert(*convert.source_of("okay_nabu"), good)
    data = good.read_bytes()
    n = int.from_bytes(data[4:8], "little")
    cases = {
        "good": data,
        "empty": b"",
        "header": data[:6],
        "meta": data[:8 + n // 2],
        "program": data[:8 + n + 40],
        "blob": data[:-100],
        "flipped": data[:-300] + bytes([data[-300] ^ 1]) + data[-299:],
        "tail": data + b"\0",
        "old": b"EWW1" + data[4:],
        "version": data.replace(b'"format":%d' % convert.VERSION, b'"format":7', 1),
        "v1": b"EWN1" + data[4:],
        "json": data[:8] + b"[" + data[9:],
    }
    for k, v in cases.items():
        (tmp_path / k).write_bytes(v)
    lines = _mpy(INTERPRETERS[0], LOAD, tmp_path, *cases).splitlines()
    got = dict(zip(cases, lines))
    assert got.pop("good") == "OK"
    expect = {"empty": "not an earshot wake-word model", "header": "truncated",
              "meta": "truncated", "program": "truncated", "blob": "truncated", "flipped": "checksum mismatch",
              "tail": "data after the weights", "old": "model file version EWW1", "version": "model format 7", "v1": "model file version EWN1",
              "json": "JSON"}
    for k, want in expect.items():
        assert got[k].startswith("ModelError ") and want in got[k], (k, got[k])

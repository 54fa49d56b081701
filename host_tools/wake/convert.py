# microWakeWord v2 models (.tflite + .json manifest) -> the board's model file, which
# firmware/earshot/wakemodel.py loads and firmware/earshot/inference.py runs.
#
# The streaming graph is lowered to a small program of "rings" and "ops":
#   ring  the last N frames of one streaming tensor (C int8 channels, stored + 128 as
#         uint8, C padded to a multiple of 4): the model input (the features), and each
#         TFLite resource variable with the frame that is concatenated to it. A frame is
#         written once per invocation and never moved.
#   op    dense: out[o] = sum over the last K frames x all channels of a ring (CONV_2D
#         with a K-frame kernel, the 1x1 CONV_2D with K = 1, FULLY_CONNECTED over a
#         reshape of K frames); dw: out[c] = sum over the last K frames of channel c0 + c
#         (DEPTHWISE_CONV_2D, one op per SPLIT_V group). Each writes one frame of its
#         output ring, requantised as TFLite's reference kernels do. Convolutions are
#         stored in column order: the board skips inputs equal to their zero point (most
#         features), and a 1x1 over ops' outputs keeps its sums between invocations and
#         adds only the inputs that changed (DELTA: its input ring keeps the previous
#         frame). FULLY_CONNECTED runs last, in row order.
# FULLY_CONNECTED's multiplier is input scale x weight scale in float32, then divided in
# double (TFLite's GetQuantizedConvolutionMultipler); the convolutions' are in double.
# Everything the board should not compute is done here: per-channel (multiplier, shift)
# with TFLite's QuantizeMultiplier in double, zero points folded into the biases (but
# column order's, which the board subtracts from each input), whether an op's shifts
# all allow the board's fast requantiser (FAST), the
# LOGISTIC + QUANTIZE pair as one 256-entry table, the input quantisation of the
# frontend's uint16 features, the initial streaming state, weights stored + 128.
#
# FILE FORMAT (version 2), little-endian:
#   0   b"EWN2"
#   4   u32 n: length of the JSON metadata that follows at 8
#   8   n bytes of UTF-8 JSON, space-padded so that 8 + n is a multiple of 4
#   8+n the program: int32 words (all of them 0 <= w < 2**31), metadata["program"] long
#   ... the blob: weights, per-channel parameters, tables, metadata["blob"] bytes
# metadata["adler32"] is zlib.adler32 of program + blob. The program's words and the
# board's layout are documented in firmware/earshot/wakemodel.py (the reader).
import hashlib
import json
import math
import zlib
from pathlib import Path

import numpy as np

from host_tools.atomic import write_atomically
from host_tools.errors import CommandError

MAGIC = b"EWN2"
VERSION = 2
BUNDLED = ("hey_jarvis", "okay_nabu", "alexa", "hey_mycroft")
LICENCE_BUNDLED = "Apache-2.0; microWakeWord model by Kevin Ahrendt, shipped in pymicro-wakeword 2.5.0"
SENSITIVITIES = ("low", "default", "high")
FEATURE_STEP = 0.0390625  # pymicro-features: feature = uint16 frontend value x 10/256
FEATURES = 40

# program layout (word indices); wakemodel.py has the same constants
HEADER = 16
H_NOPS, H_NBUF, H_STRIDE, H_QMUL, H_QADD, H_QSHIFT, H_QCAP, H_TABLE, H_OUTBUF, H_MAXC, H_WORDS = range(11)
BUF_WORDS = 6  # base (byte offset in the rings), stride (bytes per frame), frames, last, last0, init
OP_WORDS = 12  # kind, src, frames, c0, weights, cout, params, dst, doff, zp, lo, hi
KIND_DENSE, KIND_DW, KIND_COLUMN = 0, 1, 2  # column: dense in column order, skipping zero-point inputs
ROUND_ONCE = 16  # kind flag: requantise with one rounding (FULLY_CONNECTED in BUILTIN_REF), not two
FAST = 32  # kind flag: every channel's right shift is >= FAST_MIN_SHIFT (the board's fast requantiser)
FAST_MIN_SHIFT = 5
DELTA = 64  # kind flag: a column op that keeps its sums in the ring state and adds the inputs that changed
ACC0_BYTE = 0x20  # the board's accumulators start at 0x20202020 (kept non-negative)
BIAS_OFFSET = 1 << 22  # params: u16 M >> 15, u16 M & 0x7FFF, ((bias + BIAS_OFFSET) << 8) | right shift
#                        (below 2**31: a ptr32 load reads it the same on every port)
ACC_LIMIT = 1 << 29  # |accumulator| below this: the board's 15-bit limbs stay in 32 bits
MAX_FRAMES_X_CHANNELS = 4096  # per op window: keeps every board sum below 2**28


class ConvertError(CommandError):
    """A model the converter or the board's runtime cannot take; one line saying why."""


# --- TFLite's integer arithmetic (reference kernels), for the host side ----------------

def quantize_multiplier(d):
    """TFLite's QuantizeMultiplier: d (double) -> (multiplier in [2**30, 2**31), shift)."""
    if d == 0.0:
        return 0, 0
    q, shift = math.frexp(d)
    fixed = math.floor(q * (1 << 31) + 0.5)  # std::round, half away from zero (q > 0)
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def multiply_by_quantized_multiplier(x, m, shift):
    """TFLite's MultiplyByQuantizedMultiplier: SaturatingRoundingDoublingHighMul, then
    RoundingDivideByPOT (int32 x, exact integers)."""
    x = x * (1 << shift) if shift > 0 else x
    right = -shift if shift < 0 else 0
    p = x * m
    nudge = (1 << 30) if p >= 0 else 1 - (1 << 30)
    high = _trunc_div(p + nudge, 1 << 31)
    mask = (1 << right) - 1
    rem = high & mask
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> right) + (1 if rem > threshold else 0)


def _trunc_div(a, b):
    q = abs(a) // b
    return q if a >= 0 else -q


def _f32(x):
    return float(np.float32(x))


def logistic_table(in_scale, in_zp, out_scale, out_zp, final_scale, final_zp):
    """uint8 output for each int8 input of LOGISTIC (TFLite's float32 LUT, as the int8
    kernel builds it) followed by QUANTIZE int8 -> uint8 (Requantize). Index: input + 128."""
    x = np.arange(-128, 128, dtype=np.int32)
    deq = np.float32(in_scale) * (x - np.int32(in_zp)).astype(np.float32)
    sig = np.float32(1.0) / (np.float32(1.0) + np.exp(-deq, dtype=np.float32))
    inv = np.float32(1.0) / np.float32(out_scale)
    scaled = (sig * inv).astype(np.float32)
    rounded = np.where(scaled >= 0, np.floor(scaled + np.float32(0.5)), -np.floor(-scaled + np.float32(0.5)))
    lq = np.clip(rounded.astype(np.int64) + out_zp, -128, 127)
    m, s = quantize_multiplier(float(np.float32(out_scale)) / float(np.float32(final_scale)))
    out = [min(255, max(0, multiply_by_quantized_multiplier(int(v) - out_zp, m, s) + final_zp)) for v in lq]
    return bytes(out)


def input_quantizer(scale, zp):
    """Integer constants (mul, add, shift, cap) with
        q + 128 = (min(u, cap) * mul + add) >> shift
    equal to the float formula clamp(round(u * FEATURE_STEP / scale) + zp, -128, 127) + 128
    for every uint16 u (checked here for all 65536)."""
    want = quantize_features(np.arange(65536), scale, zp).astype(np.int64) + 128
    top = np.nonzero(want >= 255)[0]
    cap = int(top[0]) if len(top) else 65535
    for shift in range(8, 21):
        mul = round((1 << shift) * FEATURE_STEP / float(scale))
        base = ((zp + 128) << shift) + (1 << (shift - 1))
        for add in sorted(range(base - 64, base + 65), key=lambda a: abs(a - base)):
            if add < 0 or cap * mul + add >= 1 << 30:
                continue
            got = (np.minimum(np.arange(65536), cap) * mul + add) >> shift
            if np.array_equal(got, want):
                return mul, add, shift, cap
    raise ConvertError(f"no integer form of the input quantisation (scale {scale}, zero point {zp})")


def quantize_features(u, scale, zp):
    """pymicro-wakeword's quantisation of the frontend's uint16 values u, but clamped:
    round(u * 0.0390625 / scale + zp) (float64, half to even) in -128..127."""
    f = np.asarray(u, dtype=np.float64) * FEATURE_STEP
    return np.clip(np.round(f / float(np.float32(scale)) + zp), -128, 127).astype(np.int8)


# --- reading the .tflite -----------------------------------------------------------------

def _op_names():
    from tflite.BuiltinOperator import BuiltinOperator
    return {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}


def _type_names():
    from tflite.TensorType import TensorType
    return {v: k for k, v in vars(TensorType).items() if not k.startswith("_")}


class _Graph:
    # The flatbuffer, with the few accessors the lowering needs.
    def __init__(self, data, where):
        import tflite

        self.where = where
        try:
            if len(data) < 8 or data[4:8] != b"TFL3":
                raise ValueError("no TFL3 identifier")
            self.model = tflite.Model.GetRootAsModel(data, 0)
            self.sub = self.model.Subgraphs(0)
            self.nops = self.sub.OperatorsLength()
            self.ops = [self._op(i) for i in range(self.nops)]
        except ConvertError:
            raise
        except Exception as e:  # a damaged flatbuffer raises anything (struct.error, IndexError ...)
            raise ConvertError(f"{where} is not a readable TFLite model ({type(e).__name__}: {e})")

    def _op(self, i, sub=None):
        sub = sub or self.sub
        op = sub.Operators(i)
        code = self.model.OperatorCodes(op.OpcodeIndex())
        name = _OPS.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        ins = [int(t) for t in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(t) for t in op.OutputsAsNumpy()] if op.OutputsLength() else []
        return name, ins, outs, op

    def tensor(self, t, sub=None):
        return (sub or self.sub).Tensors(t)

    def shape(self, t, sub=None):
        s = self.tensor(t, sub)
        return tuple(int(d) for d in s.ShapeAsNumpy()) if s.ShapeLength() else ()

    def dtype(self, t, sub=None):
        return _TYPES.get(self.tensor(t, sub).Type(), "?")

    def data(self, t, dtype, sub=None):
        buf = self.model.Buffers(self.tensor(t, sub).Buffer())
        if buf is None or buf.DataLength() == 0:
            return None
        raw = buf.DataAsNumpy().tobytes()
        shape = self.shape(t, sub)
        arr = np.frombuffer(raw, dtype=dtype)
        if arr.size != int(np.prod(shape)):
            raise ConvertError(f"{self.where}: tensor {t} holds {arr.size} values for shape {list(shape)}")
        return arr.reshape(shape)

    def quant(self, t, sub=None):
        q = self.tensor(t, sub).Quantization()
        if q is None or q.ScaleLength() == 0:
            return None, None
        scales = [float(np.float32(s)) for s in q.ScaleAsNumpy()]
        zps = [int(z) for z in q.ZeroPointAsNumpy()] if q.ZeroPointLength() else [0] * len(scales)
        return scales, zps

    def options(self, op, cls):
        tab = op.BuiltinOptions()
        o = cls()
        o.Init(tab.Bytes, tab.Pos)
        return o


_OPS = {}
_TYPES = {}


# --- lowering ------------------------------------------------------------------------------

class _Ring:
    def __init__(self, index, channels, frames, q):
        self.index, self.channels, self.frames, self.q = index, channels, frames, q
        self.stride = (channels + 3) // 4 * 4
        self.init = None  # int8 [frames, channels] or None (all zero point)
        self.fill = None  # or every byte this value (a block of DELTA sums: ACC0_BYTE)
        self.last0 = frames - 1  # slot of the newest initial frame


class _Op:
    def __init__(self, kind, src, frames, c0, n, weights, bias, mults, q_in, q_out, act, name):
        self.kind, self.src, self.frames, self.c0, self.n = kind, src, frames, c0, n
        self.round_once = False
        self.weights, self.bias, self.mults = weights, bias, mults
        self.q_in, self.q_out, self.act, self.name = q_in, q_out, act, name
        self.dst = None
        self.doff = 0
        self.sums = None  # DELTA: the ring of its kept sums
        self.cout = len(bias)


class _New:
    # T frames of C channels made this invocation (the input, or ops' outputs), not yet
    # given a place: producers = [(op or "input", channel offset)]
    def __init__(self, frames, channels, q, producers):
        self.frames, self.channels, self.q, self.producers = frames, channels, q, producers
        self.ring = None


class _View:
    # the last `frames` frames of a ring, channels c0 .. c0 + n
    def __init__(self, ring, frames, c0, n):
        self.ring, self.frames, self.c0, self.n = ring, frames, c0, n


class _Lowering:
    def __init__(self, g):
        self.g = g
        self.rings = []
        self.ops = []
        self.vals = {}  # tensor -> value
        self.vars = {}  # resource tensor -> variable name
        self.state = {}  # variable name -> (ring, frames) once concatenated
        self.assigned = set()
        self.read = {}  # variable name -> (shape, q) of READ_VARIABLE
        self.stride = None
        self.table = None
        self.output = None

    def fail(self, i, msg):
        name = self.g.ops[i][0] if i is not None else ""
        where = f"op {i} ({name})" if i is not None else "the model"
        raise ConvertError(f"{self.g.where}: {where}: {msg}")

    def run(self):
        g = self.g
        sub = g.sub
        if sub.InputsLength() != 1 or sub.OutputsLength() != 1:
            self.fail(None, f"needs 1 input and 1 output, has {sub.InputsLength()} and {sub.OutputsLength()}")
        t_in = int(sub.InputsAsNumpy()[0])
        shape = g.shape(t_in)
        if len(shape) != 3 or shape[0] != 1 or shape[2] != FEATURES or not 1 <= shape[1] <= 8:
            self.fail(None, f"input shape {list(shape)} is not [1, stride, {FEATURES}] (stride 1..8)")
        if g.dtype(t_in) != "INT8":
            self.fail(None, f"input is {g.dtype(t_in)}, not INT8 (only int8-quantised models run on the board)")
        scales, zps = g.quant(t_in)
        if not scales or len(scales) != 1:
            self.fail(None, "input has no per-tensor quantisation")
        self.stride = shape[1]
        self.in_q = (scales[0], zps[0])
        self.vals[t_in] = ("input", shape)
        for i, (name, ins, outs, op) in enumerate(g.ops):
            handler = getattr(self, "op_" + name, None)
            if handler is None:
                self.fail(i, "operator not supported by the board's runtime (it runs CALL_ONCE, VAR_HANDLE, "
                          "READ_VARIABLE, ASSIGN_VARIABLE, CONCATENATION, STRIDED_SLICE, RESHAPE, CONV_2D, "
                          "DEPTHWISE_CONV_2D, SPLIT_V, FULLY_CONNECTED, LOGISTIC, QUANTIZE)")
            handler(i, ins, outs, op)
        t_out = int(sub.OutputsAsNumpy()[0])
        if self.output is None or self.vals.get(t_out) != ("prob",):
            self.fail(None, "the output is not FULLY_CONNECTED -> LOGISTIC -> QUANTIZE to uint8 [1, 1]")
        missing = set(self.state) - self.assigned
        if missing:
            self.fail(None, f"streaming state {sorted(missing)[0]} is read but never assigned")
        if self.rings[0].frames < self.stride:
            self.fail(None, "the input is not kept in a ring of at least the stride")
        self._initial_values()
        return self

    # -- values
    def val(self, i, t, kinds):
        v = self.vals.get(t)
        if v is None:
            self.fail(i, f"input tensor {t} is a constant or unknown value the runtime cannot stream")
        if not isinstance(v, kinds):
            self.fail(i, f"input tensor {t} ({type(v).__name__.strip('_')}) is not supported here")
        return v

    def act_q(self, i, t):
        if self.g.dtype(t) != "INT8":
            self.fail(i, f"tensor {t} is {self.g.dtype(t)}, not INT8")
        scales, zps = self.g.quant(t)
        if not scales or len(scales) != 1:
            self.fail(i, f"tensor {t} has no per-tensor quantisation")
        return scales[0], zps[0]

    def same_q(self, i, a, b):
        if a != b:
            self.fail(i, f"requantisation inside a data move is not supported (scale/zero point {a} -> {b})")

    def place(self, i, v):
        # a ring for v: _View as is; _New not yet placed gets a ring of its own frames
        if isinstance(v, _View):
            return v
        if v.ring is None:
            self.bind(i, v, self.new_ring(v.channels, v.frames, v.q))
        return _View(v.ring, v.frames, 0, v.channels)

    def new_ring(self, channels, frames, q):
        r = _Ring(len(self.rings), channels, frames, q)
        self.rings.append(r)
        if len(self.rings) > 32:
            self.fail(None, "more than 32 streaming tensors")
        return r

    def bind(self, i, new, ring):
        if new.ring is not None:
            self.fail(i, "a streaming tensor is used in two places (it would need two rings)")
        new.ring = ring
        for who, off in new.producers:
            if who == "input":
                if ring.index != 0:
                    self.fail(i, "the input must be the first streaming tensor")
            else:
                who.dst, who.doff = ring, off

    # -- ops
    def op_CALL_ONCE(self, i, ins, outs, op):
        from tflite.CallOnceOptions import CallOnceOptions

        self.init_sub = self.g.options(op, CallOnceOptions).InitSubgraphIndex()

    def op_VAR_HANDLE(self, i, ins, outs, op):
        from tflite.VarHandleOptions import VarHandleOptions

        o = self.g.options(op, VarHandleOptions)
        self.vars[outs[0]] = (o.Container() or b"").decode() + "/" + (o.SharedName() or b"").decode()

    def var(self, i, t):
        if t not in self.vars:
            self.fail(i, f"tensor {t} is not a variable handle")
        return self.vars[t]

    def op_READ_VARIABLE(self, i, ins, outs, op):
        name = self.var(i, ins[0])
        shape = self.g.shape(outs[0])
        if len(shape) != 4 or shape[0] != 1 or shape[2] != 1:
            self.fail(i, f"state shape {list(shape)} is not [1, frames, 1, channels]")
        if name in self.read:
            self.fail(i, f"state {name} is read twice")
        self.read[name] = (shape, self.act_q(i, outs[0]))
        self.vals[outs[0]] = ("state", name)

    def op_ASSIGN_VARIABLE(self, i, ins, outs, op):
        name = self.var(i, ins[0])
        v = self.vals.get(ins[1])
        if name not in self.state:
            self.fail(i, f"state {name} is assigned but not concatenated with a new frame first")
        ring, frames = self.state[name]
        if not (isinstance(v, _View) and v.ring is ring and v.frames == frames and v.c0 == 0
                and v.n == ring.channels) or name in self.assigned:
            self.fail(i, f"state {name} is not assigned the last {frames} frames of its own concatenation")
        self.assigned.add(name)

    def op_RESHAPE(self, i, ins, outs, op):
        v = self.vals.get(ins[0])
        shape_in, shape_out = self.g.shape(ins[0]), self.g.shape(outs[0])
        if isinstance(v, tuple) and v[0] == "input":
            if shape_out != (1, self.stride, 1, FEATURES):
                self.fail(i, f"input reshaped to {list(shape_out)}, not [1, {self.stride}, 1, {FEATURES}]")
            self.vals[outs[0]] = _New(self.stride, FEATURES, self.in_q, [("input", 0)])
            return
        v = self.val(i, ins[0], (_View, _New))
        self.same_q(i, v.q if isinstance(v, _New) else v.ring.q, self.act_q(i, outs[0]))
        if isinstance(v, _New) and v.frames == 1 and shape_out == shape_in:
            self.vals[outs[0]] = v
            return
        view = self.place(i, v)
        if len(shape_out) != 2 or shape_out != (1, view.frames * view.n) or view.c0 or view.n != view.ring.channels:
            self.fail(i, f"reshape {list(shape_in)} -> {list(shape_out)} is not a flattening of whole frames")
        self.vals[outs[0]] = ("flat", view)

    def op_CONCATENATION(self, i, ins, outs, op):
        from tflite.ConcatenationOptions import ConcatenationOptions

        o = self.g.options(op, ConcatenationOptions)
        if o.FusedActivationFunction() != 0:
            self.fail(i, "fused activation on a concatenation")
        shape = self.g.shape(outs[0])
        axis = o.Axis() % 4 if len(shape) == 4 else -1
        q = self.act_q(i, outs[0])
        if axis == 1 and len(ins) == 2 and isinstance(self.vals.get(ins[0]), tuple) \
                and self.vals[ins[0]][0] == "state":
            name = self.vals[ins[0]][1]
            new = self.val(i, ins[1], _New)
            (s_shape, s_q) = self.read[name]
            self.same_q(i, s_q, q)
            self.same_q(i, new.q, q)
            if s_shape[3] != new.channels or name in self.state:
                self.fail(i, f"state {name} of {s_shape[3]} channels cannot take frames of {new.channels}")
            if new.producers[0][0] == "input" and self.rings:
                self.fail(i, "the input must be the first streaming tensor")
            if new.producers[0][0] != "input" and not self.rings:
                self.fail(i, "the first streaming state must hold the input")
            ring = self.new_ring(new.channels, s_shape[1] + new.frames, q)
            ring.var = name
            ring.last0 = s_shape[1] - 1
            self.bind(i, new, ring)
            self.state[name] = (ring, s_shape[1])
            self.vals[outs[0]] = _View(ring, ring.frames, 0, ring.channels)
            return
        if axis == 3:
            parts = [self.val(i, t, _New) for t in ins]
            producers, off = [], 0
            for p in parts:
                self.same_q(i, p.q, q)
                if p.frames != 1 or p.ring is not None or off % 4:
                    self.fail(i, "channel concatenation of anything but fresh frames at multiples of 4 channels")
                producers += [(who, off + o2) for who, o2 in p.producers]
                off += p.channels
            self.vals[outs[0]] = _New(1, off, q, producers)
            return
        self.fail(i, f"concatenation on axis {o.Axis()} of {len(ins)} tensors is not a streaming pattern")

    def op_STRIDED_SLICE(self, i, ins, outs, op):
        from tflite.StridedSliceOptions import StridedSliceOptions

        o = self.g.options(op, StridedSliceOptions)
        v = self.val(i, ins[0], _View)
        self.same_q(i, v.ring.q, self.act_q(i, outs[0]))
        begin, end, strides = (self.g.data(t, "<i4") for t in ins[1:4])
        shape_in, shape_out = self.g.shape(ins[0]), self.g.shape(outs[0])
        if begin is None or end is None or strides is None or len(shape_in) != 4:
            self.fail(i, "strided slice with computed bounds")
        if (o.EllipsisMask() or o.NewAxisMask() or o.ShrinkAxisMask() or list(strides) != [1, 1, 1, 1]
                or (hasattr(o, "Offset") and o.Offset())):
            self.fail(i, "strided slice with masks or strides the runtime does not support")
        if shape_out[0] != 1 or shape_out[2] != 1 or shape_out[3] != shape_in[3]:
            self.fail(i, f"slice {list(shape_in)} -> {list(shape_out)} is not a slice in time")
        frames, dim = shape_out[1], shape_in[1]
        start = 0 if o.BeginMask() & 2 else int(begin[1]) % dim if -dim <= int(begin[1]) < dim else -1
        to_end = bool(o.EndMask() & 2) or int(end[1]) >= dim
        if not to_end or start != dim - frames or frames > v.frames:
            self.fail(i, f"slice in time [{int(begin[1])}:{int(end[1])}] is not the last {frames} frames")
        self.vals[outs[0]] = _View(v.ring, frames, v.c0, v.n)

    def op_SPLIT_V(self, i, ins, outs, op):
        v = self.val(i, ins[0], _View)
        sizes = self.g.data(ins[1], "<i4")
        axis = self.g.data(ins[2], "<i4")
        if sizes is None or axis is None or int(axis.reshape(-1)[0]) % 4 != 3:
            self.fail(i, "split other than a constant split of the channels")
        c0 = v.c0
        for t in outs:
            shape = self.g.shape(t)
            self.same_q(i, v.ring.q, self.act_q(i, t))
            self.vals[t] = _View(v.ring, v.frames, c0, shape[3])
            c0 += shape[3]
        if c0 != v.c0 + v.n:
            self.fail(i, "split sizes do not add up to the channels")

    def weights_q(self, i, t, cout, per_channel):
        if self.g.dtype(t) != "INT8":
            self.fail(i, f"weights are {self.g.dtype(t)}, not INT8")
        scales, zps = self.g.quant(t)
        w = self.g.data(t, np.int8)
        if w is None or not scales:
            self.fail(i, "weights are not constant int8 with scales")
        if any(zps):
            self.fail(i, "weights with a non-zero zero point")
        if per_channel and len(scales) != cout:
            self.fail(i, f"weights need {cout} per-channel scales, have {len(scales)}")
        if not per_channel and len(scales) != 1:
            self.fail(i, "fully connected weights must have one scale")
        return w, scales

    def bias_of(self, i, t, cout):
        if t < 0:
            return np.zeros(cout, dtype=np.int64)
        if self.g.dtype(t) != "INT32":
            self.fail(i, f"bias is {self.g.dtype(t)}, not INT32")
        b = self.g.data(t, "<i4")
        if b is None or b.shape != (cout,):
            self.fail(i, "bias is not a constant int32 per output channel")
        return b.astype(np.int64)

    def activation(self, i, code):
        if code not in (0, 1):
            self.fail(i, "fused activation other than NONE or RELU")
        return code

    def conv_checks(self, i, o, kh, depthwise=False):
        if o.Padding() != 1 and kh != 1:  # SAME pads nothing for a 1x1 kernel
            self.fail(i, "padding SAME (the runtime streams VALID convolutions)")
        if o.StrideW() != 1 or o.DilationHFactor() != 1 or o.DilationWFactor() != 1:
            self.fail(i, "dilated or width-strided convolution")
        if depthwise and o.DepthMultiplier() != 1:
            self.fail(i, "depth multiplier other than 1")

    def op_CONV_2D(self, i, ins, outs, op):
        from tflite.Conv2DOptions import Conv2DOptions

        o = self.g.options(op, Conv2DOptions)
        view = self.place(i, self.val(i, ins[0], (_View, _New)))
        wshape = self.g.shape(ins[1])
        cout = wshape[0] if len(wshape) == 4 else 0
        if len(wshape) != 4 or wshape[1] != view.frames or wshape[2] != 1 or wshape[3] != view.n:
            self.fail(i, f"kernel {list(wshape)} over {view.frames} frames x {view.n} channels: "
                         "the runtime needs one output frame (kernel height = frames, width 1)")
        if self.g.shape(outs[0]) != (1, 1, 1, cout):
            self.fail(i, f"output shape {list(self.g.shape(outs[0]))} is not one frame")
        if view.c0 or view.n != view.ring.channels:
            self.fail(i, "a convolution over part of the channels")
        self.conv_checks(i, o, wshape[1])
        w, wsc = self.weights_q(i, ins[1], cout, True)
        q_in, q_out = view.ring.q, self.act_q(i, outs[0])
        mults = [quantize_multiplier(q_in[0] * s / q_out[0]) for s in wsc]
        self.add_op(i, KIND_DENSE, view, w.reshape(cout, view.frames, view.n).astype(np.int64),
                    self.bias_of(i, ins[2] if len(ins) > 2 else -1, cout), mults, q_in, q_out,
                    self.activation(i, o.FusedActivationFunction()), outs[0])

    def op_DEPTHWISE_CONV_2D(self, i, ins, outs, op):
        from tflite.DepthwiseConv2DOptions import DepthwiseConv2DOptions

        o = self.g.options(op, DepthwiseConv2DOptions)
        view = self.place(i, self.val(i, ins[0], (_View, _New)))
        wshape = self.g.shape(ins[1])
        n = view.n
        if len(wshape) != 4 or wshape[0] != 1 or wshape[1] != view.frames or wshape[2] != 1 or wshape[3] != n:
            self.fail(i, f"kernel {list(wshape)} over {view.frames} frames x {n} channels: "
                         "the runtime needs one output frame (kernel height = frames, width 1)")
        if self.g.shape(outs[0]) != (1, 1, 1, n):
            self.fail(i, f"output shape {list(self.g.shape(outs[0]))} is not one frame")
        self.conv_checks(i, o, wshape[1], depthwise=True)
        w, wsc = self.weights_q(i, ins[1], n, True)
        q_in, q_out = view.ring.q, self.act_q(i, outs[0])
        mults = [quantize_multiplier(q_in[0] * s / q_out[0]) for s in wsc]
        self.add_op(i, KIND_DW, view, w.reshape(view.frames, n).astype(np.int64),
                    self.bias_of(i, ins[2] if len(ins) > 2 else -1, n), mults, q_in, q_out,
                    self.activation(i, o.FusedActivationFunction()), outs[0])

    def op_FULLY_CONNECTED(self, i, ins, outs, op):
        from tflite.FullyConnectedOptions import FullyConnectedOptions

        o = self.g.options(op, FullyConnectedOptions)
        v = self.vals.get(ins[0])
        if isinstance(v, tuple) and v[0] == "flat":
            view = v[1]
        else:
            view = self.place(i, self.val(i, ins[0], (_View, _New)))
            if view.c0 or view.n != view.ring.channels:
                self.fail(i, "fully connected over part of the channels")
        wshape = self.g.shape(ins[1])
        if len(wshape) != 2 or wshape[1] != view.frames * view.n:
            self.fail(i, f"weights {list(wshape)} do not match an input of {view.frames * view.n}")
        cout = wshape[0]
        if o.WeightsFormat() != 0 or o.KeepNumDims() or o.AsymmetricQuantizeInputs():
            self.fail(i, "fully connected options (weights format, keep dims, hybrid) not supported")
        if self.g.shape(outs[0]) != (1, cout):
            self.fail(i, f"output shape {list(self.g.shape(outs[0]))} is not [1, {cout}]")
        w, wsc = self.weights_q(i, ins[1], cout, False)
        q_in, q_out = view.ring.q, self.act_q(i, outs[0])
        # GetQuantizedConvolutionMultipler: input scale x filter scale in float, then / in double
        m = quantize_multiplier(_f32(q_in[0] * wsc[0]) / q_out[0])
        self.add_op(i, KIND_DENSE, view, w.reshape(cout, view.frames, view.n).astype(np.int64),
                    self.bias_of(i, ins[2] if len(ins) > 2 else -1, cout), [m] * cout, q_in, q_out,
                    self.activation(i, o.FusedActivationFunction()), outs[0])
        self.fc = self.ops[-1]
        self.fc.round_once = True  # BUILTIN_REF's int8 FULLY_CONNECTED rounds once (measured), CONV twice

    def add_op(self, i, kind, view, w, bias, mults, q_in, q_out, act, t_out):
        name = self.g.ops[i][0]
        if getattr(self, "fc", None) is not None:
            self.fail(i, "an op after the fully connected layer (the board runs it last)")
        op = _Op(kind, view.ring, view.frames, view.c0, view.n, w, bias, mults, q_in, q_out, act, f"{i} {name}")
        if kind == KIND_DW and view.n % 4 and view.c0 + view.n != view.ring.channels:
            self.fail(i, f"a depthwise group of {view.n} channels inside the frame (the runtime needs multiples of 4)")
        if view.frames * view.ring.stride > MAX_FRAMES_X_CHANNELS:
            self.fail(i, f"a window of {view.frames} frames x {view.ring.channels} channels is too large")
        self.ops.append(op)
        self.vals[t_out] = _New(1, op.cout, q_out, [(op, 0)])

    def op_LOGISTIC(self, i, ins, outs, op):
        v = self.val(i, ins[0], _New)
        if not self.ops or v.producers != [(self.ops[-1], 0)] or self.ops[-1].cout != 1 \
                or getattr(self, "fc", None) is not self.ops[-1]:
            self.fail(i, "logistic of anything but the final fully connected layer's single output")
        self.bind(i, v, self.new_ring(1, 1, v.q))
        self.logit = (v.q, self.act_q(i, outs[0]))
        self.vals[outs[0]] = ("logistic",)

    def op_QUANTIZE(self, i, ins, outs, op):
        if self.vals.get(ins[0]) != ("logistic",):
            self.fail(i, "quantize of anything but the final logistic")
        if self.g.dtype(outs[0]) != "UINT8":
            self.fail(i, f"final quantize to {self.g.dtype(outs[0])}, not UINT8")
        scales, zps = self.g.quant(outs[0])
        (in_s, in_zp), (out_s, out_zp) = self.logit
        self.table = logistic_table(in_s, in_zp, out_s, out_zp, scales[0], zps[0])
        self.output = self.rings[-1]
        self.vals[outs[0]] = ("prob",)

    # -- initial state (the CALL_ONCE subgraph's assignments)
    def _initial_values(self):
        g = self.g
        idx = getattr(self, "init_sub", None)
        if idx is None:
            return  # no initialiser: variables start at zero, i.e. zero point (TFLite zero-fills)
        if not 0 < idx < g.model.SubgraphsLength():
            self.fail(None, f"CALL_ONCE names subgraph {idx}, which does not exist")
        sub = g.model.Subgraphs(idx)
        handles = {}
        for k in range(sub.OperatorsLength()):
            name, ins, outs, op = g._op(k, sub)
            if name == "VAR_HANDLE":
                from tflite.VarHandleOptions import VarHandleOptions

                o = g.options(op, VarHandleOptions)
                handles[outs[0]] = (o.Container() or b"").decode() + "/" + (o.SharedName() or b"").decode()
            elif name == "ASSIGN_VARIABLE":
                var = handles.get(ins[0])
                if var not in self.state:
                    continue
                ring, frames = self.state[var]
                val = g.data(ins[1], np.int8, sub)
                if val is None or val.shape != (1, frames, 1, ring.channels):
                    self.fail(None, f"initial value of state {var} is not a constant of its shape")
                if g.quant(ins[1], sub)[1] != [ring.q[1]] or g.quant(ins[1], sub)[0] != [ring.q[0]]:
                    self.fail(None, f"initial value of state {var} is quantised differently")
                init = np.full((ring.frames, ring.channels), ring.q[1], dtype=np.int8)
                init[:frames] = val.reshape(frames, ring.channels)
                ring.init = init
            else:
                self.fail(None, f"the initialiser subgraph has a {name} op")


def _lower(data, where):
    if not _OPS:
        _OPS.update(_op_names())
        _TYPES.update(_type_names())
    return _Lowering(_Graph(data, where)).run()


# --- the board's program and blob ----------------------------------------------------------

def _pack(low):
    """-> (program int32 words, blob bytes, facts) for a lowered model."""
    blob = bytearray()

    def put(b):
        while len(blob) % 4:
            blob.append(0)
        at = len(blob)
        blob.extend(b)
        return at

    _plan_delta(low)
    ring_base, size = [], 0
    for r in low.rings:
        ring_base.append(size)
        size += r.frames * r.stride
    rings_bytes = (size + 3) // 4 * 4
    words = [0] * HEADER
    bufs = []
    for r, base in zip(low.rings, ring_base):
        if r.fill is not None:
            init = r.fill
        elif r.init is None or np.all(r.init == r.q[1]):
            init = (r.q[1] + 128) & 255
        else:
            padded = np.full((r.frames, r.stride), r.q[1], dtype=np.int64)
            padded[:, :r.channels] = r.init
            init = 256 + put(((padded + 128) & 255).astype(np.uint8).tobytes())
        bufs += [base, r.stride, r.frames, r.last0, r.last0, init]
    op_words = []
    max_c = 4
    for op in low.ops:
        # every op but FULLY_CONNECTED's runs in column order or depthwise: outputs padded to 4
        kind = KIND_COLUMN if op.kind == KIND_DENSE and not op.round_once else op.kind
        pad_out = op.cout if kind == KIND_DENSE else (op.cout + 3) // 4 * 4
        if op.kind == KIND_DENSE:
            w = np.zeros((op.cout, op.frames, op.src.stride), dtype=np.int64)
            w[:, :, :op.n] = op.weights
            wsum = op.weights.reshape(op.cout, -1).sum(axis=1)
            wabs = np.abs(op.weights).reshape(op.cout, -1).sum(axis=1)
            if kind == KIND_COLUMN:  # [window byte][output]; the board reads on into the
                w = w.reshape(op.cout, -1).T  # next bytes for the padding channels
        else:
            w = np.zeros((op.frames, pad_out), dtype=np.int64)
            w[:, :op.n] = op.weights
            wsum = op.weights.sum(axis=0)
            wabs = np.abs(op.weights).sum(axis=0)
        if op.doff + pad_out > op.dst.stride:
            raise ConvertError(f"op {op.name}: padded output does not fit its frame")
        w_at = put(((w + 128) & 255).astype(np.uint8).tobytes())
        lo = op.q_out[1] if op.act == 1 else -128
        lo, hi = max(lo, -128), 127
        # a column op subtracts the input zero point itself (and skips inputs equal to it);
        # the others fold it into the bias
        zp_fold = 0 if kind == KIND_COLUMN else 128 + op.q_in[1]
        fast = all(-shift >= FAST_MIN_SHIFT for _, shift in op.mults)
        params = []
        for c in range(pad_out):
            if c >= op.cout:  # padding: M = 2**30, s = 29, bias 0: output = zero point for any sum
                params += [1 << 15, (BIAS_OFFSET << 8) | (29 - (FAST_MIN_SHIFT if fast else 0))]
                continue
            m, shift = op.mults[c]
            b = int(op.bias[c] - zp_fold * wsum[c])
            bound = abs(int(op.bias[c])) + 255 * int(wabs[c])
            if not -29 <= shift <= -1 or m < 1 << 30:
                raise ConvertError(f"op {op.name}: channel {c} has an effective scale of about 2**{shift} "
                                   "(the runtime takes 2**-30 .. 0.5)")
            if bound >= ACC_LIMIT or not -BIAS_OFFSET <= b < BIAS_OFFSET:
                raise ConvertError(f"op {op.name}: channel {c} is out of the runtime's integer range "
                                   f"(accumulator bound {bound}, folded bias {b})")
            params += [(m >> 15) | (m & 0x7FFF) << 16, ((b + BIAS_OFFSET) << 8) | (-shift - (FAST_MIN_SHIFT if fast else 0))]
        p_at = put(np.array(params, dtype="<u4").tobytes())
        flags = (ROUND_ONCE if op.round_once else 0) | (FAST if fast else 0) | (DELTA if op.sums else 0)
        c0 = ring_base[op.sums.index] if op.sums else op.q_in[1] + 128 if kind == KIND_COLUMN else op.c0
        op_words += [kind | flags, HEADER + BUF_WORDS * op.src.index, op.frames, c0, w_at, op.cout, p_at,
                     HEADER + BUF_WORDS * op.dst.index, op.doff, op.q_out[1] + 128, lo + 128, hi + 128]
        max_c = max(max_c, pad_out)
    table_at = put(low.table)
    mul, add, shift, cap = input_quantizer(*low.in_q)
    words[H_NOPS], words[H_NBUF], words[H_STRIDE] = len(low.ops), len(low.rings), low.stride
    words[H_QMUL], words[H_QADD], words[H_QSHIFT], words[H_QCAP] = mul, add, shift, cap
    words[H_TABLE], words[H_OUTBUF], words[H_MAXC] = table_at, HEADER + BUF_WORDS * low.output.index, max_c
    words += bufs + op_words
    words.append(rings_bytes)  # the last word: bytes of ring state
    words[H_WORDS] = len(words)
    while len(blob) % 4:
        blob.append(0)
    macs = sum(op.cout * op.frames * (op.n if op.kind == KIND_DENSE else 1) for op in low.ops)
    facts = {"rings_bytes": rings_bytes, "macs": macs, "weights": int(sum(op.weights.size for op in low.ops)),
             "ops": len(low.ops), "rings": len(low.rings), "max_channels": max_c}
    return words, bytes(blob), facts


def _plan_delta(low):
    # A column convolution over the newest frame of a ring that only its producer writes
    # keeps its sums from one invocation to the next and adds only the inputs that changed
    # (DELTA): the ring keeps one frame more (the previous one), and a block of words in the
    # ring state holds the sum of the inputs and the sums (all ACC0 while every input is its
    # zero point, as after a reset)
    for op in low.ops:
        src = op.src
        if (op.kind == KIND_DENSE and not op.round_once and op.frames == 1 and src.frames == 1 and src.index
                and src.init is None and not hasattr(src, "var") and len(low.rings) < 32):
            src.frames, src.last0 = 2, 1
            op.sums = _Ring(len(low.rings), 4 * ((op.cout + 3) // 4 * 4 + 1), 1, None)
            op.sums.fill = ACC0_BYTE
            low.rings.append(op.sums)


def _ram(words, blob, facts):
    # bytes the board holds for this model: blob + program (+ the accumulators and the
    # exact requantiser's list) + ring state (with DELTA's sums), plus about 700 for the
    # Model and Net objects, the buffers' headers and the heap's 16-byte blocks (measured
    # with gc.mem_alloc)
    maxc = facts["max_channels"]
    return len(blob) + 4 * (len(words) + maxc + (maxc + 1) // 2) + facts["rings_bytes"] + 700


# --- sources, metadata, the file ------------------------------------------------------------

def _models_dir():
    import pymicro_wakeword

    return Path(pymicro_wakeword.__file__).resolve().parent / "models"


def source_of(name_or_path):
    """(tflite_path, manifest_path) for a bundled model's name or a path to a v2 model's
    .tflite or .json (the other one is found beside it: the manifest's "model" entry, or
    the same stem)."""
    s = str(name_or_path)
    if s in BUNDLED:
        d = _models_dir()
        return d / f"{s}.tflite", d / f"{s}.json"
    p = Path(s)
    if p.suffix == ".json":
        if not p.is_file():
            raise ConvertError(f"no such manifest: {p}")
        try:
            model = json.loads(p.read_text()).get("model") or p.with_suffix(".tflite").name
        except (ValueError, OSError, AttributeError) as e:
            raise ConvertError(f"{p} is not a microWakeWord manifest ({e})")
        return p.parent / model, p
    if p.suffix == ".tflite":
        if not p.is_file():
            raise ConvertError(f"no such model: {p}")
        return p, p.with_suffix(".json")
    raise ConvertError(f"unknown wake-word model {s!r}: give one of {', '.join(BUNDLED)} "
                       "or a path to a microWakeWord v2 .tflite or .json")


def _manifest(path):
    try:
        m = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConvertError(f"no manifest {path} beside the model (a microWakeWord v2 model has a .json)")
    except (ValueError, OSError) as e:
        raise ConvertError(f"{path} is not valid JSON ({e})")
    micro = m.get("micro") if isinstance(m, dict) else None
    if not isinstance(micro, dict) or m.get("version") != 2:
        raise ConvertError(f"{path} is not a microWakeWord v2 manifest (version 2 with a 'micro' section)")
    cutoff = micro.get("probability_cutoff")
    window = micro.get("sliding_window_size")
    step = micro.get("feature_step_size", 10)
    if not isinstance(cutoff, (int, float)) or not 0 < cutoff <= 1:
        raise ConvertError(f"{path}: probability_cutoff must be in (0, 1], not {cutoff!r}")
    if not isinstance(window, int) or not 1 <= window <= 100:
        raise ConvertError(f"{path}: sliding_window_size must be an integer 1..100, not {window!r}")
    if step != 10:
        raise ConvertError(f"{path}: feature_step_size {step} ms; the board's frontend steps 10 ms")
    return m


def _sensitivities(cutoff, given):
    # {"low", "default", "high"} -> {"cutoff", "fa_per_hour", "frr", "frr_natural", "status"};
    # a missing one is the model's own cutoff, "unmeasured"
    given = given or {}
    unknown = set(given) - set(SENSITIVITIES)
    if unknown:
        raise ConvertError(f"unknown sensitivity {sorted(unknown)[0]!r}; use {', '.join(SENSITIVITIES)}")
    out = {}
    for name in SENSITIVITIES:
        s = given.get(name)
        if s is None:
            out[name] = {"cutoff": cutoff, "fa_per_hour": None, "frr": None, "frr_natural": None,
                         "status": "unmeasured"}
            continue
        c = s.get("cutoff") if isinstance(s, dict) else None
        if not isinstance(c, int) or not 0 <= c <= 255:
            raise ConvertError(f"sensitivity {name} needs an integer cutoff 0..255, not {c!r}")
        measured = s.get("fa_per_hour") is not None or s.get("frr") is not None
        out[name] = {"cutoff": c, "fa_per_hour": s.get("fa_per_hour"), "frr": s.get("frr"),
                     "frr_natural": s.get("frr_natural"), "status": "measured" if measured else "unmeasured"}
    return out


def build(tflite_path, manifest_path, sensitivities=None):
    """The model file's bytes and its metadata (dict)."""
    tflite_path = Path(tflite_path)
    try:
        data = tflite_path.read_bytes()
    except OSError as e:
        raise ConvertError(f"cannot read {tflite_path} ({e.strerror or e})")
    man = _manifest(manifest_path)
    low = _lower(data, tflite_path.name)
    words, blob, facts = _pack(low)
    cutoff = int(man["micro"]["probability_cutoff"] * 255)  # as ESPHome: uint8 cutoff
    bundled = tflite_path.resolve().parent == _models_dir() and tflite_path.stem in BUNDLED
    meta = {
        "format": VERSION,
        "phrase": str(man.get("wake_word", tflite_path.stem)),
        "cutoff": cutoff,
        "window": man["micro"]["sliding_window_size"],
        "stride": low.stride,
        "sensitivities": _sensitivities(cutoff, sensitivities),
        "source": {"file": tflite_path.name, "sha256": hashlib.sha256(data).hexdigest(),
                   "author": man.get("author"), "website": man.get("website")},
        "licence": LICENCE_BUNDLED if bundled else man.get("licence") or man.get("license") or "unknown",
        "program": len(words),
        "blob": len(blob),
        "adler32": zlib.adler32(np.array(words, dtype="<i4").tobytes() + blob),
        "ram": _ram(words, blob, facts),
        "macs": facts["macs"],
        "weights": facts["weights"],
    }
    js = json.dumps(meta, separators=(",", ":")).encode()
    js += b" " * ((-(8 + len(js))) % 4)
    out = MAGIC + len(js).to_bytes(4, "little") + js + np.array(words, dtype="<i4").tobytes() + blob
    return out, meta


def convert(tflite_path, manifest_path, out_path, sensitivities=None):
    """Writes the board's model file for a microWakeWord v2 model (atomically: temp file +
    rename). sensitivities: {"low"|"high"|"default": {"cutoff": 0..255, "fa_per_hour": x,
    "frr": y}}; missing ones are the model's own cutoff, unmeasured. Returns the metadata."""
    out, meta = build(tflite_path, manifest_path, sensitivities)
    try:
        write_atomically(out_path, lambda tmp: Path(tmp).write_bytes(out))
    except OSError as e:
        raise ConvertError(f"cannot write {out_path} ({e.strerror or e})")
    return meta


def read_meta(path):
    """The metadata of a board model file (what the board's loader reads first)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8 or head[:4] != MAGIC:
                raise ConvertError(f"{path} is not an earshot wake-word model (no {MAGIC.decode()} header)")
            return json.loads(f.read(int.from_bytes(head[4:], "little")))
    except OSError as e:
        raise ConvertError(f"cannot read {path} ({e.strerror or e})")
    except ValueError as e:
        raise ConvertError(f"{path}: damaged metadata ({e})")

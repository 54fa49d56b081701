# TFLite Micro's audio microfrontend as pymicro-features 2.0.2 configures it, integer only,
# in viper, nothing allocated per step. Its output equals pymicro_features.MicroFrontend's
# value for value (uint16 per channel; pymicro-features returns them x 0.0390625).
#   Frontend().step(buf, at): 160 s16 samples (10 ms at 16 kHz) at byte `at` of buf;
#   True when .out (array('H') of 40) holds a new vector: from the 3rd step on, every step.
# The C code (tensorflow/lite/experimental/microfrontend/lib/, kissfft FIXED_POINT 16),
# step by step, with the same roundings and the same int16 wraps:
#   window   w = (s * WINDOW) >> 12 over the last 480 samples; shift = 15 - bitlen(max |w|)
#            (a w of -32768 does not count: C's int16 abs leaves it negative)
#   FFT      x = int16(w << shift), zero-padded to 512; kiss_fftr: a 256-point complex
#            FFT of z[n] = x[2n] + i x[2n+1], 4 radix-4 stages (each input / 4 as
#            (v 8191 + 2**14) >> 15, twiddles Q15 rounded as (p + 2**14) >> 15, int16
#            results), then the split into bins 0..256 with the super twiddles
#   energy   re**2 + im**2 of bins 5..240 (< 2**31)
#   fbank    40 channels, Q12 weights (the unweight is 4096 - weight), 64-bit sums,
#            rounded square root (Sqrt64 / Sqrt32), >> shift
#   noise    estimate += (S << 10 - estimate) * (409 or 983) >> 14 per channel; out =
#            max((S << 10 - min(estimate, S << 10)) >> 10, S * 819 >> 14)
#   PCAN     gain = WideDynamicFunction(estimate) (LUT), snr = S * gain >> 6, shrink
#   log      ((45426 log2(v << 3) in Q16, rounded) << 6 + 2**15) >> 16, clamped to u16
# 64-bit quantities are 32-bit limbs here; every viper intermediate stays within signed
# 32 bits (bounds in the comments), so the ESP32 computes what the 64-bit unix port does.
#
# Speed: viper keeps the first three locals of a function in registers, the rest in stack
# slots; each kernel runs once per step over fixed offsets of one workspace, its hottest
# values first. 16-bit values are stored + 32768 (viper loads zero-extend): a store
# truncates to 16 bits, which is C's int16 wrap, and the bias folds into the constants.
import micropython
from micropython import const
from array import array

CHANNELS = const(40)
STEP = const(160)

_B = const(32768)
_CB = const(805355520)  # d4 of a biased value, biased: (u 8191 + _CB) >> 15 = x / 4 + 32768
_CU = const(-268386304)  # d4 of a biased value: (u 8191 + _CU) >> 15 = (x 8191 + 2**14) >> 15
_CU2 = const(-536821760)  # d2 of a biased value: (u 16383 + _CU2) >> 15
# workspace (byte offsets)
_WIN = const(0)  # u16 x 480: the window's samples + 32768, oldest first
_W = const(960)  # u16 x 512: the windowed samples + 32768; 480..511: the FFT's zero padding
_F = const(1984)  # 256 x (re, im) u16 + 32768: the complex FFT; then bin k's energy
#                   (m & 0xFFFF, m >> 16) at 4 k
_WORK = const(3008)  # 40 x (lo16, hi) i32: the filterbank's 64-bit sums, hi 2**16 + lo
_S = const(3328)  # 40 x i32: the channels after the square root (and >> shift)
_EST = const(3488)  # 40 x i32: the noise estimates (state)
_BL = const(3648)  # 256 x u8: bit length of 0..255
_REV = const(3904)  # 64 x u8: base-4 digit reversal of 0..63
_ST = const(3968)  # i32: steps since reset (max 3), shift, stage-1 constants c0, c1, rs
_WS = const(3988)

# Tables from host_tools/wake/frontend_tables.py firmware_literals() (a test checks them).
# window_util.cc: the Hann window, Q12, u16 x 480
_WINDOW = bytes.fromhex(
    "00000000010002000400050007000a000d001000130017001b00200025002a00300036003c0042004900510058006000"
    "680071007a0083008d009700a100ac00b700c200cd00d900e500f200ff000c0119012701350143015201610170017f01"
    "8f019f01af01c001d101e201f3010502170229023c024e026102750288029c02b002c402d802ed02020317032c034103"
    "57036d0383039903b003c703dd03f4030c0423043b0452046a0482049a04b304cb04e404fd0416052f05480561057a05"
    "9405ad05c705e105fb0515062f06490663067e069806b206cd06e70602071d07370752076d078707a207bd07d807f307"
    "0d08280843085e0879089308ae08c908e308fe08190933094e09680982099d09b709d109eb09050a1f0a390a530a6c0a"
    "860a9f0ab80ad10aea0a030b1c0b350b4d0b660b7e0b960bae0bc50bdd0bf40b0c0c230c390c500c670c7d0c930ca90c"
    "bf0cd40ce90cfe0c130d280d3c0d500d640d780d8b0d9f0db20dc40dd70de90dfb0d0d0e1e0e2f0e400e510e610e710e"
    "810e900e9f0eae0ebd0ecb0ed90ee70ef40e010f0e0f1b0f270f330f3e0f490f540f5f0f690f730f7d0f860f8f0f980f"
    "a00fa80faf0fb70fbe0fc40fcb0fd00fd60fdb0fe00fe50fe90fed0ff00ff30ff60ff90ffb0ffc0ffe0fff0f00100010"
    "00100010ff0ffe0ffc0ffb0ff90ff60ff30ff00fed0fe90fe50fe00fdb0fd60fd00fcb0fc40fbe0fb70faf0fa80fa00f"
    "980f8f0f860f7d0f730f690f5f0f540f490f3e0f330f270f1b0f0e0f010ff40ee70ed90ecb0ebd0eae0e9f0e900e810e"
    "710e610e510e400e2f0e1e0e0d0efb0de90dd70dc40db20d9f0d8b0d780d640d500d3c0d280d130dfe0ce90cd40cbf0c"
    "a90c930c7d0c670c500c390c230c0c0cf40bdd0bc50bae0b960b7e0b660b4d0b350b1c0b030bea0ad10ab80a9f0a860a"
    "6c0a530a390a1f0a050aeb09d109b7099d09820968094e0933091909fe08e308c908ae08930879085e08430828080d08"
    "f307d807bd07a20787076d07520737071d070207e706cd06b20698067e06630649062f061506fb05e105c705ad059405"
    "7a05610548052f051605fd04e404cb04b3049a0482046a0452043b0423040c04f403dd03c703b003990383036d035703"
    "41032c0317030203ed02d802c402b0029c028802750261024e023c02290217020502f301e201d101c001af019f018f01"
    "7f0170016101520143013501270119010c01ff00f200e500d900cd00c200b700ac00a10097008d0083007a0071006800"
    "600058005100490042003c00350030002a00250020001b001700130010000d000a000700050004000200010000000000")

# kiss_fft.cc: W256^k, W256^2k, W256^3k (re + 32768, im + 32768), k = 0..63
_TWIDDLE = bytes.fromhex(
    "ffff0080ffff0080ffff0080f5ffdc7cd8ffb879a6ff9676d8ffb87961ff74739cfe386da6ff96769cfe386de3fcf563"
    "61ff747389fd07677cfad85a09ff557029fce6606bf7ef519cfe386d7cfad85ab5f346491dfe1e6a84f8e1545eefe940"
    "89fd076741f6054f6deae438e3fcf563b5f34649e8e4413129fce660e2f0aa43d7de0b2a5cfbdd5dc9ed323e42d84d23"
    "7cfad85a6deae43833d10f1d89f9da57cfe6c133b4c95a1784f8e154f1e2cd2ecec137126bf7ef51d7de0b2a8cb9ac0d"
    "41f6054f82da7e25fbb0bf0904f5214cf5d5292126a87706b5f3464933d10f1d1a9fd70354f274463fcc3119e295e301"
    "e2f0aa431cc793158c8c9f005eefe940cec1371224830b00c9ed323e56bc1e0fb879280023ec863bbab64b0c5570f700"
    "6deae438fbb0bf0907677702a6e84c361fab7c07dd5da404cfe6c13328a58405e1547c07e8e441311a9fd703214cfc0a"
    "f1e2cd2ef9987702aa431e0febe0652cc8926401863bdd13d7de0b2a8c8c9f00c1333119b3dcbe2748862800652c151f"
    "82da7e25008001007e257e2542d84d23b8792800151f652cf5d5292174739f003119c1339bd3151f386d6401dd13863b"
    "33d10f1d076777021e0faa43bfce181be660d703fc0a214c3fcc3119d85a84057c07e154b4c95a17e1547c07a404dd5d"
    "1cc79315054fbf09770207677ac4dd1346494b0cf7005570cec13712aa431e0f2800b87917bfa210323e37120b002483"
    "56bc1e0fe43893159f008c8c8cb9ac0dc1333119e301e295bab64b0ccd2e0f1dd7031a9fdfb3fc0a0b2a2921770626a8"
    "fbb0bf097e257e25bf09fbb011ae950829210b2aac0d8cb91fab7c070f1dcd2e3712cec126a877063119c1335a17b4c9"
    "28a584059315e4380f1d33d123a2a4043712323e4d2342d81a9fd7031e0faa430b2ad7de0b9c1d034b0c46494131e8e4"
    "f9987702bf09054fe4386deae295e3017c07e154e9405eefc89264018405d85a4649b5f3ab8ff700d703e660ef516bf7"
    "8c8c9f0077020767d85a7cfa6a895a006401386df563e3fc488628009f007473386d9cfe24830b002800b8799676a6ff")

# kiss_fftr.cc: the split's twiddles (re + 32768, im + 32768), k = 1..128 (row 0 unused)
_SUPER = bytes.fromhex(
    "000000006e7e0300dc7c0b004a7b1700b879280027783f0096765a0005757a0074739f00e471c9005570f700c66e2b01"
    "386d6401ab6ba1011e6ae30192682b02076777027e65c702f5631d036d627803e660d703615f3b04dd5da4045a5c1205"
    "d85a84055859fb05da5777065d56f706e1547c0767530608ef51950879502809054fbf09924d5b0a214cfc0ab34aa10b"
    "46494b0cdc47f90c7446ac0d0e45630eaa431e0f4842de0fe940a2108d3f6a11323e3712db3c0813863bdd13333ab614"
    "e4389315973775164c365a1705354418c13331197f32231a4131181b0530121ccd2e0f1d982d101e652c151f372b1d20"
    "0b2a2921e3283922be274d239c2664247e257e2564249c264d23be273922e32829210b2a1d20372b151f652c101e982d"
    "0f1dcd2e121c0530181b4131231a7f323119c133441805355a174c36751697379315e438b614333add13863b0813db3c"
    "3712323e6a118d3fa210e940de0f48421e0faa43630e0e45ac0d7446f90cdc474b0c4649a10bb34afc0a214c5b0a924d"
    "bf09054f280979509508ef51060867537c07e154f7065d567706da57fb0558598405d85a12055a5ca404dd5d3b04615f"
    "d703e66078036d621d03f563c7027e65770207672b029268e3011e6aa101ab6b6401386d2b01c66ef7005570c900e471"
    "9f0074737a0005755a0096763f0027782800b87917004a7b0b00dc7c03006e7e01000080")

# filterbank_util.cc: the weight of bins 5..240 (Q12; the unweight is 4096 - weight)
_FB_WEIGHT = bytes.fromhex(
    "6105240b4101b307750e8005d10c6404340c3f04810cf804a00d77067b0faa0801027f0b2205e90ed208db02040d4a07"
    "ae012d0cc6067901450c29072402350d5b089603e60e480abe054501de0c890844040f00e90bd307cc03d30fe80b0a08"
    "3a047600bf0c14097605e2015a0ede0a6b070404a700530d0a0aca0693036600410d260a1207080405010a0e180b2d08"
    "49056d02990fcb0c040a45078b04d9012d0f870ce8094e07bb042d02a60f240da70a3008bf055203eb00890e2d0cd509"
    "82073305ea02a500650e290cf209bf079005660340011d0fff0ce50acf08bd06ae04a4029d00990e9a0c9d0aa508af06"
    "be04cf02e400fc0e180d360b58097d07a505d003fe012e00620e990cd20a0f094e079005d4031b026500b20e010d520b"
    "a709fd075606b20410037001d20f370e9f0c080b7409e2075206c4043903b0012800a30e200d9f0b200aa3082807af05"
    "3704c2024f01dd0f6d0e000d940b290ac1085a07f60592043103d1017300170fbc0d630c0b0bb60961080f07bd056e04"
    "2003d30188003f0ff70db00c6b0b270ae508a40764062605ea03ae0274013c00040fce0d9a0c660b340a0309d407a606"
    "79054d042203f901d100aa0f840e5f0d3c0c190bf809d808b9079c067f0563044903300217010000")

# filterbank_util.cc: the first bin of channels 0..40, then the end (241)
_FB_FIRST = bytes.fromhex(
    "050608090b0d0f111316181b1e2124272b2f32373b40454a4f555b626970788089929ba6b0bcc8d5e2f1")

# pcan_gain_control_util.cc: the gain LUT + 32768
_PCAN = bytes.fromhex(
    "7cff79ff76fffa7f0080008070fff47f0080008064ffe97ffe7f00804bffd07f008000801bffa07f00800080bbfe427f"
    "00800080fdfd867e0480008087fc1d7d12800080b6f97f7a3e80008073f4f975ca80008036eb336f328200809bdc8767"
    "ce840080f0c8de62a08700806eb38a64a48800809ca0226b4c8700800a937d7202850080898a177806830080a685a07b"
    "b4810080fa82ac7de88000808e81c77e7a800080cf805c7f408000806b80ab7f228000803880d37f128000801d80ea7f"
    "088000800f80f37f068000800880f87f048000800480fe7f008000800280fd7f0280008001800080008000800180fd7f"
    "02800080008000800080")

# log_lut.cc: kLogLut
_LOG = bytes.fromhex(
    "0000e000ba018e025d032704eb04aa0564061907c80773081909ba09560aed0a800b0f0c980c1e0d9f0d1b0e940e080f"
    "780fe40f4c10b01010116c11c51119126a12b712001346138913c71303143a146f14a014ce14f8142015441565158315"
    "9d15b515ca15db15ea15f615ff1505160816091606160116fa15ef15e215d215c015ab1594157a155e153f151e15fa14"
    "d414ab14811453142414f213be13881350131513d9129a1259121612d1118a114011f510a81058100710b40f5f0f080f"
    "af0e540ef70d990d380dd60c720c0c0ca50b3b0bd00a630af509850913099f082a08b3073b07c1064506c8054905c804"
    "4604c3033e03b7022f02a5011a018e0000000000")

# isqrt((i + 1) 2**22 - 1) + 1 for i = 64..255: a Newton seed for isqrt of [2**28, 2**30)
_SQRT = bytes.fromhex(
    "8040ff407c41f9417442ef426943e2435b44d2444945bf453446a8461c478e4700487248e3485349c249314a9f4a0c4b"
    "794be64b514cbc4c274d914dfa4d634ecb4e334f9a4f00506750cc5031519651fa515e52c15224538653e8534a54aa54"
    "0b556b55cb552a568956e7564657a35700585d58ba5816597259cd59285a835add5a375b915bea5b435c9c5cf45c4c5d"
    "a45dfb5d525ea95eff5e555fab5f00605660ab60ff605361a861fb614f62a262f56248639a63ec633e648f64e1643265"
    "8365d36524667466c46613676267b26700684f689e68ec683a698769d569226a6f6abc6a096b556ba26bee6b396c856c"
    "d06c1b6d666db16dfc6d466e906eda6e246f6e6fb76f00704a709270db7024716c71b471fc7144728b72d3721a736173"
    "a873ef7335747c74c27408754e759475d9751f766476a976ee7633777877bc77007845788978cd78107954799779db79"
    "1e7a617aa47ae67a297b6c7bae7bf07b327c747cb67cf77c397d7a7dbb7dfc7d3d7e7e7ebf7eff7e407f807fc07f0080")


class Frontend:
    def __init__(self):
        ws = bytearray(_WS)
        for i in range(256):
            ws[_BL + i] = len(bin(i)) - 2 if i else 0
        for j in range(64):
            ws[_REV + j] = ((j & 3) << 4) | (j & 12) | (j >> 4)
        for i in range(_W + 960, _W + 1024, 2):
            ws[i + 1] = 0x80  # zero padding: 0 + 32768
        self._ws = ws
        self.out = array("H", bytes(2 * CHANNELS))
        self.reset()

    def reset(self):
        # FrontendReset: an empty window, zero noise estimates
        _reset(self._ws)

    @micropython.native  # bytecode would heap-allocate the call's frame
    def step(self, buf, at):
        ws = self._ws
        if _ingest(ws, buf, at) < 3:
            return False
        o = _window(ws, _WINDOW, 0)
        if o >= 32768:
            o = _fix(ws)
        _prepare(ws, o)
        _stage1(ws, 0, 0)
        _stage4(ws, _TWIDDLE, 0)
        _stage16(ws, _TWIDDLE, 0)
        _stage64(ws, _TWIDDLE, 0)
        _split(ws, _SUPER, 0)
        _fbank(ws, _FB_WEIGHT, _FB_FIRST)
        _sqrt(ws, _SQRT, 0)
        _tail(ws, _PCAN, self.out, _LOG)
        return True


@micropython.viper
def _reset(ws: ptr32):
    st = ptr32(uint(ws) + _ST)
    st[0] = 0
    e = ptr32(uint(ws) + _EST)
    i = 0
    while i < CHANNELS:
        e[i] = 0
        i += 1


@micropython.viper
def _ingest(w: ptr32, s: ptr32, at: int) -> int:
    # Moves the window on by a step: samples 160..479 to 0..319, the step's 160 samples
    # (s16 at byte `at` of s) to 320..479, + 32768. Returns the steps seen since reset (<= 3).
    st = ptr32(uint(w) + _ST)
    end = uint(w) + 640
    while uint(w) < end:
        w[0] = w[80]
        w[1] = w[81]
        w[2] = w[82]
        w[3] = w[83]
        w[4] = w[84]
        w[5] = w[85]
        w[6] = w[86]
        w[7] = w[87]
        w = ptr32(uint(w) + 32)
    s = ptr32(uint(s) + at)
    flip = 0x8000
    flip |= flip << 16  # 0x80008000 at run time (no small int on a 32-bit port)
    end = uint(w) + 320
    while uint(w) < end:
        w[0] = s[0] ^ flip
        w[1] = s[1] ^ flip
        w[2] = s[2] ^ flip
        w[3] = s[3] ^ flip
        w = ptr32(uint(w) + 16)
        s = ptr32(uint(s) + 16)
    n = int(st[0])
    if n < 3:
        n += 1
        st[0] = n
    return n


@micropython.viper
def _window(p: ptr16, c: ptr16, o: int) -> int:
    # w = ((s + 32768) c >> 12) - 8 c = (s c) >> 12 (c <= 4096: < 2**28) into _W (+ 32768);
    # returns the OR of |w| (>= 32768 only if some w is -32768).
    q = ptr16(uint(p) + _W)
    end = uint(p) + 960
    while uint(p) < end:
        w = ((int(p[0]) * int(c[0])) >> 12) - (int(c[0]) << 3)
        q[0] = w + _B
        t = w >> 31
        o |= (w ^ t) - t
        w = ((int(p[1]) * int(c[1])) >> 12) - (int(c[1]) << 3)
        q[1] = w + _B
        t = w >> 31
        o |= (w ^ t) - t
        p = ptr16(uint(p) + 4)
        q = ptr16(uint(q) + 4)
        c = ptr16(uint(c) + 4)
    return o


@micropython.viper
def _fix(p: ptr16) -> int:
    # Some w is -32768: the max leaves it out, and with a shift >= 1 it wraps to 0.
    q = ptr16(uint(p) + _W)
    o = 0
    i = 0
    while i < 480:
        w = int(q[i]) - _B
        if w > -32768:
            if w < 0:
                w = -w
            o |= w
        i += 1
    if o < 16384:
        i = 0
        while i < 480:
            if q[i] == 0:
                q[i] = _B
            i += 1
    return o


@micropython.viper
def _prepare(p: ptr32, o: int):
    # shift = 15 - bitlen(max |w|); stage 1 computes x / 4 for x = w << shift as
    # (w 8191 + 2**14 >> shift) >> (15 - shift) (< 2**30). All-zero windows use shift 14.
    bl = ptr8(uint(p) + _BL)
    n = int(bl[o >> 8]) + 8 if o >= 256 else int(bl[o])
    sh = 15 - n
    st = ptr32(uint(p) + _ST)
    st[1] = sh
    if sh > 14:
        sh = 14
    rs = 15 - sh
    c1 = (16384 >> sh) - 268402688
    st[2] = c1 + (_B << rs)
    st[3] = c1
    st[4] = rs


@micropython.viper
def _stage1(p: ptr16, u: int, v: int):
    # z[r], z[r + 64], z[r + 128], z[r + 192] (z[n] = x[2n] + i x[2n+1]), each / 4, through
    # kissfft's first radix-4 stage (its unit twiddle 32767 is exact on values <= 2**13)
    # to positions 4 rev(r) .. 4 rev(r) + 3.
    st = ptr32(uint(p) + _ST)
    c0 = int(st[2])
    c1 = int(st[3])
    rs = int(st[4])
    rev = ptr8(uint(p) + _REV)
    f = uint(p) + _F
    p = ptr16(uint(p) + _W)
    end = uint(p) + 256
    while uint(p) < end:
        a0r = (int(p[0]) * 8191 + c0) >> rs
        a0i = (int(p[1]) * 8191 + c0) >> rs
        a1r = (int(p[128]) * 8191 + c1) >> rs
        a1i = (int(p[129]) * 8191 + c1) >> rs
        a2r = (int(p[256]) * 8191 + c1) >> rs
        a2i = (int(p[257]) * 8191 + c1) >> rs
        a3r = (int(p[384]) * 8191 + c1) >> rs
        a3i = (int(p[385]) * 8191 + c1) >> rs
        o = ptr16(f + (int(rev[0]) << 4))
        u = a0r + a2r
        v = a1r + a3r
        o[0] = u + v
        o[4] = u - v
        u = a0i + a2i
        v = a1i + a3i
        o[1] = u + v
        o[5] = u - v
        u = a0r - a2r
        v = a1i - a3i
        o[2] = u + v
        o[6] = u - v
        u = a0i - a2i
        v = a1r - a3r
        o[3] = u - v
        o[7] = u + v
        p = ptr16(uint(p) + 4)
        rev = ptr8(uint(rev) + 1)


@micropython.viper
def _stage4(p: ptr16, tw: ptr16, k: int):
    # kissfft's radix-4 stage of quarter 4 (fstride 16): butterflies on z[g + k], z[g + k + 4],
    # z[g + k + 8], z[g + k + 12] for every group g of 16; twiddles W^16k, W^32k, W^48k.
    f = uint(p) + _F
    end = f + 1024
    p = ptr16(f)
    while uint(p) < end:  # k = 0: unit twiddles (exact on values <= 2**13)
        a1r = (int(p[8]) * 8191 + _CU) >> 15
        a1i = (int(p[9]) * 8191 + _CU) >> 15
        a2r = (int(p[16]) * 8191 + _CU) >> 15
        a2i = (int(p[17]) * 8191 + _CU) >> 15
        a3r = (int(p[24]) * 8191 + _CU) >> 15
        a3i = (int(p[25]) * 8191 + _CU) >> 15
        a0r = (int(p[0]) * 8191 + _CB) >> 15
        a0i = (int(p[1]) * 8191 + _CB) >> 15
        u = a0r + a2r
        v = a1r + a3r
        p[0] = u + v
        p[16] = u - v
        u = a0i + a2i
        v = a1i + a3i
        p[1] = u + v
        p[17] = u - v
        u = a0r - a2r
        v = a1i - a3i
        p[8] = u + v
        p[24] = u - v
        u = a0i - a2i
        v = a1r - a3r
        p[9] = u - v
        p[25] = u + v
        p = ptr16(uint(p) + 64)
    k = 1
    while k < 4:
        tw = ptr16(uint(tw) + 192)
        c1 = int(tw[0]) - _B
        s1 = int(tw[1]) - _B
        c2 = int(tw[2]) - _B
        s2 = int(tw[3]) - _B
        c3 = int(tw[4]) - _B
        s3 = int(tw[5]) - _B
        p = ptr16(f + 4 * k)
        while uint(p) < end:
            u = (int(p[8]) * 8191 + _CU) >> 15
            v = (int(p[9]) * 8191 + _CU) >> 15
            a1r = (u * c1 - v * s1 + 16384) >> 15
            a1i = (u * s1 + v * c1 + 16384) >> 15
            u = (int(p[16]) * 8191 + _CU) >> 15
            v = (int(p[17]) * 8191 + _CU) >> 15
            a2r = (u * c2 - v * s2 + 16384) >> 15
            a2i = (u * s2 + v * c2 + 16384) >> 15
            u = (int(p[24]) * 8191 + _CU) >> 15
            v = (int(p[25]) * 8191 + _CU) >> 15
            a3r = (u * c3 - v * s3 + 16384) >> 15
            a3i = (u * s3 + v * c3 + 16384) >> 15
            a0r = (int(p[0]) * 8191 + _CB) >> 15
            a0i = (int(p[1]) * 8191 + _CB) >> 15
            u = a0r + a2r
            v = a1r + a3r
            p[0] = u + v
            p[16] = u - v
            u = a0i + a2i
            v = a1i + a3i
            p[1] = u + v
            p[17] = u - v
            u = a0r - a2r
            v = a1i - a3i
            p[8] = u + v
            p[24] = u - v
            u = a0i - a2i
            v = a1r - a3r
            p[9] = u - v
            p[25] = u + v
            p = ptr16(uint(p) + 64)
        k += 1

@micropython.viper
def _stage16(p: ptr16, tw: ptr16, k: int):
    # kissfft's radix-4 stage of quarter 16 (fstride 4): butterflies on z[g + k], z[g + k + 16],
    # z[g + k + 32], z[g + k + 48] for every group g of 64; twiddles W^4k, W^8k, W^12k.
    f = uint(p) + _F
    end = f + 1024
    p = ptr16(f)
    while uint(p) < end:  # k = 0: unit twiddles (exact on values <= 2**13)
        a1r = (int(p[32]) * 8191 + _CU) >> 15
        a1i = (int(p[33]) * 8191 + _CU) >> 15
        a2r = (int(p[64]) * 8191 + _CU) >> 15
        a2i = (int(p[65]) * 8191 + _CU) >> 15
        a3r = (int(p[96]) * 8191 + _CU) >> 15
        a3i = (int(p[97]) * 8191 + _CU) >> 15
        a0r = (int(p[0]) * 8191 + _CB) >> 15
        a0i = (int(p[1]) * 8191 + _CB) >> 15
        u = a0r + a2r
        v = a1r + a3r
        p[0] = u + v
        p[64] = u - v
        u = a0i + a2i
        v = a1i + a3i
        p[1] = u + v
        p[65] = u - v
        u = a0r - a2r
        v = a1i - a3i
        p[32] = u + v
        p[96] = u - v
        u = a0i - a2i
        v = a1r - a3r
        p[33] = u - v
        p[97] = u + v
        p = ptr16(uint(p) + 256)
    k = 1
    while k < 16:
        tw = ptr16(uint(tw) + 48)
        c1 = int(tw[0]) - _B
        s1 = int(tw[1]) - _B
        c2 = int(tw[2]) - _B
        s2 = int(tw[3]) - _B
        c3 = int(tw[4]) - _B
        s3 = int(tw[5]) - _B
        p = ptr16(f + 4 * k)
        while uint(p) < end:
            u = (int(p[32]) * 8191 + _CU) >> 15
            v = (int(p[33]) * 8191 + _CU) >> 15
            a1r = (u * c1 - v * s1 + 16384) >> 15
            a1i = (u * s1 + v * c1 + 16384) >> 15
            u = (int(p[64]) * 8191 + _CU) >> 15
            v = (int(p[65]) * 8191 + _CU) >> 15
            a2r = (u * c2 - v * s2 + 16384) >> 15
            a2i = (u * s2 + v * c2 + 16384) >> 15
            u = (int(p[96]) * 8191 + _CU) >> 15
            v = (int(p[97]) * 8191 + _CU) >> 15
            a3r = (u * c3 - v * s3 + 16384) >> 15
            a3i = (u * s3 + v * c3 + 16384) >> 15
            a0r = (int(p[0]) * 8191 + _CB) >> 15
            a0i = (int(p[1]) * 8191 + _CB) >> 15
            u = a0r + a2r
            v = a1r + a3r
            p[0] = u + v
            p[64] = u - v
            u = a0i + a2i
            v = a1i + a3i
            p[1] = u + v
            p[65] = u - v
            u = a0r - a2r
            v = a1i - a3i
            p[32] = u + v
            p[96] = u - v
            u = a0i - a2i
            v = a1r - a3r
            p[33] = u - v
            p[97] = u + v
            p = ptr16(uint(p) + 256)
        k += 1

@micropython.viper
def _stage64(p: ptr16, tw: ptr16, k: int):
    # kissfft's radix-4 stage of quarter 64 (fstride 1): butterflies on z[g + k], z[g + k + 64],
    # z[g + k + 128], z[g + k + 192] for every group g of 256; twiddles W^1k, W^2k, W^3k.
    f = uint(p) + _F
    end = f + 1024
    p = ptr16(f)
    while uint(p) < end:  # k = 0: unit twiddles (exact on values <= 2**13)
        a1r = (int(p[128]) * 8191 + _CU) >> 15
        a1i = (int(p[129]) * 8191 + _CU) >> 15
        a2r = (int(p[256]) * 8191 + _CU) >> 15
        a2i = (int(p[257]) * 8191 + _CU) >> 15
        a3r = (int(p[384]) * 8191 + _CU) >> 15
        a3i = (int(p[385]) * 8191 + _CU) >> 15
        a0r = (int(p[0]) * 8191 + _CB) >> 15
        a0i = (int(p[1]) * 8191 + _CB) >> 15
        u = a0r + a2r
        v = a1r + a3r
        p[0] = u + v
        p[256] = u - v
        u = a0i + a2i
        v = a1i + a3i
        p[1] = u + v
        p[257] = u - v
        u = a0r - a2r
        v = a1i - a3i
        p[128] = u + v
        p[384] = u - v
        u = a0i - a2i
        v = a1r - a3r
        p[129] = u - v
        p[385] = u + v
        p = ptr16(uint(p) + 1024)
    k = 1
    while k < 64:
        tw = ptr16(uint(tw) + 12)
        c1 = int(tw[0]) - _B
        s1 = int(tw[1]) - _B
        c2 = int(tw[2]) - _B
        s2 = int(tw[3]) - _B
        c3 = int(tw[4]) - _B
        s3 = int(tw[5]) - _B
        p = ptr16(f + 4 * k)
        while uint(p) < end:
            u = (int(p[128]) * 8191 + _CU) >> 15
            v = (int(p[129]) * 8191 + _CU) >> 15
            a1r = (u * c1 - v * s1 + 16384) >> 15
            a1i = (u * s1 + v * c1 + 16384) >> 15
            u = (int(p[256]) * 8191 + _CU) >> 15
            v = (int(p[257]) * 8191 + _CU) >> 15
            a2r = (u * c2 - v * s2 + 16384) >> 15
            a2i = (u * s2 + v * c2 + 16384) >> 15
            u = (int(p[384]) * 8191 + _CU) >> 15
            v = (int(p[385]) * 8191 + _CU) >> 15
            a3r = (u * c3 - v * s3 + 16384) >> 15
            a3i = (u * s3 + v * c3 + 16384) >> 15
            a0r = (int(p[0]) * 8191 + _CB) >> 15
            a0i = (int(p[1]) * 8191 + _CB) >> 15
            u = a0r + a2r
            v = a1r + a3r
            p[0] = u + v
            p[256] = u - v
            u = a0i + a2i
            v = a1i + a3i
            p[1] = u + v
            p[257] = u - v
            u = a0r - a2r
            v = a1i - a3i
            p[128] = u + v
            p[384] = u - v
            u = a0i - a2i
            v = a1r - a3r
            p[129] = u - v
            p[385] = u + v
            p = ptr16(uint(p) + 1024)
        k += 1


@micropython.viper
def _split(p: ptr16, sup: ptr16, k: int):
    # kiss_fftr's split for k = 5..128: Z[k] and conj Z[256 - k], each / 2, into bins k and
    # 256 - k, whose energies overwrite those two points (for k = 128 the second formula
    # is the one C keeps). The int16 wraps of C (-Z.i, the twiddled difference) are kept.
    q = ptr16(uint(p) + _F + 20)
    r = ptr16(uint(p) + _F + 1004)
    sup = ptr16(uint(sup) + 20)
    end = uint(p) + _F + 516
    while uint(q) < end:
        pr = (int(q[0]) * 16383 + _CU2) >> 15
        pi = (int(q[1]) * 16383 + _CU2) >> 15
        nr = (int(r[0]) * 16383 + _CU2) >> 15
        ni = (((65536 - int(r[1])) & 0xFFFF) * 16383 + _CU2) >> 15
        dr = pr - nr
        di = pi - ni
        c = int(sup[0]) - _B
        s = int(sup[1]) - _B
        tr = ((((dr * c - di * s + 16384) >> 15) + _B) & 0xFFFF) - _B
        ti = ((((dr * s + di * c + 16384) >> 15) + _B) & 0xFFFF) - _B
        pr += nr
        pi += ni
        nr = (pr + tr) >> 1
        ni = (pi + ti) >> 1
        nr = nr * nr + ni * ni
        q[0] = nr
        q[1] = nr >> 16
        nr = (pr - tr) >> 1
        ni = (ti - pi) >> 1
        nr = nr * nr + ni * ni
        r[0] = nr
        r[1] = nr >> 16
        q = ptr16(uint(q) + 4)
        r = ptr16(uint(r) - 4)
        sup = ptr16(uint(sup) + 4)


@micropython.viper
def _fbank(e: ptr16, wt: ptr16, first: ptr8):
    # Per channel c: A = sum weight m, M = sum m over its bins (m = hi 2**16 + lo, both
    # summed per limb: weight sums <= 29817, so weight lo < 2**31). Channel c - 1's
    # 64-bit sum is then A_c + sum (4096 - weight) m over the bins of c - 1
    # = A_c + 4096 M_(c-1) - A_(c-1); stored as (lo16, hi), hi < 2**31.
    out = ptr32(uint(e) + _WORK)
    e = ptr16(uint(e) + _F + 20)
    pal = 0
    pah = 0
    pml = 0
    pmh = 0
    c = 0
    while c <= CHANNELS:
        n = int(first[c + 1]) - int(first[c])
        al = 0
        ah = 0
        ml = 0
        mh = 0
        while n > 0:
            w = int(wt[0])
            lo = int(e[0])
            hi = int(e[1])
            al += w * lo
            ah += w * hi
            ml += lo
            mh += hi
            wt = ptr16(uint(wt) + 2)
            e = ptr16(uint(e) + 4)
            n -= 1
        if c > 0:
            lo = al - pal
            hi = (pmh << 12) - pah + ah + ((pml >> 16) << 12) + (lo >> 16)
            lo = (lo & 0xFFFF) + ((pml & 0xFFFF) << 12)
            out[0] = lo & 0xFFFF
            out[1] = hi + (lo >> 16)
            out = ptr32(uint(out) + 8)
        pal = al
        pah = ah
        pml = ml
        pmh = mh
        c += 1


@micropython.viper
def _sqrt(p: ptr32, seed: ptr16, i: int):
    # S = Sqrt64(hi 2**16 + lo) >> shift per channel: floor sqrt, + 1 when the remainder
    # exceeds it (Sqrt32, below 2**32, stops at 65535). The sum is normalised into
    # [2**28, 2**30) by an even shift, one Newton step from a table seed gives that part's
    # isqrt, and for sums of 2**30 and more one more Newton step (on the exact remainder)
    # and an exact check in 12-bit limbs give the rest.
    bl = ptr8(uint(p) + _BL)
    sh = int(ptr32(uint(p) + _ST)[1])
    w = ptr32(uint(p) + _WORK)
    s = ptr32(uint(p) + _S)
    i = 0
    while i < CHANNELS:
        lo = int(w[0])
        hi = int(w[1])
        if hi < 16384:
            v = (hi << 16) | lo
            if v == 0:
                r = 0
            else:
                t = v
                b = 0
                if t >= 65536:
                    t >>= 16
                    b = 16
                if t >= 256:
                    t >>= 8
                    b += 8
                b += int(bl[t])
                e2 = (30 - b) & 30
                x = v << e2
                y = int(seed[(x >> 22) - 64])
                r = (y + x // y) >> 1
                if r * r > x:
                    r -= 1
                r >>= e2 >> 1
                if v - r * r > r:
                    r += 1
        else:
            t = hi
            b = 16
            if t >= 65536:
                t >>= 16
                b = 32
            if t >= 256:
                t >>= 8
                b += 8
            b += int(bl[t])
            e2 = (b - 29) & 62
            if e2 <= 16:
                x = (hi << (16 - e2)) | (lo >> e2)
                nl = lo & ((1 << e2) - 1)
            else:
                x = hi >> (e2 - 16)
                nl = ((hi & ((1 << (e2 - 16)) - 1)) << 16) | lo
            y = int(seed[(x >> 22) - 64])
            r = (y + x // y) >> 1
            if r * r > x:
                r -= 1
            k = e2 >> 1
            r = (r << k) + ((((x - r * r) << k) + (nl >> k)) // (r << 1))
            a = r >> 12
            b = r & 4095
            t = ((((hi - ((a * a) << 8)) << 4) - ((a * b) << 1)) << 12) + lo - b * b
            if t < 0:
                r -= 1
                t += (r << 1) + 1
            if t > r:
                if r != 65535 or hi >= 65536:
                    r += 1
        s[i] = r >> sh
        w = ptr32(uint(w) + 8)
        i += 1


@micropython.viper
def _tail(p: ptr32, lut: ptr16, out: ptr16, lg: ptr16):
    # Noise reduction, PCAN and the log, per channel.
    bl = ptr8(uint(p) + _BL)
    s = ptr32(uint(p) + _S)
    est = ptr32(uint(p) + _EST)
    i = 0
    while i < CHANNELS:
        v = int(s[i])
        u = v << 10  # < 2**31: v < 2**21 (the window's energy bounds every channel)
        e = int(est[i])
        sm = 983 if i & 1 else 409
        d = u - e
        e += (d >> 14) * sm + (((d & 16383) * sm) >> 14)
        est[i] = e
        if e > u:
            d = 0
        else:
            d = (u - e) >> 10
        v = (v * 819) >> 14
        if d > v:
            v = d
        # PCAN: gain = WideDynamicFunction(e) in [0, 32624]
        if e <= 2:
            g = int(lut[e]) - _B
        else:
            t = e
            n = 0
            if t >= 65536:
                t >>= 16
                n = 16
            if t >= 256:
                t >>= 8
                n += 8
            n += int(bl[t])
            if n < 11:
                f = (e << (11 - n)) & 0x3FF
            else:
                f = (e >> (n - 11)) & 0x3FF
            t = 4 * n - 6
            g = (((int(lut[t + 2]) - _B) * f) >> 5) + ((int(lut[t + 1]) - _B) << 5)
            g = ((g * f + 16384) >> 15) + int(lut[t]) - _B
        v = (v >> 6) * g + (((v & 63) * g) >> 6)
        if v < 8192:
            v = (v * v) >> 20
        else:
            v = (v >> 6) - 64
        v <<= 3
        if v > 1:
            t = v
            n = 0
            if t >= 65536:
                t >>= 16
                n = 16
            if t >= 256:
                t >>= 8
                n += 8
            n += int(bl[t]) - 1
            f = v - (1 << n)
            if n < 16:
                f <<= 16 - n
            else:
                f >>= n - 16
            t = f >> 9
            c = int(lg[t])
            f += c + (((int(lg[t + 1]) - c) * (f - (t << 9))) >> 16)
            v = 45426 * n + ((45426 * (f >> 8) + ((45426 * (f & 255) + 32768) >> 8)) >> 8)
            v = (v + 512) >> 10
            if v > 65535:
                v = 65535
        else:
            v = 0
        out[i] = v
        i += 1

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
# Not emulated: C's uint32 wrap of S << 10 in the noise reduction, reachable only with a
# channel root S >= 2**21, i.e. a filterbank sum >= 2**42; a window's energy (Parseval)
# keeps every sum below 4.2e12 < 2**42 unless kissfft's int16 stages overflowed, which
# needs a window built for it (their wraps themselves are kept).
#
# Speed (counted in x86 instructions of the unix port): viper keeps the first three locals
# of a function in registers and the rest in stack slots, and moves every operand through
# fixed registers; a kernel is cheapest when its hot pointer and two scratch values are
# those three and its tables sit at fixed offsets from the data it walks. So tables,
# scratch and state share one buffer: the first frontend uses the one the module fills at
# import, later ones get a copy. 16-bit values are stored + 32768 (viper loads
# zero-extend): a store truncates to 16 bits, which is C's int16 wrap, and the bias folds
# into the constants. The shift is known before the window is computed (from the max |s|
# of every 10-sample cell, kept as the samples arrive), so the window, the scaling and the
# FFT's first stage are one pass.
import micropython
from micropython import const
from array import array

CHANNELS = const(40)
STEP = const(160)

_B = const(32768)
_CB = const(805355520)  # (u 8191 + _CB) >> 15: u = x + 32768 -> (x 8191 + 2**14 >> 15) + 32768
_CU = const(-268386304)  # (u 8191 + _CU) >> 15: u = x + 32768 -> (x 8191 + 2**14) >> 15
_CU2 = const(-536821760)  # (u 16383 + _CU2) >> 15: u = x + 32768 -> (x 16383 + 2**14) >> 15
# the workspace (byte offsets): tables, scratch and state at fixed offsets from each other
_F = const(0)  # 256 x (re, im) u16 + 32768: the complex FFT; then bin b's energy
#                (lo16, hi) at 4 b
_T1 = const(1024)  # (cos, -sin) of W^k, k = 0..63 (both >= 0)
_T2 = const(1280)  # (cos, sin) + 32768 of W^2k
_T3 = const(1536)  # (cos, sin) + 32768 of W^3k
_SUP = const(1792)  # (-cos, -sin) (both >= 0) of the split's twiddle of k = 0..128
_FBW = const(2308)  # the filterbank weight of bin b at 4 b (b = 5..240)
_WIN = const(3272)  # state: the last 480 samples + 32768, oldest first (then 32 unused)
_COEF = const(4296)  # the window (Q12) of sample n = 0..511 at 2 n (480..511: 0)
_REV = const(5320)  # at 4 r, r = 0..63: where stage 1 writes (_F + 16 rev4(r))
_CM = const(5576)  # state: (P, N) at 4 j: max s >= 0 and max -s > 0 (else 0) over each
#                   10-sample cell j of the window
_CELL = const(5768)  # (min, max) of the window over each cell
_FIRST = const(5960)  # u8: first bin of channels 0..40, then 241
_BL = const(6002)  # u8: bit length of 0..255
_PCAN = const(6258)  # the PCAN gain LUT (see its literal)
_LOG = const(6508)  # kLogLut
_SQRT = const(6768)  # Newton seeds for isqrt over [2**28, 2**30)
_WORK = const(7168)  # per channel, 16 bytes (after a slot for channel -1): the filterbank's
#                      64-bit sum (lo16, hi), the noise estimate (state), the smoothing
_K = const(7808)  # i32: the step's shift (the square root undoes it)
_N = const(7824)  # i32, state: steps since reset (<= 3)
_WSSIZE = const(7828)
# the same offsets seen from a pointer that walks the FFT points, the window, the cells (u16)
_P1 = const(512)
_P2 = const(640)
_P3 = const(768)
_PS = const(896)  # _SUP - _F
_PW = const(1154)  # _FBW - _F
_D2 = const(128)  # _T2 - _T1
_D3 = const(256)  # _T3 - _T1
_PC = const(512)  # _COEF - _WIN
_PR = const(1024)  # _REV - _WIN
_PM = const(96)  # _CELL - _CM

# The tables (host_tools/wake/frontend_tables.py firmware_literals(); a test checks them)
# go into a workspace at import (the hex strings are freed after it). The first Frontend
# works in that one, later ones in copies.
_WS = bytearray(_WSSIZE)


def _put(at, step, size, hexs):
    b = bytes.fromhex(hexs)
    for i in range(0, len(b), size):
        _WS[at:at + size] = b[i:i + size]
        at += step


# WINDOW: window_util.cc: the Hann window in Q12, n = 0..479
_put(_COEF, 2, 2, (
    "00000000010002000400050007000a000d001000130017001b00200025002a00300036003c00420049005100"
    "58006000680071007a0083008d009700a100ac00b700c200cd00d900e500f200ff000c011901270135014301"
    "5201610170017f018f019f01af01c001d101e201f3010502170229023c024e026102750288029c02b002c402"
    "d802ed02020317032c03410357036d0383039903b003c703dd03f4030c0423043b0452046a0482049a04b304"
    "cb04e404fd0416052f05480561057a059405ad05c705e105fb0515062f06490663067e069806b206cd06e706"
    "02071d07370752076d078707a207bd07d807f3070d08280843085e0879089308ae08c908e308fe0819093309"
    "4e09680982099d09b709d109eb09050a1f0a390a530a6c0a860a9f0ab80ad10aea0a030b1c0b350b4d0b660b"
    "7e0b960bae0bc50bdd0bf40b0c0c230c390c500c670c7d0c930ca90cbf0cd40ce90cfe0c130d280d3c0d500d"
    "640d780d8b0d9f0db20dc40dd70de90dfb0d0d0e1e0e2f0e400e510e610e710e810e900e9f0eae0ebd0ecb0e"
    "d90ee70ef40e010f0e0f1b0f270f330f3e0f490f540f5f0f690f730f7d0f860f8f0f980fa00fa80faf0fb70f"
    "be0fc40fcb0fd00fd60fdb0fe00fe50fe90fed0ff00ff30ff60ff90ffb0ffc0ffe0fff0f0010001000100010"
    "ff0ffe0ffc0ffb0ff90ff60ff30ff00fed0fe90fe50fe00fdb0fd60fd00fcb0fc40fbe0fb70faf0fa80fa00f"
    "980f8f0f860f7d0f730f690f5f0f540f490f3e0f330f270f1b0f0e0f010ff40ee70ed90ecb0ebd0eae0e9f0e"
    "900e810e710e610e510e400e2f0e1e0e0d0efb0de90dd70dc40db20d9f0d8b0d780d640d500d3c0d280d130d"
    "fe0ce90cd40cbf0ca90c930c7d0c670c500c390c230c0c0cf40bdd0bc50bae0b960b7e0b660b4d0b350b1c0b"
    "030bea0ad10ab80a9f0a860a6c0a530a390a1f0a050aeb09d109b7099d09820968094e0933091909fe08e308"
    "c908ae08930879085e08430828080d08f307d807bd07a20787076d07520737071d070207e706cd06b2069806"
    "7e06630649062f061506fb05e105c705ad0594057a05610548052f051605fd04e404cb04b3049a0482046a04"
    "52043b0423040c04f403dd03c703b003990383036d03570341032c0317030203ed02d802c402b0029c028802"
    "750261024e023c02290217020502f301e201d101c001af019f018f017f017001610152014301350127011901"
    "0c01ff00f200e500d900cd00c200b700ac00a10097008d0083007a0071006800600058005100490042003c00"
    "350030002a00250020001b001700130010000d000a000700050004000200010000000000"))

# T1: kiss_fft.cc's twiddles: (cos, -sin) of W256^k, k = 0..63
_put(_T1, 2, 2, (
    "ff7f0000f57f2403d87f4806a67f6a09617f8c0c097fab0f9c7ec8121d7ee215897df918e37c0b1c297c1a1f"
    "5c7b23227c7a28258979262884781f2b6b77112e4176fb300475df33b573ba3654728c39e270563c5e6f173f"
    "c96dce41236c7a446d6a1c47a668b449cf663f4ce864bf4ef1623351eb609b53d75ef555b35c4258825a825a"
    "4258b35cf555d75e9b53eb603351f162bf4ee8643f4ccf66b449a6681c476d6a7a44236cce41c96d173f5e6f"
    "563ce2708c395472ba36b573df330475fb304176112e6b771f2b84782628897928257c7a23225c7b1a1f297c"
    "0b1ce37cf918897de2151d7ec8129c7eab0f097f8c0c617f6a09a67f4806d87f2403f57f"))

# T2: (cos, sin) + 32768 of W256^2k
_put(_T2, 2, 2, (
    "ffff0080d8ffb87961ff74739cfe386d89fd076729fce6607cfad85a84f8e15441f6054fb5f34649e2f0aa43"
    "c9ed323e6deae438cfe6c133f1e2cd2ed7de0b2a82da7e25f5d5292133d10f1d3fcc31191cc79315cec13712"
    "56bc1e0fbab64b0cfbb0bf091fab7c0728a584051a9fd703f9987702c89264018c8c9f004886280000800100"
    "b879280074739f00386d640107677702e660d703d85a8405e1547c07054fbf0946494b0caa431e0f323e3712"
    "e4389315c1333119cd2e0f1d0b2a29217e257e2529210b2a0f1dcd2e3119c1339315e4383712323e1e0faa43"
    "4b0c4649bf09054f7c07e1548405d85ad703e660770207676401386d9f0074732800b879"))

# T3: (cos, sin) + 32768 of W256^3k
_put(_T3, 2, 2, (
    "ffff0080a6ff96769cfe386de3fcf5637cfad85a6bf7ef51b5f346495eefe9406deae438e8e44131d7de0b2a"
    "42d84d2333d10f1db4c95a17cec137128cb9ac0dfbb0bf0926a877061a9fd703e295e3018c8c9f0024830b00"
    "b87928005570f70007677702dd5da404e1547c07214cfc0aaa431e0f863bdd13c1333119652c151f7e257e25"
    "151f652c3119c133dd13863b1e0faa43fc0a214c7c07e154a404dd5d77020767f70055702800b8790b002483"
    "9f008c8ce301e295d7031a9f770626a8bf09fbb0ac0d8cb93712cec15a17b4c90f1d33d14d2342d80b2ad7de"
    "4131e8e4e4386deae9405eef4649b5f3ef516bf7d85a7cfaf563e3fc386d9cfe9676a6ff"))

# SUPER: kiss_fftr.cc's super twiddles (-cos, -sin), k = 1..128 after a row 0
_put(_SUP, 2, 2, (
    "000000009201fd7f2403f57fb604e97f4806d87fd907c17f6a09a67ffb0a867f8c0c617f1c0e377fab0f097f"
    "3a11d57ec8129c7e55145f7ee2151d7e6e17d57df918897d821a397d0b1ce37c931d887c1a1f297c9f20c57b"
    "23225c7ba623ee7a28257c7aa826057a26288979a32909791f2b8478992cfa77112e6b77872fd876fb304176"
    "6e32a575df3304754d355f74ba36b573243807738c395472f23a9d71563ce270b83d2270173f5e6f7340966e"
    "ce41c96d2543f86c7a44236ccd454a6b1c476d6a69488b69b449a668fb4abc673f4ccf66814ddd65bf4ee864"
    "fb4fee633351f1626852f0619b53eb60c954e35ff555d75e1d57c75d4258b35c64599c5b825a825a9c5b6459"
    "b35c4258c75d1d57d75ef555e35fc954eb609b53f0616852f1623351ee63fb4fe864bf4edd65814dcf663f4c"
    "bc67fb4aa668b4498b6969486d6a1c474a6bcd45236c7a44f86c2543c96dce41966e73405e6f173f2270b83d"
    "e270563c9d71f23a54728c3907732438b573ba365f744d350475df33a5756e324176fb30d876872f6b77112e"
    "fa77992c84781f2b0979a32989792628057aa8267c7a2825ee7aa6235c7b2322c57b9f20297c1a1f887c931d"
    "e37c0b1c397d821a897df918d57d6e171d7ee2155f7e55149c7ec812d57e3a11097fab0f377f1c0e617f8c0c"
    "867ffb0aa67f6a09c17fd907d87f4806e97fb604f57f2403fd7f9201ff7f0000"))

# FB_WEIGHT: filterbank_util.cc: the weight of bins 5..240 in Q12 (the unweight is 4096 - weight)
_put(_FBW + 20, 4, 2, (
    "6105240b4101b307750e8005d10c6404340c3f04810cf804a00d77067b0faa0801027f0b2205e90ed208db02"
    "040d4a07ae012d0cc6067901450c29072402350d5b089603e60e480abe054501de0c890844040f00e90bd307"
    "cc03d30fe80b0a083a047600bf0c14097605e2015a0ede0a6b070404a700530d0a0aca0693036600410d260a"
    "1207080405010a0e180b2d0849056d02990fcb0c040a45078b04d9012d0f870ce8094e07bb042d02a60f240d"
    "a70a3008bf055203eb00890e2d0cd50982073305ea02a500650e290cf209bf079005660340011d0fff0ce50a"
    "cf08bd06ae04a4029d00990e9a0c9d0aa508af06be04cf02e400fc0e180d360b58097d07a505d003fe012e00"
    "620e990cd20a0f094e079005d4031b026500b20e010d520ba709fd075606b20410037001d20f370e9f0c080b"
    "7409e2075206c4043903b0012800a30e200d9f0b200aa3082807af053704c2024f01dd0f6d0e000d940b290a"
    "c1085a07f60592043103d1017300170fbc0d630c0b0bb60961080f07bd056e042003d30188003f0ff70db00c"
    "6b0b270ae508a40764062605ea03ae0274013c00040fce0d9a0c660b340a0309d407a60679054d042203f901"
    "d100aa0f840e5f0d3c0c190bf809d808b9079c067f0563044903300217010000"))

# FB_FIRST: filterbank_util.cc: u8, the first bin of channels 0..40, then the end (241)
_put(_FIRST, 1, 1, (
    "050608090b0d0f111316181b1e2124272b2f32373b40454a4f555b626970788089929ba6b0bcc8d5e2f1"))

# PCAN: pcan_gain_control_util.cc: the gain LUT: x = 0, 1, then per interval (y0, -a1, a2 + 32768, 0)
_put(_PCAN, 2, 2, (
    "7c7f797f767f060000800000707f0c0000800000647f1700fe7f00004b7f3000008000001b7f600000800000"
    "bb7ebe0000800000fd7d7a0104800000877ce30212800000b67981053e8000007374070aca800000366bcd10"
    "328200009b5c7918ce840000f048221da08700006e33761ba48800009c20de144c8700000a13830d02850000"
    "890ae90706830000a6056004b4810000fa025402e88000008e0139017a800000cf00a400408000006b005500"
    "2280000038002d00128000001d001600088000000f000d000680000008000800048000000400020000800000"
    "020003000280000001000000008000000100030002800000000000000080"))

# LOG: log_lut.cc: kLogLut
_put(_LOG, 2, 2, (
    "0000e000ba018e025d032704eb04aa0564061907c80773081909ba09560aed0a800b0f0c980c1e0d9f0d1b0e"
    "940e080f780fe40f4c10b01010116c11c51119126a12b712001346138913c71303143a146f14a014ce14f814"
    "20154415651583159d15b515ca15db15ea15f615ff1505160816091606160116fa15ef15e215d215c015ab15"
    "94157a155e153f151e15fa14d414ab14811453142414f213be13881350131513d9129a1259121612d1118a11"
    "4011f510a81058100710b40f5f0f080faf0e540ef70d990d380dd60c720c0c0ca50b3b0bd00a630af5098509"
    "13099f082a08b3073b07c1064506c8054905c8044604c3033e03b7022f02a5011a018e0000000000"))

# SQRT: isqrt((i + 1) 2**22 - 1) + 1, i = 64..255: Newton seeds for isqrt over [2**28, 2**30)
_put(_SQRT, 2, 2, (
    "8040ff407c41f9417442ef426943e2435b44d2444945bf453446a8461c478e4700487248e3485349c249314a"
    "9f4a0c4b794be64b514cbc4c274d914dfa4d634ecb4e334f9a4f00506750cc5031519651fa515e52c1522453"
    "8653e8534a54aa540b556b55cb552a568956e7564657a35700585d58ba5816597259cd59285a835add5a375b"
    "915bea5b435c9c5cf45c4c5da45dfb5d525ea95eff5e555fab5f00605660ab60ff605361a861fb614f62a262"
    "f56248639a63ec633e648f64e16432658365d36524667466c46613676267b26700684f689e68ec683a698769"
    "d569226a6f6abc6a096b556ba26bee6b396c856cd06c1b6d666db16dfc6d466e906eda6e246f6e6fb76f0070"
    "4a709270db7024716c71b471fc7144728b72d3721a736173a873ef7335747c74c27408754e759475d9751f76"
    "6476a976ee7633777877bc77007845788978cd78107954799779db791e7a617aa47ae67a297b6c7bae7bf07b"
    "327c747cb67cf77c397d7a7dbb7dfc7d3d7e7e7ebf7eff7e407f807fc07f0080"))



def _derived():
    for j in range(64):  # stage 1 writes z's of r to 4 rev4(r) .. + 3 (16 bytes each)
        v = _F + 16 * (((j & 3) << 4) | (j & 12) | (j >> 4))
        _WS[_REV + 4 * j] = v & 255
        _WS[_REV + 4 * j + 1] = v >> 8
    for j in range(48):
        cs = [_WS[_COEF + 2 * n] | (_WS[_COEF + 2 * n + 1] << 8) for n in range(10 * j, 10 * j + 10)]
        for k, v in enumerate((min(cs), max(cs))):
            _WS[_CELL + 4 * j + 2 * k] = v & 255
            _WS[_CELL + 4 * j + 2 * k + 1] = v >> 8
    for i in range(1, 256):
        _WS[_BL + i] = len(bin(i)) - 2
    for i in range(CHANNELS):  # noise_reduction_util.cc: 0.025, 0.06 x 2**14 as uint16
        _WS[_WORK + 16 * i + 12:_WORK + 16 * i + 14] = (983 if i & 1 else 409).to_bytes(2, "little")


_derived()
_taken = False


class Frontend:
    def __init__(self):
        global _taken
        self._ws = bytearray(_WS) if _taken else _WS
        _taken = True
        self.out = array("H", bytes(2 * CHANNELS))
        self.reset()

    def reset(self):
        # FrontendReset: an empty window, zero noise estimates
        _reset(self._ws)

    @micropython.native  # bytecode would heap-allocate the call's frame
    def step(self, buf, at):
        ws = self._ws
        if _ingest(ws, at, 0, buf) < 3:
            return False
        sh = _shift(ws, 0, 0)
        if sh < 0:
            sh = _slow(ws, 0, 0)
        _stage1(ws, sh, 0)
        if sh > 255:
            _unpatch(ws, sh, 0)
        _fft(ws, 0, 0)
        _spectrum(ws, ws, 0)
        _tail(ws, 0, 0, self.out)
        return True


@micropython.viper
def _reset(ws: ptr32):
    ws[_N // 4] = 0
    e = ptr32(uint(ws) + _WORK + 8)
    i = 0
    while i < CHANNELS:
        e[4 * i] = 0
        i += 1


@micropython.viper
def _ingest(q: ptr16, mx: int, mn: int, s: ptr32) -> int:
    # Moves the window on by a step: samples 160..479 to 0..319 and the step's 160 (s16
    # at byte mx of s) + 32768 to 320..479; the cells 16..47 to 0..31 and the new ones'
    # (P, N) to 32..47. Returns the steps seen since reset (<= 3).
    ws = uint(q)
    s = ptr32(uint(s) + mx)
    q = ptr16(ws + _WIN)
    end = ws + _WIN + 640
    while uint(q) < end:
        ptr32(q)[0] = ptr32(q)[80]
        ptr32(q)[1] = ptr32(q)[81]
        ptr32(q)[2] = ptr32(q)[82]
        ptr32(q)[3] = ptr32(q)[83]
        ptr32(q)[4] = ptr32(q)[84]
        ptr32(q)[5] = ptr32(q)[85]
        ptr32(q)[6] = ptr32(q)[86]
        ptr32(q)[7] = ptr32(q)[87]
        q = ptr16(uint(q) + 32)
    mx = 0x8000
    mx |= mx << 16  # 0x80008000 at run time (no small int on a 32-bit port)
    end = ws + _WIN + 960
    while uint(q) < end:
        ptr32(q)[0] = s[0] ^ mx
        ptr32(q)[1] = s[1] ^ mx
        ptr32(q)[2] = s[2] ^ mx
        ptr32(q)[3] = s[3] ^ mx
        ptr32(q)[4] = s[4] ^ mx
        q = ptr16(uint(q) + 20)
        s = ptr32(uint(s) + 20)
    q = ptr16(ws + _CM)
    end = ws + _CM + 128
    while uint(q) < end:
        ptr32(q)[0] = ptr32(q)[16]
        ptr32(q)[1] = ptr32(q)[17]
        ptr32(q)[2] = ptr32(q)[18]
        ptr32(q)[3] = ptr32(q)[19]
        ptr32(q)[4] = ptr32(q)[20]
        ptr32(q)[5] = ptr32(q)[21]
        ptr32(q)[6] = ptr32(q)[22]
        ptr32(q)[7] = ptr32(q)[23]
        q = ptr16(uint(q) + 32)
    # each new cell's largest s >= 0 and -s > 0 (else 0)
    o = ptr16(ws + _CM + 128)
    q = ptr16(ws + _WIN + 640)
    end = uint(q) + 320
    while uint(q) < end:
        mx = int(q[0])
        mn = mx
        if int(q[1]) > mx:
            mx = int(q[1])
        elif int(q[1]) < mn:
            mn = int(q[1])
        if int(q[2]) > mx:
            mx = int(q[2])
        elif int(q[2]) < mn:
            mn = int(q[2])
        if int(q[3]) > mx:
            mx = int(q[3])
        elif int(q[3]) < mn:
            mn = int(q[3])
        if int(q[4]) > mx:
            mx = int(q[4])
        elif int(q[4]) < mn:
            mn = int(q[4])
        if int(q[5]) > mx:
            mx = int(q[5])
        elif int(q[5]) < mn:
            mn = int(q[5])
        if int(q[6]) > mx:
            mx = int(q[6])
        elif int(q[6]) < mn:
            mn = int(q[6])
        if int(q[7]) > mx:
            mx = int(q[7])
        elif int(q[7]) < mn:
            mn = int(q[7])
        if int(q[8]) > mx:
            mx = int(q[8])
        elif int(q[8]) < mn:
            mn = int(q[8])
        if int(q[9]) > mx:
            mx = int(q[9])
        elif int(q[9]) < mn:
            mn = int(q[9])
        mx -= _B
        if mx < 0:  # no sample >= 0
            mx = 0
        mn = _B - mn
        if mn < 0:  # none < 0
            mn = 0
        o[0] = mx
        o[1] = mn
        o = ptr16(uint(o) + 4)
        q = ptr16(uint(q) + 20)
    n = ptr32(ws + _N)
    mx = n[0]
    if mx < 3:
        mx += 1
        n[0] = mx
    return mx


@micropython.viper
def _shift(q: ptr16, hi: int, lo: int) -> int:
    # The shift from the cells (P, N: a cell's largest s >= 0 and largest -s > 0): every
    # |w| there is at most ceil(max(P, N) cmax / 4096), and the samples that have P and N
    # give |w| of at least floor(P cmin / 4096) and ceil(N cmin / 4096) (w rounds down).
    # Unless -32768 sits where the window is 4096 (samples 238..241; C leaves that w out
    # of the max), every |w| <= 32767. When the largest bound and the largest floor have
    # the same bit length b, that is max |w|'s; else the window's samples in the cells
    # whose bound reaches 2**(b - 1) are looked at. Returns -1 when that does not settle
    # it either, or for a -32768 at 238..241 unless the shift is 0 anyway.
    ws = uint(q)
    bl = ptr8(ws + _BL)
    q = ptr16(ws + _WIN + 476)  # samples 238..241
    x = 0
    if int(q[0]) == 0 or int(q[1]) == 0 or int(q[2]) == 0 or int(q[3]) == 0:
        x = 1  # left out of the lower bounds: N of cells 23 and 24
    q = ptr16(ws + _CM)
    n23 = int(q[47])
    n24 = int(q[49])
    if x:
        q[47] = 0
        q[49] = 0
    end = uint(q) + 192
    ln = 0
    while uint(q) < end:
        p = int(q[0])
        n = int(q[1])
        if p * int(q[_PM]) > lo:
            lo = p * int(q[_PM])
        if n * int(q[_PM]) > ln:
            ln = n * int(q[_PM])
        if p > n:
            n = p
        if n * int(q[_PM + 1]) > hi:
            hi = n * int(q[_PM + 1])
        q = ptr16(uint(q) + 4)
    q = ptr16(ws + _CM)
    q[47] = n23
    q[49] = n24
    hi = (hi + 4095) >> 12
    if hi > 32767 or x:
        hi = 32767
    lo >>= 12
    ln = (ln + 4095) >> 12
    if ln > lo:
        lo = ln
    if hi >= 256:
        n = int(bl[hi >> 8]) + 8
    else:
        n = int(bl[hi])
    if lo >= 256:
        p = int(bl[lo >> 8]) + 8
    else:
        p = int(bl[lo])
    if n == p:
        if x and n < 15:
            return -1
        return 15 - n
    if x:
        return -1
    # bit length n or less: is some |w| >= 2**(n - 1)?
    lo = 1 << (n - 1)
    hi = lo << 12
    end = uint(q) + 192
    while uint(q) < end:
        m = int(q[0])
        if int(q[1]) > m:
            m = int(q[1])
        if m * int(q[_PM + 1]) + 4095 >= hi:
            s = ptr16(ws + _WIN + 5 * (uint(q) - ws - _CM))  # the cell's 10 samples
            e = uint(s) + 20
            while uint(s) < e:
                w = ((int(s[0]) - _B) * int(s[_PC])) >> 12
                if w >= lo or w <= 0 - lo:
                    return 15 - n
                s = ptr16(uint(s) + 2)
        q = ptr16(uint(q) + 4)
    if p == n - 1:
        return 16 - n
    return -1


@micropython.viper
def _slow(p: ptr16, o: int, w: int) -> int:
    # The exact shift: max |w| over the window, leaving out w = -32768 (s = -32768 where
    # the window is 4096, samples 238..241). If the shift is >= 1, such a w becomes 0
    # (int16(-32768 << shift)): those samples are set to 0 for stage 1, and bits 8..11 of
    # the return value say which, for _unpatch.
    ws = uint(p)
    p = ptr16(ws + _WIN)
    end = uint(p) + 960
    while uint(p) < end:
        w = ((int(p[0]) - _B) * int(p[_PC])) >> 12
        if w < 0:
            w = 0 - w
        if w < 32768:
            o |= w
        p = ptr16(uint(p) + 2)
    bl = ptr8(ws + _BL)
    if o >= 256:
        w = 7 - int(bl[o >> 8])
    else:
        w = 15 - int(bl[o])
    if w > 0:
        p = ptr16(ws + _WIN)
        o = 238
        while o < 242:
            if int(p[o]) == 0:
                p[o] = _B
                w |= 256 << (o - 238)
            o += 1
    return w


@micropython.viper
def _unpatch(p: ptr16, sh: int, i: int):
    p = ptr16(uint(p) + _WIN)
    i = 238
    while i < 242:
        if sh & (256 << (i - 238)):
            p[i] = 0
        i += 1


@micropython.viper
def _stage1(p: ptr16, k1: int, u: int):
    # The window, the shift (k1 & 255) and kissfft's first radix-4 stage in one pass: for
    # r = 0..63, z[r], z[r + 64], z[r + 128], z[r + 192] (z[n] = x[2n] + i x[2n+1]),
    # each / 4, and the butterfly (its unit twiddle 32767 is exact on values <= 2**13)
    # to positions 4 rev4(r) .. + 3. p walks the samples; the window and the output
    # offsets sit at fixed offsets from them. x / 4 for x = w << shift is computed as
    # (w 8191 + k1) >> rs, k1 = 2**14 >> shift, rs = 15 - shift (shift <= 14; 15 only for
    # an all-zero window); + 32768 with k0.
    ws = uint(p)
    k1 &= 255
    ptr32(ws + _K)[0] = k1  # for the square root
    if k1 > 14:
        k1 = 14
    rs = 15 - k1
    k1 = 16384 >> k1
    k0 = k1 + (_B << rs)
    p = ptr16(ws + _WIN)
    end = uint(p) + 256
    while uint(p) < end:
        a0r = (((((int(p[0]) - _B) * int(p[_PC])) >> 12) * 8191) + k0) >> rs
        a0i = (((((int(p[1]) - _B) * int(p[_PC + 1])) >> 12) * 8191) + k0) >> rs
        a2r = (((((int(p[256]) - _B) * int(p[_PC + 256])) >> 12) * 8191) + k1) >> rs
        a2i = (((((int(p[257]) - _B) * int(p[_PC + 257])) >> 12) * 8191) + k1) >> rs
        a1r = (((((int(p[128]) - _B) * int(p[_PC + 128])) >> 12) * 8191) + k1) >> rs
        a1i = (((((int(p[129]) - _B) * int(p[_PC + 129])) >> 12) * 8191) + k1) >> rs
        a3r = (((((int(p[384]) - _B) * int(p[_PC + 384])) >> 12) * 8191) + k1) >> rs
        a3i = (((((int(p[385]) - _B) * int(p[_PC + 385])) >> 12) * 8191) + k1) >> rs
        o = ptr16(ws + int(p[_PR]))
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

@micropython.viper
def _fft(p: ptr16, u: int, v: int):
    # kissfft's radix-4 stages 2..4 (quarter 4, 16, 64) on the points stage 1 wrote.
    ws = uint(p)
    # kissfft's radix-4 stage of quarter 4 (fstride 16) on every group of 16 points; its
    # twiddles (W^16k, W^32k, W^48k, k = 0..3) are constants here.
    end = uint(p) + _F + 1024
    p = ptr16(uint(p) + _F)
    while uint(p) < end:
        b1r = (int(p[8]) * 8191 + _CU) >> 15
        b1i = (int(p[9]) * 8191 + _CU) >> 15
        b2r = (int(p[16]) * 8191 + _CU) >> 15
        b2i = (int(p[17]) * 8191 + _CU) >> 15
        b3r = (int(p[24]) * 8191 + _CU) >> 15
        b3i = (int(p[25]) * 8191 + _CU) >> 15
        a0r = (int(p[0]) * 8191 + _CB) >> 15
        a0i = (int(p[1]) * 8191 + _CB) >> 15
        u = a0r + b2r
        v = b1r + b3r
        p[0] = u + v
        p[16] = u - v
        u = a0i + b2i
        v = b1i + b3i
        p[1] = u + v
        p[17] = u - v
        u = a0r - b2r
        v = b1i - b3i
        p[8] = u + v
        p[24] = u - v
        u = a0i - b2i
        v = b1r - b3r
        p[9] = u - v
        p[25] = u + v
        u = (int(p[10]) * 8191 + _CU) >> 15
        v = (int(p[11]) * 8191 + _CU) >> 15
        b1r = (u * 30273 + v * 12539 + 16384) >> 15
        b1i = (v * 30273 - u * 12539 + 16384) >> 15
        u = (int(p[18]) * 8191 + _CU) >> 15
        v = (int(p[19]) * 8191 + _CU) >> 15
        b2r = ((u + v) * 23170 + 16384) >> 15
        b2i = ((v - u) * 23170 + 16384) >> 15
        u = (int(p[26]) * 8191 + _CU) >> 15
        v = (int(p[27]) * 8191 + _CU) >> 15
        b3r = (u * 12539 + v * 30273 + 16384) >> 15
        b3i = (v * 12539 - u * 30273 + 16384) >> 15
        a0r = (int(p[2]) * 8191 + _CB) >> 15
        a0i = (int(p[3]) * 8191 + _CB) >> 15
        u = a0r + b2r
        v = b1r + b3r
        p[2] = u + v
        p[18] = u - v
        u = a0i + b2i
        v = b1i + b3i
        p[3] = u + v
        p[19] = u - v
        u = a0r - b2r
        v = b1i - b3i
        p[10] = u + v
        p[26] = u - v
        u = a0i - b2i
        v = b1r - b3r
        p[11] = u - v
        p[27] = u + v
        u = (int(p[12]) * 8191 + _CU) >> 15
        v = (int(p[13]) * 8191 + _CU) >> 15
        b1r = ((u + v) * 23170 + 16384) >> 15
        b1i = ((v - u) * 23170 + 16384) >> 15
        u = (int(p[20]) * 8191 + _CU) >> 15
        v = (int(p[21]) * 8191 + _CU) >> 15
        b2r = v
        b2i = 0 - u
        u = (int(p[28]) * 8191 + _CU) >> 15
        v = (int(p[29]) * 8191 + _CU) >> 15
        b3r = ((u - v) * -23170 + 16384) >> 15
        b3i = ((u + v) * -23170 + 16384) >> 15
        a0r = (int(p[4]) * 8191 + _CB) >> 15
        a0i = (int(p[5]) * 8191 + _CB) >> 15
        u = a0r + b2r
        v = b1r + b3r
        p[4] = u + v
        p[20] = u - v
        u = a0i + b2i
        v = b1i + b3i
        p[5] = u + v
        p[21] = u - v
        u = a0r - b2r
        v = b1i - b3i
        p[12] = u + v
        p[28] = u - v
        u = a0i - b2i
        v = b1r - b3r
        p[13] = u - v
        p[29] = u + v
        u = (int(p[14]) * 8191 + _CU) >> 15
        v = (int(p[15]) * 8191 + _CU) >> 15
        b1r = (u * 12539 + v * 30273 + 16384) >> 15
        b1i = (v * 12539 - u * 30273 + 16384) >> 15
        u = (int(p[22]) * 8191 + _CU) >> 15
        v = (int(p[23]) * 8191 + _CU) >> 15
        b2r = ((u - v) * -23170 + 16384) >> 15
        b2i = ((u + v) * -23170 + 16384) >> 15
        u = (int(p[30]) * 8191 + _CU) >> 15
        v = (int(p[31]) * 8191 + _CU) >> 15
        b3r = (0 - u * 30273 - v * 12539 + 16384) >> 15
        b3i = (u * 12539 - v * 30273 + 16384) >> 15
        a0r = (int(p[6]) * 8191 + _CB) >> 15
        a0i = (int(p[7]) * 8191 + _CB) >> 15
        u = a0r + b2r
        v = b1r + b3r
        p[6] = u + v
        p[22] = u - v
        u = a0i + b2i
        v = b1i + b3i
        p[7] = u + v
        p[23] = u - v
        u = a0r - b2r
        v = b1i - b3i
        p[14] = u + v
        p[30] = u - v
        u = a0i - b2i
        v = b1r - b3r
        p[15] = u - v
        p[31] = u + v
        p = ptr16(uint(p) + 64)
    p = ptr16(ws)
    # kissfft's radix-4 stage of quarter 16 (fstride 4): butterflies on z[g + k], z[g + k + 16],
    # z[g + k + 32], z[g + k + 48] for each group g of 64 points; twiddles W^4k, W^8k, W^12k.
    f = uint(p) + _F
    end = f + 1024
    t = ptr16(uint(p) + _T1)
    p = ptr16(f)
    while uint(p) < end:  # k = 0: unit twiddles (exact on values <= 2**13)
        b1r = (int(p[32]) * 8191 + _CU) >> 15
        b1i = (int(p[33]) * 8191 + _CU) >> 15
        b2r = (int(p[64]) * 8191 + _CU) >> 15
        b2i = (int(p[65]) * 8191 + _CU) >> 15
        b3r = (int(p[96]) * 8191 + _CU) >> 15
        b3i = (int(p[97]) * 8191 + _CU) >> 15
        a0r = (int(p[0]) * 8191 + _CB) >> 15
        a0i = (int(p[1]) * 8191 + _CB) >> 15
        u = a0r + b2r
        v = b1r + b3r
        p[0] = u + v
        p[64] = u - v
        u = a0i + b2i
        v = b1i + b3i
        p[1] = u + v
        p[65] = u - v
        u = a0r - b2r
        v = b1i - b3i
        p[32] = u + v
        p[96] = u - v
        u = a0i - b2i
        v = b1r - b3r
        p[33] = u - v
        p[97] = u + v
        p = ptr16(uint(p) + 256)
    k = 1
    while k < 16:
        t = ptr16(uint(t) + 16)
        c1 = int(t[0])
        n1 = int(t[1])
        c2 = int(t[_D2]) - _B
        s2 = int(t[_D2 + 1]) - _B
        c3 = int(t[_D3]) - _B
        s3 = int(t[_D3 + 1]) - _B
        p = ptr16(f + 4 * k)
        while uint(p) < end:
            u = (int(p[32]) * 8191 + _CU) >> 15
            v = (int(p[33]) * 8191 + _CU) >> 15
            b1r = (u * c1 + v * n1 + 16384) >> 15
            b1i = (v * c1 - u * n1 + 16384) >> 15
            u = (int(p[64]) * 8191 + _CU) >> 15
            v = (int(p[65]) * 8191 + _CU) >> 15
            b2r = (u * c2 - v * s2 + 16384) >> 15
            b2i = (u * s2 + v * c2 + 16384) >> 15
            u = (int(p[96]) * 8191 + _CU) >> 15
            v = (int(p[97]) * 8191 + _CU) >> 15
            b3r = (u * c3 - v * s3 + 16384) >> 15
            b3i = (u * s3 + v * c3 + 16384) >> 15
            a0r = (int(p[0]) * 8191 + _CB) >> 15
            a0i = (int(p[1]) * 8191 + _CB) >> 15
            u = a0r + b2r
            v = b1r + b3r
            p[0] = u + v
            p[64] = u - v
            u = a0i + b2i
            v = b1i + b3i
            p[1] = u + v
            p[65] = u - v
            u = a0r - b2r
            v = b1i - b3i
            p[32] = u + v
            p[96] = u - v
            u = a0i - b2i
            v = b1r - b3r
            p[33] = u - v
            p[97] = u + v
            p = ptr16(uint(p) + 256)
        k += 1
    p = ptr16(ws)
    # kissfft's last radix-4 stage (quarter 64, fstride 1): butterflies on z[k], z[k + 64],
    # z[k + 128], z[k + 192]; the twiddles of k sit at fixed offsets from z[k].
    end = uint(p) + _F + 256
    p = ptr16(uint(p) + _F)
    b1r = (int(p[128]) * 8191 + _CU) >> 15
    b1i = (int(p[129]) * 8191 + _CU) >> 15
    b2r = (int(p[256]) * 8191 + _CU) >> 15
    b2i = (int(p[257]) * 8191 + _CU) >> 15
    b3r = (int(p[384]) * 8191 + _CU) >> 15
    b3i = (int(p[385]) * 8191 + _CU) >> 15
    a0r = (int(p[0]) * 8191 + _CB) >> 15
    a0i = (int(p[1]) * 8191 + _CB) >> 15
    u = a0r + b2r
    v = b1r + b3r
    p[0] = u + v
    p[256] = u - v
    u = a0i + b2i
    v = b1i + b3i
    p[1] = u + v
    p[257] = u - v
    u = a0r - b2r
    v = b1i - b3i
    p[128] = u + v
    p[384] = u - v
    u = a0i - b2i
    v = b1r - b3r
    p[129] = u - v
    p[385] = u + v
    p = ptr16(uint(p) + 4)
    while uint(p) < end:
        u = (int(p[128]) * 8191 + _CU) >> 15
        v = (int(p[129]) * 8191 + _CU) >> 15
        b1r = (u * int(p[_P1]) + v * int(p[_P1 + 1]) + 16384) >> 15
        b1i = (v * int(p[_P1]) - u * int(p[_P1 + 1]) + 16384) >> 15
        u = (int(p[256]) * 8191 + _CU) >> 15
        v = (int(p[257]) * 8191 + _CU) >> 15
        b2r = (u * (int(p[_P2]) - _B) - v * (int(p[_P2 + 1]) - _B) + 16384) >> 15
        b2i = (u * (int(p[_P2 + 1]) - _B) + v * (int(p[_P2]) - _B) + 16384) >> 15
        u = (int(p[384]) * 8191 + _CU) >> 15
        v = (int(p[385]) * 8191 + _CU) >> 15
        b3r = (u * (int(p[_P3]) - _B) - v * (int(p[_P3 + 1]) - _B) + 16384) >> 15
        b3i = (u * (int(p[_P3 + 1]) - _B) + v * (int(p[_P3]) - _B) + 16384) >> 15
        a0r = (int(p[0]) * 8191 + _CB) >> 15
        a0i = (int(p[1]) * 8191 + _CB) >> 15
        u = a0r + b2r
        v = b1r + b3r
        p[0] = u + v
        p[256] = u - v
        u = a0i + b2i
        v = b1i + b3i
        p[1] = u + v
        p[257] = u - v
        u = a0r - b2r
        v = b1i - b3i
        p[128] = u + v
        p[384] = u - v
        u = a0i - b2i
        v = b1r - b3r
        p[129] = u - v
        p[385] = u + v
        p = ptr16(uint(p) + 4)


@micropython.viper
def _spectrum(q: ptr16, r: ptr16, x: int):
    # kiss_fftr's split for k = 5..128: Z[k] (q) and conj Z[256 - k] (r), each / 2, into
    # bins k and 256 - k, whose energies (< 2**31) overwrite those two points (for
    # k = 128 C keeps the second formula, written last here). C's int16 wraps are kept:
    # -Z.i, and the twiddled difference. The twiddle (c, s) is stored as (-c, -s).
    # Then the filterbank.
    ws = uint(q)
    end = uint(q) + _F + 516
    q = ptr16(uint(q) + _F + 20)
    r = ptr16(uint(r) + _F + 1004)
    while uint(q) < end:
        pr = (int(q[0]) * 16383 + _CU2) >> 15
        nr = (int(r[0]) * 16383 + _CU2) >> 15
        x = (int(q[1]) * 16383 + _CU2) >> 15
        ni = (((65536 - int(r[1])) & 0xFFFF) * 16383 + _CU2) >> 15
        di = x - ni
        pi = x + ni
        x = pr - nr
        pr += nr
        # |x|, |di| <= 32766: the products' sum < 2**31, as C's int32 sum
        tr = ((((di * int(q[_PS + 1]) - x * int(q[_PS]) + 16384) >> 15) + _B) & 0xFFFF) - _B
        ti = (((16384 - x * int(q[_PS + 1]) - di * int(q[_PS])) >> 15) + _B & 0xFFFF) - _B
        x = (pi + ti) >> 1
        x *= x
        nr = (pr + tr) >> 1
        x += nr * nr
        q[0] = x
        q[1] = x >> 16
        x = (ti - pi) >> 1
        x *= x
        nr = (pr - tr) >> 1
        x += nr * nr
        r[0] = x
        r[1] = x >> 16
        q = ptr16(uint(q) + 4)
        r = ptr16(uint(r) - 4)
    # The filterbank. Per channel c: A = sum weight m, M = sum m over its bins (m = hi
    # 2**16 + lo, summed per limb: weight sums <= 29817, so weight lo < 2**31). Channel
    # c - 1's 64-bit sum is A_c + sum (4096 - weight) m over the bins of c - 1
    # = A_c + 4096 M_(c-1) - A_(c-1), stored as (lo16, hi), hi < 2**31 (4096 M_(c-1) -
    # A_(c-1) = sum (4096 - weight) hi 2**16 + ..., each part < 2**31). Bins go two at a
    # time, an odd one first. q walks the bins, r the sums (as i32), x is A's low part.
    f = ptr8(ws + _FIRST)
    r = ptr16(ws + _WORK - 16)
    q = ptr16(ws + _F + 20)
    pal = 0
    pah = 0
    pml = 0
    pmh = 0
    while uint(r) < ws + _WORK + 640:
        n = int(f[1]) - int(f[0])
        end = uint(q) + 4 * n
        if n & 1:
            x = int(q[_PW]) * int(q[0])
            ah = int(q[_PW]) * int(q[1])
            ml = int(q[0])
            mh = int(q[1])
            q = ptr16(uint(q) + 4)
        else:
            x = 0
            ah = 0
            ml = 0
            mh = 0
        while uint(q) < end:
            x += int(q[_PW]) * int(q[0]) + int(q[_PW + 2]) * int(q[2])
            ah += int(q[_PW]) * int(q[1]) + int(q[_PW + 2]) * int(q[3])
            ml += int(q[0]) + int(q[2])
            mh += int(q[1]) + int(q[3])
            q = ptr16(uint(q) + 8)
        lo = x - pal
        pal = x
        x = (pmh << 12) - pah + ah + ((pml >> 16) << 12) + (lo >> 16)
        lo = (lo & 0xFFFF) + ((pml & 0xFFFF) << 12)
        pah = ah
        pml = ml
        pmh = mh
        ptr32(r)[0] = lo & 0xFFFF
        ptr32(r)[1] = x + (lo >> 16)
        r = ptr16(uint(r) + 16)
        f = ptr8(uint(f) + 1)


@micropython.viper
def _tail(w: ptr32, v: int, t: int, out: ptr16):
    # Per channel (w walks the sums and the noise estimates): the square root, noise
    # reduction, PCAN and the log.
    ws = uint(w)
    bl = ptr8(ws + _BL)
    seed = ptr16(ws + _SQRT - 128)
    lut = ptr16(ws + _PCAN)
    lg = ptr16(ws + _LOG)
    sh = int(ptr32(ws + _K)[0])
    w = ptr32(ws + _WORK)
    end = ws + _WORK + 640
    while uint(w) < end:
        # Sqrt64(n), n = hi 2**16 + lo: floor sqrt, + 1 when the remainder exceeds it
        # (Sqrt32, below 2**32, stops at 65535). n is normalised into [2**28, 2**30) by an
        # even shift, one Newton step from a table seed gives that part's isqrt; for
        # n >= 2**30 a Newton step on the exact remainder and an exact check in 12-bit
        # limbs give the rest.
        lo = int(w[0])
        hi = int(w[1])
        if hi < 16384:
            v = (hi << 16) | lo
            if hi >= 4096:
                t = int(seed[v >> 22])
                t = (t + v // t) >> 1
                if t * t > v:
                    t -= 1
                if v - t * t > t:
                    t += 1
            elif v == 0:
                t = 0
            else:
                t = v
                b = 0
                if t >= 65536:
                    t >>= 16
                    b = 16
                if t >= 256:
                    t >>= 8
                    b += 8
                e2 = (30 - b - int(bl[t])) & 30
                x = v << e2
                t = int(seed[x >> 22])
                t = (t + x // t) >> 1
                if t * t > x:
                    t -= 1
                t >>= e2 >> 1
                if v - t * t > t:
                    t += 1
        else:
            t = hi
            b = 16
            if t >= 65536:
                t >>= 16
                b = 32
            if t >= 256:
                t >>= 8
                b += 8
            e2 = (b + int(bl[t]) - 29) & 62
            if e2 <= 16:
                x = (hi << (16 - e2)) | (lo >> e2)
                nl = lo & ((1 << e2) - 1)
            else:
                x = hi >> (e2 - 16)
                nl = ((hi & ((1 << (e2 - 16)) - 1)) << 16) | lo
            t = int(seed[x >> 22])
            t = (t + x // t) >> 1
            if t * t > x:
                t -= 1
            b = e2 >> 1
            t = (t << b) + ((((x - t * t) << b) + (nl >> b)) // (t << 1))
            # t is isqrt(n), or isqrt(n) + 1 when sqrt(n) is within 2**-6 below that: then
            # n > isqrt(n)**2 + isqrt(n) and t is the rounded root already. The remainder
            # n - t**2 from 12-bit limbs of t (< 2**24):
            b = t >> 12
            x = t & 4095
            v = ((((hi - ((b * b) << 8)) << 4) - ((b * x) << 1)) << 12) + lo - x * x
            if v > t:
                t += 1
            if t > 65535 and hi < 65536:
                t = 65535
        v = t >> sh
        # noise reduction (v < 2**21, see the top: t = v << 10 < 2**31)
        t = v << 10
        e = int(w[2])
        sm = int(w[3])
        d = t - e
        e += (d >> 14) * sm + (((d & 16383) * sm) >> 14)
        w[2] = e
        v = (v * 819) >> 14
        if e < t:
            t = (t - e) >> 10
            if t > v:
                v = t
        # PCAN: gain = WideDynamicFunction(e) in [0, 32624]
        if e <= 2:
            g = int(lut[e])
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
            r = ptr16(uint(lut) + 8 * n - 12)  # this interval's y0, -a1, a2 + 32768
            g = (((int(r[2]) - _B) * f) >> 5) - (int(r[1]) << 5)
            g = ((g * f + 16384) >> 15) + int(r[0])
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
            v -= 1 << n
            if n < 16:
                v <<= 16 - n
            else:
                v >>= n - 16
            r = ptr16(uint(lg) + ((v >> 8) & 0x1FE))  # kLogLut[v >> 9]
            c = int(r[0])
            v += c + (((int(r[1]) - c) * (v & 511)) >> 16)
            # (45426 log2 + 2**15) >> 16 = 45426 n + (22713 f + 2**14) >> 15 (< 2**31)
            v = (45426 * n + 512 + ((v * 22713 + 16384) >> 15)) >> 10
            if v > 65535:
                v = 65535
        else:
            v = 0
        out[0] = v
        out = ptr16(uint(out) + 2)
        w = ptr32(uint(w) + 16)

# NumPy references of the firmware's signal path, bit-exact, for tests and tools that
# need to know what the board made of a recording (firmware/earshot/mic.py): convert() is
# what its detector hears, sent() what leaves it (the pre-roll ring holds G.711 u-law).
GAIN_STEP_UP, GAIN_STEP_DOWN = 18383, 14602  # 10**(+-1/20) in Q14, as on the board


def gain_q6(gain_db):
    g = 64 << 8
    for _ in range(abs(gain_db)):
        g = (g * (GAIN_STEP_UP if gain_db > 0 else GAIN_STEP_DOWN)) >> 14
    return (g + 128) >> 8


def convert(pcm16, gain_db, dc_removal):
    """What the board's mic path makes of 16-bit samples arriving in INMP441 slots
    (sample << 16), from the moment the I2S starts. Returns int16 samples."""
    import numpy as np

    x = np.asarray(pcm16, dtype=np.int64) << 4  # top 20 bits of the 32-bit slot
    if dc_removal:
        x = _remove_dc(x)
    y = (x * gain_q6(gain_db)) >> 10
    return np.clip(y, -32768, 32767).astype(np.int16)


def _remove_dc(x):
    # The one-pole tracker is recursive, so it runs sample by sample (as on the board).
    out = x.copy()
    acc = 0
    for i, v in enumerate(x.tolist()):
        acc += ((v << 8) - acc) >> 10
        out[i] = v - (acc >> 8)
    return out


ULAW_CLIP, ULAW_BIAS = 32635, 132  # G.711 u-law on 16-bit samples, as Sun's reference g711.c


def ulaw(pcm16):
    """G.711 u-law bytes of 16-bit samples."""
    import numpy as np

    x = np.asarray(pcm16, dtype=np.int64)
    mask = np.where(x < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(x), ULAW_CLIP) + ULAW_BIAS
    seg = np.minimum(np.floor(np.log2(mag >> 7)).astype(np.int64), 7)
    return (((seg << 4) | ((mag >> (seg + 3)) & 0x0F)) ^ mask).astype(np.uint8)


def unulaw(codes):
    """16-bit samples of G.711 u-law bytes."""
    import numpy as np

    b = ~np.asarray(codes, dtype=np.int64) & 0xFF
    m = (((b & 0x0F) << 3) + ULAW_BIAS) << ((b & 0x70) >> 4)
    return np.where(b & 0x80, ULAW_BIAS - m, m - ULAW_BIAS).astype(np.int16)


def sent(pcm16, gain_db, dc_removal):
    """What leaves the board for a recording: convert(), through the u-law ring."""
    return unulaw(ulaw(convert(pcm16, gain_db, dc_removal)))


# Reading WAV files for the board: anything PCM in, 16 kHz mono int16 out, or one clear
# error. The board's mic is 16 kHz mono, so other rates and channel counts are converted
# (channels averaged, rate by polyphase resampling) and the conversion is reported.
import wave
from math import gcd
from pathlib import Path

from host_tools.errors import CommandError

RATE = 16000


def load_wav(path):
    # Returns (samples as int16 numpy array at 16 kHz mono, list of conversion notes).
    import numpy as np

    path = Path(path)
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(frames)
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file; give a WAV recording (16 kHz mono is best)")
    except (wave.Error, EOFError, OSError) as e:
        raise CommandError(f"{path}: not a readable PCM WAV file ({e}); convert it, e.g. `sox in.mp3 -r 16000 -c 1 -b 16 out.wav`")
    if width not in (1, 2, 3, 4) or channels < 1 or rate < 4000:
        raise CommandError(f"{path}: unsupported WAV format ({width * 8}-bit, {channels} ch, {rate} Hz)")
    usable = len(raw) // (width * channels) * width * channels
    if usable == 0:
        raise CommandError(f"{path}: the WAV file holds no audio")
    x = _to_float(raw[:usable], width).reshape(-1, channels)
    notes = []
    if usable < frames * width * channels:
        notes.append(f"truncated file: used the {usable // (width * channels)} complete frames of {frames}")
    if channels > 1:
        notes.append(f"mixed {channels} channels to mono")
    x = x.mean(axis=1)
    if rate != RATE:
        from scipy.signal import resample_poly

        g = gcd(rate, RATE)
        x = resample_poly(x, RATE // g, rate // g)
        notes.append(f"resampled {rate} Hz to {RATE} Hz")
    if width == 2 and channels == 1 and rate == RATE:
        pcm = np.frombuffer(raw[:usable], dtype="<i2").copy()  # bit for bit
    else:
        pcm = np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)
    return pcm, notes


def _to_float(raw, width):
    import numpy as np

    if width == 1:
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128) / 128
    if width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        return v / float(1 << 23)
    dtype = {2: "<i2", 4: "<i4"}[width]
    return np.frombuffer(raw, dtype=dtype).astype(np.float64) / float(1 << (8 * width - 1))


def write_wav(path, pcm, rate=RATE):
    import numpy as np

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())

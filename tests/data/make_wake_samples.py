# Makes the bundled wake-word test recordings (run once; the WAVs are committed):
#   hey_jarvis.wav  four held-out "hey jarvis" utterances (voices, carrier sentences and
#                   noises the training never used), one every 6 s
#   not_jarvis.wav  40 s of held-out negative audio: speech, near misses of the phrase,
#                   TV-like babble, household noise and music
# Seeds were fixed before the first run and not picked afterwards for a result.
#   python tests/data/make_wake_samples.py
import json
from pathlib import Path

import numpy as np

from host_tools.audio import write_wav
from host_tools.wake import data

HERE = Path(__file__).parent
SLOT_S = 6.0


def main():
    clips = data.positive_set("hey jarvis", "heldout", 4, seed=2026, progress=False)
    slot = int(SLOT_S * 16000)
    audio = np.random.default_rng(2026).normal(0, 8, slot * len(clips))
    ends = []
    for k, c in enumerate(clips):
        audio[k * slot:k * slot + len(c.pcm)] += c.pcm
        ends.append(round((k * slot + c.end) / 16000, 3))
    write_wav(HERE / "hey_jarvis.wav", audio.clip(-32768, 32767).astype(np.int16))
    (HERE / "hey_jarvis.json").write_text(json.dumps({"phrase_ends_s": ends, "sources": [c.source for c in clips]},
                                                     indent=1) + "\n")
    neg, segments = data.negative_stream("heldout", 40 / 3600, seed=2026, progress=False, with_segments=True)
    write_wav(HERE / "not_jarvis.wav", np.asarray(neg, np.int16))
    (HERE / "not_jarvis.json").write_text(json.dumps(
        {"segments": [{"start_s": round(a / 16000, 2), "stop_s": round(b / 16000, 2), "source": s, "text": t}
                      for a, b, s, t in segments]}, indent=1) + "\n")


if __name__ == "__main__":
    main()

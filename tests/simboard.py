# Running the virtual board from tests: one call, and what an auditor would look at.
import json
import wave
from pathlib import Path

import numpy as np

from host_tools.audio import write_wav
from host_tools.cli import main
from host_tools.paths import DATA
from host_tools.trace import read_trace

# What the tests' board hears unless a test says otherwise: room noise, then "Hey, what's the
# weather like tomorrow in Berlin?" from 3.3 s to 6.6 s (no wake phrase: push-to-talk).
SPEECH = DATA / "speech.wav"


class Run:
    def __init__(self, tmp, code, out, err):
        self.code = code
        self.out = out
        self.err = err
        self.board = tmp / "board"
        self.recordings = tmp / "recordings"
        trace = tmp / "trace.jsonl"
        self.events = read_trace(trace) if trace.exists() else []

    def serial(self):
        return [e["line"] for e in self.events if e["ev"] == "serial"]

    def sessions(self):
        # (metadata, samples) of every stored session, oldest first.
        out = []
        for meta_path in sorted(self.recordings.glob("*.json")):
            meta = json.loads(meta_path.read_text())
            with wave.open(str(self.recordings / meta["wav"])) as w:
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            out.append((meta, pcm))
        return out

    def of(self, kind):
        return [e for e in self.events if e["ev"] == kind]

    def sent(self):
        # What the board sent, less TLS set-up (a sniffer tells it by its record headers).
        return [e for e in self.of("net") if e["dir"] == "out" and e.get("tls") != "handshake"]


def sim(tmp, capsys, *args, wav=SPEECH):
    tmp = Path(tmp)
    argv = ["sim", "--board-dir", str(tmp / "board"), "--recordings", str(tmp / "recordings"),
            "--trace", str(tmp / "trace.jsonl"), "--no-live"]
    if wav is not None:  # None: the simulator's own default (the demo recording)
        argv += ["--wav", str(wav)]
    code = main(argv + [str(a) for a in args])
    captured = capsys.readouterr()
    return Run(tmp, code, captured.out, captured.err)


def make_wav(path, seconds, seed=0, bursts=()):
    # Room noise with optional loud tone bursts [(start_s, end_s), ...] standing in for speech.
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    x = np.cumsum(rng.normal(0, 40, n))  # brown-ish noise
    x -= np.convolve(x, np.ones(400) / 400, mode="same")  # keep it centred
    t = np.arange(n) / 16000
    for a, b in bursts:
        on = (t >= a) & (t < b)
        x[on] += 6000 * np.sin(2 * np.pi * 220 * t[on]) * np.sin(2 * np.pi * 3 * t[on]) ** 2
    write_wav(path, np.clip(x, -32768, 32767).astype(np.int16))
    return path


def find(haystack, needle):
    # Start indices where needle occurs in haystack exactly.
    if len(needle) > len(haystack):
        return []
    starts = np.flatnonzero(haystack[: len(haystack) - len(needle) + 1] == needle[0])
    return [int(s) for s in starts if np.array_equal(haystack[s:s + len(needle)], needle)]

# What the board's wake-word runtime (firmware/earshot/inference.py) costs, per model:
#   x86 instructions per second of audio  valgrind callgrind on the unix port, the
#                                         difference of two run lengths (start-up cancels),
#                                         fed the frontend's features of a real recording
#   bytes of RAM                          gc.mem_alloc() around wakemodel.load + Net
# `python -m host_tools.wake.inference_cost [NAME_OR_PATH ...] [--wav FILE]`
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from host_tools.errors import CommandError
from host_tools.paths import DATA, FIRMWARE, micropython
from host_tools.wake import convert

FRAME_S = 0.01  # one feature frame per 10 ms of audio

_LOOP = """
import array, gc, micropython, sys
from earshot import inference, wakemodel
MODEL, FEATS, FEEDS = sys.argv[-3], sys.argv[-2], int(sys.argv[-1])
data = open(FEATS, 'rb').read()
frames = [array.array('H', data[80 * i:80 * i + 80]) for i in range(len(data) // 80)]
del data
gc.collect()
before = gc.mem_alloc()
net = inference.Net(wakemodel.load(MODEL))
gc.collect()
print('ram', gc.mem_alloc() - before)
@micropython.native
def run(n, k):
    for i in range(n):
        net.feed(frames[i % k])
run(FEEDS, len(frames))
"""


def _features(wav):
    from pymicro_features import MicroFrontend

    from host_tools.audio import load_wav

    pcm, _notes = load_wav(wav)
    raw = np.clip(pcm, -32768, 32767).astype("<i2").tobytes()
    fe = MicroFrontend()
    out = []
    for at in range(0, len(raw) - 319, 320):
        r = fe.process_samples(raw[at:at + 320])
        if r.features:
            out.append([int(round(f * 25.6)) for f in r.features])
    return np.array(out, dtype="<u2")


def _run(args, callgrind, tmp):
    env = dict(os.environ, MICROPYPATH=f"{FIRMWARE}:.frozen")
    script = Path(tmp) / "loop.py"
    script.write_text(_LOOP)
    cmd = [micropython(), str(script), *map(str, args)]
    if callgrind:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out"] + cmd
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CommandError(f"the cost run failed: {(proc.stderr or proc.stdout)[-500:]}")
    ram = int(re.search(r"ram (\d+)", proc.stdout).group(1))
    if not callgrind:
        return ram, None
    m = re.search(r"Collected : (\d+)", proc.stderr)
    return ram, int(m.group(1))


def measure(model, wav=DATA / "hey_jarvis.wav", short=300, long=1200):
    """{"instructions_per_second", "ram", "macs", "file_bytes"} for a bundled name or a
    .tflite/.json path, fed the features of `wav` (looped)."""
    if shutil.which("valgrind") is None:
        raise CommandError("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="earshot-cost-") as tmp:
        path = Path(tmp) / "model.ewn"
        meta = convert.convert(*convert.source_of(model), path)
        feats = Path(tmp) / "feats.bin"
        feats.write_bytes(_features(wav).tobytes())
        ram, a = _run([path, feats, short], True, tmp)
        _, b = _run([path, feats, long], True, tmp)
        return {"instructions_per_second": (b - a) / ((long - short) * FRAME_S), "ram": ram,
                "macs": meta["macs"], "file_bytes": path.stat().st_size}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m host_tools.wake.inference_cost",
                                 description="x86 instructions per audio second and RAM of the board's runtime")
    ap.add_argument("models", nargs="*", default=list(convert.BUNDLED))
    ap.add_argument("--wav", default=str(DATA / "hey_jarvis.wav"), help="features from this recording")
    args = ap.parse_args(argv)
    try:
        for name in args.models:
            r = measure(name, args.wav)
            print(f"{name}: {r['instructions_per_second'] / 1e6:.2f} M x86 instructions per second of audio, "
                  f"{r['ram']} bytes of RAM, {r['macs']} multiply-adds per invocation")
    except CommandError as e:
        print(f"earshot: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

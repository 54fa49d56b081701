# Runs the FIRMWARE wake-word detector (firmware/earshot/features.py + detector.py) over
# long recordings, under the MicroPython unix port: what `earshot wake detect` reports is
# what the board would do, not what a re-implementation thinks it would do.
#
# One MicroPython process per call. The host streams the audio through its stdin:
#   per file  u32 little-endian sample count n, then n int16 samples (little-endian)
#   end       u32 0xFFFFFFFF
# and reads one line per event from its stdout:
#   "D <file> <frame> <score>"   a detection on that frame (frame i covers samples
#                                [320 i, 320 i + 320): its end is the detection time)
#   "E <file> <frames>"          end of a file (the detector is reset before the next)
#   "X <message>"                the model was refused (wakemodel.ModelError)
# The MicroPython side reads blocks of 200 frames into one buffer and allocates nothing
# per frame.
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from host_tools.errors import CommandError
from host_tools.paths import FIRMWARE, micropython

RATE = 16000
HOP = 320
BLOCK_FRAMES = 200
_END = 0xFFFFFFFF

_BOARD_SIDE = """
import sys, micropython
from earshot import wakemodel
from earshot.detector import WakeDetector

BLOCK = %(block)d
FRAME = 640

def fill(stream, mv, n):
    # reads exactly n bytes into mv (a pipe hands them out in pieces)
    got = 0
    while got < n:
        k = stream.readinto(mv[got:n])
        if not k:
            return got
        got += k
    return got

@micropython.native
def run_block(det, buf, frames, file, first):
    for i in range(frames):
        if det.process(buf, i * FRAME):
            print("D", file, first + i, det.score)

def main(path, cutoff):
    try:
        model = wakemodel.load(path)
        if cutoff.isdigit():
            cutoff = int(cutoff)
        det = WakeDetector(model, cutoff)
    except (wakemodel.ModelError, ValueError) as e:
        print("X", e)
        return
    stream = sys.stdin.buffer
    head = bytearray(4)
    hv = memoryview(head)
    buf = bytearray(BLOCK * FRAME)
    mv = memoryview(buf)
    file = 0
    while fill(stream, hv, 4) == 4:
        n = int.from_bytes(head, "little")
        if n == 0xFFFFFFFF:
            break
        left = 2 * n
        frame = 0
        while left:
            want = min(left, BLOCK * FRAME)
            got = fill(stream, mv, want)
            left -= got
            frames = got // FRAME
            run_block(det, buf, frames, file, frame)
            frame += frames
            if got < want:
                left = 0
        print("E", file, frame)
        det.reset()
        file += 1

main(sys.argv[-2], sys.argv[-1])
"""


def _inputs(items):
    # -> list of (name, int16 array): a WAV's path (read and converted like the simulator
    # does), a pair's name, or a bare array's index
    from host_tools.audio import load_wav

    out = []
    for k, item in enumerate(items):
        if isinstance(item, (str, Path)):
            pcm, _notes = load_wav(item)
            out.append((str(item), pcm))
        elif isinstance(item, tuple):
            name, pcm = item
            out.append((str(name), np.asarray(pcm)))
        else:
            out.append((k, np.asarray(item)))
    for name, pcm in out:
        if pcm.ndim != 1:
            raise CommandError(f"input {name}: expected mono 16 kHz samples")
    return [(name, np.clip(pcm, -32768, 32767).astype("<i2", copy=False)) for name, pcm in out]


def run_firmware_detector(model_path, inputs, cutoff="default", echo=None, stats=None):
    """Detections of the firmware's WakeDetector on each input, in order.

    inputs: WAV paths, int16 arrays or (name, array) pairs (16 kHz mono). cutoff: 0..255
    or a sensitivity name of the model. Returns [{"file", "t", "score"}]: file is the path
    as given, the pair's name or a bare array's index; t is the end of the detecting frame
    in seconds from the start of that input; score 0..255. echo(d) is called as each one
    arrives. stats (a dict) receives frames, audio_s, wall_s and x_realtime."""
    files = _inputs(inputs if isinstance(inputs, (list, tuple)) else [inputs])
    if isinstance(cutoff, str) and cutoff.isdigit():
        cutoff = int(cutoff)
    env = dict(os.environ, MICROPYPATH=f"{FIRMWARE}:.frozen")
    code = _BOARD_SIDE % {"block": BLOCK_FRAMES}
    started = time.monotonic()
    try:
        proc = subprocess.Popen([micropython(), "-X", "heapsize=4m", "-c", code, str(model_path), str(cutoff)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    except OSError as e:
        raise CommandError(f"cannot start MicroPython ({e})")
    feeder_error = []

    def feed():
        try:
            for _name, pcm in files:
                n = len(pcm) // HOP * HOP
                proc.stdin.write(n.to_bytes(4, "little"))
                view = memoryview(pcm[:n].tobytes())
                for i in range(0, len(view), 1 << 20):
                    proc.stdin.write(view[i:i + (1 << 20)])
            proc.stdin.write(_END.to_bytes(4, "little"))
            proc.stdin.close()
        except (BrokenPipeError, OSError) as e:  # the board side stopped: its output says why
            feeder_error.append(e)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    found, frames, refused = [], 0, None
    for raw in proc.stdout:
        parts = raw.decode(errors="replace").split()
        if not parts:
            continue
        if parts[0] == "D":
            k, frame, score = int(parts[1]), int(parts[2]), int(parts[3])
            d = {"file": files[k][0], "t": round((frame + 1) * HOP / RATE, 2), "score": score}
            found.append(d)
            if echo:
                echo(d)
        elif parts[0] == "E":
            frames += int(parts[2])
        elif parts[0] == "X":
            refused = raw.decode(errors="replace")[2:].strip()
    err = proc.stderr.read().decode(errors="replace")
    status = proc.wait()
    feeder.join()
    if refused:
        raise CommandError(f"the firmware refused the model: {refused}")
    if status != 0:
        raise CommandError(f"the firmware detector failed (MicroPython exit {status}): {err.strip()[-500:]}")
    wall = time.monotonic() - started
    if stats is not None:
        audio_s = frames * HOP / RATE
        stats.update({"frames": frames, "audio_s": audio_s, "wall_s": wall,
                      "x_realtime": audio_s / wall if wall > 0 else float("inf")})
    return found


# --- cost on the board ---------------------------------------------------------------
# `python -m host_tools.wake.detect_runner [model.eww]`: x86 instructions per second of
# audio (valgrind callgrind on the unix port; the difference of two run lengths cancels
# start-up, as host_tools/bench.py does) for the features alone and for the whole
# detector, and the speed of run_firmware_detector on ten minutes of audio.

_COST_LOOP = """
import sys, micropython, struct
from earshot.features import Features
from earshot import wakemodel
from earshot.detector import WakeDetector
FRAMES, WHAT, MODEL = int(sys.argv[-1]), sys.argv[-2], sys.argv[-3]
buf = bytearray(640 * 50)
s = 12345
for i in range(320 * 50):  # speech-level noise, 50 frames, looped
    s = (s * 1103515245 + 12345) & 0x7fffffff
    struct.pack_into('<h', buf, 2 * i, ((s >> 8) % 6001) - 3000)
obj = Features() if WHAT == "features" else WakeDetector(wakemodel.load(MODEL), 255)
step = obj.feed if WHAT == "features" else obj.process
@micropython.native
def run(n):
    for k in range(n):
        step(buf, (k % 50) * 640)
run(FRAMES)
"""


def _callgrind(script, args):
    import re
    import shutil
    import tempfile

    if shutil.which("valgrind") is None:
        raise CommandError("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cost.py"
        path.write_text(script)
        env = dict(os.environ, MICROPYPATH=f"{FIRMWARE}:.frozen")
        proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
                               micropython(), str(path), *map(str, args)],
                              env=env, capture_output=True, text=True)
        m = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or not m:
            raise CommandError(f"callgrind run failed: {proc.stderr[-500:]}")
        return int(m.group(1))


def instructions_per_second(what, model_path="-", short=100, long=400):
    """x86 instructions per second of audio for 'features' or 'detector'."""
    a = _callgrind(_COST_LOOP, [model_path, what, short])
    b = _callgrind(_COST_LOOP, [model_path, what, long])
    return (b - a) / ((long - short) * HOP / RATE)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        model = argv[0]
    else:
        import tempfile

        from host_tools.wake import modelfile

        model = str(Path(tempfile.mkdtemp()) / "random.eww")
        modelfile.save(model, *modelfile.random_model(1))
    feats = instructions_per_second("features", model)
    det = instructions_per_second("detector", model)
    print(f"features: {feats / 1e6:.2f} M x86 instructions per second of audio")
    print(f"features + model + decision: {det / 1e6:.2f} M per second of audio ({model})")
    rng = np.random.default_rng(1)
    pcm = (rng.normal(0, 1500, RATE * 600)).astype(np.int16)
    stats = {}
    run_firmware_detector(model, [pcm], 255, stats=stats)
    print(f"run_firmware_detector: {stats['audio_s'] / 60:.0f} min of audio in {stats['wall_s']:.1f} s "
          f"({stats['x_realtime']:.0f}x real time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

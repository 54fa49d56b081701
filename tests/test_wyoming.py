# `earshot receive --wyoming`: Home Assistant's side of Wyoming (the `wyoming` package's
# client) describes the satellite, runs it, and receives the sessions the receiver accepts,
# audio bit for bit; a session the wake-word check rejects never reaches it.
import asyncio
import json
import socket

import numpy as np
import pytest

from host_tools import verify
from host_tools.receiver import ReceiverThread
from tests import test_receiver
from tests.test_receiver import Client, chunk, event, hello, paired_boards, start, stop  # noqa: F401
from tests.test_verify import NEAR_MISS_END, NEGATIVES, PHRASE_ENDS, POSITIVES, _cut, _session

pytest.importorskip("wyoming")
from wyoming.client import AsyncTcpClient  # noqa: E402
from wyoming.info import Describe, Info  # noqa: E402
from wyoming.ping import Ping  # noqa: E402
from wyoming.satellite import RunSatellite  # noqa: E402


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _home_assistant(port, board, until="audio-stop", timeout=10.0):
    # Connects like Home Assistant, runs the satellite, lets `board()` stream, and returns
    # (info, [(type, data, payload)]) up to the first `until` event (or the timeout).
    async with AsyncTcpClient("127.0.0.1", port) as ha:
        await ha.write_event(Describe().event())
        info = await ha.read_event()
        await ha.write_event(RunSatellite().event())
        await ha.write_event(Ping(text="sync").event())  # handled in order: once it is answered,
        assert (await ha.read_event()).type == "pong"  # run-satellite has been too
        streaming = asyncio.create_task(asyncio.to_thread(board))
        got = []
        try:
            while True:
                ev = await asyncio.wait_for(ha.read_event(), timeout)
                got.append((ev.type, ev.data, ev.payload))
                if ev.type == until:
                    break
        except asyncio.TimeoutError:
            pass
        await streaming
        return info, got


@pytest.fixture
def rx(tmp_path):
    def make(verify_on, store=True):
        port = _free_port()
        r = ReceiverThread(recordings=tmp_path / "rec", log=lambda *a: None, state=test_receiver.STATE, verify=verify_on,
                           wyoming=f"tcp://127.0.0.1:{port}", store=store).start()
        made.append(r)
        return r, port

    made = []
    yield make
    for r in made:
        r.stop()


@pytest.mark.parametrize("store", [True, False], ids=["stored", "pass-through"])
def test_home_assistant_receives_a_session_bit_for_bit(rx, tmp_path, store):
    receiver, port = rx(False, store)
    pcm = np.random.default_rng(1).integers(-3000, 3000, 3200).astype("<i2").tobytes()

    def board():
        c = Client(receiver.port)
        c.send(hello(), start(), *[chunk(pcm[i:i + 640]) for i in range(0, len(pcm), 640)], stop())
        c.sync()
        c.close()

    info, got = asyncio.run(_home_assistant(port, board))
    assert Info.is_type(info.type) and Info.from_event(info).satellite.name == "earshot"
    kinds = [k for k, _, _ in got]
    assert kinds[:2] == ["run-pipeline", "audio-start"] and kinds[-1] == "audio-stop"
    assert set(kinds[2:-1]) == {"audio-chunk"}
    assert b"".join(p for k, _, p in got if k == "audio-chunk") == pcm
    assert receiver.sessions and receiver.sessions[0]["samples"] == len(pcm) // 2
    kept = sorted(p.suffix for p in (tmp_path / "rec").iterdir())
    assert kept == ([".json", ".jsonl", ".wav"] if store else [".jsonl"])  # pass-through: metadata only
    [logged] = [json.loads(line) for line in (tmp_path / "rec" / "sessions.jsonl").read_text().splitlines()]
    assert logged["event"] == ("saved" if store else "passed_through")


@pytest.mark.skipif(not verify.available("hey jarvis"), reason="pymicro-wakeword is not installed")
def test_only_verified_wake_sessions_reach_home_assistant(rx):
    receiver, port = rx(True)

    def board(pcm):
        def stream():
            c = Client(receiver.port)
            _session(c, pcm)
            c.sync()
            c.close()
        return stream

    _, got = asyncio.run(_home_assistant(port, board(_cut(NEGATIVES, NEAR_MISS_END)), timeout=1.5))
    assert got == []  # rejected: Home Assistant hears nothing
    heard = _cut(POSITIVES, PHRASE_ENDS[0])
    _, got = asyncio.run(_home_assistant(port, board(heard)))
    kinds = [k for k, _, _ in got]
    assert kinds[:3] == ["detection", "run-pipeline", "audio-start"] and kinds[-1] == "audio-stop"
    sent = heard.astype("<i2").tobytes()
    assert b"".join(p for k, _, p in got if k == "audio-chunk") == sent  # the pre-roll included


def test_a_slow_home_assistant_loses_its_oldest_events_not_the_receivers_time():
    from host_tools import wyoming_satellite as ws
    from wyoming.audio import AudioChunk

    logged = []
    hub = ws.Hub("tcp://127.0.0.1:0", logged.append)
    client = ws._Satellite(None, None, hub)
    for i in range(ws.QUEUE_EVENTS + 5):
        client.put(AudioChunk(rate=16000, width=2, channels=1, audio=b"\0\0", timestamp=i).event())
    assert client.dropped == 5 and client._queue.qsize() == ws.QUEUE_EVENTS
    assert client._queue.get_nowait().data["timestamp"] == 5  # the oldest went
    assert logged == ["receiver wyoming slow_client dropped_events=1"]

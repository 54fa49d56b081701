# `earshot receive --wyoming tcp://HOST:PORT`: the paired boards as one Wyoming satellite,
# for Home Assistant (which connects to satellites). Home Assistant describes it, sends
# run-satellite, and from then on gets every session the receiver accepted:
#   detection (wake sessions) -> run-pipeline (asr .. tts) -> audio-start, audio-chunk...,
#   audio-stop; and pong for ping. A wake session reaches it only once verified (P6).
# Each connected client has a bounded queue: a slow one loses its oldest events (counted
# and logged), never the receiver's time.
import asyncio

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.info import Attribution, Describe, Info, Satellite
from wyoming.ping import Ping, Pong
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.satellite import PauseSatellite, RunSatellite
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.wake import Detection

QUEUE_EVENTS = 2000  # about 40 s of 20 ms chunks per client
SATELLITE_NAME = "earshot"


class Hub:
    """Fans sessions out to the running Wyoming clients; called on the receiver's loop."""

    def __init__(self, uri, log):
        self.uri = uri
        self.log = log
        self.clients = set()
        self._server = None

    async def start(self):
        self._server = AsyncServer.from_uri(self.uri)
        await self._server.start(lambda reader, writer: _Satellite(reader, writer, self))
        self.log(f"receiver wyoming listening={self.uri}")

    async def stop(self):
        if self._server is not None:
            await self._server.stop()
            self._server = None

    def _send(self, event):
        for client in list(self.clients):
            client.put(event)

    def session_start(self, device, session, trigger, phrase, rate):
        if trigger == "wake":
            self._send(Detection(name=phrase or "wake", timestamp=0).event())
        self._send(RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS,
                               wake_word_name=phrase if trigger == "wake" else None).event())
        self._send(AudioStart(rate=rate, width=2, channels=1, timestamp=0).event())

    def audio(self, pcm, rate, timestamp_ms):
        if self.clients:
            self._send(AudioChunk(rate=rate, width=2, channels=1, audio=bytes(pcm), timestamp=timestamp_ms).event())

    def session_stop(self, timestamp_ms):
        self._send(AudioStop(timestamp=timestamp_ms).event())


class _Satellite(AsyncEventHandler):
    # One Home Assistant connection: answers describe and ping, joins the fan-out on
    # run-satellite, leaves it on pause-satellite or when the connection ends.

    def __init__(self, reader, writer, hub):
        super().__init__(reader, writer)
        self._hub = hub
        self._queue = asyncio.Queue(QUEUE_EVENTS)
        self.dropped = 0
        self._writer_task = None

    async def disconnect(self):
        self._hub.clients.discard(self)
        if self._writer_task is not None:
            self._writer_task.cancel()

    def put(self, event):
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
            if self.dropped in (1, 100) or self.dropped % 1000 == 0:
                self._hub.log(f"receiver wyoming slow_client dropped_events={self.dropped}")
        self._queue.put_nowait(event)

    async def _drain(self):
        while True:
            await self.write_event(await self._queue.get())

    async def handle_event(self, event):
        if Describe.is_type(event.type):
            await self.write_event(Info(satellite=Satellite(
                name=SATELLITE_NAME, description="earshot boards paired with this receiver",
                attribution=Attribution(name="earshot", url=""), installed=True, version="0.1")).event())
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif RunSatellite.is_type(event.type):
            if self._writer_task is None:
                self._writer_task = asyncio.create_task(self._drain())
            self._hub.clients.add(self)
        elif PauseSatellite.is_type(event.type):
            self._hub.clients.discard(self)
        return True

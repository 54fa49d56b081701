# Property tests of the framing in both directions: whatever bytes arrive, the receiver's
# parser returns an event or a ProtocolError, and the board's parser (firmware/earshot/
# link.py, under MicroPython) an event or a ValueError; nothing else ever escapes. Valid
# events come back as they were sent.
import asyncio
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_tools import receiver
from tests.conftest import run_micropython

# Standard JSON (no NaN or Infinity, which MicroPython rightly refuses) over printable text.
TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**31, 2**31) | st.floats(allow_nan=False, allow_infinity=False)
                    | TEXT, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=10)
EVENT = st.fixed_dictionaries({"type": TEXT.filter(bool), "data": st.dictionaries(TEXT, JSON, max_size=5)})


def _line(value):
    return json.dumps(value).encode() + b"\n"


# A line as a peer might send it: garbage, any JSON value, a well-formed event, or a cut one.
LINE = st.one_of(st.binary(max_size=200), JSON.map(_line), EVENT.map(_line),
                 EVENT.map(_line).flatmap(lambda b: st.integers(0, len(b)).map(lambda k: b[:k])))


def _receiver_parse(stream):
    async def go():
        reader = asyncio.StreamReader(limit=receiver.MAX_HEADER)
        reader.feed_data(stream)
        reader.feed_eof()
        out = []
        while True:
            try:
                ev = await receiver.read_event(reader)
            except receiver.ProtocolError:
                return out, "error"
            if ev is None:
                return out, "end"
            out.append(ev)

    return asyncio.run(go())


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, max_size=6).map(b"".join))
def test_the_receiver_parser_returns_events_or_a_protocol_error(stream):
    events, how = _receiver_parse(stream)
    assert how in ("end", "error")
    assert all(isinstance(k, str) and isinstance(d, dict) and isinstance(p, bytes) for k, d, p in events)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(EVENT, st.binary(max_size=300)), max_size=5))
def test_valid_events_reach_the_receiver_as_sent(events):
    stream = b"".join(json.dumps({**e, "payload_length": len(p)} if p else e).encode() + b"\n" + p
                      for e, p in events)
    got, how = _receiver_parse(stream)
    assert how == "end"
    assert got == [(e["type"], e["data"], p) for e, p in events]


def _not_json(name):
    raise ValueError(f"{name} is not JSON")


BOARD_PARSE = """
import sys
from earshot.link import parse
for line in open(sys.argv[1], "rb").read().split(b"\\x00SEP\\x00"):
    try:
        kind, data = parse(line)
        ok = isinstance(kind, str) and isinstance(data, dict)
        print("event" if ok else "WRONG")
    except ValueError:
        print("refused")
    except Exception as e:
        print("ESCAPED", repr(e))
"""


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.data_too_large, HealthCheck.too_slow])
@given(st.lists(LINE, min_size=50, max_size=120))
def test_the_board_parser_returns_events_or_a_value_error(tmp_path_factory, lines):
    # One MicroPython run per batch of lines (the interpreter starts in ~10 ms, not 0).
    folder = tmp_path_factory.mktemp("lines")
    (folder / "lines.bin").write_bytes(b"\x00SEP\x00".join(lines))
    (folder / "parse.py").write_text(BOARD_PARSE.replace('sys.argv[1]', repr(str(folder / "lines.bin"))))
    out = run_micropython(open(folder / "parse.py").read()).split("\n")[:len(lines)]
    assert len(out) == len(lines) and not [o for o in out if o not in ("event", "refused")], out
    for line, verdict in zip(lines, out):
        try:  # standard JSON only, as MicroPython reads it
            value = json.loads(line, parse_constant=_not_json)
        except ValueError:
            continue
        well_formed = (isinstance(value, dict) and isinstance(value.get("type"), str)
                       and isinstance(value.get("data", {}), dict) and line.endswith(b"\n") and len(line) <= 1024)
        assert (verdict == "event") == well_formed, (line, verdict)

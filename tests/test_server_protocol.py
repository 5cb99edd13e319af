"""The s2s-ws/1 protocol module: audio encodings, start validation, error codes, metrics text."""

import numpy as np
import pytest

from harness.server import protocol as P
from harness.server.metrics import ServerMetrics, parse_metrics


def test_f32_round_trip_is_exact():
    x = np.random.default_rng(0).uniform(-1, 1, 1000).astype(np.float32)
    assert np.array_equal(P.decode_audio(P.encode_audio(x, "f32"), "f32"), x)


def test_pcm16_round_trip_within_one_lsb_and_clips():
    x = np.random.default_rng(1).uniform(-1, 1, 1000).astype(np.float32)
    y = P.decode_audio(P.encode_audio(x, "pcm16"), "pcm16")
    assert np.max(np.abs(y - x)) <= 1.0 / 32767
    loud = P.decode_audio(P.encode_audio(np.array([2.0, -3.0], np.float32), "pcm16"), "pcm16")
    assert loud.tolist() == [1.0, -1.0]


def test_bad_frames_are_named():
    with pytest.raises(P.ProtocolError, match="whole number of 2-byte samples but has 3 bytes"):
        P.decode_audio(b"abc", "pcm16")
    with pytest.raises(P.ProtocolError) as info:
        P.decode_audio(np.array([np.nan, 0], "<f4").tobytes(), "f32")
    assert info.value.code == "bad_audio"


@pytest.mark.parametrize(
    "change, code, text",
    [
        ({"protocol": "s2s-ws/0"}, "unsupported_protocol", "s2s-ws/0"),
        ({"sample_rate": 44100}, "bad_sample_rate", "Expected sample_rate to be 16000"),
        ({"format": "mp3"}, "bad_format", "'mp3'"),
        ({"options": {"delay_ms": 5}}, "bad_option", "cannot be changed per session"),
        ({"options": {"nope": 1}}, "bad_option", "Unknown option 'nope'"),
    ],
)
def test_start_validation(change, code, text):
    msg = {**P.start_message(16000, "pcm16", "s1"), **change}
    with pytest.raises(P.ProtocolError, match=text) as info:
        P.validate_start(msg, 16000, {"delay_ms": 0.0})
    assert info.value.code == code
    assert info.value.to_message()["type"] == "error"


def test_start_accepts_restated_options():
    msg = P.start_message(16000, "f32", "abc", {"delay_ms": 0.0})
    assert P.validate_start(msg, 16000, {"delay_ms": 0.0}) == ("f32", "abc")


def test_parse_message_rejects_non_objects():
    with pytest.raises(P.ProtocolError) as info:
        P.parse_message("{not json")
    assert info.value.code == "bad_json"
    with pytest.raises(P.ProtocolError) as info:
        P.parse_message("[1, 2]")
    assert info.value.code == "bad_message"


def test_metrics_text_has_histogram_and_labels():
    m = ServerMetrics(buckets=(0.1, 1.0))
    m.session_opened()
    m.observe_ttfa(0.05)
    m.observe_ttfa(0.5)
    m.observe_ttfa(5.0)
    m.error("bad_json")
    values = parse_metrics(m.render())
    assert values["s2s_server_active_sessions"] == 1
    assert values['s2s_server_ttfa_seconds_bucket{le="0.1"}'] == 1
    assert values['s2s_server_ttfa_seconds_bucket{le="1"}'] == 2
    assert values['s2s_server_ttfa_seconds_bucket{le="+Inf"}'] == 3
    assert values["s2s_server_ttfa_seconds_count"] == 3
    assert values['s2s_server_errors_total{kind="bad_json"}'] == 1

"""EventDecoder / SSEChatDecoder: every stream shape NEMO_API.md lists, and garbage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.events import (
    EventDecoder,
    HeartbeatEvent,
    SSEChatDecoder,
    StreamErrorEvent,
    TextEvent,
    ToolCallEvent,
    ToolResultEvent,
    TurnCompleteEvent,
)


def adk(*parts: dict[str, Any], **extra: Any) -> str:
    """An ADK event payload with the given content parts."""
    event: dict[str, Any] = {
        "author": "nemo_agent",
        "invocationId": "e-1",
        "id": "ev",
        "timestamp": 1.0,
        "content": {"role": "model", "parts": list(parts)},
    }
    event.update(extra)
    return json.dumps(event)


def text_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextEvent))


def feed_all(decoder: EventDecoder, payloads: list[str]) -> list[Any]:
    out: list[Any] = []
    for payload in payloads:
        out.extend(decoder.feed(payload))
    return out


def test_single_final_text() -> None:
    assert EventDecoder().feed(adk({"text": "Hello!"})) == [TextEvent("Hello!")]


def test_partials_then_final_do_not_double() -> None:
    events = feed_all(
        EventDecoder(),
        [
            adk({"text": "Your clip "}, partial=True),
            adk({"text": "is ready."}, partial=True),
            adk({"text": "Your clip is ready."}),
        ],
    )
    assert events == [TextEvent("Your clip "), TextEvent("is ready.")]
    assert text_of(events) == "Your clip is ready."


def test_final_longer_than_partials_adds_only_the_tail() -> None:
    events = feed_all(
        EventDecoder(),
        [adk({"text": "Hello wor"}, partial=True), adk({"text": "Hello world!"})],
    )
    assert text_of(events) == "Hello world!"


def test_final_differing_from_partials_keeps_the_chunks() -> None:
    events = feed_all(
        EventDecoder(),
        [adk({"text": "Helo  there"}, partial=True), adk({"text": "Hello there"})],
    )
    assert text_of(events) == "Helo  there"  # already on screen; never doubled


def test_final_whitespace_only_difference_is_silent() -> None:
    events = feed_all(
        EventDecoder(),
        [adk({"text": "a  b"}, partial=True), adk({"text": "a b"})],
    )
    assert text_of(events) == "a  b"


def test_multiple_turns_reset_the_partial_state() -> None:
    decoder = EventDecoder()
    first = feed_all(
        decoder,
        [
            adk({"text": "One."}, partial=True),
            adk({"text": "One."}),
            json.dumps({"turnComplete": True}),
        ],
    )
    second = feed_all(decoder, [adk({"text": "Two."}, partial=True), adk({"text": "Two."})])
    assert first == [TextEvent("One."), TurnCompleteEvent()]
    assert second == [TextEvent("Two.")]


def test_two_model_calls_in_one_turn() -> None:
    """Text, tool call, tool result, more text: each final only covers its own chunks."""
    events = feed_all(
        EventDecoder(),
        [
            adk({"text": "Let me "}, partial=True),
            adk({"text": "Let me "}, {"functionCall": {"id": "c1", "name": "edit", "args": {}}}),
            adk({"functionResponse": {"id": "c1", "name": "edit", "response": {"ok": True}}}),
            adk({"text": "Done."}, partial=True),
            adk({"text": "Done."}, turnComplete=True),
        ],
    )
    assert text_of(events) == "Let me Done."
    assert [type(e).__name__ for e in events] == [
        "TextEvent",
        "ToolCallEvent",
        "ToolResultEvent",
        "TextEvent",
        "TurnCompleteEvent",
    ]


def test_thought_parts_are_skipped() -> None:
    events = EventDecoder().feed(adk({"text": "secret plan", "thought": True}, {"text": "Hi"}))
    assert events == [TextEvent("Hi")]


def test_function_call_and_response() -> None:
    events = EventDecoder().feed(
        adk(
            {"functionCall": {"id": "x", "name": "add_music", "args": {"style": "lo-fi"}}},
            {"functionResponse": {"id": "x", "name": "add_music", "response": {"track": 2}}},
        )
    )
    assert events == [
        ToolCallEvent("x", "add_music", {"style": "lo-fi"}),
        ToolResultEvent("x", "add_music", {"track": 2}),
    ]


def test_function_call_with_bad_args_and_missing_id() -> None:
    events = EventDecoder().feed(adk({"functionCall": {"name": "f", "args": "oops"}}))
    assert events == [ToolCallEvent("", "f", {})]


def test_invalid_json_is_a_stream_error() -> None:
    events = EventDecoder().feed("{not json")
    assert len(events) == 1 and isinstance(events[0], StreamErrorEvent)
    assert "not json" in events[0].message


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ('{"error": "Agent crashed"}', "Agent crashed"),
        ('{"error": {"message": "quota", "code": 7}}', "quota"),
        ('{"error": {"code": 7}}', "error 7"),
        ('{"errorCode": "MALFORMED", "errorMessage": "bad call"}', "bad call"),
        ('{"type": "error", "message": "old style"}', "old style"),
    ],
)
def test_error_payloads(payload: str, expected: str) -> None:
    events = EventDecoder().feed(payload)
    assert events == [StreamErrorEvent(expected)]


@pytest.mark.parametrize("payload", ["", "   ", "null", '{"type": "heartbeat"}', '{"type":"ping"}'])
def test_heartbeats(payload: str) -> None:
    assert EventDecoder().feed(payload) == [HeartbeatEvent()]


def test_old_style_text_events() -> None:
    decoder = EventDecoder()
    events = feed_all(
        decoder,
        [
            '{"type": "text", "content": "Hello "}',
            '{"type": "text", "content": "there"}',
            '{"type": "done"}',
        ],
    )
    assert events == [TextEvent("Hello "), TextEvent("there"), TurnCompleteEvent()]


def test_unknown_fields_and_unknown_types_are_ignored() -> None:
    payload = adk(
        {"text": "ok", "videoMetadata": {}, "newThing": 1},
        actions={"stateDelta": {"draft": {}}, "artifactDelta": {}},
        usageMetadata={"tokens": 3},
        brandNew=[1, 2],
    )
    assert EventDecoder().feed(payload) == [TextEvent("ok")]
    assert EventDecoder().feed('{"type": "mystery", "x": 1}') == []
    assert EventDecoder().feed('{"author": "x"}') == []


@pytest.mark.parametrize("payload", ["42", '"text"', "[1, 2]", '{"content": "x"}', "[DONE]"])
def test_garbage_never_raises(payload: str) -> None:
    events = EventDecoder().feed(payload)
    assert all(not isinstance(e, TextEvent) or e.text for e in events)


def test_weird_shapes_never_raise() -> None:
    decoder = EventDecoder()
    for payload in [
        '{"content": {"parts": "no"}}',
        '{"content": {"parts": [1, null, {"text": 5}]}}',
        '{"content": null, "partial": "yes"}',
        '{"error": null, "content": {"parts": [{"text": "fine"}]}}',
    ]:
        decoder.feed(payload)
    assert decoder.feed(adk({"text": "after"})) == [TextEvent("after")]


def test_event_list_payload() -> None:
    events = EventDecoder().feed(json.dumps([json.loads(adk({"text": "a"})), {"type": "done"}]))
    assert events == [TextEvent("a"), TurnCompleteEvent()]


# -- SSE framing ---------------------------------------------------------------------


def test_sse_comments_and_empty_data_are_heartbeats() -> None:
    decoder = SSEChatDecoder()
    events = decoder.feed(": ping\n\ndata:\n\ndata: " + adk({"text": "hi"}) + "\n\n")
    assert events == [HeartbeatEvent(), HeartbeatEvent(), TextEvent("hi")]


def test_sse_split_anywhere_and_crlf() -> None:
    raw = ": ping\r\n\r\ndata: " + adk({"text": "héllo\u2028x"}) + "\r\n\r\n"
    whole = SSEChatDecoder().feed(raw)
    decoder = SSEChatDecoder()
    pieces: list[Any] = []
    for ch in raw:
        pieces.extend(decoder.feed(ch))
    assert pieces == whole == [HeartbeatEvent(), TextEvent("héllo\u2028x")]


def test_sse_multiline_data_and_ignored_fields() -> None:
    decoder = SSEChatDecoder()
    events = decoder.feed('event: message\nid: 7\nretry: 10\ndata: {"type":\ndata: "text", ')
    events += decoder.feed('\ndata: "content": "x"}\nweird\n\n')
    assert events == [TextEvent("x")]


def test_sse_close_flushes_an_unterminated_event() -> None:
    decoder = SSEChatDecoder()
    assert decoder.feed("data: " + adk({"text": "tail"})) == []
    assert decoder.close() == [TextEvent("tail")]
    assert decoder.close() == []

"""Envelope unwrapping, error mapping, and the tolerant result records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from core.envelope import parse_retry_after, unwrap, unwrap_render_status
from core.errors import (
    ApiError,
    ClientIdMissingError,
    ExportBlockedError,
    FileTooLargeError,
    OutOfCreditsError,
    RateLimitedError,
    ServerError,
    SessionNotFoundError,
    TokenExpiredError,
    TransportError,
    UnsupportedFileError,
    error_for,
    redact,
)
from core.wire import (
    AnonToken,
    Credits,
    RenderStatus,
    SessionInfo,
    SessionState,
    UploadResult,
)

TOKEN = "nmv_usr_SECRET123abc"


@pytest.mark.parametrize(
    "body",
    [
        {"code": 0, "message": "ok", "data": {"x": 1}},
        {"code": 0, "msg": "ok", "data": {"x": 1}},
        {"code": "0", "data": {"x": 1}},
        {"success": True, "data": {"x": 1}},
    ],
)
def test_success_envelopes(body: dict[str, Any]) -> None:
    assert unwrap(200, json.dumps(body).encode()) == {"x": 1}


def test_flat_and_dataless_replies() -> None:
    assert unwrap(200, {"status": "pending", "progress": 0}) == {"status": "pending", "progress": 0}
    assert unwrap(200, {"success": True, "id": "r1"}) == {"id": "r1"}
    assert unwrap(200, b"") is None
    assert unwrap(200, [1, 2]) == [1, 2]


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (200, {"code": 1001, "message": "token expired"}, TokenExpiredError, 1001),
        (200, {"code": 1010, "msg": "invalid"}, TokenExpiredError, 1010),
        (200, {"code": 1011}, TokenExpiredError, 1011),
        (401, {"detail": "unauthorized"}, TokenExpiredError, 401),
        (401, b"", TokenExpiredError, 401),
        (200, {"code": 1002, "message": "session not found"}, SessionNotFoundError, 1002),
        (404, {"code": 1002, "message": "session not found"}, SessionNotFoundError, 1002),
        (200, {"code": 2001, "message": "no credits"}, OutOfCreditsError, 2001),
        (200, {"code": 4001, "message": "bad type"}, UnsupportedFileError, 4001),
        (413, {"code": 4002, "message": "too big"}, FileTooLargeError, 4002),
        (400, {"message": "missing X-Client-Id"}, ClientIdMissingError, 400),
        (400, {"code": 400, "message": "X-Client-Id header required"}, ClientIdMissingError, 400),
        (402, {"error": "free plan cannot export"}, ExportBlockedError, 402),
        (429, {"code": 429, "message": "slow down"}, RateLimitedError, 429),
        (429, {"message": "slow down"}, RateLimitedError, 429),
        (500, b"<html>oops</html>", ServerError, 500),
        (503, {"code": 0, "message": "maintenance"}, ServerError, 503),
        (200, {"success": False, "error": "Render failed"}, ApiError, -1),
        (409, {"success": False, "error": "duplicate id"}, ApiError, 409),
        (200, {"success": False, "error": {"code": 2001, "message": "x"}}, OutOfCreditsError, 2001),
        (200, b"<html>not json</html>", ApiError, -1),
        (418, None, ApiError, 418),
    ],
)
def test_error_mapping(status: int, body: Any, cls: type[ApiError], code: int) -> None:
    with pytest.raises(cls) as info:
        unwrap(status, json.dumps(body).encode() if isinstance(body, dict) else body)
    assert type(info.value) is cls
    assert info.value.code == code
    assert info.value.status == status


def test_bad_request_that_is_not_about_the_client_id() -> None:
    with pytest.raises(ApiError) as info:
        unwrap(400, {"message": "draft is malformed"})
    assert type(info.value) is ApiError


def test_rate_limit_retry_after() -> None:
    with pytest.raises(RateLimitedError) as info:
        unwrap(429, {"message": "x"}, retry_after="7")
    assert info.value.retry_after == 7.0
    with pytest.raises(RateLimitedError) as info:
        unwrap(429, b"")
    assert info.value.retry_after == 30.0


def test_parse_retry_after_variants() -> None:
    assert parse_retry_after(None) == 30.0
    assert parse_retry_after("garbage") == 30.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("-3") == 0.0
    when = "Wed, 21 Oct 2015 07:28:00 GMT"
    now = datetime(2015, 10, 21, 7, 27, 50, tzinfo=UTC).timestamp()
    assert parse_retry_after(when, now=now) == 10.0


def test_out_of_credits_bind_url() -> None:
    with pytest.raises(OutOfCreditsError) as info:
        unwrap(200, {"code": 2001, "message": "no credits", "data": {"user_id": "anon_42"}})
    assert info.value.bind_url == "https://nemovideo.com/register?bind=anon_42"
    assert error_for(2001, user_id="usr_9").bind_url is None  # type: ignore[attr-defined]


def test_error_messages_never_carry_tokens() -> None:
    with pytest.raises(TokenExpiredError) as info:
        unwrap(401, {"message": f"token {TOKEN} expired; Authorization: Bearer {TOKEN}"})
    for text in (str(info.value), repr(info.value), info.value.message):
        assert TOKEN not in text and "SECRET" not in text
    with pytest.raises(ApiError) as other:
        unwrap(200, {"code": 7, "message": "user abcd-1234 blocked"}, secrets=("abcd-1234",))
    assert "abcd-1234" not in str(other.value)
    assert TOKEN not in str(TransportError(f"failed for {TOKEN}"))
    assert redact("x" * 2000).endswith("…")


# -- records --------------------------------------------------------------------------


def test_anon_token() -> None:
    anon = AnonToken.from_data(
        {
            "token": TOKEN,
            "user_id": "anon_1",
            "credits": 100,
            "expires_at": "2030-01-01T00:00:00Z",
            "extra": 1,
        }
    )
    assert anon.token == TOKEN and anon.user_id == "anon_1" and anon.credits == 100
    assert anon.expires_at == datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    assert TOKEN not in repr(anon) and TOKEN not in str(anon)
    assert AnonToken.from_data({"token": "t", "expires_at": 1_900_000_000_000}).expires_at == (
        1_900_000_000.0
    )
    assert AnonToken.from_data({"token": "t", "expires_at": "soon"}).expires_at is None
    with pytest.raises(ApiError):
        AnonToken.from_data({"user_id": "anon_1"})


def test_session_info() -> None:
    assert SessionInfo.from_data({"session_id": "5529798706024415232", "task_id": 9}) == (
        SessionInfo("5529798706024415232", "9")
    )
    assert SessionInfo.from_data({"sessionId": 12}).session_id == "12"
    with pytest.raises(ApiError):
        SessionInfo.from_data(None)


def test_upload_result() -> None:
    result = UploadResult.from_data(
        {
            "files": [
                {
                    "filename": "a.mp4",
                    "file_type": "video",
                    "cdn_url": "https://cdn/a.mp4",
                    "duration": "4.5",
                    "width": 1080,
                    "height": 1920,
                    "fps": 30,
                    "hash": "abc",
                },
                "junk",
            ],
            "session_state_applied": True,
        }
    )
    assert len(result.files) == 1 and result.session_state_applied
    assert result.files[0].duration == 4.5 and result.files[0].width == 1080
    assert UploadResult.from_data({"cdn_url": "https://cdn/b.png"}).files[0].cdn_url
    assert UploadResult.from_data(None) == UploadResult()


def test_credits() -> None:
    assert Credits.from_data({"available": 90, "frozen": 10, "total": 100}) == Credits(90, 10, 100)
    assert Credits.from_data({"available": "5"}) == Credits(5, None, 5)
    assert Credits.from_data("x") == Credits(None, None, None)


def test_session_state_nested_and_flat() -> None:
    draft = {"t": [{"tt": 0, "sg": [{"d": 1000}]}]}
    nested = SessionState.from_data(
        {
            "session_id": "s",
            "task_id": "t",
            "state": {
                "draft": draft,
                "video_infos": [{"a": 1}],
                "generated_media": {"k": {"b": 2}},
                "canvas_config": {"w": 1},
            },
        }
    )
    assert nested.raw_draft == draft and nested.draft.is_exportable
    assert nested.video_infos == [{"a": 1}] and nested.generated_media == [{"b": 2}]
    flat = SessionState.from_data({"sessionId": "s", "draft": json.dumps(draft)})
    assert flat.raw_draft == draft and flat.session_id == "s"
    empty = SessionState.from_data({"state": {"draft": None}})
    assert empty.raw_draft is None and not empty.draft.is_exportable


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"status": "pending"}, RenderStatus("pending")),
        ({"status": "processing", "progress": 42}, RenderStatus("processing", 42)),
        ({"status": "Rendering", "progress": 0.5}, RenderStatus("processing", 50)),
        ({"status": "processing", "progress": "250"}, RenderStatus("processing", 100)),
        (
            {"status": "completed", "output": {"url": "https://cdn/o.mp4"}},
            RenderStatus("completed", 100, "https://cdn/o.mp4"),
        ),
        (
            {"status": "completed", "progress": 100, "outputUrl": "https://cdn/o.mp4"},
            RenderStatus("completed", 100, "https://cdn/o.mp4"),
        ),
        ({"status": "failed", "error": "boom"}, RenderStatus("failed", None, None, "boom")),
        ({"status": "failed", "error": {"message": "x"}}, RenderStatus("failed", error="x")),
        ({"status": "weird"}, RenderStatus("pending")),
        ({"output_url": "https://cdn/o.mp4"}, RenderStatus("completed", 100, "https://cdn/o.mp4")),
    ],
)
def test_render_status_shapes(data: dict[str, Any], expected: RenderStatus) -> None:
    assert RenderStatus.from_data(data) == expected


def test_render_status_both_envelopes_through_unwrap() -> None:
    flat = {"status": "completed", "output": {"url": "u"}}
    wrapped = {"success": True, "data": {"status": "completed", "outputUrl": "u"}}
    assert RenderStatus.from_data(unwrap(200, flat)) == RenderStatus.from_data(unwrap(200, wrapped))
    assert RenderStatus.from_data(unwrap(200, flat)).done


def test_failed_render_in_a_failure_envelope_is_a_status() -> None:
    body = {
        "success": False,
        "error": "Lambda render failed",
        "data": {"id": "r", "status": "failed", "progress": 50},
    }
    status = RenderStatus.from_data(unwrap_render_status(200, json.dumps(body)))
    assert status == RenderStatus("failed", 50, None, "Lambda render failed")
    with pytest.raises(ApiError):
        unwrap_render_status(404, {"success": False, "error": "Render not found"})
    with pytest.raises(TokenExpiredError):
        unwrap_render_status(200, {"code": 1001, "message": "expired"})

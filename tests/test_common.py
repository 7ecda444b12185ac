"""What both adapters share: fitting a link into a message or caption without cutting it."""

from __future__ import annotations

from bots.common import with_link, without_link


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


URL = "https://cdn.example/render_1.mp4"


def test_a_body_that_quotes_the_link_and_fits_is_kept() -> None:
    body = f"🎉 Your video is ready: {URL}"
    assert with_link(body, URL, 100, cut=cut) == body


def test_a_long_body_is_shortened_and_the_link_kept_whole_on_its_own_line() -> None:
    body = "word " * 40 + URL
    fitted = with_link(body, URL, 80, cut=cut)
    assert fitted is not None and len(fitted) <= 80
    assert fitted.endswith("\n" + URL) and fitted.count(URL) == 1


def test_a_link_that_leaves_no_room_is_sent_apart() -> None:
    long_url = "https://cdn.example/" + "x" * 1100
    assert with_link("Your video is ready", long_url, 1024, cut=cut) is None
    assert with_link("", URL, 10, cut=cut) is None
    assert with_link("", URL, 100, cut=cut) == URL


def test_measure_is_the_platforms_length() -> None:
    def units(text: str) -> int:
        return len(text.encode("utf-16-le")) // 2

    body = "🎬" * 30 + " " + URL  # each emoji is two UTF-16 units
    assert with_link(body, URL, 70, cut=cut) == body  # 63 characters
    assert with_link(body, URL, 70, measure=units, cut=cut) != body  # 93 units


def test_without_link_drops_the_introducing_colon() -> None:
    assert without_link(f"Ready: {URL}", URL) == "Ready"
    assert without_link(f"完成：{URL}", URL) == "完成"

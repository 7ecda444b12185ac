"""GUI talk from the backend becomes chat talk, sentence by sentence."""

from __future__ import annotations

from core.gui import GuiHints, SentenceBuffer, translate
from core.i18n import language_of, t


def stream_through(chunks: list[str]) -> tuple[str, GuiHints]:
    buffer = SentenceBuffer()
    out = "".join(buffer.feed(c) for c in chunks) + buffer.flush()
    return out, buffer.hints


def test_export_button_becomes_the_export_command() -> None:
    hints = GuiHints()
    assert translate("Click the Export button to render.", hints) == "Say “export” to render."
    assert hints.offer_export


def test_panels_and_timeline_previews_show_the_timeline() -> None:
    hints = GuiHints()
    out = translate("Open the timeline panel, then preview in the timeline.", hints)
    assert out == "See the timeline (below), then check the timeline (below)."
    assert hints.show_timeline


def test_drag_and_drop_becomes_a_message() -> None:
    assert translate("Drag the clip to the start.") == (
        "Just tell me in a message how to move the clip to the start."
    )


def test_other_buttons_become_words_to_say() -> None:
    assert translate("Click [Add Music] to continue.") == "Say “Add Music” to continue."


def test_phrase_split_across_chunks_is_still_caught() -> None:
    out, hints = stream_through(["Done! Click the Exp", "ort button when ready."])
    assert out == "Done! Say “export” when ready."
    assert hints.offer_export


def test_trailing_temporary_issue_is_dropped_but_kept_mid_reply() -> None:
    out, _ = stream_through(["Added music. ", "I encountered a temporary issue."])
    assert out.strip() == "Added music."
    out, _ = stream_through(["I encountered a temporary issue. ", "Retrying worked: added music."])
    assert "temporary issue" in out and out.endswith("added music.")


def test_text_without_sentence_end_is_flushed() -> None:
    out, _ = stream_through(["no full stop here"])
    assert out == "no full stop here"


def test_plain_text_is_untouched() -> None:
    text = "A neon city at night, with rain on the glass."
    assert translate(text) == text


def test_languages() -> None:
    assert language_of("zh-hans") == language_of("zh-CN") == "zh"
    assert language_of("en-US") == language_of(None) == "en"
    assert "积分" in t("credits", "zh", available=1, frozen=0, total=1)
    assert "Credits" in t("credits", "fr", available=1, frozen=0, total=1)

"""The intent router: the table, the whole-message rule, prompts that merely mention a command."""

from __future__ import annotations

import pytest

from core.router import INTENT_TABLE, normalize, route, slash_command
from core.types import Intent


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("export", Intent.EXPORT),
        ("Export!", Intent.EXPORT),
        ("/export", Intent.EXPORT),
        ("/export@NemoVideoBot", Intent.EXPORT),
        ("export the video please", Intent.EXPORT),
        ("Download", Intent.EXPORT),
        ("send me the video", Intent.EXPORT),
        ("导出", Intent.EXPORT),
        ("请导出", Intent.EXPORT),
        ("下载", Intent.EXPORT),
        ("credits", Intent.CREDITS),
        ("Balance?", Intent.CREDITS),
        ("积分", Intent.CREDITS),
        ("余额", Intent.CREDITS),
        ("status", Intent.STATUS),
        ("show tracks", Intent.STATUS),
        ("Timeline", Intent.STATUS),
        ("状态", Intent.STATUS),
        ("upload", Intent.UPLOAD),
        ("上传", Intent.UPLOAD),
        ("help", Intent.HELP),
        ("/start", Intent.START),
        ("new project", Intent.NEW),
        ("reset", Intent.NEW),
        ("新项目", Intent.NEW),
    ],
)
def test_commands(text: str, intent: Intent) -> None:
    assert route(text) is intent


@pytest.mark.parametrize(
    "text",
    [
        "a video about the export trade",
        "show the status of a rocket launch",
        "generate a 10-second clip of a futuristic city at night",
        "add lo-fi background music",
        "add a title",
        "make the timeline faster",
        "download speeds visualised as a bar chart race",
        "导出贸易的纪录片",
        "一个关于积分赛的视频",
        "credits roll at the end with names",
    ],
)
def test_prompts_that_mention_a_command_go_to_chat(text: str) -> None:
    assert route(text) is Intent.CHAT


def test_attachments_make_an_upload_whatever_the_text() -> None:
    assert route("make this the opening shot", has_attachments=True) is Intent.UPLOAD
    assert route("", has_attachments=True) is Intent.UPLOAD


def test_empty_and_whitespace_go_to_chat() -> None:
    assert route("") is Intent.CHAT
    assert route("   \n") is Intent.CHAT


def test_every_table_phrase_routes_to_its_intent() -> None:
    for intent, phrases in INTENT_TABLE.items():
        for phrase in phrases:
            assert route(phrase) is intent, phrase
            assert route(phrase.upper()) is intent, phrase


def test_normalize_strips_fillers_and_punctuation() -> None:
    assert normalize("  Please, EXPORT now!! ") == "export"
    assert normalize("/status@my_bot") == "status"
    assert normalize("请导出一下吧") == "导出"


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("/foo", Intent.UNKNOWN),
        ("/foo bar baz", Intent.UNKNOWN),
        ("/imagine a city at night", Intent.UNKNOWN),
        ("/Foo@NemoVideoBot", Intent.UNKNOWN),
        ("/attach", Intent.UPLOAD),
        ("/attach  ", Intent.UPLOAD),
        ("/upload", Intent.UPLOAD),
        ("/export", Intent.EXPORT),
        ("/status", Intent.STATUS),
        # a known command with words after it stays the prompt it always was
        ("/status of a rocket launch", Intent.CHAT),
        # paths and other slashes are not commands
        ("/tmp/clip.mp4 goes first", Intent.CHAT),
        ("/ make it brighter", Intent.CHAT),
        ("make it 50/50 split screen", Intent.CHAT),
        ("//comment", Intent.CHAT),
    ],
)
def test_slash_commands_that_are_none_of_ours_are_unknown(text: str, intent: Intent) -> None:
    assert route(text) is intent


def test_slash_command_names_the_command_as_typed() -> None:
    assert slash_command("/Foo@bot rest") == "/Foo"
    assert slash_command("  /foo") == "/foo"
    assert slash_command("/tmp/x") is None
    assert slash_command("no slash") is None

"""Draft parsing, the one-line summary, diffs, and tolerance of garbage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.draft import Draft, Segment, Track, diff_drafts

SAMPLE: dict[str, Any] = {
    "t": [
        {"tt": 0, "sg": [{"s": 0, "d": 10000, "m": {"title": "city timelapse"}}]},
        {"tt": 1, "sg": [{"s": 0, "d": 10000, "m": {"title": "Lo-fi", "volume": 0.35}}]},
        {"tt": 7, "sg": [{"s": 0, "d": 3000, "m": {"text": "Urban Dreams"}}]},
    ],
    "d": 10000,
    "m": {"title": "Urban", "width": 1080, "height": 1920},
    "undocumented": {"x": 1},
}


def test_parse_sample() -> None:
    draft = Draft.from_json(SAMPLE)
    assert [t.kind for t in draft.tracks] == ["video", "audio", "text"]
    assert [t.type_code for t in draft.tracks] == [0, 1, 7]
    assert draft.tracks[1].segments == [Segment(0, 10000, label="Lo-fi", volume=0.35)]
    assert draft.tracks[2].segments[0].text == "Urban Dreams"
    assert (draft.title, draft.width, draft.height) == ("Urban", 1080, 1920)
    assert draft.duration_ms == 10000
    assert draft.is_exportable
    assert draft.raw is SAMPLE


def test_summary_format() -> None:
    assert Draft.from_json(SAMPLE).summary() == (
        "Timeline (3 tracks): 1. Video: city timelapse (0-10s) 2. BGM: Lo-fi (0-10s, 35%) "
        '3. Title: "Urban Dreams" (0-3s)'
    )


@pytest.mark.parametrize("obj", [None, {}, {"t": []}, {"t": [{"tt": 0, "sg": []}]}, "", 42, []])
def test_empty(obj: Any) -> None:
    draft = Draft.from_json(obj)
    assert draft.summary() == "The timeline is empty."
    assert not draft.is_exportable
    assert draft.duration_ms == 0


def test_json_text_and_spelled_out_keys() -> None:
    text = json.dumps(
        {
            "tracks": [
                {"type": "audio", "segments": [{"start": 1500, "duration": 2500, "volume": 80}]}
            ]
        }
    )
    draft = Draft.from_json(text)
    assert draft.tracks == [Track("audio", 1, [Segment(1500, 2500, volume=0.8)])]
    assert draft.summary() == "Timeline (1 track): 1. BGM: untitled (1.5-4s, 80%)"
    assert draft.duration_ms == 4000


def test_sequential_segments_and_labels_from_urls() -> None:
    draft = Draft.from_json(
        {
            "t": [
                {
                    "tt": 0,
                    "sg": [
                        {"d": 4000, "m": {"url": "https://cdn/x/beach.mp4?sig=1"}},
                        {"d": 6000, "m": {"name": "city"}},
                    ],
                },
                {
                    "tt": 1,
                    "m": {"name": "Voiceover"},
                    "sg": [{"d": 10000, "m": {"title": "intro"}}],
                },
            ]
        }
    )
    assert draft.summary() == (
        "Timeline (2 tracks): 1. Video: beach.mp4 (0-4s), city (4-10s) 2. Voiceover: intro (0-10s)"
    )


def test_garbage_is_skipped_not_fatal() -> None:
    draft = Draft.from_json(
        {
            "t": [
                "nope",
                None,
                {"tt": "zero", "sg": "bad"},
                {"tt": 99, "sg": [None, 3, {"d": "x", "s": -5, "m": []}, {"d": 2000.7}]},
                {"tt": True, "sg": [{"d": float("nan")}]},
                {"tt": 1, "sg": [{"d": 1000, "m": {"volume": "loud"}}]},
            ],
            "d": "soon",
            "m": "meta",
        }
    )
    kinds = [t.kind for t in draft.tracks]
    assert kinds == ["other", "other", "other", "audio"]
    assert draft.tracks[1].segments[1] == Segment(0, 2000)
    assert draft.tracks[3].segments[0].volume is None
    assert draft.declared_duration_ms is None
    assert draft.summary().startswith("Timeline (3 tracks): 1. Track:")


def test_fractional_seconds() -> None:
    draft = Draft.from_json({"t": [{"tt": 7, "sg": [{"s": 500, "d": 2000, "m": {"text": "Hi"}}]}]})
    assert draft.summary() == 'Timeline (1 track): 1. Title: "Hi" (0.5-2.5s)'


# -- diff ---------------------------------------------------------------------------


def test_diff_from_nothing() -> None:
    assert diff_drafts(None, Draft.from_json(SAMPLE)) == [
        "Added video track: city timelapse (0-10s)",
        "Added audio track: Lo-fi (0-10s, 35%)",
        'Added text track: "Urban Dreams" (0-3s)',
    ]


def test_diff_identical_is_empty() -> None:
    assert (
        diff_drafts(Draft.from_json(SAMPLE), Draft.from_json(json.loads(json.dumps(SAMPLE)))) == []
    )


def test_diff_add_remove_change() -> None:
    old = Draft.from_json(SAMPLE)
    new_obj = json.loads(json.dumps(SAMPLE))
    new_obj["t"][0]["sg"][0]["d"] = 8000  # video trimmed
    del new_obj["t"][2]  # title removed
    new_obj["t"].append({"tt": 1, "sg": [{"d": 5000, "m": {"title": "Rain", "volume": 0.5}}]})
    new_obj["m"]["title"] = "Rainy"
    lines = diff_drafts(old, Draft.from_json(new_obj))
    assert lines == [
        "Added audio track: Rain (0-5s, 50%)",
        'Removed text track: "Urban Dreams" (0-3s)',
        "Changed video track: city timelapse (0-10s) → city timelapse (0-8s)",
        "Changed title: Urban → Rainy",
    ]


def test_diff_volume_and_canvas() -> None:
    old = Draft.from_json(SAMPLE)
    new_obj = json.loads(json.dumps(SAMPLE))
    new_obj["t"][1]["sg"][0]["m"]["volume"] = 0.6
    new_obj["m"].update(width=1920, height=1080)
    assert diff_drafts(old, Draft.from_json(new_obj)) == [
        "Changed audio track: Lo-fi (0-10s, 35%) → Lo-fi (0-10s, 60%)",
        "Changed canvas: 1080x1920 → 1920x1080",
    ]


def test_diff_to_empty() -> None:
    lines = diff_drafts(Draft.from_json(SAMPLE), Draft.from_json(None))
    assert len(lines) == 3 and all(line.startswith("Removed ") for line in lines)

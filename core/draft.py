"""The NemoVideo timeline (draft): tolerant parsing, a one-line summary, and diffs. Pure.

The summary and the diff lines are in the user's language (``lang``, English by
default), with their words from the catalogue (:mod:`core.i18n`).

The draft inside the session state uses short keys: ``t`` tracks, ``tt`` track type
(0 video, 1 audio, 7 text), ``sg`` segments, ``d`` duration in ms, ``m`` metadata
(``title``, ``width``, ``height``; text segments carry their text, audio a volume).
Anything beyond that is undocumented, so :meth:`Draft.from_json` reads what is
there, accepts a few spelled-out synonyms, skips values of the wrong type, and
keeps the original object in :attr:`Draft.raw` for the render call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from core.coerce import to_number

__all__ = ["Draft", "Segment", "Track", "TrackKind", "diff_drafts", "unchanged"]

TrackKind = Literal["video", "audio", "text", "other"]

_KIND_BY_CODE: dict[int, TrackKind] = {0: "video", 1: "audio", 7: "text"}
_CODE_BY_KIND: dict[str, int] = {"video": 0, "audio": 1, "text": 7}
_KIND_WORDS: dict[str, TrackKind] = {
    "video": "video",
    "image": "video",
    "audio": "audio",
    "music": "audio",
    "bgm": "audio",
    "voice": "audio",
    "text": "text",
    "title": "text",
    "subtitle": "text",
    "caption": "text",
}
_LABEL_KEYS = ("title", "name", "label", "prompt", "description", "desc", "caption")
_SOURCE_KEYS = ("filename", "file_name", "url", "src", "source", "path", "cdn_url")
_TEXT_KEYS = ("text", "content", "txt")
_VOICE_WORDS = ("voice", "narrat", "tts", "speech", "dub")


def _t(key: str, lang: str | None, **values: object) -> str:
    # Imported here: core.i18n needs core.files, which needs core.wire, which needs this module.
    from core.i18n import t

    return t(key, lang, **values)


def _first(mapping: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in mapping and mapping[key] not in (None, ""):
            return mapping[key]
    return None


def _first_str(mappings: tuple[dict[str, Any], ...], keys: tuple[str, ...]) -> str | None:
    for mapping in mappings:
        for key in keys:
            value = mapping.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def _basename(source: str) -> str:
    name = source.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return name or source


def _seconds(ms: int) -> str:
    value = ms / 1000
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


@dataclass(frozen=True, slots=True)
class Segment:
    """One clip, sound or text on a track. Times in milliseconds."""

    start_ms: int
    duration_ms: int
    label: str | None = None
    volume: float | None = None
    text: str | None = None

    @property
    def end_ms(self) -> int:
        """Where the segment ends on the timeline."""
        return self.start_ms + self.duration_ms

    def describe(self, lang: str | None = None) -> str:
        """``city timelapse (0-10s)``, ``Lo-fi (0-10s, 35%)``, ``"Urban Dreams" (0-3s)``."""
        name = f'"{self.text}"' if self.text else self.label or _t("untitled", lang)
        extra = f", {round(self.volume * 100)}%" if self.volume is not None else ""
        return f"{name} ({_seconds(self.start_ms)}-{_seconds(self.end_ms)}s{extra})"


@dataclass(frozen=True, slots=True)
class Track:
    """A timeline track: its kind, the backend's type code, its segments."""

    kind: TrackKind
    type_code: int
    segments: list[Segment] = field(default_factory=list)
    name: str | None = None

    @property
    def title(self) -> str:
        """The track's display name: Video, BGM, Voiceover, Title, or Track (in English)."""
        return self.title_in(None)

    def title_in(self, lang: str | None) -> str:
        """The track's display name in ``lang``."""
        if self.kind == "video":
            return _t("track_video", lang)
        if self.kind == "audio":
            hints = " ".join(filter(None, [self.name, *(s.label for s in self.segments)])).lower()
            voice = any(word in hints for word in _VOICE_WORDS)
            return _t("track_voiceover" if voice else "track_bgm", lang)
        if self.kind == "text":
            return _t("track_title", lang)
        return self.name or _t("track_other", lang)

    def describe(self, lang: str | None = None) -> str:
        """The segments, comma-separated (``(empty)`` if none)."""
        return ", ".join(s.describe(lang) for s in self.segments) or _t("track_empty", lang)


@dataclass(frozen=True, slots=True)
class Draft:
    """A parsed timeline. ``raw`` is the backend's object, untouched (``None`` if absent)."""

    tracks: list[Track] = field(default_factory=list)
    declared_duration_ms: int | None = None
    title: str | None = None
    width: int | None = None
    height: int | None = None
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_json(cls, obj: Any) -> Draft:
        """Parse a draft tolerantly: unknown keys are ignored, wrong types skipped.

        Accepts the draft object itself, a JSON string of it, or ``None``.
        """
        raw = obj
        if isinstance(obj, str | bytes):
            try:
                obj = json.loads(obj)
            except ValueError:
                return cls(raw=raw)
        if not isinstance(obj, dict):
            return cls(raw=raw)
        tracks_raw = _first(obj, ("t", "tracks"))
        tracks = (
            [
                track
                for track in (_parse_track(item) for item in (tracks_raw or []))
                if track is not None
            ]
            if isinstance(tracks_raw, list)
            else []
        )
        meta = obj.get("m") if isinstance(obj.get("m"), dict) else {}
        assert isinstance(meta, dict)
        duration = to_number(_first(obj, ("d", "duration")))
        width = to_number(_first(meta, ("width", "w"))) or to_number(obj.get("width"))
        height = to_number(_first(meta, ("height", "h"))) or to_number(obj.get("height"))
        return cls(
            tracks=tracks,
            declared_duration_ms=int(duration) if duration is not None and duration >= 0 else None,
            title=_first_str((meta, obj), ("title", "name")),
            width=int(width) if width else None,
            height=int(height) if height else None,
            raw=raw,
        )

    @property
    def is_exportable(self) -> bool:
        """True when some track has at least one segment."""
        return any(track.segments for track in self.tracks)

    @property
    def duration_ms(self) -> int:
        """The timeline length: the declared ``d``, else the latest segment end."""
        ends = [seg.end_ms for track in self.tracks for seg in track.segments]
        if self.declared_duration_ms:
            return self.declared_duration_ms
        return max(ends, default=0)

    def summary(self, lang: str | None = None) -> str:
        """One line: ``Timeline (3 tracks): 1. Video: city timelapse (0-10s) 2. BGM: ...``."""
        shown = [track for track in self.tracks if track.segments]
        if not shown:
            return _t("timeline_empty", lang)
        items = " ".join(
            f"{i}. {t.title_in(lang)}: {t.describe(lang)}" for i, t in enumerate(shown, 1)
        )
        key = "timeline_one" if len(shown) == 1 else "timeline_many"
        return _t(key, lang, count=len(shown), items=items)


def _parse_track(obj: Any) -> Track | None:
    if not isinstance(obj, dict):
        return None
    meta = obj.get("m") if isinstance(obj.get("m"), dict) else {}
    assert isinstance(meta, dict)
    code_value = to_number(_first(obj, ("tt", "track_type", "trackType")))
    kind: TrackKind = "other"
    code = -1
    if code_value is not None and code_value == int(code_value):
        code = int(code_value)
        kind = _KIND_BY_CODE.get(code, "other")
    else:
        word = _first(obj, ("type", "kind"))
        if isinstance(word, str):
            kind = _KIND_WORDS.get(word.lower(), "other")
            code = _CODE_BY_KIND.get(kind, -1)
    segments: list[Segment] = []
    cursor = 0
    raw_segments = _first(obj, ("sg", "segments"))
    for item in raw_segments if isinstance(raw_segments, list) else []:
        segment = _parse_segment(item, kind, cursor)
        if segment is not None:
            segments.append(segment)
            cursor = segment.end_ms
    return Track(
        kind=kind,
        type_code=code,
        segments=segments,
        name=_first_str((meta, obj), ("name", "title", "label")),
    )


def _parse_segment(obj: Any, kind: TrackKind, cursor: int) -> Segment | None:
    if not isinstance(obj, dict):
        return None
    meta = obj.get("m") if isinstance(obj.get("m"), dict) else {}
    assert isinstance(meta, dict)
    places = (meta, obj)
    start = to_number(_first(obj, ("s", "st", "start", "start_ms", "startMs", "ts")))
    if start is None:
        start = to_number(_first(meta, ("start", "start_ms")))
    duration = to_number(_first(obj, ("d", "duration", "dur", "duration_ms", "durationMs")))
    if duration is None:
        duration = to_number(_first(meta, ("d", "duration")))
    end = to_number(_first(obj, ("e", "end", "end_ms", "endMs")))
    start_ms = int(start) if start is not None and start >= 0 else cursor
    if duration is None and end is not None and end >= start_ms:
        duration = end - start_ms
    duration_ms = int(duration) if duration is not None and duration >= 0 else 0

    text = _first_str(places, _TEXT_KEYS) if kind in ("text", "other") else None
    label = _first_str(places, _LABEL_KEYS)
    if label is None:
        source = _first_str(places, _SOURCE_KEYS)
        label = _basename(source) if source else None
    volume = None
    if kind == "audio":
        value = to_number(_first(meta, ("volume", "vol", "v")))
        if value is None:
            value = to_number(_first(obj, ("volume", "vol", "v")))
        if value is not None and value >= 0:
            volume = value / 100 if value > 2 else value  # "35" means 35 %, 0.35 too
    return Segment(start_ms, duration_ms, label=label, volume=volume, text=text)


def _match_tracks(
    old: list[Track], new: list[Track]
) -> tuple[list[tuple[Track, Track]], list[Track], list[Track]]:
    """Pair tracks by kind and order among that kind: (pairs, added, removed)."""
    pairs: list[tuple[Track, Track]] = []
    added: list[Track] = []
    removed: list[Track] = []
    kinds = list(dict.fromkeys([t.kind for t in old] + [t.kind for t in new]))
    for kind in kinds:
        olds = [t for t in old if t.kind == kind]
        news = [t for t in new if t.kind == kind]
        pairs.extend(zip(olds, news, strict=False))
        added.extend(news[len(olds) :])
        removed.extend(olds[len(news) :])
    return pairs, added, removed


def diff_drafts(old: Draft | None, new: Draft, lang: str | None = None) -> list[str]:
    """What changed between two timelines, as short human lines in ``lang`` (empty if nothing).

    e.g. ``Added audio track: Lo-fi (0-10s, 35%)``, ``Removed text track: ...``,
    ``Changed video track: a (0-5s) → a (0-8s)``.
    """

    def say(key: str, **values: object) -> str:
        return _t(key, lang, **values)

    before = [t for t in (old.tracks if old else []) if t.segments]
    after = [t for t in new.tracks if t.segments]
    lines: list[str] = []
    pairs, added, removed = _match_tracks(before, after)
    for track in added:
        lines.append(say("diff_added", track=say(f"kind_{track.kind}"), what=track.describe(lang)))
    for track in removed:
        lines.append(
            say("diff_removed", track=say(f"kind_{track.kind}"), what=track.describe(lang))
        )
    for was, now in pairs:
        if was.describe() != now.describe():
            lines.append(
                say(
                    "diff_changed",
                    track=say(f"kind_{now.kind}"),
                    was=was.describe(lang),
                    now=now.describe(lang),
                )
            )
    if old is not None:
        if old.title != new.title and new.title:
            lines.append(say("diff_title", was=old.title or say("none"), now=new.title))
        # A canvas not known before (a new project's timeline is known empty before
        # its first read) did not change: the backend filled in its default.
        sized = old.width and old.height and new.width and new.height
        if sized and (old.width, old.height) != (new.width, new.height):
            was_size = f"{old.width}x{old.height}"
            lines.append(say("diff_canvas", was=was_size, now=f"{new.width}x{new.height}"))
    return lines


def unchanged(before: Draft, after: Draft) -> bool:
    """Whether the backend's draft object is the same, even in fields the summary skips.

    A baseline without the backend's object (a new project, known to be empty before
    its first read) has no such fields to compare: it is unchanged while the timeline
    still has no content.
    """
    if before.raw is None:
        return not any(track.segments for track in after.tracks)
    return _canonical(before.raw) == _canonical(after.raw)


def _canonical(raw: Any) -> str:
    return json.dumps(raw or {}, sort_keys=True, separators=(",", ":"), default=str)

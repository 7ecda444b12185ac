"""Draft logic: how a chat message changes a session's timeline.

The draft uses the backend's short keys (see NEMO_API.md)::

    {"t": [{"tt": 0, "sg": [{"id": "sg_1", "s": 0, "d": 10000, "m": {"title": ...}}]}],
     "d": 10000, "m": {"width": 1920, "height": 1080, "fps": 30}}

``tt`` is the track type (0 video, 1 audio, 7 text), ``s``/``d`` are start and duration
in milliseconds, ``m`` is free-form metadata.
"""

from __future__ import annotations

import copy
import random
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from simulator.media import Overlay, VideoSpec

VIDEO, AUDIO, TEXT = 0, 1, 7
Draft = dict[str, Any]
Kind = Literal["generate", "edit", "chat"]

# "make a clip of ..." generates; "make the video shorter" is an edit.
_GEN_VERB = re.compile(
    r"\b(generate|make|create|produce|shoot)\s+(?:me\s+|us\s+)?(?!the\b|this\b|it\b|that\b|my\b)",
    re.I,
)
_GEN_NOUN = re.compile(r"\b(clip|video|movie|film|reel|short|animation|footage|trailer)\b", re.I)
_DURATION = re.compile(r"(\d{1,3})\s*-?\s*(?:seconds?|secs?|s)\b", re.I)
_TOPIC = re.compile(r"\b(?:of|about|showing|featuring|where|with)\s+(.+)$", re.I)
_MUSIC = re.compile(r"\b(music|bgm|soundtrack|song|lo-?fi|beat|melody|audio track)\b", re.I)
_TEXT = re.compile(r"\b(title|text|caption|subtitle|headline|overlay)\b", re.I)
_REMOVE = re.compile(r"\b(remove|delete|drop|get rid of|without)\b", re.I)
_QUOTED = re.compile(r"[\"“«']([^\"”»']{1,80})[\"”»']")
_SAYING = re.compile(r"\b(?:saying|says|reading|reads|with the words|that says)\s+(.+)$", re.I)
_CHATTY = re.compile(
    r"^\s*(hi|hello|hey|thanks|thank you|what|how|why|who|can you|could you|help)\b", re.I
)
# The bot speaks six languages, so "make a clip of ..." comes in all of them (the real
# agent understands any): a verb and a noun of each language, anywhere in the message.
_GEN_OTHER = (
    re.compile(r"(?:生成|制作|做|创建|拍)(?:一个|一段|一条|个|段|条)?.*?(?:视频|短片|片子|动画)"),
    re.compile(
        r"\b(?:genera|generar|haz|hazme|hacer|crea|créame|crear|produce|gere|gera|gerar|faça|"
        r"faz|fazer|crie|cria|criar)\b.*?\b(?:video|vídeo|clip|clipe|película|filme|animación|"
        r"animação)\b",
        re.I,
    ),
    re.compile(
        r"\b(?:сделай|сделайте|создай|создайте|сгенерируй|сгенерируйте|сними|снимите)\b.*?"
        r"\b(?:видео|ролик\w*|клип\w*|фильм\w*|анимаци\w*)",
        re.I,
    ),
    re.compile(
        r"\b(?:buat|buatkan|bikin|bikinkan|hasilkan)\b.*?\b(?:video|klip|film|animasi)\b", re.I
    ),
)
_DURATION_OTHER = re.compile(r"(\d{1,3})\s*-?\s*(?:秒|segundos?|секунд\w*|сек\b|detik\b)", re.I)
#: The topic: after "de/sobre/о/про/tentang" not followed by a number ("de 10 segundos").
_TOPIC_OTHER = re.compile(
    r"\b(?:de|sobre|do|da|sobre|о|об|про|tentang)\s+(?!\d)(.+)$|"
    r"(?:生成|制作|做|创建|拍)(?:一个|一段|一条|个|段|条)?(?:\d+秒的?)?(.+?)的?(?:视频|短片|片子|动画)",
    re.I,
)
#: A duration inside the topic ("кота на 7 секунд"): it is the clip's length, not its subject.
_DURATION_IN_TOPIC = re.compile(
    r"(?:\s+(?:на|в|de|por|com|selama|dengan))?\s*\d{1,3}\s*-?\s*"
    r"(?:秒|segundos?|секунд\w*|сек\b|detik\b)",
    re.I,
)
_NOUN_OTHER = re.compile(r"\b(?:video|vídeo|clip|clipe|видео|ролик|klip|film)\b\s*(.*)$", re.I)
_ARTICLE_OTHER = re.compile(r"^\s*(?:un|una|unos|unas|el|la|los|las|um|uma|o|a|os|as)\s+", re.I)
_GENRES = ("jazz", "rock", "piano", "epic", "ambient", "upbeat", "cinematic", "chill", "techno")
_DEFAULT_TITLE_TEXT = "Urban Dreams"


def new_draft(width: int = 1920, height: int = 1080) -> Draft:
    """An empty draft (no tracks)."""
    return {"t": [], "d": 0, "m": {"width": width, "height": height, "fps": 30}}


def is_ready(draft: Draft) -> bool:
    """True when some track has a non-empty segment list (exportable)."""
    return any(tr.get("sg") for tr in draft.get("t", []))


def _track(draft: Draft, tt: int, create: bool = True) -> dict[str, Any] | None:
    for tr in draft["t"]:
        if tr.get("tt") == tt:
            return tr
    if not create:
        return None
    tr = {"tt": tt, "sg": []}
    draft["t"].append(tr)
    return tr


def _recompute(draft: Draft) -> None:
    ends = [sg["s"] + sg["d"] for tr in draft["t"] for sg in tr.get("sg", [])]
    draft["d"] = max(ends, default=0)
    draft["t"] = [tr for tr in draft["t"] if tr.get("sg")]


def _video_end(draft: Draft) -> int:
    tr = _track(draft, VIDEO, create=False)
    return max((sg["s"] + sg["d"] for sg in tr["sg"]), default=0) if tr else 0


@dataclass
class Change:
    """What one chat message did: the tool the agent "called" and the reply text."""

    kind: Kind
    tool: str
    args: dict[str, Any]
    reply: str
    changed: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def _title_from(text: str) -> str:
    body = text.strip().rstrip(".!?。！？")
    if not (_GEN_VERB.search(body) and _GEN_NOUN.search(body)):
        m = _TOPIC_OTHER.search(body) or _NOUN_OTHER.search(body)
        if m:
            topic = _DURATION_IN_TOPIC.sub("", m[1] or m[2] or "")
            topic = _ARTICLE_OTHER.sub("", topic.strip())
            return (topic or "untitled clip")[:80]
    m = _TOPIC.search(body)
    topic = m[1] if m else _GEN_NOUN.split(body, maxsplit=1)[-1]
    topic = re.sub(r"^\s*(?:a|an|the|some)\s+", "", topic.strip(), flags=re.I)
    return (topic or "untitled clip")[:80]


def _seg_id(rng: random.Random) -> str:
    return f"sg_{rng.getrandbits(32):08x}"


def apply_message(draft: Draft, text: str, rng: random.Random) -> Change:
    """Interpret ``text`` as the agent would and change ``draft`` in place."""
    low = text.lower()
    if _GEN_VERB.search(text) and _GEN_NOUN.search(text):
        return generate(draft, text, rng)
    if any(pattern.search(text) for pattern in _GEN_OTHER):
        return generate(draft, text, rng)
    if _MUSIC.search(text):
        return _music(draft, text, rng)
    if _TEXT.search(text) and ("add" in low or _REMOVE.search(text) or "put" in low):
        return _text(draft, text, rng)
    if not is_ready(draft):
        reply = (
            "I'm your video assistant. Tell me what to make, for example "
            '"make a 10-second clip of a futuristic city at night".'
        )
        return Change("chat", "", {}, reply, changed=False)
    if _CHATTY.search(text) or text.strip().endswith("?"):
        tracks = len(draft["t"])
        reply = (
            f"Your project has {tracks} track{'s' if tracks != 1 else ''} "
            f"({draft['d'] / 1000:g}s). Open the timeline panel to review it, "
            "or tell me what to change."
        )
        return Change("chat", "", {}, reply, changed=False)
    return other_edit(draft, text, rng)


def generate(draft: Draft, text: str, rng: random.Random) -> Change:
    """Replace the video track with one clip generated from ``text``."""
    m = _DURATION.search(text) or _DURATION_OTHER.search(text)
    seconds = max(1, min(int(m[1]), 300)) if m else 10
    title = _title_from(text)
    vertical = bool(re.search(r"\b(vertical|portrait|9:16|tiktok|reels?|shorts)\b", text, re.I))
    width, height = (1080, 1920) if vertical else (1920, 1080)
    draft["m"].update(width=width, height=height)
    track = _track(draft, VIDEO)
    assert track is not None
    seg = {
        "id": _seg_id(rng),
        "s": 0,
        "d": seconds * 1000,
        "m": {"title": title, "width": width, "height": height, "prompt": text},
    }
    track["sg"] = [seg]
    for tr in draft["t"]:  # music follows the new length
        if tr["tt"] == AUDIO:
            for sg in tr["sg"]:
                sg["d"] = seconds * 1000
    _recompute(draft)
    reply = f"I've generated a {seconds}-second video of {title}."
    args = {"prompt": text, "duration": seconds, "aspect_ratio": "9:16" if vertical else "16:9"}
    return Change("generate", "generate_video", args, reply, extra={"title": title})


def _music(draft: Draft, text: str, rng: random.Random) -> Change:
    if _REMOVE.search(text):
        tr = _track(draft, AUDIO, create=False)
        if tr is not None:
            tr["sg"] = []
        _recompute(draft)
        return Change("edit", "remove_audio", {}, "I removed the background music.")
    low = text.lower()
    if re.search(r"lo-?fi", low):
        title = "Lo-fi"
    else:
        title = next((g.capitalize() for g in _GENRES if g in low), "Background music")
    if re.search(r"\b(louder|volume up|increase)\b", low):
        return _volume(draft, +0.2)
    if re.search(r"\b(quieter|softer|lower|volume down|decrease)\b", low):
        return _volume(draft, -0.2)
    length = draft["d"] or 10_000
    tr = _track(draft, AUDIO)
    assert tr is not None
    tr["sg"] = [{"id": _seg_id(rng), "s": 0, "d": length, "m": {"title": title, "volume": 0.35}}]
    _recompute(draft)
    return Change(
        "edit",
        "add_background_music",
        {"style": title, "volume": 0.35},
        f"I added {title} background music at 35% volume.",
    )


def _volume(draft: Draft, delta: float) -> Change:
    tr = _track(draft, AUDIO, create=False)
    if tr is None or not tr["sg"]:
        return Change("chat", "", {}, "There is no music to adjust yet.", changed=False)
    vol = 0.0
    for sg in tr["sg"]:
        vol = round(min(1.0, max(0.0, sg["m"].get("volume", 0.35) + delta)), 2)
        sg["m"]["volume"] = vol
    return Change("edit", "set_volume", {"volume": vol}, f"Music volume is now {vol:.0%}.")


def _text(draft: Draft, text: str, rng: random.Random) -> Change:
    if _REMOVE.search(text):
        tr = _track(draft, TEXT, create=False)
        if tr is not None:
            tr["sg"] = []
        _recompute(draft)
        return Change("edit", "remove_text", {}, "I removed the title.")
    m = _QUOTED.search(text) or _SAYING.search(text)
    words = m[1].strip().rstrip(".!") if m else _DEFAULT_TITLE_TEXT
    tr = _track(draft, TEXT)
    assert tr is not None
    seg = {"id": _seg_id(rng), "s": 0, "d": 3000, "m": {"text": words, "font": "Sans Bold"}}
    tr["sg"].append(seg)
    _recompute(draft)
    return Change("edit", "add_text", {"text": words}, f'I added the title "{words}" (0-3s).')


def other_edit(draft: Draft, text: str, rng: random.Random) -> Change:
    """Any other edit: trim, transition, filter, or a recorded tweak (needs a non-empty
    draft)."""
    low = text.lower()
    video = _track(draft, VIDEO, create=False)
    segs = video["sg"] if video else []
    m = _DURATION.search(text)
    if segs and re.search(r"\b(shorter|trim|cut|shorten|longer|extend|lengthen)\b", low):
        seg = segs[-1]
        if m:
            seg["d"] = max(1, int(m[1])) * 1000
        elif re.search(r"\b(longer|extend|lengthen)\b", low):
            seg["d"] += 2000
        else:
            seg["d"] = max(1000, seg["d"] - 2000)
        _recompute(draft)
        secs = seg["d"] // 1000
        return Change("edit", "trim_clip", {"duration": secs}, f"The clip is now {secs} seconds.")
    if segs and re.search(r"\b(transition|fade|dissolve)\b", low):
        for seg in segs:
            seg["m"]["transition"] = "fade"
        return Change("edit", "add_transition", {"type": "fade"}, "I added fade transitions.")
    if segs and (style := re.search(r"\b(warm|cold|cinematic|vintage|black and white|neon)", low)):
        for seg in segs:
            seg["m"]["filter"] = style[1]
        return Change("edit", "apply_filter", {"filter": style[1]}, f"I applied a {style[1]} look.")
    # Anything else: a plausible, visible tweak recorded on the last segment.
    target = segs[-1] if segs else next(sg for tr in draft["t"] for sg in tr["sg"])
    edits = target["m"].setdefault("edits", [])
    edits.append(text.strip()[:80])
    if rng.random() < 0.5:
        target["m"]["speed"] = rng.choice([0.75, 1.25, 1.5])
    return Change("edit", "edit_timeline", {"instruction": text}, "Done, I updated the timeline.")


def add_media(
    draft: Draft,
    *,
    kind: str,
    filename: str,
    url: str,
    duration: float,
    width: int,
    height: int,
    rng: random.Random,
) -> None:
    """Put an uploaded file on the timeline: images/videos append to the video track,
    audio goes on the audio track."""
    meta: dict[str, Any] = {"title": filename, "src": url}
    if kind == "audio":
        tr = _track(draft, AUDIO)
        assert tr is not None
        meta["volume"] = 1.0
        tr["sg"] = [{"id": _seg_id(rng), "s": 0, "d": int(duration * 1000) or 10_000, "m": meta}]
    else:
        tr = _track(draft, VIDEO)
        assert tr is not None
        meta.update(width=width or 1920, height=height or 1080)
        d = int(duration * 1000) if kind == "video" and duration > 0 else 3000
        tr["sg"].append({"id": _seg_id(rng), "s": _video_end(draft), "d": d, "m": meta})
    _recompute(draft)


def title_of(draft: Draft) -> str:
    """The first video segment's title, else a text segment's text, else a default."""
    for tr in draft.get("t", []):
        for sg in tr.get("sg", []):
            m = sg.get("m") or {}
            if tr.get("tt") == VIDEO and m.get("title"):
                return str(m["title"])
    for tr in draft.get("t", []):
        for sg in tr.get("sg", []):
            if (sg.get("m") or {}).get("text"):
                return str(sg["m"]["text"])
    return "NemoVideo export"


def video_spec(draft: Draft, width: int, height: int) -> VideoSpec:
    """What the rendered MP4 of ``draft`` shows: its length, its text segments at their
    times, its video segments' titles and whether it has music. ``width``x``height`` is the
    landscape size; a portrait draft gets it turned."""
    meta = draft.get("m") or {}
    if (meta.get("height") or 0) > (meta.get("width") or 0) and width > height:
        width, height = height, width

    def overlays(tt: int, key: str) -> tuple[Overlay, ...]:
        found = []
        for tr in draft.get("t", []):
            if tr.get("tt") != tt:
                continue
            for sg in tr.get("sg", []):
                text = str((sg.get("m") or {}).get(key) or "")
                start = sg.get("s", 0) / 1000
                found.append(Overlay(text, start, start + sg.get("d", 0) / 1000))
        return tuple(found)

    music = any(tr.get("sg") for tr in draft.get("t", []) if tr.get("tt") == AUDIO)
    return VideoSpec(
        width,
        height,
        (draft.get("d") or 0) / 1000,
        texts=overlays(TEXT, "text"),
        labels=overlays(VIDEO, "title"),
        music=music,
    )


def snapshot(draft: Draft) -> Draft:
    """A deep copy safe to hand out."""
    return copy.deepcopy(draft)

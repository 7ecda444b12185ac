"""Translate the backend's GUI talk into what works in a chat, and tidy relayed text.

The backend speaks as if its web editor were on screen, in the user's language:
"click the Export button", "open the timeline panel to see the change",
"preview in timeline to hear how it sounds", "drag the clip", "点击导出按钮",
"在时间线中预览效果", "拖拽片段". Each phrase belongs to one of a few families,
and each family has one chat equivalent (English and Chinese here; Spanish,
Portuguese, Russian and Indonesian in :mod:`core.gui_langs`, in the same families):

=============  ==========================================  ==========================
family         the backend says (any wording of it)        the chat says
=============  ==========================================  ==========================
export         click/press/use the Export (Download)       say “export”
               button; 点击导出按钮
view           open/preview/check/view/review ... the      see the timeline below
               timeline/preview/player/editor (panel),     (the bot shows the track
               preview in timeline, "to see/hear ..."      summary after the reply)
               that follows; 打开/查看/在时间线(中)预览...
upload         drag (and drop) / import files, the Upload  send the file here in
               button; 拖拽上传文件                         the chat
drag           drag/drop anything else                     tell me in a message what
                                                           to move and where
panel          open the X panel/tab/menu/sidebar           tell me what you'd like
                                                           for the X
click          click/press/tap [X] / the X button          say “X”
=============  ==========================================  ==========================

A phrase's purpose clause ("to hear how it sounds", "查看效果") goes with it:
the chat cannot play anything, so promising it would be untrue. Some phrases
also ask for something besides words (:class:`GuiHints`): a view shows the
track summary, an export mention offers the Export action.

Text is translated a sentence at a time (:class:`SentenceBuffer`), so a phrase
split across two streamed chunks is still caught; the buffer also normalises the
whitespace of relayed text (no leading or trailing blank lines, no runs of empty
lines, no spaces before a line break).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from core import gui_langs

__all__ = [
    "FAMILIES",
    "RULES_BY_LANGUAGE",
    "GuiHints",
    "SentenceBuffer",
    "missing_families",
    "translate",
]


@dataclass(slots=True)
class GuiHints:
    """What the translated text asked for besides words."""

    show_timeline: bool = False
    offer_export: bool = False


_I = re.IGNORECASE

# -- the building blocks of English GUI talk -------------------------------------------

_THE = r"(?:(?:the|your|this|that)\s+)?"
_QUOTE_OPEN = r"[\[“\"'‘「【]?"
_QUOTE_CLOSE = r"[\]”\"'’」】]?"
_CONTROL = r"(?:button|icon|option|link|tab|menu item|menu)"
_CLICK = (
    r"(?:click(?:ing)?|press(?:ing)?|tap(?:ping)?|hit(?:ting)?|select(?:ing)?|"
    r"choose|choosing|use|using)(?:\s+on)?"
)
_EXPORT_WORD = r"(?:export|download|render)(?:\s+video)?"
#: Places of the editor that show the project: all of them become the track summary.
_VIEW_PLACE = (
    r"(?:timeline|time\s*line|preview(?:\s+(?:window|pane|player))?|player|canvas|"
    r"editor|storyboard|track\s+list|tracks)"
)
_PANEL = r"(?:panel|pane|tab|sidebar|side\s*bar|menu|window|view|section|area|drawer|dialog)"
_VIEW_VERB = (
    r"(?:open(?:ing)?|preview(?:ing)?|check(?:ing)?(?:\s+out)?|view(?:ing)?|review(?:ing)?|"
    r"look(?:ing)?\s+at|take\s+a\s+look\s+at|have\s+a\s+look\s+at|go(?:ing)?\s+to|"
    r"switch(?:ing)?\s+to|head\s+to|play(?:ing)?(?:\s+back)?|watch(?:ing)?|see|"
    r"listen(?:ing)?\s+to|hear)"
)
#: Where a control sits on screen ("in the top right corner", "on the toolbar").
_WHERE = (
    r"(?:\s+(?:in|at|on|from)\s+the\s+(?:(?:top|bottom|upper|lower|left|right)[\s-]*){0,2}"
    r"(?:corner|side|toolbar|tool\s*bar|menu|bar|header|panel|of\s+the\s+(?:screen|page|editor)))?"
)
_OBJECT = r"(?:(?:it|them|this|that|the\s+(?:result|video|clip|change|changes|edit|edits))\s+)?"
#: The rest of a clause: up to punctuation, "and", "then", "when", "once" or the end.
_CLAUSE_REST = (
    r"[^,.;:!?\n，。；：！？]*?"
    r"(?=\s+(?:and|then|when|once|before|after)\b|[,.;:!?\n，。；：！？]|$)"
)
_PURPOSE = (
    r"(?:\s+(?:to|and)\s+(?:see|hear|check|review|watch|preview|view|make\s+sure|confirm|"
    rf"listen|play|fine-tune|adjust){_CLAUSE_REST})?"
)

# -- the building blocks of Chinese GUI talk -------------------------------------------

_ZH_CLICK = r"(?:点击|单击|双击|点按|点一下|点|按下|按|使用|选择)"
_ZH_QUOTE_OPEN = r"[「“\"【\[『]?"
_ZH_QUOTE_CLOSE = r"[」”\"】\]』]?"
_ZH_VIEW_PLACE = r"(?:时间线|时间轴|预览(?:窗口|区)?|播放器|编辑器|画布|轨道)"
_ZH_PANEL = r"(?:面板|窗口|区域|视图|标签页|侧边栏|菜单)"
_ZH_CLAUSE_REST = r"[^，。；：！？,.;:!?\n]*"

Rule = tuple[re.Pattern[str], str, str | None]

#: English GUI talk, by family (each family in the order its rules apply).
_EN: dict[str, list[Rule]] = {
    # export: any control named export/download/render, with or without a verb
    "export": [
        (
            re.compile(
                rf"\b{_CLICK}\s+{_THE}{_QUOTE_OPEN}{_EXPORT_WORD}{_QUOTE_CLOSE}(?:\s+{_CONTROL})?"
                rf"{_WHERE}",
                _I,
            ),
            "say “export”",
            "export",
        ),
        (
            re.compile(
                rf"\b{_THE}{_QUOTE_OPEN}{_EXPORT_WORD}{_QUOTE_CLOSE}\s+{_CONTROL}\b{_WHERE}", _I
            ),
            "the “export” command",
            "export",
        ),
    ],
    # upload: files dragged in or imported through a control
    "upload": [
        (
            re.compile(
                rf"\b(?:drag(?:ging)?(?:\s*(?:and|&|n|/)\s*drop(?:ping)?)?|drop(?:ping)?|import(?:ing)?)\s+"
                rf"(?:(?:(?:your|some|any|more|other)\s+(?:own\s+)?(?:\w+\s+)?"
                rf"(?:files?|photos?|images?|pictures?|videos?|clips?|media|footage|assets?|music|audio|songs?))"
                rf"|(?:(?:the|a|an)\s+)?(?:\w+\s+)?(?:files?|media|footage|assets?)\b)"
                rf"{_CLAUSE_REST}",
                _I,
            ),
            "send the file here in the chat",
            None,
        ),
        (
            re.compile(
                rf"\b{_CLICK}\s+{_THE}{_QUOTE_OPEN}(?:upload|import|add\s+media){_QUOTE_CLOSE}"
                rf"(?:\s+{_CONTROL})?{_CLAUSE_REST}",
                _I,
            ),
            "send the file here in the chat",
            None,
        ),
    ],
    # view: the project shown in the editor becomes the track summary below
    "view": [
        (
            re.compile(
                rf"\b{_VIEW_VERB}\s+{_OBJECT}(?:(?:in|on|at|from|inside)\s+)?{_THE}"
                rf"{_QUOTE_OPEN}{_VIEW_PLACE}{_QUOTE_CLOSE}(?:\s+{_PANEL})?\b{_PURPOSE}",
                _I,
            ),
            "see the timeline below",
            "timeline",
        ),
        (
            re.compile(
                rf"\b(?:in|on)\s+{_THE}{_VIEW_PLACE}(?:\s+{_PANEL})?\s+(?:to|and)\s+"
                rf"(?:see|hear|check|review|watch|preview|view|listen){_CLAUSE_REST}",
                _I,
            ),
            "in the timeline below",
            "timeline",
        ),
    ],
    # drag: anything else dragged on screen
    "drag": [
        (
            re.compile(
                # "drag and drop" always; a bare "drag" only with an object ("drag the clip"),
                # so "a video of drag racing" stays as it is.
                r"\b(?:drag(?:ging)?\s*(?:and|&|n|/)\s*drop(?:ping)?|drag(?:ging)?\s+(?=(?:it|them|"
                r"the|this|that|these|those|a|an|each|any|your|its|their)\b))"
                rf"{_CLAUSE_REST}",
                _I,
            ),
            "just tell me in a message what to move and where",
            None,
        ),
    ],
    # panel: any other panel, tab or menu
    "panel": [
        (
            re.compile(
                rf"\b(?:open(?:ing)?|go(?:ing)?\s+to|switch(?:ing)?\s+to|head\s+to|use|using)\s+{_THE}"
                rf"{_QUOTE_OPEN}([\w -]{{1,30}}?){_QUOTE_CLOSE}\s+{_PANEL}\b{_CLAUSE_REST}",
                _I,
            ),
            "tell me what you'd like for the \\1",
            None,
        ),
    ],
    # click: any other control
    "click": [
        (
            re.compile(
                rf"\b{_CLICK}\s+{_THE}[\[“\"'‘「【]([^\]”\"'’」】]{{1,30}})[\]”\"'’」】](?:\s+{_CONTROL})?",
                _I,
            ),
            "say “\\1”",
            None,
        ),
        (
            re.compile(
                rf"\b{_CLICK}\s+{_THE}([\w-]+(?:\s+[\w-]+){{0,2}}?)\s+{_CONTROL}\b",
                _I,
            ),
            "say “\\1”",
            None,
        ),
        (
            re.compile(r"\b(?:click|tap)(?:\s+on)?\s+([A-Z][\w-]*(?:\s+[A-Z][\w-]*){0,2})"),
            "say “\\1”",
            None,
        ),
    ],
}

#: Chinese GUI talk, by family.
_ZH: dict[str, list[Rule]] = {
    "export": [
        (
            re.compile(
                rf"{_ZH_CLICK}?\s*(?:右上角|左上角|右下角|下方|上方|底部|顶部)?的?\s*"
                rf"{_ZH_QUOTE_OPEN}(?:导出|下载|渲染)(?:视频)?{_ZH_QUOTE_CLOSE}\s*(?:按钮|按键|键|图标|选项)"
            ),
            "发送“导出”",
            "export",
        ),
        (
            re.compile(
                rf"{_ZH_CLICK}\s*{_ZH_QUOTE_OPEN}(?:导出|下载|渲染){_ZH_QUOTE_CLOSE}(?!视频给)"
            ),
            "发送“导出”",
            "export",
        ),
    ],
    "upload": [
        (
            re.compile(
                rf"(?:(?:拖拽|拖动|拖放|拖曳|拖入|拖进)(?:上传|导入)?|导入|点击上传|点击导入)"
                rf"(?:你的|您的)?(?:本地)?(?:素材)?(?:文件|素材|图片|照片|视频|音频|音乐|媒体){_ZH_CLAUSE_REST}"
            ),
            "直接把文件发到聊天里",
            None,
        ),
    ],
    # "打开时间线面板查看", "在时间线中预览效果", "在预览窗口中查看"
    "view": [
        (
            re.compile(
                rf"(?:(?:打开|点开|查看|切换到|进入|前往|去)\s*(?:左侧|右侧|下方|上方|底部)?的?\s*"
                rf"{_ZH_VIEW_PLACE}{_ZH_PANEL}?(?:中|里|上)?|在\s*{_ZH_VIEW_PLACE}{_ZH_PANEL}?(?:中|里|上))"
                rf"(?:\s*(?:以|来|即可|就能|可以)?\s*(?:预览|查看|试听|播放|确认|检查|看看|听听){_ZH_CLAUSE_REST})?"
            ),
            "查看下方的时间线",
            "timeline",
        ),
    ],
    "drag": [
        (
            re.compile(rf"(?:拖拽|拖动|拖放|拖曳|拖){_ZH_CLAUSE_REST}"),
            "直接发消息告诉我要把什么移到哪里",
            None,
        ),
    ],
    "panel": [
        (
            re.compile(
                rf"(?:打开|点开|切换到|进入)\s*{_ZH_QUOTE_OPEN}(\w{{1,12}}?){_ZH_QUOTE_CLOSE}\s*{_ZH_PANEL}{_ZH_CLAUSE_REST}"
            ),
            "告诉我你对\\1的要求",
            None,
        ),
    ],
    "click": [
        (
            re.compile(
                rf"{_ZH_CLICK}\s*[「“\"【\[『]([^」”\"】\]』]{{1,20}})[」”\"】\]』](?:\s*(?:按钮|按键|图标|选项))?"
            ),
            "发送“\\1”",
            None,
        ),
        (
            re.compile(rf"{_ZH_CLICK}\s*(\w{{1,10}}?)\s*(?:按钮|按键|图标)"),
            "发送“\\1”",
            None,
        ),
    ],
}

#: The families of GUI talk: every language has rules for each (``missing_families``).
FAMILIES = ("export", "upload", "view", "drag", "panel", "click")

#: Every language's rules by family: English and Chinese here, the others in
#: :mod:`core.gui_langs`.
RULES_BY_LANGUAGE: dict[str, dict[str, list[Rule]]] = {
    "en": _EN,
    "zh": _ZH,
    **gui_langs.RULES_BY_LANGUAGE,
}

#: Every rule, in the order they apply: language by language, family by family.
_RULES: list[Rule] = [
    rule for families in RULES_BY_LANGUAGE.values() for rules in families.values() for rule in rules
]

#: Two GUI phrases that became the same words in one sentence ("see the timeline below,
#: then see the timeline below"): the second goes.
_REPEATED = re.compile(
    r"((?:see|in) the timeline below|查看下方的时间线)"
    r"(?:(?:\s*[,，]\s*|\s+)(?:and\s+|then\s+|然后|并)*(?:see|in) the timeline below|"
    r"[，,]?(?:然后|并)?查看下方的时间线)+",
    _I,
)
#: The same in the other languages: "mira la línea de tiempo de abajo, luego mira ...".
_REPEATED_LANGS = [
    re.compile(
        rf"({re.escape(see)})(?:\s*,?\s*(?:y|e|и|dan|luego|depois|затем|lalu)?\s*{re.escape(see)})+",
        _I,
    )
    for see in gui_langs.SEE_BELOW
]
#: "I encountered a temporary issue" (to the end of its sentence) in every language.
TEMP_ISSUE_BY_LANGUAGE: dict[str, str] = {
    "en": r"I encountered a temporary issue[^.!?\n]*[.!?]?",
    "zh": r"我遇到了(?:一个)?临时(?:性)?问题[^。！？\n]*[。！？]?",
    **gui_langs.TEMP_ISSUE,
}
_TEMP_ISSUE = re.compile(rf"\s*(?:{'|'.join(TEMP_ISSUE_BY_LANGUAGE.values())})\s*$", _I)
_SENTENCE_END = re.compile(r"[.!?。！？\n]")
_SPACE_BEFORE_BREAK = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n){2,}")
_SPACE_RUN = re.compile(r"(?<=\S)[ \t]{2,}(?=\S)")


def missing_families(languages: Iterable[str]) -> dict[str, list[str]]:
    """The GUI-talk families each of ``languages`` has no rule for (empty when complete).

    "temporary_issue" stands for the trailing "I encountered a temporary issue".
    """
    missing = {}
    for code in languages:
        families = RULES_BY_LANGUAGE.get(code, {})
        lacks = [family for family in FAMILIES if not families.get(family)]
        if code not in TEMP_ISSUE_BY_LANGUAGE:
            lacks.append("temporary_issue")
        if lacks:
            missing[code] = lacks
    return missing


def _cased(match: re.Match[str], replacement: str) -> str:
    """The replacement, capitalised where the phrase began a sentence."""
    out = match.expand(replacement)
    before = match.string[: match.start()].rstrip(" ")
    if not before or before[-1] in ".!?\n":
        out = out[:1].upper() + out[1:]
    return out


def _substitute(pattern: re.Pattern[str], replacement: str) -> Callable[[re.Match[str]], str]:
    return lambda match: _cased(match, replacement)


def translate(text: str, hints: GuiHints | None = None) -> str:
    """Rewrite GUI phrases for a chat; record in ``hints`` what they asked for."""
    for pattern, replacement, hint in _RULES:
        if pattern.search(text):
            text = pattern.sub(_substitute(pattern, replacement), text)
            if hints is not None and hint == "export":
                hints.offer_export = True
            elif hints is not None and hint == "timeline":
                hints.show_timeline = True
    for repeated in _REPEATED_LANGS:
        text = repeated.sub(r"\1", text)
    return _REPEATED.sub(r"\1", text)


def tidy(text: str) -> str:
    """Whitespace inside a piece of relayed text: no blank-line runs, no spaces at line ends."""
    text = _SPACE_BEFORE_BREAK.sub("\n", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return _SPACE_RUN.sub(" ", text)


@dataclass(slots=True)
class SentenceBuffer:
    """Holds streamed text until a sentence ends, then hands it on translated and tidied.

    A sentence saying "I encountered a temporary issue" is held back: the backend
    tacks it onto replies that worked, so it is shown only if more text follows.
    Whitespace between sentences is held too, so a reply never starts or ends with
    blank lines, and a run of empty lines becomes one.
    """

    hints: GuiHints = field(default_factory=GuiHints)
    _pending: str = ""
    _held: str = ""
    _gap: str = ""  # whitespace after the last text handed on
    _started: bool = False

    def feed(self, delta: str) -> str:
        """Add a chunk; return the translated text of every sentence it completed."""
        self._pending += delta
        ends = [m.end() for m in _SENTENCE_END.finditer(self._pending)]
        if not ends:
            return ""
        done, self._pending = self._pending[: ends[-1]], self._pending[ends[-1] :]
        done, self._held = self._held + done, ""
        match = _TEMP_ISSUE.search(done)
        if match:
            done, self._held = done[: match.start()], done[match.start() :]
        return self._emit(translate(done, self.hints))

    def flush(self, *, cut: bool = False) -> str:
        """The translated rest; a held 'temporary issue' sentence at the very end is dropped.

        ``cut``: the stream ended mid-reply, so an unfinished sentence ends in "…".
        """
        rest, self._pending = self._pending, ""
        if rest.strip():
            rest, self._held = self._held + rest, ""
        self._held = ""
        out = translate(_TEMP_ISSUE.sub("", rest), self.hints).rstrip()
        if cut and out and out[-1] not in ".!?。！？…":
            out += " …"
        return self._emit(out)

    def _emit(self, text: str) -> str:
        """``text`` with the whitespace before it settled; its own trailing whitespace held."""
        body = text.rstrip()
        if not body.strip():
            self._gap += text
            return ""
        lead = len(body) - len(body.lstrip())
        gap, self._gap = self._gap + body[:lead], text[len(body) :]
        body = tidy(body[lead:])
        if not self._started:
            self._started = True
            return body
        if "\n" in gap:
            return ("\n\n" if gap.count("\n") > 1 else "\n") + body
        return (" " if gap else "") + body

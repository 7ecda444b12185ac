"""GUI talk from the backend becomes chat talk, sentence by sentence."""

from __future__ import annotations

import re

import pytest

from core import gui
from core.gui import FAMILIES, GuiHints, SentenceBuffer, missing_families, translate
from core.language import SUPPORTED


def stream_through(chunks: list[str]) -> tuple[str, GuiHints]:
    buffer = SentenceBuffer()
    out = "".join(buffer.feed(c) for c in chunks) + buffer.flush()
    return out, buffer.hints


#: Words that only make sense with the web editor on screen.
GUI_EN = re.compile(
    r"\b(click|press|tap|drag|drop|panel|sidebar|button|icon|tab)\b|preview in|in timeline", re.I
)
GUI_ZH = re.compile(r"点击|单击|打开|拖|按钮|面板|图标|在时间线中")


def test_export_button_becomes_the_export_command() -> None:
    hints = GuiHints()
    assert translate("Click the Export button to render.", hints) == "Say “export” to render."
    assert hints.offer_export


# Every way the backend names the export control, where it sits, with or without a verb.
@pytest.mark.parametrize(
    "text",
    [
        "Click the Export button to download your video.",
        "Then press Export.",
        "Tap the [Export] button when you're ready.",
        "Hit Download when you're happy.",
        "Use the export option in the top right corner.",
        "Select “Export video” from the toolbar.",
        "When it looks right, click on the export icon at the top of the screen.",
        "You'll find the Export button on the toolbar.",
    ],
)
def test_every_wording_of_the_export_control_offers_the_export_command(text: str) -> None:
    hints = GuiHints()
    out = translate(text, hints)
    assert hints.offer_export
    assert "“export”" in out
    assert not GUI_EN.search(out), out


# Every way of pointing at the editor's view of the project: the chat shows the tracks.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Preview in timeline to hear how it sounds, then click the Export button.",
            "See the timeline below, then say “export”.",
        ),
        ("Open the timeline panel to see the change.", "See the timeline below."),
        (
            "Open the timeline panel to review it, and click the Export button when you're ready.",
            "See the timeline below, and say “export” when you're ready.",
        ),
        (
            "Preview in timeline to check it, then click the Export button to download your video.",
            "See the timeline below, then say “export” to download your video.",
        ),
        ("Open the timeline panel, then preview in the timeline.", "See the timeline below."),
        ("Check out the preview window to watch the result.", "See the timeline below."),
        (
            "I've added the music; you can listen to it in the preview panel.",
            "I've added the music; you can see the timeline below.",
        ),
        ("Have a look at the storyboard view.", "See the timeline below."),
        ("Go to the Timeline tab and play it back.", "See the timeline below."),
    ],
)
def test_views_of_the_editor_become_the_timeline_below(text: str, expected: str) -> None:
    hints = GuiHints()
    out = translate(text, hints)
    assert out == expected
    assert hints.show_timeline


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Drag the clip to the start.", "Just tell me in a message what to move and where."),
        (
            "You can drag the clip on the timeline to fine-tune it.",
            "You can just tell me in a message what to move and where.",
        ),
        (
            "Drag and drop to reorder the scenes.",
            "Just tell me in a message what to move and where.",
        ),
        ("Drag your photos into the media library.", "Send the file here in the chat."),
        ("Drag and drop files here to upload them.", "Send the file here in the chat."),
        ("Click the Upload button to add your logo.", "Send the file here in the chat."),
        ("Import your own footage first.", "Send the file here in the chat."),
    ],
)
def test_dragging_and_uploading_become_messages(text: str, expected: str) -> None:
    assert translate(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Click [Add Music] to continue.", "Say “Add Music” to continue."),
        ("Press the Apply button.", "Say “Apply”."),
        ("Click on “Auto captions” to add subtitles.", "Say “Auto captions” to add subtitles."),
        ("Open the Music panel to pick a track.", "Tell me what you'd like for the Music."),
    ],
)
def test_other_controls_and_panels_become_words_to_say(text: str, expected: str) -> None:
    out = translate(text)
    assert out == expected
    assert not GUI_EN.search(out)


@pytest.mark.parametrize(
    ("text", "expected", "timeline", "export"),
    [
        ("视频已生成，点击导出按钮即可下载。", "视频已生成，发送“导出”即可下载。", False, True),
        (
            "请在时间线中预览效果，然后点击右上角的导出按钮。",
            "请查看下方的时间线，然后发送“导出”。",
            True,
            True,
        ),
        ("打开时间线面板查看修改。", "查看下方的时间线。", True, False),
        ("在预览窗口中查看效果。", "查看下方的时间线。", True, False),
        ("点击导出。", "发送“导出”。", False, True),
        ("你可以拖拽片段来调整顺序。", "你可以直接发消息告诉我要把什么移到哪里。", False, False),
        ("拖动标题到 5 秒处。", "直接发消息告诉我要把什么移到哪里。", False, False),
        ("拖拽上传你的素材文件到这里。", "直接把文件发到聊天里。", False, False),
        ("点击“添加音乐”按钮继续。", "发送“添加音乐”继续。", False, False),
        ("打开音乐面板选择一首曲子。", "告诉我你对音乐的要求。", False, False),
        ("单击【字幕】。", "发送“字幕”。", False, False),
    ],
)
def test_chinese_gui_talk_is_translated(
    text: str, expected: str, timeline: bool, export: bool
) -> None:
    hints = GuiHints()
    out = translate(text, hints)
    assert out == expected
    assert not GUI_ZH.search(out)
    assert (hints.show_timeline, hints.offer_export) == (timeline, export)


@pytest.mark.parametrize(
    "text",
    [
        "A neon city at night, with rain on the glass.",
        "The export trade is booming. Let me render a timeline of the events.",
        "I've generated a 10-second video of drag racing at dusk.",
        "I removed the background music and dropped the volume of the voice.",
        "Your project has 2 tracks (10s).",
        "我为你生成了一段 10 秒的城市夜景视频。",
        "已添加背景音乐，音量为 35%。",
    ],
)
def test_text_without_gui_talk_is_untouched(text: str) -> None:
    hints = GuiHints()
    assert translate(text, hints) == text
    assert hints == GuiHints()


def test_phrase_split_across_chunks_is_still_caught() -> None:
    out, hints = stream_through(["Done! Click the Exp", "ort button when ready."])
    assert out == "Done! Say “export” when ready."
    assert hints.offer_export


def test_trailing_temporary_issue_is_dropped_but_kept_mid_reply() -> None:
    out, _ = stream_through(["Added music. ", "I encountered a temporary issue."])
    assert out == "Added music."
    out, _ = stream_through(["I encountered a temporary issue. ", "Retrying worked: added music."])
    assert "temporary issue" in out and out.endswith("added music.")
    out, _ = stream_through(["已添加音乐。", "我遇到了一个临时问题。"])
    assert out == "已添加音乐。"


@pytest.mark.parametrize(
    "chunks",
    [
        # the backend's trailing "\n\nI encountered a temporary issue" (no full stop)
        ["I added Lo-fi background music.", "\n\nI encountered a temporary issue"],
        ["I added Lo-fi background music.\n\n", "\n"],
        ["\n  I added Lo-fi background music.  ", "\n\n\n"],
    ],
)
def test_relayed_text_never_starts_or_ends_with_blank_lines(chunks: list[str]) -> None:
    out, _ = stream_through(chunks)
    assert out == "I added Lo-fi background music."


def test_whitespace_between_sentences_is_normalised() -> None:
    out, _ = stream_through(["First line.  \n\n\n\n", "Second   line.\n", "Third."])
    assert out == "First line.\n\nSecond line.\nThird."


def test_a_reply_cut_mid_sentence_says_so() -> None:
    buffer = SentenceBuffer()
    shown = buffer.feed("I added the music. Now I am adjusting the vol")
    assert shown == "I added the music."
    assert buffer.flush(cut=True) == " Now I am adjusting the vol …"


def test_text_without_sentence_end_is_flushed() -> None:
    out, _ = stream_through(["no full stop here"])
    assert out == "no full stop here"


#: GUI words of the four other languages, none of which may survive translation.
GUI_OTHER = re.compile(
    r"\b(haz clic|pulsa|botón|panel|arrastra|clique|botão|painel|arraste|нажмите|кнопк\w*|"
    r"панел\w*|перетащ\w*|klik|tombol|seret)\b",
    re.I,
)


@pytest.mark.parametrize(
    ("text", "expected", "timeline", "export"),
    [
        # Spanish
        (
            "Haz clic en el botón Exportar para descargar tu video.",
            "Di “exportar” para descargar tu video.",
            False,
            True,
        ),
        (
            "Previsualízalo en la línea de tiempo para escuchar cómo suena, luego pulsa Exportar.",
            "Mira la línea de tiempo de abajo, luego di “exportar”.",
            True,
            True,
        ),
        (
            "Abre el panel de la línea de tiempo para ver el cambio.",
            "Mira la línea de tiempo de abajo.",
            True,
            False,
        ),
        ("Usa el botón Exportar en la esquina superior derecha.", "Di “exportar”.", False, True),
        (
            "Arrastra tus archivos aquí para subirlos.",
            "Envía el archivo aquí en el chat.",
            False,
            False,
        ),
        (
            "Arrastra el título al segundo 5.",
            "Dime en un mensaje qué mover y adónde.",
            False,
            False,
        ),
        (
            "Puedes arrastrar el clip para cambiar el orden.",
            "Puedes decirme en un mensaje qué mover y adónde.",
            False,
            False,
        ),
        (
            "Haz clic en el botón “Añadir música” para seguir.",
            "Di “Añadir música” para seguir.",
            False,
            False,
        ),
        (
            "Arrastra los clips al principio.",
            "Dime en un mensaje qué mover y adónde.",
            False,
            False,
        ),
        ("Importa tus fotos y las añado.", "Envía el archivo aquí en el chat.", False, False),
        # Portuguese
        (
            "Clique no botão Exportar para baixar seu vídeo.",
            "Diga “exportar” para baixar seu vídeo.",
            False,
            True,
        ),
        ("Clique no ícone de download no canto superior direito.", "Diga “exportar”.", False, True),
        (
            "Abra a linha do tempo para ver a mudança, depois clique em Exportar.",
            "Veja a linha do tempo abaixo, depois diga “exportar”.",
            True,
            True,
        ),
        ("Arraste seus arquivos aqui.", "Envie o arquivo aqui no chat.", False, False),
        (
            "Você pode arrastar o clipe para mudar a ordem.",
            "Você pode me dizer em uma mensagem o que mover e para onde.",
            False,
            False,
        ),
        # Russian
        (
            "Нажмите кнопку «Экспорт», чтобы скачать видео.",
            "Напишите «экспорт», чтобы скачать видео.",
            False,
            True,
        ),
        ("Нажмите на кнопку Экспорт в правом верхнем углу.", "Напишите «экспорт».", False, True),
        ("Откройте таймлайн, чтобы увидеть изменения.", "Посмотрите таймлайн ниже.", True, False),
        ("Посмотрите результат в окне предпросмотра.", "Посмотрите таймлайн ниже.", True, False),
        ("Перетащите файлы сюда, чтобы загрузить их.", "Пришлите файл сюда в чат.", False, False),
        (
            "Перетащите клип на 5 секунду.",
            "Напишите мне в сообщении, что и куда переместить.",
            False,
            False,
        ),
        ("Нажмите «Добавить музыку».", "Напишите «Добавить музыку».", False, False),
        # Indonesian
        (
            "Klik tombol Ekspor untuk mengunduh videomu.",
            "Ketik “ekspor” untuk mengunduh videomu.",
            False,
            True,
        ),
        (
            "Buka panel linimasa untuk melihat perubahannya.",
            "Lihat linimasa di bawah.",
            True,
            False,
        ),
        (
            "Pratinjau di linimasa untuk mendengarkan hasilnya, lalu klik Ekspor.",
            "Lihat linimasa di bawah, lalu ketik “ekspor”.",
            True,
            True,
        ),
        ("Seret file kamu ke sini.", "Kirim filenya ke sini di chat.", False, False),
        (
            "Seret klip ke detik ke-5.",
            "Beri tahu aku lewat pesan apa yang dipindah dan ke mana.",
            False,
            False,
        ),
        ("Klik tombol “Tambah musik”.", "Ketik “Tambah musik”.", False, False),
    ],
)
def test_spanish_portuguese_russian_and_indonesian_gui_talk_is_translated(
    text: str, expected: str, timeline: bool, export: bool
) -> None:
    hints = GuiHints()
    out = translate(text, hints)
    assert out == expected
    assert not GUI_OTHER.search(out), out
    assert (hints.show_timeline, hints.offer_export) == (timeline, export)


@pytest.mark.parametrize(
    "text",
    [
        "He generado un video de 10 segundos de una ciudad de noche.",
        "Exportar es fácil: la línea de tiempo tiene 2 pistas.",
        "O download do vídeo é rápido e o botão da camisa é azul.",
        "Я добавил фоновую музыку, громкость 35%. Он скачал видео вчера.",
        "Aku sudah menambahkan musik latar. Saya mau klip ekspor yang bagus.",
    ],
)
def test_other_languages_without_gui_talk_are_untouched(text: str) -> None:
    hints = GuiHints()
    assert translate(text, hints) == text
    assert hints == GuiHints()


def test_a_spanish_phrase_split_across_chunks_is_still_caught() -> None:
    out, hints = stream_through(["Listo. Pulsa el bot", "ón Exportar cuando quieras.", " Más"])
    assert out == "Listo. Di “exportar” cuando quieras. Más"
    assert hints.offer_export


#: One phrase of every family in every language, and what the chat says instead.
#: ``temporary_issue``: the trailing "I encountered a temporary issue" (dropped).
FAMILY_SAMPLES: dict[str, dict[str, tuple[str, str]]] = {
    "en": {
        "export": ("Click the Export button to download it.", "Say “export” to download it."),
        "upload": ("Drag and drop your photos here.", "Send the file here in the chat."),
        "view": ("Open the timeline panel to see the change.", "See the timeline below."),
        "drag": (
            "Drag the title to 5 seconds.",
            "Just tell me in a message what to move and where.",
        ),
        "panel": (
            "Open the Music panel to pick a track.",
            "Tell me what you'd like for the Music.",
        ),
        "click": ("Press the Apply button.", "Say “Apply”."),
        "temporary_issue": ("I encountered a temporary issue.", ""),
    },
    "zh": {
        "export": ("点击导出按钮即可下载。", "发送“导出”即可下载。"),
        "upload": ("拖拽上传你的素材文件到这里。", "直接把文件发到聊天里。"),
        "view": ("在时间线中预览效果。", "查看下方的时间线。"),
        "drag": ("拖动标题到 5 秒处。", "直接发消息告诉我要把什么移到哪里。"),
        "panel": ("打开音乐面板选择一首曲子。", "告诉我你对音乐的要求。"),
        "click": ("点击“添加音乐”按钮继续。", "发送“添加音乐”继续。"),
        "temporary_issue": ("我遇到了一个临时问题。", ""),
    },
    "es": {
        "export": (
            "Haz clic en el botón Exportar para descargar tu video.",
            "Di “exportar” para descargar tu video.",
        ),
        "upload": (
            "Arrastra tus archivos aquí para subirlos.",
            "Envía el archivo aquí en el chat.",
        ),
        "view": (
            "Abre el panel de la línea de tiempo para ver el cambio.",
            "Mira la línea de tiempo de abajo.",
        ),
        "drag": ("Arrastra el título al segundo 5.", "Dime en un mensaje qué mover y adónde."),
        "panel": (
            "Abre el panel de Música para elegir una pista.",
            "Dime qué quieres en “Música”.",
        ),
        "click": (
            "Haz clic en el botón “Añadir música” para seguir.",
            "Di “Añadir música” para seguir.",
        ),
        "temporary_issue": ("Encontré un problema temporal.", ""),
    },
    "pt": {
        "export": (
            "Clique no botão Exportar para baixar seu vídeo.",
            "Diga “exportar” para baixar seu vídeo.",
        ),
        "upload": ("Arraste seus arquivos aqui.", "Envie o arquivo aqui no chat."),
        "view": ("Abra a linha do tempo para ver a mudança.", "Veja a linha do tempo abaixo."),
        "drag": (
            "Arraste o título para o segundo 5.",
            "Me diga em uma mensagem o que mover e para onde.",
        ),
        "panel": (
            "Abra o painel de Música para escolher uma faixa.",
            "Me diga o que você quer em “Música”.",
        ),
        "click": ("Clique no botão “Adicionar música”.", "Diga “Adicionar música”."),
        "temporary_issue": ("Encontrei um problema temporário.", ""),
    },
    "ru": {
        "export": (
            "Нажмите кнопку «Экспорт», чтобы скачать видео.",
            "Напишите «экспорт», чтобы скачать видео.",
        ),
        "upload": ("Перетащите файлы сюда, чтобы загрузить их.", "Пришлите файл сюда в чат."),
        "view": ("Откройте таймлайн, чтобы увидеть изменения.", "Посмотрите таймлайн ниже."),
        "drag": (
            "Перетащите клип на 5 секунду.",
            "Напишите мне в сообщении, что и куда переместить.",
        ),
        "panel": (
            "Откройте панель «Музыка», чтобы выбрать трек.",
            "Напишите, что вы хотите в разделе «Музыка».",
        ),
        "click": ("Нажмите «Добавить музыку».", "Напишите «Добавить музыку»."),
        "temporary_issue": ("Я столкнулся с временной проблемой.", ""),
    },
    "id": {
        "export": (
            "Klik tombol Ekspor untuk mengunduh videomu.",
            "Ketik “ekspor” untuk mengunduh videomu.",
        ),
        "upload": ("Seret file kamu ke sini.", "Kirim filenya ke sini di chat."),
        "view": ("Buka panel linimasa untuk melihat perubahannya.", "Lihat linimasa di bawah."),
        "drag": (
            "Seret klip ke detik ke-5.",
            "Beri tahu aku lewat pesan apa yang dipindah dan ke mana.",
        ),
        "panel": (
            "Buka panel Musik untuk memilih lagu.",
            "Beri tahu aku apa yang kamu mau untuk “Musik”.",
        ),
        "click": ("Klik tombol “Tambah musik”.", "Ketik “Tambah musik”."),
        "temporary_issue": ("Saya mengalami masalah sementara.", ""),
    },
}


def test_every_language_has_rules_for_every_family_of_gui_talk() -> None:
    assert missing_families(SUPPORTED) == {}
    # the check names what is missing: a language it has never seen lacks everything
    assert missing_families(["xx"]) == {"xx": [*FAMILIES, "temporary_issue"]}


def test_the_family_check_fails_when_a_language_loses_a_family(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spanish = {k: v for k, v in gui.RULES_BY_LANGUAGE["es"].items() if k != "panel"}
    monkeypatch.setitem(gui.RULES_BY_LANGUAGE, "es", spanish)
    monkeypatch.delitem(gui.TEMP_ISSUE_BY_LANGUAGE, "ru")
    assert missing_families(SUPPORTED) == {"es": ["panel"], "ru": ["temporary_issue"]}


@pytest.mark.parametrize("code", SUPPORTED)
def test_every_language_has_a_sample_of_every_family(code: str) -> None:
    assert sorted(FAMILY_SAMPLES[code]) == sorted([*FAMILIES, "temporary_issue"])


@pytest.mark.parametrize(
    ("code", "family"),
    [(code, family) for code in FAMILY_SAMPLES for family in FAMILY_SAMPLES[code]],
)
def test_each_family_is_translated_in_each_language(code: str, family: str) -> None:
    text, expected = FAMILY_SAMPLES[code][family]
    if family == "temporary_issue":  # dropped at the end of a reply, kept in the middle
        out, _ = stream_through(["Ok. ", text])
        assert out == "Ok."
        out, _ = stream_through([text, " Ok."])
        assert out == f"{text} Ok."
        return
    out = translate(text)
    assert out == expected
    assert not (GUI_EN.search(out) or GUI_ZH.search(out) or GUI_OTHER.search(out)), out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a control named by its capitalised name, with and without the control word
        ("Press the Apply button.", "Say “Apply”."),
        ("Then click Apply to save.", "Then say “Apply” to save."),
        ("点击应用按钮。", "发送“应用”。"),
        ("Pulsa el botón Aplicar.", "Di “Aplicar”."),
        ("Haz clic en Aplicar para guardar.", "Di “Aplicar” para guardar."),
        ("Clique no botão Aplicar.", "Diga “Aplicar”."),
        ("Clique em Aplicar.", "Diga “Aplicar”."),
        ("Нажмите кнопку Применить.", "Напишите «Применить»."),
        ("Нажмите Применить.", "Напишите «Применить»."),
        ("Klik tombol Terapkan.", "Ketik “Terapkan”."),
        ("Klik Terapkan untuk menyimpan.", "Ketik “Terapkan” untuk menyimpan."),
        # no name: nothing to say instead, so nothing changes
        ("Pulsa el botón para guardar.", "Pulsa el botón para guardar."),
        ("Usa Instagram para compartir.", "Usa Instagram para compartir."),
    ],
)
def test_controls_named_without_quotes_become_words_to_say(text: str, expected: str) -> None:
    assert translate(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Check it in the timeline to see the change.", "See the timeline below."),
        (
            "You can compare in the timeline and see the change.",
            "You can compare in the timeline below.",
        ),
        (
            "Puedes comprobarlo en la línea de tiempo para ver el cambio.",
            "Puedes comprobarlo en la línea de tiempo de abajo.",
        ),
        (
            "Você pode conferir na linha do tempo para ver a mudança.",
            "Você pode conferir na linha do tempo abaixo.",
        ),
        ("Veja a mudança na linha do tempo.", "Veja a linha do tempo abaixo."),
        ("Проверь это в таймлайне, чтобы увидеть изменения.", "Проверь это в таймлайне ниже."),
        (
            "Kamu bisa cek di linimasa untuk melihat perubahannya.",
            "Kamu bisa lihat linimasa di bawah.",
        ),
    ],
)
def test_the_timeline_named_with_what_to_see_there_points_below(text: str, expected: str) -> None:
    hints = GuiHints()
    assert translate(text, hints) == expected
    assert hints.show_timeline  # the track summary follows the reply

"""The catalogue (core/locales), the language normaliser and the text detector."""

from __future__ import annotations

import string
import tomllib
from pathlib import Path

import pytest

from core.draft import Draft, diff_drafts
from core.i18n import command_word, t
from core.language import SUPPORTED, choose, detect, normalize, resolve
from core.locales import SOURCE, locales, parse
from core.router import build, phrase_languages, route
from core.types import IncomingMessage, Intent

LOCALES = Path(__file__).resolve().parent.parent / "core" / "locales"
TRANSLATIONS = [code for code in SUPPORTED if code != SOURCE]


def placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


# ------------------------------------------------------------------ the catalogue


def test_the_six_languages_are_shipped() -> None:
    assert set(SUPPORTED) >= {"en", "zh", "es", "pt", "ru", "id"}
    assert SUPPORTED[0] == "en"


@pytest.mark.parametrize("code", TRANSLATIONS)
def test_every_language_has_every_message_and_no_other(code: str) -> None:
    source, other = locales()[SOURCE].messages, locales()[code].messages
    assert sorted(set(source) - set(other)) == [], f"{code}.toml lacks these keys"
    assert sorted(set(other) - set(source)) == [], f"{code}.toml has keys en.toml lacks"


@pytest.mark.parametrize("code", TRANSLATIONS)
def test_every_message_has_the_same_placeholders(code: str) -> None:
    source, other = locales()[SOURCE].messages, locales()[code].messages
    wrong = {
        key: (placeholders(text), placeholders(other[key]))
        for key, text in source.items()
        if key in other and placeholders(text) != placeholders(other[key])
    }
    assert wrong == {}


@pytest.mark.parametrize("code", TRANSLATIONS)
def test_every_message_is_translated(code: str) -> None:
    # Copied-over English is a missing translation (short labels like "OK" aside).
    source, other = locales()[SOURCE].messages, locales()[code].messages
    same = [key for key, text in source.items() if other.get(key) == text and len(text) > 12]
    assert same == []


@pytest.mark.parametrize("code", SUPPORTED)
def test_every_language_can_be_typed_and_detected(code: str) -> None:
    loc = locales()[code]
    assert loc.name and loc.codes and loc.script
    for intent in ("export", "credits", "status", "upload", "help", "new"):
        assert loc.phrases.get(intent), f"{code}.toml has no phrase for {intent}"
    shared_script = [c for c in SUPPORTED if locales()[c].script == loc.script]
    if len(shared_script) > 1:  # told apart from its neighbours by words
        assert len(loc.words) >= 40


@pytest.mark.parametrize("code", SUPPORTED)
def test_help_names_the_commands_in_the_language_itself(code: str) -> None:
    help_text = t("help", code)
    for intent in (Intent.STATUS, Intent.CREDITS, Intent.EXPORT, Intent.HELP):
        shown = [p for p in locales()[code].phrases[intent.value] if p.lower() in help_text.lower()]
        assert shown, f"{code} help names no {intent.value} phrase"
        # ... and what it names really is that command.
        assert all(route(p) is intent for p in shown)


def test_a_message_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        parse("xx", tomllib.loads("[messages]\nwelcome = 3\n"))


def test_files_are_the_ones_in_the_folder() -> None:
    assert sorted(p.stem for p in LOCALES.glob("*.toml")) == sorted(SUPPORTED)


# ---------------------------------------------------------------- t() and codes


@pytest.mark.parametrize(
    ("code", "ours"),
    [
        ("en", "en"),
        ("en-US", "en"),
        ("zh-hans", "zh"),
        ("zh-CN", "zh"),
        ("zh_TW", "zh"),
        ("es", "es"),
        ("es-419", "es"),
        ("es-ES", "es"),
        ("pt-br", "pt"),
        ("pt-BR", "pt"),
        ("ru", "ru"),
        ("RU", "ru"),
        ("id", "id"),
        ("in", "id"),
        ("de", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_maps_platform_codes(code: str | None, ours: str | None) -> None:
    assert normalize(code) == ours


def test_t_speaks_each_language_and_falls_back_to_english() -> None:
    assert t("credits", "zh", available=1, frozen=0, total=1).startswith("💳 积分")
    assert t("credits", "pt-br", available=1, frozen=0, total=1).startswith("💳 Créditos")
    assert t("credits", "ru", available=1, frozen=0, total=1).startswith("💳 Кредиты")
    assert t("credits", "fr", available=1, frozen=0, total=1).startswith("💳 Credits")
    assert t("credits", None, available=1, frozen=0, total=1).startswith("💳 Credits")
    assert "MP4, MOV" in t("help", "id")  # {formats} filled in


# ------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("generate a 10-second clip of a futuristic city at night", "en"),
        ("put some jazz in the background", "en"),
        ("状态", "zh"),
        ("生成一段夜晚城市的视频", "zh"),
        ("add 背景音乐 to it", "zh"),  # mostly Chinese by weight
        ("сделай видео о ночном городе", "ru"),
        ("haz un clip de 10 segundos de una ciudad futurista de noche", "es"),
        ("añade música de fondo", "es"),
        ("pon algo de jazz de fondo", "es"),
        ("faça um clipe de 10 segundos de uma cidade futurista à noite", "pt"),
        ("adicione música de fundo lo-fi", "pt"),
        ("coloca um jazz no fundo", "pt"),
        ("buat klip 10 detik tentang kota futuristik di malam hari", "id"),
        ("tambahkan musik latar lo-fi", "id"),
        ("sembunyikan tulisannya", "id"),  # by the endings of unlisted words alone
        ("ayuda", "es"),  # a command phrase of one language names it
        ("ajuda", "pt"),
        ("bantuan", "id"),
        ("помощь", "ru"),
        ("export", "en"),
    ],
)
def test_detect(text: str, language: str) -> None:
    assert detect(text) == language


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ok",
        "1080p 60fps",
        "status",  # English, Portuguese and Indonesian alike
        "exportar",  # Spanish and Portuguese alike
        "lo-fi",
        "Urban Dreams",
        "こんにちは、動画を作って",  # Japanese: kana beside the kanji
        "안녕하세요",
        "مرحبا",
    ],
)
def test_detect_abstains_when_unsure_or_not_ours(text: str) -> None:
    assert detect(text) is None


def test_choose_prefers_the_platform() -> None:
    assert choose("es", "make a video") == "es"
    assert choose(None, "haz un video de gatos") == "es"
    assert choose("de", "haz un video de gatos") == "es"  # a language we lack: the text
    assert choose(None, "ok") is None


def test_resolve_reads_only_the_users_own_words() -> None:
    typed = IncomingMessage(platform="console", user_id="u", chat_id="c", text="导出")
    assert resolve(typed).language == "zh"
    pressed = IncomingMessage(
        platform="telegram", user_id="u", chat_id="c", text="export", intent=Intent.EXPORT
    )
    assert resolve(pressed).language is None  # a button's stand-in text says nothing
    told = IncomingMessage(platform="telegram", user_id="u", chat_id="c", text="hi", language="ru")
    assert resolve(told) is told


# ---------------------------------------------------------------------- phrases


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("exportar", Intent.EXPORT),
        ("Exporta el vídeo, por favor", Intent.EXPORT),
        ("descargar el video", Intent.EXPORT),
        ("créditos", Intent.CREDITS),
        ("creditos", Intent.CREDITS),  # accents are optional
        ("estado", Intent.STATUS),
        ("línea de tiempo", Intent.STATUS),
        ("subir archivo", Intent.UPLOAD),
        ("ayuda", Intent.HELP),
        ("nuevo proyecto", Intent.NEW),
        ("baixar o vídeo", Intent.EXPORT),
        ("meus créditos", Intent.CREDITS),
        ("linha do tempo", Intent.STATUS),
        ("enviar arquivo", Intent.UPLOAD),
        ("ajuda", Intent.HELP),
        ("novo projeto", Intent.NEW),
        ("экспорт", Intent.EXPORT),
        ("Скачать видео, пожалуйста!", Intent.EXPORT),
        ("баланс", Intent.CREDITS),
        ("статус", Intent.STATUS),
        ("загрузить файл", Intent.UPLOAD),
        ("/помощь", Intent.HELP),
        ("новый проект", Intent.NEW),
        ("ekspor", Intent.EXPORT),
        ("tolong kirim videonya dong", Intent.EXPORT),
        ("cek saldo", Intent.CREDITS),
        ("linimasa", Intent.STATUS),
        ("unggah file", Intent.UPLOAD),
        ("bantuan", Intent.HELP),
        ("proyek baru", Intent.NEW),
    ],
)
def test_commands_in_each_language(text: str, intent: Intent) -> None:
    assert route(text) is intent


@pytest.mark.parametrize(
    "text",
    [
        "exportar un documental sobre el comercio",
        "un video sobre el estado del tiempo",
        "экспорт нефти из России, документальный фильм",
        "video tentang saldo bank",
        "uma ajuda para minha mãe",
    ],
)
def test_prompts_mentioning_a_command_stay_prompts_in_each_language(text: str) -> None:
    assert route(text) is Intent.CHAT


def test_phrase_languages() -> None:
    assert phrase_languages("ayuda") == {"es"}
    assert phrase_languages("status") == {"en", "pt", "id"}
    assert phrase_languages("make a video") == frozenset()


def test_a_phrase_two_intents_claim_is_refused_when_the_table_is_built() -> None:
    en = parse("en", tomllib.loads('[phrases]\nexport = ["go"]\n'))
    xx = parse("xx", tomllib.loads('[phrases]\nstatus = ["Go!"]\n'))
    with pytest.raises(ValueError, match="both export and status"):
        build([en, xx])
    filler = parse("xx", tomllib.loads('[phrases]\nstatus = ["please"]\n'))
    with pytest.raises(ValueError, match="only filler words"):
        build([filler])
    with pytest.raises(ValueError, match="'teleport' is not a valid Intent"):
        build([parse("xx", tomllib.loads('[phrases]\nteleport = ["beam me up"]\n'))])


DRAFT = {
    "t": [
        {"tt": 0, "sg": [{"s": 0, "d": 10000, "m": {"title": "city at night"}}]},
        {"tt": 1, "sg": [{"s": 0, "d": 10000, "m": {"name": "Lo-fi", "volume": 35}}]},
        {"tt": 7, "sg": [{"s": 0, "d": 3000, "m": {"text": "Urban Dreams"}}]},
    ]
}


def test_the_timeline_summary_and_its_changes_speak_the_users_language() -> None:
    draft = Draft.from_json(DRAFT)
    assert draft.summary() == (
        "Timeline (3 tracks): 1. Video: city at night (0-10s) 2. BGM: Lo-fi (0-10s, 35%) "
        '3. Title: "Urban Dreams" (0-3s)'
    )
    assert draft.summary("ru").startswith("Таймлайн (дорожек: 3): 1. Видео: city at night")
    assert "2. Música de fondo: Lo-fi" in draft.summary("es")
    assert Draft.from_json({"t": []}).summary("pt") == "A linha do tempo está vazia."
    added = diff_drafts(Draft.from_json({"t": []}), draft, "id")
    assert added[0] == "Ditambahkan — trek video: city at night (0-10s)"
    assert diff_drafts(Draft.from_json({"t": []}), draft)[1] == (
        "Added audio track: Lo-fi (0-10s, 35%)"
    )


def test_command_word_is_a_phrase_of_the_language_that_routes_back() -> None:
    for code in SUPPORTED:
        for intent in (Intent.EXPORT, Intent.STATUS, Intent.CREDITS):
            word = command_word(intent, code)
            assert route(word) is intent
            assert word in locales()[code].phrases[intent.value]
    assert command_word(Intent.EXPORT, "ru") == "экспорт"
    assert command_word(Intent.EXPORT, "de") == "export"  # a language we lack: English

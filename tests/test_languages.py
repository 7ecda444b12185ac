"""Each door answers in the user's language, end to end.

Telegram (a user's ``language_code``) and Discord (the interaction's locale)
say which language; the terminal and a Telegram user without a language code
don't, so the language comes from what the user types. Every reply is compared
with the catalogue's text in that language, and the backend session (in the
simulator) is created in the same language.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bots.status import ExitCode
from bots.telegram.texts import text as adapter_text
from core.i18n import t
from core.locales import locales
from simulator.server import Simulator
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.procs import BotProcess, bot_env
from tests.fakes.telegram_server import FakeTelegram
from tests.test_discord import answered_with_buttons, content_of, is_callback, running_bot
from tests.test_discord import real_core as discord_core
from tests.test_telegram import finished
from tests.test_telegram import real_core as telegram_core

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

PROMPT = "make a 10-second clip of a futuristic city at night"


def fits(text: str, key: str, lang: str) -> bool:
    """Whether ``text`` is the catalogue's ``key`` in ``lang``, whatever its values."""
    template = locales()[lang].messages[key]
    parts = re.split(r"\{\w+\}", template)
    return re.fullmatch(".+?".join(re.escape(p) for p in parts), text, re.DOTALL) is not None


def session_languages(sim: Simulator) -> list[str]:
    return [session.language for session in sim.sessions.values()]


# ------------------------------------------------------------------------ the terminal

# What a person types, in their language: status, help, export, credits.
TYPED = {
    "zh": ("状态", "帮助", "导出", "积分"),
    "es": ("estado", "ayuda", "descargar el video", "mis créditos"),
    "pt": ("linha do tempo", "ajuda", "baixar o vídeo", "meus créditos"),
    "ru": ("статус", "помощь", "экспорт", "баланс"),
    "id": ("linimasa", "bantuan", "ekspor", "cek saldo"),
}


@pytest.mark.parametrize("lang", sorted(TYPED))
async def test_the_terminal_answers_in_the_language_typed(
    sim: Simulator, tmp_path: Path, lang: str
) -> None:
    status, help_, export, credits = TYPED[lang]
    env = bot_env(NEMO_API_BASE=sim.base_url, NEMO_BOT_DB=tmp_path / "bot.db")
    args = ("chat", "-m", status, "-m", help_, "-m", export, "-m", credits)
    async with BotProcess(*args, env=env, cwd=tmp_path) as chat:
        # "Nothing to export" is a failed export in any language (documented exit status).
        assert await chat.wait(within=60) == ExitCode.EXPORT_FAILED, chat.stderr
    out = chat.stdout
    assert t("empty_timeline", lang) in out
    assert t("help", lang).splitlines()[0] in out
    assert t("nothing_to_export", lang) in out
    assert t("credits", lang, available=100, frozen=0, total=100) in out
    for english in ("empty_timeline", "nothing_to_export"):
        assert t(english, "en") not in out
    assert session_languages(sim) == [lang]


async def test_the_terminal_follows_the_user_into_another_language(
    sim: Simulator, tmp_path: Path
) -> None:
    env = bot_env(NEMO_API_BASE=sim.base_url, NEMO_BOT_DB=tmp_path / "bot.db")
    # "exportar" is Spanish and Portuguese alike: the language known so far is kept.
    args = ("chat", "-m", "status", "-m", "статус", "-m", "exportar", "-m", "estado")
    async with BotProcess(*args, env=env, cwd=tmp_path) as chat:
        assert await chat.wait(within=60) == ExitCode.EXPORT_FAILED, chat.stderr
    replies = [line for line in chat.stdout.splitlines() if line.startswith("🤖")]
    assert replies == [
        f"🤖 {t('empty_timeline', 'en')}",
        f"🤖 {t('empty_timeline', 'ru')}",
        f"🤖 {t('nothing_to_export', 'ru')}",
        f"🤖 {t('empty_timeline', 'es')}",
    ]


async def test_the_terminals_action_hints_are_words_of_the_users_language(
    sim: Simulator, tmp_path: Path
) -> None:
    env = bot_env(NEMO_API_BASE=sim.base_url, NEMO_BOT_DB=tmp_path / "bot.db")
    args = ("chat", "-m", "生成一段10秒的夜晚未来城市视频", "-m", "haz un video de un gato")
    async with BotProcess(*args, env=env, cwd=tmp_path) as chat:
        assert await chat.wait(within=60) == 0, chat.stderr
    hints = [line.strip() for line in chat.stdout.splitlines() if line.strip().startswith("→")]
    # what the Export / Timeline / Credits buttons would do, as words to type
    assert hints == ["→ 导出 · 状态 · 积分", "→ exportar · estado · créditos"]


# ------------------------------------------------------------------------ Telegram


@pytest.mark.parametrize(
    ("code", "lang"), [("es", "es"), ("pt-br", "pt"), ("ru", "ru"), ("id", "id")]
)
async def test_telegram_speaks_the_users_language_code(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path, code: str, lang: str
) -> None:
    user = 70
    async with telegram_core(sim, tg, tmp_path):
        tg.private_text(user, "/help", language_code=code)
        await tg.wait_for(lambda: tg.sent_to(user))
        tg.private_text(user, PROMPT, language_code=code)  # typed in English: the code wins
        await tg.wait_for(finished(tg, user), within=15)
        tg.private_text(user, "/credits", language_code=code)
        await tg.wait_for(lambda: len(tg.sent_to(user)) >= 3 and "💳" in tg.texts(user)[-1])
        tg.private_text(user, "/status", language_code=code)
        await tg.wait_for(finished(tg, user, 2), within=15)
    texts = tg.texts(user)
    assert fits(texts[0], "help", lang)
    assert fits(texts[-2], "credits", lang)
    assert fits(texts[-1], "timeline_one", lang) or fits(texts[-1], "timeline_many", lang)
    assert t("track_video", lang) in texts[-1]  # the track names too
    buttons = next(m.result_markup for m in tg.sent_to(user) if m.result_markup)
    labels = [b["text"] for b in buttons["inline_keyboard"][0]]
    assert labels == [t(f"telegram.button_{a}", lang) for a in ("export", "timeline", "credits")]
    assert session_languages(sim) == [lang]


async def test_telegram_without_a_language_code_goes_by_the_text(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path
) -> None:
    user = 71
    sender = tg.user(user)
    del sender["language_code"]
    async with telegram_core(sim, tg, tmp_path):
        tg.push_message(chat=tg.private_chat(user), user=sender, text="статус")
        await tg.wait_for(lambda: tg.sent_to(user))
        tg.push_message(chat=tg.private_chat(user), user=sender, text="ayuda")
        await tg.wait_for(lambda: len(tg.sent_to(user)) >= 2)
        tg.push_message(chat=tg.private_chat(user), user=sender, text="/помощь")
        await tg.wait_for(lambda: len(tg.sent_to(user)) >= 3)
    assert tg.texts(user)[0] == t("empty_timeline", "ru")
    assert tg.texts(user)[1].startswith(t("help", "es").splitlines()[0])
    assert tg.texts(user)[2].startswith(t("help", "ru").splitlines()[0])  # a slash, in Cyrillic
    assert session_languages(sim) == ["ru"]


async def test_telegram_refuses_a_file_in_the_language_of_its_caption(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path
) -> None:
    user = 72
    sender = tg.user(user)
    del sender["language_code"]
    document = {"file_id": "Fx", "file_unique_id": "ux", "file_name": "tool.exe", "file_size": 100}
    async with telegram_core(sim, tg, tmp_path):
        tg.push_message(
            chat=tg.private_chat(user),
            user=sender,
            caption="úsalo como intro del video",
            document=document,
        )
        await tg.wait_for(lambda: tg.sent_to(user))
    assert tg.texts(user)[0] == adapter_text("unsupported", "es", name="tool.exe")


async def test_telegram_registers_the_command_menu_in_every_language(
    sim: Simulator, tg: FakeTelegram, tmp_path: Path
) -> None:
    async with telegram_core(sim, tg, tmp_path):
        await tg.wait_for(lambda: len(tg.commands) >= 6)
    assert set(tg.commands) == {None, "zh", "es", "pt", "ru", "id"}
    for code, menu in tg.commands.items():
        lang = code or "en"
        assert [c["command"] for c in menu] == [
            "start",
            "help",
            "new",
            "status",
            "credits",
            "export",
            "cancel",
            "projects",
            "resend",
        ]
        assert [c["description"] for c in menu] == [
            t(f"telegram.commands.{c['command']}", lang) for c in menu
        ]


# ------------------------------------------------------------------------- Discord


@pytest.mark.parametrize(
    ("locale", "lang"), [("es-419", "es"), ("pt-BR", "pt"), ("ru", "ru"), ("id", "id")]
)
async def test_discord_speaks_the_interactions_locale(
    sim: Simulator, fake: FakeDiscord, tmp_path: Path, locale: str, lang: str
) -> None:
    async with (
        discord_core(sim, fake, tmp_path) as (service, settings),
        running_bot(fake, settings, service),
    ):
        helped = await fake.slash("help", locale=locale)
        await fake.wait_for(lambda r: is_callback(r) and r.json.get("type") == 5)
        [help_reply] = await fake.wait_for(
            lambda r: helped["token"] in r.path and bool(content_of(r)), within=15
        )
        made = await fake.slash("video", {"prompt": PROMPT}, locale=locale)
        [final] = await fake.wait_for(answered_with_buttons(made), within=20)
    assert content_of(help_reply).startswith(t("help", lang).splitlines()[0])
    labels = [c["label"] for row in final.payload["components"] for c in row["components"]]
    assert labels == [t(f"discord.button_{a}", lang) for a in ("export", "timeline", "credits")]
    assert session_languages(sim) == [lang]


async def test_a_discord_mention_goes_by_its_text(
    sim: Simulator, fake: FakeDiscord, tmp_path: Path
) -> None:
    async with (
        discord_core(sim, fake, tmp_path) as (service, settings),
        running_bot(fake, settings, service),
    ):
        await fake.user_message(f"<@{fake.bot_user['id']}> статус")
        [reply] = await fake.wait_for(
            lambda r: (
                r.method == "POST" and r.path.endswith(f"/channels/{fake.channel_id}/messages")
            )
        )
    assert content_of(reply) == t("empty_timeline", "ru")
    assert session_languages(sim) == ["ru"]

"""The Discord bot: a :class:`discord.Client` that turns slash commands, button presses,
mentions and DMs into :class:`~core.types.IncomingMessage` for the core.

Dependencies come in through the constructor (settings, the conversation
service); asynchronous set-up (persistent buttons, command sync, registering
the adapter with the core) happens in :meth:`DiscordBot.setup_hook`.
:func:`run_discord` drives one bot inside a bigger process until a stop event.

Only unprivileged gateway intents are requested: the message-content intent may
be unavailable, and Discord still delivers the content of DMs and of messages
that mention the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket

from bots.common import ACTION_INTENTS, LogRedactor
from bots.tracker import RequestTracker
from core.config import Settings, SettingsError
from core.language import detect
from core.router import route
from core.types import (
    Action,
    ConversationHandler,
    ConversationRef,
    IncomingMessage,
    Intent,
    Replier,
)

from .commands import build_commands
from .progresses import Progresses, unbutton
from .replier import DiscordReplier
from .requests import attachment_problem, chat_ids, strip_mentions, to_core_attachment
from .texts import NemoTranslator, language_of, text
from .views import ActionButton

__all__ = [
    "DiscordAdapter",
    "DiscordBot",
    "configure_endpoints",
    "run_discord",
]

log = logging.getLogger("bots.discord")

TOKEN_LIFETIME = 14 * 60.0
"""Seconds an interaction token is used for (Discord allows 15 minutes; keep a margin)."""

EDIT_INTERVAL = 1.5
"""Seconds between two edits of one message."""

#: Gateway close codes that mean the shard settings are wrong, and what to do.
_SHARD_CLOSES = {
    4010: "Discord refused the shard it was sent (an invalid shard)",
    4011: "Discord requires more shards for this bot (above 2,500 servers a shard); raise it",
}

SHUTDOWN_GRACE = 10.0
"""Seconds running requests get to finish when the bot closes; the rest are cancelled."""


#: Loggers that may print a bot token or an interaction/webhook URL (discord.http logs
#: every request URL at DEBUG; the gateway logs whole events, tokens included).
_SECRET_LOGGERS = (
    "discord",
    "discord.client",
    "discord.http",
    "discord.gateway",
    "discord.state",
    "discord.interactions",
    "discord.webhook.async_",
    "discord.app_commands.tree",
    "bots.discord",
    "bots.discord_adapter.replier",
    "bots.discord_adapter.editable",
)


def configure_endpoints(settings: Settings) -> None:
    """Point discord.py's REST root and gateway at ``DISCORD_API_BASE``/``DISCORD_GATEWAY_URL``.

    Both are class attributes in discord.py (``Route.BASE`` serves the bot and the
    interaction webhooks alike; ``DiscordWebSocket.DEFAULT_GATEWAY`` is where a
    client with a known shard count connects and falls back to), so they are process-wide.
    """
    discord.http.Route.BASE = settings.discord_api_base
    gateway = yarl.URL(settings.discord_gateway_url)
    DiscordWebSocket.DEFAULT_GATEWAY = gateway if gateway.path else gateway.with_path("/")


class DiscordAdapter:
    """The :class:`core.types.ChatAdapter` for Discord: finds a conversation again."""

    platform = "discord"

    def __init__(self, bot: DiscordBot) -> None:
        self.bot = bot
        self.ready = asyncio.Event()

    def replier_for(self, ref: ConversationRef) -> Replier:
        """A channel replier for a stored conversation (e.g. a render after a restart)."""
        channel_id = int(ref.thread_id or ref.chat_id)
        channel = self.bot.get_channel(channel_id)
        guild = getattr(channel, "guild", None)
        return DiscordReplier(
            self.bot,
            channel_id=channel_id,
            user_id=int(ref.user_id),
            reply_to=int(ref.reply_to) if ref.reply_to else None,
            guild_id=guild.id if guild is not None else None,
            language=ref.language,
            mention_on_delivery=True,
            wait_ready=True,
        )


class DiscordBot(discord.AutoShardedClient):
    """The nemo-bot Discord client.

    Constructing one applies ``DISCORD_API_BASE``/``DISCORD_GATEWAY_URL`` (see
    :func:`configure_endpoints`). ``edit_interval`` (seconds between edits of one message) and
    ``token_lifetime`` (seconds an interaction token is relied on) are knobs for
    tests; ``shutdown_grace`` is how long :meth:`close` lets running requests finish
    before cancelling them; ``options`` go to :class:`discord.AutoShardedClient` (e.g.
    ``guild_ready_timeout``).

    It runs the shards ``DISCORD_SHARD_IDS`` of ``DISCORD_SHARD_COUNT`` (unset: the one
    shard 0 of 1), so a big bot spreads its guilds over several processes sharing one
    database. Discord routes a guild's events, interactions included, to shard
    ``(guild_id >> 22) % count`` and every DM to shard 0, so one session (user + chat)
    always lands in the same process; a button holds its state in its ``custom_id`` and
    the project lives in the database, so a press works on whichever shard receives it.
    Caches stay small (no member cache, no message cache, no chunking): the adapter reads
    everything it needs from the event payloads.
    """

    def __init__(
        self,
        settings: Settings,
        service: ConversationHandler,
        *,
        edit_interval: float = EDIT_INTERVAL,
        token_lifetime: float = TOKEN_LIFETIME,
        shutdown_grace: float = SHUTDOWN_GRACE,
        **options: Any,
    ) -> None:
        options.setdefault("intents", discord.Intents.default())
        # Backend or echoed text may contain <@id>: nobody is pinged unless a post says so.
        options.setdefault("allowed_mentions", discord.AllowedMentions.none())
        shard_ids, shard_count = settings.discord_shards
        options.setdefault("shard_ids", shard_ids)
        options.setdefault("shard_count", shard_count)
        options.setdefault("member_cache_flags", discord.MemberCacheFlags.none())
        options.setdefault("max_messages", None)
        options.setdefault("chunk_guilds_at_startup", False)
        super().__init__(**options)
        configure_endpoints(settings)
        self.settings = settings
        self.service = service
        self.edit_interval = edit_interval
        self.token_lifetime = token_lifetime
        self.shutdown_grace = shutdown_grace
        self._requests = RequestTracker("discord", log)
        self.progresses = Progresses()
        self.adapter = DiscordAdapter(self)
        self.tree = app_commands.CommandTree(self)
        self.tree.on_error = self._on_app_command_error  # type: ignore[method-assign]
        for command in build_commands():
            self.tree.add_command(command)
        token = settings.discord_bot_token
        self.redactor = LogRedactor(
            [token.get_secret_value()] if token is not None else [], loggers=_SECRET_LOGGERS
        )
        self.redactor.install()

    # ------------------------------------------------------------------ lifecycle

    async def setup_hook(self) -> None:
        """Persistent buttons, localised command sync, and registration with the core."""
        self.add_dynamic_items(ActionButton)
        await self.tree.set_translator(NemoTranslator())
        if self.syncs_commands:
            try:
                synced = await self.tree.sync()
                log.info("discord: synced %d slash commands", len(synced))
            except discord.HTTPException as exc:
                log.warning(
                    "discord: command sync failed (%s %s); using the old set", exc.status, exc.code
                )
        self.service.register_adapter(self.adapter)

    @property
    def syncs_commands(self) -> bool:
        """Whether this process syncs the slash commands: only the one running shard 0.

        Commands are global to the application, so one sync per start of the whole
        bot is enough; N shard processes syncing at once would only spend rate limit.
        """
        return 0 in (self.shard_ids or [0])

    async def on_ready(self) -> None:
        """Log the identity once every shard is connected and release waiting deliveries."""
        log.info(
            "discord: connected as %s (shards %s of %s)",
            self.user,
            ",".join(map(str, self.shard_ids or [0])),
            self.shard_count,
        )
        self.adapter.ready.set()

    async def on_shard_connect(self, shard_id: int) -> None:
        """Keep resuming through a configured gateway proxy rather than Discord's node."""
        if str(DiscordWebSocket.DEFAULT_GATEWAY).rstrip("/") == "wss://gateway.discord.gg":
            return
        # READY set the shard's resume URL to Discord's own node. ShardInfo does not
        # expose the socket; the sharded client's own lookup does.
        with contextlib.suppress(KeyError):
            self._get_websocket(shard_id=shard_id).gateway = DiscordWebSocket.DEFAULT_GATEWAY

    async def close(self) -> None:
        """Let running requests finish (``shutdown_grace`` s), cancel the rest, disconnect.

        Requests arriving meanwhile are told to come back later. Only then does the
        HTTP session close, so no handler is left failing with "Session is closed"
        and no user with a "thinking…" placeholder. Deliveries wait again until the
        next ready.
        """
        self.adapter.ready.clear()
        try:
            await self._requests.drain(self.shutdown_grace)
            await super().close()
        finally:
            self.redactor.uninstall()

    # ------------------------------------------------------------------ requests

    async def _channel_id(self, interaction: discord.Interaction) -> int:
        """The channel an interaction came from; its user's DM channel if Discord sent none.

        A user id is not a channel id: when the payload has no channel, answers that
        outlive the token go to the DM channel, which is looked up (or opened) here.
        """
        if interaction.channel_id is not None:
            return interaction.channel_id
        dm = interaction.user.dm_channel or await interaction.user.create_dm()
        return dm.id

    def _interaction_replier(
        self, interaction: discord.Interaction, channel_id: int, *, ephemeral: bool
    ) -> DiscordReplier:
        replier = DiscordReplier(
            self,
            channel_id=channel_id,
            user_id=interaction.user.id,
            interaction=interaction,
            guild_id=interaction.guild_id,
            language=language_of(interaction.locale),
            mention_on_delivery=True,
        )
        replier.mark_deferred(ephemeral=ephemeral)
        return replier

    def _interaction_message(
        self,
        interaction: discord.Interaction,
        channel_id: int,
        *,
        text: str,
        intent: Intent | None,
        attachments: Sequence[discord.Attachment] = (),
    ) -> IncomingMessage:
        chat_id, thread_id = chat_ids(interaction.channel, channel_id)
        return IncomingMessage(
            platform="discord",
            user_id=str(interaction.user.id),
            chat_id=chat_id,
            text=text,
            thread_id=thread_id,
            attachments=tuple(to_core_attachment(a) for a in attachments),
            language=language_of(interaction.locale),
            is_group=interaction.guild_id is not None,
            intent=intent,
            user_display=interaction.user.display_name,
        )

    async def run_command(
        self,
        interaction: discord.Interaction,
        *,
        text: str = "",
        intent: Intent | None = None,
        attachments: Sequence[discord.Attachment] = (),
        ephemeral: bool = False,
    ) -> None:
        """Defer at once, check attachments, then let the core answer through a replier."""
        await interaction.response.defer(thinking=True, ephemeral=ephemeral)
        channel_id = await self._channel_id(interaction)
        replier = self._interaction_replier(interaction, channel_id, ephemeral=ephemeral)
        msg = self._interaction_message(
            interaction, channel_id, text=text, intent=intent, attachments=attachments
        )
        # Someone outside the allowlist hears the core's refusal, not ours about a file.
        if attachments and self.settings.is_allowed(msg.user_id, msg.chat_id):
            good = await self._refuse_bad_files(attachments, replier)
            if not good:
                return
            msg = self._interaction_message(
                interaction, channel_id, text=text, intent=intent, attachments=good
            )
        await self._dispatch(msg, replier)

    async def _refuse_bad_files(
        self, attachments: Sequence[discord.Attachment], replier: DiscordReplier
    ) -> list[discord.Attachment]:
        """Name the files that won't do (privately, nothing downloaded); return the rest.

        As on Telegram, one bad file does not sink the request: the good ones and
        the text still go on (when no file is left, the user resends instead).
        """
        good: list[discord.Attachment] = []
        problems: list[str] = []
        for attachment in attachments:
            problem = attachment_problem(
                attachment, max_bytes=self.settings.max_upload_bytes, language=replier.language
            )
            if problem:
                problems.append(problem)
            else:
                good.append(attachment)
        if problems:
            await replier.send_text("\n".join(dict.fromkeys(problems)), private=True)
        return good

    async def handle_action(
        self, interaction: discord.Interaction, action: Action, owner_id: int
    ) -> None:
        """A button press: the owner's goes to the core, anyone else's is refused privately."""
        language = language_of(interaction.locale)
        if interaction.user.id != owner_id:
            await interaction.response.send_message(text("not_owner", language), ephemeral=True)
            return
        ephemeral = action is Action.CREDITS
        await interaction.response.defer(thinking=True, ephemeral=ephemeral)
        channel_id = await self._channel_id(interaction)
        replier = self._interaction_replier(interaction, channel_id, ephemeral=ephemeral)
        intent, words = ACTION_INTENTS[action]
        msg = self._interaction_message(interaction, channel_id, text=words, intent=intent)
        await self._dispatch(msg, replier)

    async def on_message(self, message: discord.Message) -> None:
        """A DM, or a server message that mentions the bot, is a request."""
        me = self.user
        if me is None or message.author.bot or message.author.id == me.id:
            return
        is_dm = message.guild is None
        if not is_dm and not any(user.id == me.id for user in message.mentions):
            return
        content = strip_mentions(message.content or "", me.id)
        chat_id, thread_id = chat_ids(message.channel, message.channel.id)
        language = detect(content)  # a message carries no locale: its words tell
        replier = DiscordReplier(
            self,
            channel_id=message.channel.id,
            user_id=message.author.id,
            reply_to=message.id,
            guild_id=message.guild.id if message.guild else None,
            language=language,
            mention_on_delivery=True,
        )
        attachments: Sequence[discord.Attachment] = message.attachments
        allowed = self.settings.is_allowed(str(message.author.id), chat_id)
        if attachments and allowed:  # else the core refuses
            attachments = await self._refuse_bad_files(attachments, replier)
            if not attachments:
                return
        intent = None
        if not content and not attachments:
            # No text (perhaps no message-content intent) and no files: explain.
            intent = Intent.HELP
        msg = IncomingMessage(
            platform="discord",
            user_id=str(message.author.id),
            chat_id=chat_id,
            text=content,
            thread_id=thread_id,
            attachments=tuple(to_core_attachment(a) for a in attachments),
            language=language,
            is_group=not is_dm,
            intent=intent,
            message_id=str(message.id),
            user_display=message.author.display_name,
        )
        await self._dispatch(msg, replier)

    async def _dispatch(self, msg: IncomingMessage, replier: DiscordReplier) -> None:
        """Run one request, tracked so that :meth:`close` can wait for it or cancel it.

        A cancel, once done, takes the Cancel button off its user's export progress
        here: the export was stopped, or is being delivered (which takes it off anyway).
        """

        async def notice(key: str) -> None:
            await replier.send_text(text(key, replier.language), private=True)

        try:
            await self._requests.run(self.service.handle(msg, replier), notice)
            intent = msg.intent or route(msg.text, has_attachments=bool(msg.attachments))
            if intent is Intent.CANCEL:
                progress = self.progresses.take((replier.channel_id, replier.user_id))
                if progress is not None:
                    await unbutton(progress)
        finally:
            with contextlib.suppress(Exception):
                await replier.close_pending()

    # ------------------------------------------------------------------ errors

    async def _on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """Log a failed command without secrets and tell the user something friendly."""
        name = interaction.command.name if interaction.command else "?"
        log.error("discord: /%s failed: %s", name, type(error).__name__, exc_info=error)
        notice = text("error", language_of(interaction.locale))
        with contextlib.suppress(discord.HTTPException):
            if interaction.response.is_done():
                await interaction.followup.send(notice, ephemeral=True)
            else:
                await interaction.response.send_message(notice, ephemeral=True)

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        """Log a failed event handler (redacted) instead of crashing or printing to stderr."""
        log.exception("discord: handler %s failed", event_method)


async def run_discord(
    settings: Settings,
    service: ConversationHandler,
    *,
    stop_event: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
    **options: Any,
) -> None:
    """Run the Discord bot until ``stop_event`` is set (or the connection ends for good).

    ``ready`` is set once the bot is registered with the service and connected:
    then is the time for ``await service.start()`` (resuming undelivered renders).
    ``options`` go to :class:`DiscordBot` (test knobs such as ``edit_interval``).
    Raises :class:`core.config.SettingsError` when ``DISCORD_BOT_TOKEN`` is unset, and
    whatever ended the connection (e.g. :class:`discord.LoginFailure`) if it ends by itself.
    """
    if settings.discord_bot_token is None:
        raise SettingsError("DISCORD_BOT_TOKEN: not set")
    bot = DiscordBot(settings, service, **options)
    async with bot:
        runner = asyncio.create_task(bot.start(settings.discord_bot_token.get_secret_value()))
        stopper = asyncio.create_task((stop_event or asyncio.Event()).wait())
        connected = asyncio.create_task(bot.adapter.ready.wait())
        try:
            await asyncio.wait({runner, stopper, connected}, return_when=asyncio.FIRST_COMPLETED)
            if connected.done() and ready is not None:
                ready.set()
            await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            connected.cancel()
            await bot.close()
            if not runner.done():
                runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await runner  # surfaces a failed log-in or a fatal gateway close
                except discord.ConnectionClosed as exc:
                    problem = _SHARD_CLOSES.get(exc.code)
                    if problem is None:
                        raise
                    ids, count = settings.discord_shards
                    raise SettingsError(
                        f"DISCORD_SHARD_COUNT: {problem} (running shards "
                        f"{','.join(map(str, ids))} of {count}; gateway close code {exc.code})"
                    ) from None

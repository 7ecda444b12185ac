"""How the core answers on Discord: the :class:`core.types.Replier` implementation.

One :class:`DiscordReplier` serves one request (a slash command, a button press, a
mention or a DM) or one stored conversation (a render delivered after a restart).

* While the interaction token lives (15 minutes, tracked from when the
  interaction arrived), answers go through it: the first one fills the deferred
  "thinking" response, later ones are followups, and ``private`` answers are
  ephemeral. After that, and for messages, answers are ordinary channel
  messages (a DM channel where the request came from a DM); a ``private``
  answer in a server goes to the user's DM instead (to the channel only if
  their DMs are closed).
* Nobody is pinged by what we post (the client's default is
  ``AllowedMentions.none()``), except the owner when a video is delivered.
* Streamed text and progress edit one message, at most once per
  ``edit_interval`` seconds and never with unchanged content; text past 2000
  characters continues in a new message.
* An export's progress message carries its owner's Cancel button while the
  render runs. It goes when the video is posted, the export fails, or a cancel
  is done (:mod:`.progresses`). When the interaction token's time is up, the
  old message loses Cancel and the progress goes on in a channel message.
* A finished video is attached when it fits the real upload cap (the
  interaction's ``attachment_size_limit``, else the guild's ``filesize_limit``),
  otherwise linked, with the timeline summary in an embed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord

from bots.common import with_link, without_link
from core.types import Action, Video

from .editable import EditableMessage
from .progresses import unbutton
from .texts import (
    MESSAGE_LIMIT,
    progress_text,
    split_once,
    split_text,
    truncate,
)
from .views import actions_view

if TYPE_CHECKING:
    from .bot import DiscordBot

__all__ = ["DEFAULT_UPLOAD_CAP", "DiscordReplier", "DiscordTextStream"]

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_CAP = 10 * 1024 * 1024
"""Discord's upload cap when nothing better is known (10 MiB)."""

INTERACTION_TOKEN_LIFE = 15 * 60.0
"""Seconds Discord accepts an interaction token for (the adapter relies on less)."""

TYPING_EVERY = 8.0
"""A typing indicator lasts ~10 s; don't send another one sooner than this."""


class DiscordReplier:
    """Answers one Discord conversation; see the module docstring for the rules."""

    def __init__(
        self,
        bot: DiscordBot,
        *,
        channel_id: int,
        user_id: int,
        interaction: discord.Interaction | None = None,
        reply_to: int | None = None,
        guild_id: int | None = None,
        language: str | None = None,
        mention_on_delivery: bool = False,
        wait_ready: bool = False,
    ) -> None:
        self.bot = bot
        self.channel_id = channel_id
        self.user_id = user_id
        self.interaction = interaction
        self.reply_to = reply_to
        self.guild_id = guild_id
        self.language = language
        self.mention_on_delivery = mention_on_delivery
        self._wait_ready = wait_ready
        self._received = time.monotonic()
        self._original_pending = False
        self._original_ephemeral = False
        self._progress: EditableMessage | None = None
        self._progress_cancel = False  # whether the progress message shows Cancel
        self._notice: EditableMessage | None = None
        self._claim = asyncio.Lock()
        self._last_typing = 0.0
        self._typing: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ state

    @property
    def interval(self) -> float:
        """Seconds between two edits of one message."""
        return self.bot.edit_interval

    def mark_deferred(self, *, ephemeral: bool) -> None:
        """Record that the interaction was deferred with a "thinking" response."""
        self._original_pending = True
        self._original_ephemeral = ephemeral

    def token_expires_at(self) -> float | None:
        """Monotonic time the interaction token stops working (``None``: no interaction)."""
        if self.interaction is None:
            return None
        return self._received + self.bot.token_lifetime

    def token_closes_at(self) -> float | None:
        """Monotonic time Discord refuses the interaction token for sure (15 minutes)."""
        if self.interaction is None:
            return None
        return self._received + INTERACTION_TOKEN_LIFE

    def interaction_alive(self) -> bool:
        """Whether answers can still go through the interaction token."""
        expires = self.token_expires_at()
        return expires is not None and time.monotonic() < expires

    def _guild(self) -> discord.Guild | None:
        # Looked up late: a replier made before the bot connected has no cache yet.
        guild = getattr(self.bot.get_channel(self.channel_id), "guild", None)
        if guild is None and self.guild_id is not None:
            guild = self.bot.get_guild(self.guild_id)
        return guild if isinstance(guild, discord.Guild) else None

    def upload_cap(self) -> int:
        """The real cap for a file this bot posts here."""
        if self.interaction is not None:
            return int(self.interaction.filesize_limit)
        guild = self._guild()
        return int(guild.filesize_limit) if guild is not None else DEFAULT_UPLOAD_CAP

    # ------------------------------------------------------------------ posting

    async def _ready(self) -> None:
        if self._wait_ready:
            await asyncio.wait_for(self.bot.adapter.ready.wait(), timeout=120)

    def _channel(self) -> discord.abc.Messageable:
        channel = self.bot.get_channel(self.channel_id)
        if isinstance(channel, discord.abc.Messageable):
            return channel
        return self.bot.get_partial_messageable(self.channel_id, guild_id=self.guild_id)

    async def post(
        self,
        content: str | None,
        *,
        ephemeral: bool = False,
        view: discord.ui.View | None = None,
        embed: discord.Embed | None = None,
        file: discord.File | None = None,
        delivery: bool = False,
    ) -> EditableMessage | None:
        """Post one new message the best way available; return it as editable."""
        await self._ready()
        content = content[:MESSAGE_LIMIT] if content else None
        if self.interaction is not None and self.interaction_alive():
            try:
                return await self._post_interaction(content, ephemeral, view, embed, file)
            except discord.NotFound:
                log.info("discord: interaction token no longer valid; posting to the channel")
                self.interaction = None
        if ephemeral and self._in_guild():
            # No ephemeral messages without an interaction: a private answer goes
            # to the user's DM, and only if their DMs are closed to the channel.
            sent = await self._post_dm(content, view=view, embed=embed, file=file)
            if sent is not None:
                return sent
            if file is not None:
                file.reset()
        return await self._post_channel(content, view, embed, file, delivery)

    def _in_guild(self) -> bool:
        return self.guild_id is not None or self._guild() is not None

    async def _post_dm(
        self,
        content: str | None,
        *,
        view: discord.ui.View | None = None,
        embed: discord.Embed | None = None,
        file: discord.File | None = None,
    ) -> EditableMessage | None:
        """Post to the user's DM; None when that is impossible (DMs closed, user gone)."""
        kwargs: dict[str, Any] = {"allowed_mentions": discord.AllowedMentions.none()}
        if view is not None:
            kwargs["view"] = view
        if embed is not None:
            kwargs["embed"] = embed
        if file is not None:
            kwargs["file"] = file
        try:
            dm = await self.bot.create_dm(discord.Object(self.user_id))
            msg = await dm.send(content=content, **kwargs)
        except discord.HTTPException as exc:
            log.info("discord: cannot DM the user (%s %s)", exc.status, exc.code)
            return None
        return EditableMessage(msg.edit, shown=content or "", interval=self.interval)

    async def _post_interaction(
        self,
        content: str | None,
        ephemeral: bool,
        view: discord.ui.View | None,
        embed: discord.Embed | None,
        file: discord.File | None,
    ) -> EditableMessage:
        interaction = self.interaction
        assert interaction is not None
        expires = self.token_expires_at()
        closes = max(expires or 0.0, self.token_closes_at() or 0.0)
        kwargs: dict[str, Any] = {}
        if view is not None:
            kwargs["view"] = view
        if embed is not None:
            kwargs["embed"] = embed
        async with self._claim:
            # The placeholder takes any answer, except a private one when it is public.
            use_original = self._original_pending and (self._original_ephemeral or not ephemeral)
            if self._original_pending and not use_original and ephemeral:
                # A followup would replace the public "thinking" placeholder with
                # an answer meant for one person: remove the placeholder instead.
                self._original_pending = False
                with contextlib.suppress(discord.HTTPException):
                    await interaction.delete_original_response()
            if use_original:
                self._original_pending = False
                if file is not None:
                    kwargs["attachments"] = [file]
                await interaction.edit_original_response(content=content, **kwargs)
                return EditableMessage(
                    interaction.edit_original_response,
                    shown=content or "",
                    interval=self.interval,
                    expires_at=expires,
                    closes_at=closes,
                )
        if file is not None:
            kwargs["file"] = file
        msg = await interaction.followup.send(
            content=content or discord.utils.MISSING, ephemeral=ephemeral, wait=True, **kwargs
        )
        return EditableMessage(
            msg.edit,
            shown=content or "",
            interval=self.interval,
            expires_at=expires,
            closes_at=closes,
        )

    async def _post_channel(
        self,
        content: str | None,
        view: discord.ui.View | None,
        embed: discord.Embed | None,
        file: discord.File | None,
        delivery: bool,
    ) -> EditableMessage | None:
        # A finished video pings its owner in a server: as a reply when there is a
        # message to answer, else with a mention (nobody else is ever pinged).
        ping = delivery and self.mention_on_delivery and self._in_guild()
        if ping and self.reply_to is None:
            content = f"<@{self.user_id}> {content or ''}".strip()[:MESSAGE_LIMIT]
        mentions = discord.AllowedMentions.none()
        if ping:
            mentions = discord.AllowedMentions(
                everyone=False, roles=False, users=[discord.Object(self.user_id)]
            )
        kwargs: dict[str, Any] = {"allowed_mentions": mentions}
        if view is not None:
            kwargs["view"] = view
        if embed is not None:
            kwargs["embed"] = embed
        if file is not None:
            kwargs["file"] = file
        if self.reply_to is not None:
            kwargs["reference"] = discord.MessageReference(
                message_id=self.reply_to, channel_id=self.channel_id, fail_if_not_exists=False
            )
            kwargs["mention_author"] = ping
        try:
            msg = await self._channel().send(content=content, **kwargs)
        except (discord.Forbidden, discord.NotFound):
            # The channel is closed to the bot, gone, or a DM between other people:
            # fall back to the user's own DM.
            log.info("discord: cannot post in channel; falling back to a DM")
            if file is not None:
                file.reset()
            return await self._post_dm(content, view=view, embed=embed, file=file)
        return EditableMessage(msg.edit, shown=content or "", interval=self.interval)

    async def close_pending(self) -> None:
        """Remove an unused "thinking" placeholder once the request is handled."""
        if self.interaction is None or not self._original_pending or not self.interaction_alive():
            return
        async with self._claim:
            if not self._original_pending:
                return
            self._original_pending = False
            with contextlib.suppress(discord.HTTPException):
                await self.interaction.delete_original_response()

    # ------------------------------------------------------------------ Replier

    async def send_text(
        self, text: str, *, actions: Sequence[Action] = (), private: bool = False
    ) -> None:
        """Send a whole message (split at 2000 chars); ``private`` is ephemeral where possible.

        Following an export, this is its failure: its progress message loses Cancel.
        """
        await self._progress_over()
        pieces = split_text(text)
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            view = actions_view(actions, self.user_id, self.language) if last else None
            if not piece and view is None:
                continue
            await self.post(piece or None, ephemeral=private, view=view)

    def stream(self, running: Sequence[Action] = ()) -> DiscordTextStream:
        """Start a streamed reply that edits one message as text arrives.

        ``running`` buttons (Cancel) show under it until it finishes.
        """
        return DiscordTextStream(self, running)

    async def notice(self, text: str, *, actions: Sequence[Action] = ()) -> None:
        """Show or edit this request's notice (its place in line), its buttons with it."""
        view = actions_view(actions, self.user_id, self.language)
        notice = self._notice
        # An explicit view=None takes the buttons away once the wait is over.
        if notice is not None and notice.alive() and await notice.final(text, view=view):
            return
        self._notice = await self.post(text, view=view)

    async def progress(self, text: str, percent: int | None = None) -> None:
        """Show or update this conversation's single progress message.

        While the render runs (below 100 %) it carries the owner's Cancel button
        (at 100 % the video is being fetched: nothing is left to cancel). A message
        whose interaction token is past its time loses Cancel, and the progress goes
        on in a new (channel) message. Returns at once, but for a new message.
        """
        content = progress_text(text, percent)
        running = percent is None or percent < 100
        progress = self._progress
        if progress is not None and progress.alive():
            if running or not self._forget_progress_cancel():
                await progress.update(content)
            else:  # in the same background edit as the 100 %
                await progress.update(content, view=None)
            return
        if progress is not None:
            await self._progress_over()
        view = actions_view((Action.CANCEL,), self.user_id, self.language) if running else None
        self._progress = await self.post(content, view=view)
        if self._progress is not None and view is not None:
            self._progress_cancel = True
            self.bot.progresses.add(self._owner, self._progress)

    @property
    def _owner(self) -> tuple[int, int]:
        """This conversation and user: whose progress Cancel a cancel here takes away."""
        return self.channel_id, self.user_id

    def _forget_progress_cancel(self) -> bool:
        """The progress message is done with Cancel; whether it was showing it."""
        shown, self._progress_cancel = self._progress_cancel, False
        if shown and self._progress is not None:
            self.bot.progresses.discard(self._owner, self._progress)
        return shown

    async def _progress_over(self) -> None:
        """The export ended here (failed, or its progress moves on): Cancel goes."""
        if self._forget_progress_cancel() and self._progress is not None:
            await unbutton(self._progress)

    async def send_video(self, video: Video) -> None:
        """Attach the MP4 if it fits the real cap, else link it; the summary goes in an embed."""
        cap = self.upload_cap()
        data: bytes | None = None
        if video.fetch is not None:
            try:
                data = await video.fetch(cap)
            except Exception as exc:  # the link still works: degrade, don't fail
                log.warning("discord: video download failed (%s); posting the link", type(exc))
        if data is not None and len(data) > cap:
            data = None
        content, embed = _delivery_text(video)

        def mp4() -> discord.File:  # a fresh File per attempt: a sent File is spent
            return discord.File(io.BytesIO(data or b""), filename="nemo-video.mp4")

        cancel_shown = self._forget_progress_cancel()
        progress, self._progress = self._progress, None
        if progress is not None and progress.alive():
            # The video takes the progress message's place, without its Cancel.
            extra: dict[str, Any] = {"embed": embed, "view": None}
            if data is not None:
                extra["attachments"] = [mp4()]
            if await progress.final(content, **extra):
                return
        if progress is not None and cancel_shown:
            await unbutton(progress)  # posted apart: the old progress still loses Cancel
        if data is not None:
            try:
                await self.post(content, embed=embed, file=mp4(), delivery=True)
                return
            except discord.HTTPException as exc:  # e.g. 413 Payload Too Large
                log.warning("discord: video upload refused (%s); posting the link", exc.status)
        await self.post(content, embed=embed, delivery=True)

    async def working(self, kind: str = "typing") -> None:
        """Show a typing indicator in the channel (an interaction shows its own activity).

        Returns at once: the indicator is sent in the background, so that no backend
        work waits for Discord (or its rate limits) because of it.
        """
        if self.interaction_alive():
            return
        now = time.monotonic()
        if now - self._last_typing < TYPING_EVERY:
            return
        self._last_typing = now
        if self._typing is None or self._typing.done():
            self._typing = asyncio.create_task(self._type())

    async def _type(self) -> None:
        try:
            await self._ready()
            await self._channel().typing()
        except (TimeoutError, discord.HTTPException):
            pass


_EMBED_LIMIT = 4096
_MENTION_ROOM = 32
"""Characters kept free in a delivery for the owner's ``<@id>`` ping."""


def _delivery_text(video: Video) -> tuple[str, discord.Embed | None]:
    """The message content (showing the link once, never cut) and the summary embed.

    A link too long for the message goes into the embed instead.
    """
    limit = MESSAGE_LIMIT - _MENTION_ROOM
    content = with_link(video.caption, video.url, limit, cut=truncate)
    description = (video.summary or "").strip()
    if content is None:
        content = truncate(without_link(video.caption, video.url), limit)
        joined = f"{description}\n\n{video.url}".strip()
        if len(joined) <= _EMBED_LIMIT:
            description = joined
        elif len(video.url) <= _EMBED_LIMIT:
            description = video.url
    if not description:
        return content, None
    return content, discord.Embed(description=truncate(description, _EMBED_LIMIT), colour=0x5865F2)


def _unshown(content: str, shown: str) -> str:
    """What of ``content`` a message showing ``shown`` does not show yet."""
    if shown and content.startswith(shown):
        return content[len(shown) :].lstrip()
    return content


class DiscordTextStream:
    """A reply that grows: one message edited in place, continued in a new one past 2000 chars.

    When the message can't be edited any more (its interaction token expired, or
    an edit failed), only the part not on screen yet is posted, in a new message.
    """

    def __init__(self, replier: DiscordReplier, running: Sequence[Action] = ()) -> None:
        self._replier = replier
        self._running = actions_view(running, replier.user_id, replier.language)
        self._text = ""  # the current message's text: shown, or to be shown
        self._queued = ""  # appended, not yet handed to the current message
        self._message: EditableMessage | None = None
        self._lock = asyncio.Lock()
        self._pump: asyncio.Task[None] | None = None

    async def append(self, text: str) -> None:
        """Add text and return at once: a background task shows it (the first time right
        away, then at most once per interval), so the backend stream never waits for
        Discord; text arriving while a call is under way joins the next one."""
        self._queued += text
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queued:
                text, self._queued = self._queued, ""
                async with self._lock:
                    self._text += text
                    while len(self._text) > MESSAGE_LIMIT:
                        head, self._text = split_once(self._text)
                        await self._show(head, final=True)
                        self._message = None
                    self._text = await self._show(self._text, final=False)
        except discord.HTTPException as exc:  # finish() shows whatever is missing
            log.warning("discord: a streamed update failed (%s %s)", exc.status, exc.code)

    async def finish(self, actions: Sequence[Action] = ()) -> None:
        """Show the rest, with the action buttons under it."""
        if self._pump is not None:
            await self._pump
        await self._drain()
        async with self._lock:
            view = actions_view(actions, self._replier.user_id, self._replier.language)
            await self._show(self._text, final=True, view=view, closing=True)

    async def _show(
        self,
        content: str,
        *,
        final: bool,
        view: discord.ui.View | None = None,
        closing: bool = False,
    ) -> str:
        """Show ``content`` in the current message, or what it lacks in a new one.

        Returns the text the current message now stands for.
        """
        message = self._message
        if message is not None and message.alive():
            if not final:
                await message.update(content)
                return content
            # Closing a reply that showed the running buttons takes them away (view=None).
            replace = view is not None or (closing and self._running is not None)
            if await message.final(content, **({"view": view} if replace else {})):
                return content
        elif not content.strip() and view is None:
            return content
        rest = _unshown(content, message.shown if message is not None else "")
        if not rest.strip() and view is None:
            return content
        if view is None and not final:
            view = self._running
        self._message = await self._replier.post(rest if rest.strip() else None, view=view)
        return rest

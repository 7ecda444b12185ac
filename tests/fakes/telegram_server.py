"""A small fake of the Telegram Bot API (aiohttp, 127.0.0.1, a free port).

It implements what python-telegram-bot calls during a session: getMe,
getUpdates (long poll, ``offset`` semantics), setMyCommands, deleteWebhook,
setWebhook, sendMessage, sendMessageDraft (private chats only; ``drafts=False``
makes it an unknown method), editMessageText, editMessageReplyMarkup,
sendChatAction, sendVideo (multipart), answerCallbackQuery, deleteMessage, getFile and file
downloads under ``/file/bot<token>/<path>``. Replies look like the real thing
(``{"ok": true, "result": ...}``) and so do its errors (400 "message is not
modified", 400 "message is too long", 429 with ``retry_after``), because the
adapter is judged by how it handles them.

Flood limits, as Telegram applies them to calls that put something in a chat
(sendMessage, sendMessageDraft, editMessageText, sendVideo): ``flood_limit=True``
enforces one call a second per chat (bursts of 3) and 20 a minute per group;
``overall_rate=N`` at most N such calls in any one-second window across all chats.
Beyond them the fake answers 429 with ``retry_after`` and counts the refusal in
:attr:`FakeTelegram.hits` (by limit).

Every call is recorded (:attr:`FakeTelegram.calls`) with its decoded parameters;
helpers build and queue realistic updates (private text, group mention, reply,
forum topic, photo, document, voice note, album, callback query).

Usage (standalone: ``python -m tests.fakes.telegram_server --port P``, see ``--help``)::

    async with FakeTelegram() as tg:
        settings = Settings(TELEGRAM_BOT_TOKEN=tg.token, TELEGRAM_API_BASE=tg.base_url, ...)
        tg.private_text(user_id=1, text="hello")
        await tg.wait_for(lambda: tg.calls_of("sendMessage"))
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import html
import itertools
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["Call", "FakeTelegram", "SentMessage"]

JSON = dict[str, Any]
_TAG = re.compile(r"<[^>]+>")
_MESSAGE_METHODS = frozenset({"sendMessage", "editMessageText", "sendVideo", "sendMessageDraft"})


@dataclass
class Call:
    """One request the bot made: the method and its decoded parameters."""

    method: str
    params: JSON
    at: float
    status: int = 200
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class SentMessage:
    """A message the bot sent, as it currently reads (after edits)."""

    chat_id: int
    message_id: int
    text: str | None
    thread_id: int | None = None
    reply_markup: JSON | None = None
    video: bytes | None = None
    caption: str | None = None
    reply_to: int | None = None
    edits: list[str] = field(default_factory=list)

    def callbacks(self) -> list[str]:
        """The callback data of the message's inline buttons, as it reads now."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [str(button.get("callback_data", "")) for row in rows for button in row]

    @property
    def result_markup(self) -> JSON | None:
        """The buttons of a finished reply: any but a running reply's lone Cancel button."""
        calls = self.callbacks()
        if not calls or all(c.startswith("a:cancel:") for c in calls):
            return None
        return self.reply_markup

    def as_json(self, bot: JSON, chat: JSON) -> JSON:
        """The Bot API ``Message`` object for this message."""
        out: JSON = {
            "message_id": self.message_id,
            "date": int(time.time()),
            "chat": chat,
            "from": bot,
        }
        if self.text is not None:
            out["text"] = self.text
        if self.caption is not None:
            out["caption"] = self.caption
        if self.thread_id is not None:
            out["message_thread_id"] = self.thread_id
            out["is_topic_message"] = True
        if self.reply_markup:
            out["reply_markup"] = self.reply_markup
        if self.video is not None:
            out["video"] = {
                "file_id": f"vid{self.message_id}",
                "file_unique_id": f"uvid{self.message_id}",
                "width": 1920,
                "height": 1080,
                "duration": 10,
                "file_size": len(self.video),
            }
        return out


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _parsed(text: str, parse_mode: str | None) -> str:
    """The text as Telegram stores it: entities parsed, surrounding whitespace stripped."""
    if parse_mode and parse_mode.upper() == "HTML":
        text = html.unescape(_TAG.sub("", text))
    return text.strip()


def _decode(value: str) -> Any:
    """PTB sends scalars as strings and objects as JSON strings."""
    if value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    if value in ("true", "false"):
        return value == "true"
    return value


class FakeTelegram:
    """The fake Bot API server. Use as an async context manager."""

    def __init__(
        self,
        token: str = "123:ABC",
        *,
        bot_id: int = 123,
        username: str = "nemo_test_bot",
        flood_limit: bool = False,
        overall_rate: int | None = None,
        drafts: bool = True,
        download_limit: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.bot_user: JSON = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Nemo",
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.flood_limit = flood_limit
        self.overall_rate = overall_rate
        self.drafts_supported = drafts
        #: Chats whose user blocked the bot: sending there is refused with 403.
        self.blocked: set[int] = set()
        #: Drafts shown, in order: (chat_id, draft_id, text).
        self.drafts: list[tuple[int, int, str]] = []
        self.hits: collections.Counter[str] = collections.Counter()
        #: When each accepted message-producing call arrived (monotonic seconds).
        self.accepted: list[float] = []
        self._buckets: dict[int, tuple[float, float]] = {}
        self._group_sent: dict[int, collections.deque[float]] = {}
        self._all_sent: collections.deque[float] = collections.deque()
        self._garbled: dict[str, int] = {}
        #: Calls carried out whose answer waits for :meth:`release` (see :meth:`hold`).
        self.held: list[Call] = []
        self._hold_if: Callable[[Call], bool] | None = None
        self._released = asyncio.Event()
        self.download_limit = download_limit
        self.calls: list[Call] = []
        self.downloads: list[str] = []
        self.broken_downloads: set[str] = set()  # file paths whose download answers 500
        self.messages: dict[tuple[int, int], SentMessage] = {}
        #: Messages the bot deleted (deleteMessage), in order; gone from ``messages``.
        self.deleted: list[SentMessage] = []
        self.errors: list[tuple[str, str]] = []
        self.webhook: JSON | None = None
        self.commands: dict[str | None, list[JSON]] = {}
        self.flood_hits = 0
        self._files: dict[str, tuple[str, bytes, int]] = {}
        self._updates: list[JSON] = []
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._chats: dict[int, JSON] = {}
        self._new_update = asyncio.Event()
        self._failures: dict[str, list[tuple[Any, ...]]] = {}
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.base_url = ""

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> FakeTelegram:
        app = web.Application(client_max_size=2100 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://{self.host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        self._released.set()  # no answer stays held past the end
        self._new_update.set()  # end pending long polls now, not at their time-out
        if self._runner is not None:
            await self._runner.cleanup()

    # -- test controls -------------------------------------------------------------------

    def fail(
        self,
        method: str,
        times: int = 1,
        *,
        retry_after: int = 1,
        error: tuple[int, str] | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with 429 ``retry_after``.

        ``error=(status, description)`` answers with that error instead (e.g. a 400).
        """
        failure = error or (429, f"Too Many Requests: retry after {retry_after}", retry_after)
        self._failures.setdefault(method, []).extend([failure] * times)

    def clear_failures(self) -> None:
        """Forget the failures :meth:`fail` queued that have not been used yet."""
        self._failures.clear()

    def garble(self, method: str, times: int = 1) -> None:
        """Carry out the next ``times`` calls of ``method`` but answer something unreadable.

        Like a proxy or an emulator whose replies the library cannot parse: the
        message reaches the chat, the bot cannot know it.
        """
        self._garbled[method] = self._garbled.get(method, 0) + times

    def hold(self, predicate: Callable[[Call], bool]) -> None:
        """Carry out the calls ``predicate`` picks but hold their answers until :meth:`release`.

        Like a network that dies after the request went out: the message reaches the
        chat, the bot waits for an answer that does not come.
        """
        self._released.clear()
        self._hold_if = predicate

    def release(self) -> None:
        """Stop holding answers; the held ones are answered now (if anyone still listens)."""
        self._hold_if = None
        self._released.set()

    def calls_of(self, method: str, *, ok_only: bool = True) -> list[Call]:
        """Recorded calls of ``method`` (by default only the ones that succeeded)."""
        return [c for c in self.calls if c.method == method and (c.status == 200 or not ok_only)]

    def sent_to(self, chat_id: int) -> list[SentMessage]:
        """The bot's messages in ``chat_id``, oldest first, as they read now."""
        found = [m for (chat, _), m in self.messages.items() if chat == chat_id]
        return sorted(found, key=lambda m: m.message_id)

    def texts(self, chat_id: int) -> list[str]:
        """The current text (or caption) of every bot message in ``chat_id``."""
        return [m.text if m.text is not None else (m.caption or "") for m in self.sent_to(chat_id)]

    async def wait_for(
        self, predicate: Callable[[], Any], *, within: float = 10.0, interval: float = 0.01
    ) -> Any:
        """Poll ``predicate`` until it returns something truthy; fail after ``within`` s."""
        deadline = time.monotonic() + within
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting; calls: {[c.method for c in self.calls]}")
            await asyncio.sleep(interval)

    def file_paths(self) -> list[str]:
        """The paths of every stored file (as getFile reports them)."""
        return [path for path, _, _ in self._files.values()]

    def add_file(self, data: bytes, *, file_path: str = "photos/file_0.jpg") -> str:
        """Store a downloadable file; returns its file_id."""
        file_id = f"F{len(self._files) + 1}"
        self._files[file_id] = (file_path, data, len(data))
        return file_id

    # -- update builders ------------------------------------------------------------------

    @staticmethod
    def user(user_id: int, *, first_name: str = "User", language_code: str = "en") -> JSON:
        """A Bot API ``User``."""
        return {
            "id": user_id,
            "is_bot": False,
            "first_name": f"{first_name}{user_id}",
            "language_code": language_code,
        }

    def private_chat(self, user_id: int) -> JSON:
        """The private chat with ``user_id``."""
        return self._chat({"id": user_id, "type": "private", "first_name": f"User{user_id}"})

    def group_chat(self, chat_id: int, *, forum: bool = False) -> JSON:
        """A supergroup (``chat_id`` negative), optionally a forum."""
        chat: JSON = {"id": chat_id, "type": "supergroup", "title": f"Group {chat_id}"}
        if forum:
            chat["is_forum"] = True
        return self._chat(chat)

    def _chat(self, chat: JSON) -> JSON:
        self._chats[chat["id"]] = chat
        return chat

    def _next_message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    def message(
        self,
        *,
        chat: JSON,
        user: JSON,
        text: str | None = None,
        caption: str | None = None,
        reply_to: JSON | None = None,
        thread_id: int | None = None,
        **media: Any,
    ) -> JSON:
        """A Bot API ``Message`` from ``user`` in ``chat``, with entities filled in."""
        msg: JSON = {
            "message_id": self._next_message_id(chat["id"]),
            "date": int(time.time()),
            "chat": chat,
            "from": user,
        }
        if text is not None:
            msg["text"] = text
            if entities := self._entities(text):
                msg["entities"] = entities
        if caption is not None:
            msg["caption"] = caption
            if entities := self._entities(caption):
                msg["caption_entities"] = entities
        if thread_id is not None:
            msg["message_thread_id"] = thread_id
            msg["is_topic_message"] = True
            # In a forum topic, a message that replies to nothing "replies" to the topic root.
            reply_to = reply_to or {
                "message_id": thread_id,
                "date": int(time.time()),
                "chat": chat,
                "from": user,
                "forum_topic_created": {"name": "Topic", "icon_color": 7322096},
                "message_thread_id": thread_id,
                "is_topic_message": True,
            }
        if reply_to is not None:
            msg["reply_to_message"] = reply_to
        msg.update(media)
        return msg

    def _entities(self, text: str) -> list[JSON]:
        entities = []
        for match in re.finditer(r"(?<![\w/])@\w+|^/\w+(?:@\w+)?", text):
            offset = _utf16_len(text[: match.start()])
            kind = "bot_command" if match.group().startswith("/") else "mention"
            entities.append({"type": kind, "offset": offset, "length": _utf16_len(match.group())})
        return entities

    def push(self, update: JSON) -> JSON:
        """Queue an update (``update_id`` assigned) for getUpdates."""
        update = {"update_id": next(self._update_ids), **update}
        self._updates.append(update)
        self._new_update.set()
        return update

    def push_message(self, **kwargs: Any) -> JSON:
        """Build a message (see :meth:`message`) and queue it as an update."""
        msg = self.message(**kwargs)
        self.push({"message": msg})
        return msg

    def private_text(self, user_id: int, text: str, *, language_code: str = "en") -> JSON:
        """Queue a text message from ``user_id`` in their private chat with the bot."""
        return self.push_message(
            chat=self.private_chat(user_id),
            user=self.user(user_id, language_code=language_code),
            text=text,
        )

    def group_text(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        mention: bool = False,
        reply_to_bot: SentMessage | None = None,
        thread_id: int | None = None,
        forum: bool = False,
    ) -> JSON:
        """Queue a group message; ``mention`` prefixes ``@botusername``."""
        chat = self.group_chat(chat_id, forum=forum or thread_id is not None)
        if mention:
            text = f"@{self.bot_user['username']} {text}"
        reply = reply_to_bot.as_json(self.bot_user, chat) if reply_to_bot else None
        return self.push_message(
            chat=chat, user=self.user(user_id), text=text, reply_to=reply, thread_id=thread_id
        )

    def photo(
        self,
        chat: JSON,
        user_id: int,
        data: bytes,
        *,
        caption: str | None = None,
        media_group_id: str | None = None,
    ) -> JSON:
        """Queue a photo (two sizes, the larger one downloadable) with an optional caption."""
        small = self.add_file(data[:10], file_path="photos/small.jpg")
        large = self.add_file(data, file_path=f"photos/file_{len(self._files)}.jpg")
        sizes = [
            {
                "file_id": small,
                "file_unique_id": f"u{small}",
                "width": 90,
                "height": 90,
                "file_size": 10,
            },
            {
                "file_id": large,
                "file_unique_id": f"u{large}",
                "width": 1280,
                "height": 720,
                "file_size": len(data),
            },
        ]
        extra: JSON = {"photo": sizes}
        if media_group_id:
            extra["media_group_id"] = media_group_id
        return self.push_message(chat=chat, user=self.user(user_id), caption=caption, **extra)

    def document(
        self,
        chat: JSON,
        user_id: int,
        *,
        file_name: str,
        file_size: int,
        data: bytes | None = None,
        caption: str | None = None,
        mime_type: str = "application/octet-stream",
    ) -> JSON:
        """Queue a document; ``file_size`` is what Telegram announces (``data`` may be absent)."""
        file_id = self.add_file(data or b"", file_path=f"documents/{file_name}")
        if data is None:
            self._files[file_id] = (f"documents/{file_name}", b"", file_size)
        doc = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_name": file_name,
            "mime_type": mime_type,
            "file_size": file_size,
        }
        return self.push_message(chat=chat, user=self.user(user_id), caption=caption, document=doc)

    def voice(self, chat: JSON, user_id: int, data: bytes, *, language_code: str = "en") -> JSON:
        """Queue a voice note (OGG/Opus, as Telegram records them) of ``data``."""
        file_id = self.add_file(data, file_path=f"voice/file_{len(self._files)}.oga")
        voice = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "duration": 1,
            "mime_type": "audio/ogg",
            "file_size": len(data),
        }
        user = self.user(user_id, language_code=language_code)
        return self.push_message(chat=chat, user=user, voice=voice)

    def press(self, user_id: int, message: SentMessage, data: str) -> JSON:
        """Queue a callback query: ``user_id`` pressed a button on ``message``."""
        chat = self._chats.get(message.chat_id) or self.private_chat(message.chat_id)
        query = {
            "id": f"cq{len(self.calls)}{user_id}",
            "from": self.user(user_id),
            "chat_instance": "ci",
            "data": data,
            "message": message.as_json(self.bot_user, chat),
        }
        return self.push({"callback_query": query})

    # -- the API -------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> tuple[JSON, dict[str, bytes]]:
        params: JSON = {}
        files: dict[str, bytes] = {}
        if request.content_type == "application/json":
            params = await request.json()
        elif request.can_read_body:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = value.file.read()
                else:
                    params[key] = _decode(str(value))
        params.update({k: _decode(v) for k, v in request.query.items()})
        return params, files

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        arrived = time.monotonic()  # Telegram counts a call when it arrives
        params, files = await self._params(request)
        call = Call(method, params, arrived, files=files)
        self.calls.append(call)
        if request.match_info["token"] != self.token:
            return self._error(call, 401, "Unauthorized")
        if self._failures.get(method):
            status, description, *retry = self._failures[method].pop(0)
            return self._error(call, status, description, retry_after=retry[0] if retry else None)
        if method in _MESSAGE_METHODS:
            chat_id = int(params.get("chat_id", 0))
            hit = self._flood_limit(chat_id, call.at)
            if hit is not None:
                reason, wait = hit
                self.flood_hits += 1
                self.hits[reason] += 1
                seconds = max(1, math.ceil(wait))
                return self._error(
                    call, 429, f"Too Many Requests: retry after {seconds}", retry_after=seconds
                )
        handler = getattr(self, f"_m_{method}", None)
        if method == "sendMessageDraft" and not self.drafts_supported:
            handler = None
        if handler is None:
            return self._error(call, 404, "Not Found: method not found")
        try:
            result = await handler(params, files)
        except _ApiError as exc:
            return self._error(call, exc.status, exc.description)
        if method in _MESSAGE_METHODS:
            self._count(int(params.get("chat_id", 0)), call.at)
        garbled = bool(self._garbled.get(method))  # decided on arrival, as the call is made
        if garbled:
            self._garbled[method] -= 1
        if self._hold_if is not None and self._hold_if(call):
            self.held.append(call)
            await self._released.wait()
        if garbled:
            return web.Response(text="<html>502 Bad Gateway</html>", content_type="text/html")
        return web.json_response({"ok": True, "result": result})

    def _flood_limit(self, chat_id: int, now: float) -> tuple[str, float] | None:
        """Which flood limit a call to ``chat_id`` now would break, and for how long."""
        if self.flood_limit:
            tokens, at = self._buckets.get(chat_id, (3.0, now))
            tokens = min(3.0, tokens + (now - at))
            self._buckets[chat_id] = (tokens, now)
            if tokens < 1.0:
                return "per chat (1/s)", 1.0 - tokens
            if chat_id < 0:
                group = self._group_sent.setdefault(chat_id, collections.deque())
                while group and now - group[0] >= 60.0:
                    group.popleft()
                if len(group) >= 20:
                    return "per group (20/min)", 60.0 - (now - group[0])
        if self.overall_rate:
            while self._all_sent and now - self._all_sent[0] >= 1.0:
                self._all_sent.popleft()
            if len(self._all_sent) >= self.overall_rate:
                return f"overall ({self.overall_rate}/s)", 1.0 - (now - self._all_sent[0])
        return None

    def _count(self, chat_id: int, now: float) -> None:
        """Charge one accepted call to the limits."""
        self.accepted.append(now)
        if self.flood_limit:
            tokens, at = self._buckets.get(chat_id, (3.0, now))
            self._buckets[chat_id] = (min(3.0, tokens + (now - at)) - 1.0, now)
            if chat_id < 0:
                self._group_sent.setdefault(chat_id, collections.deque()).append(now)
        if self.overall_rate:
            self._all_sent.append(now)

    def _error(
        self, call: Call, status: int, description: str, *, retry_after: int | None = None
    ) -> web.Response:
        call.status = status
        self.errors.append((call.method, description))
        body: JSON = {"ok": False, "error_code": status, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return web.json_response(body, status=status)

    async def _m_getMe(self, params: JSON, files: dict[str, bytes]) -> JSON:
        return self.bot_user

    async def _m_getUpdates(self, params: JSON, files: dict[str, bytes]) -> list[JSON]:
        if self.webhook:
            raise _ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._closing:
            self._new_update.clear()
        if not self._updates and timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), timeout)
            if offset:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
        return list(self._updates[:100])

    async def _m_setMyCommands(self, params: JSON, files: dict[str, bytes]) -> bool:
        self.commands[params.get("language_code") or None] = params["commands"]
        return True

    async def _m_deleteWebhook(self, params: JSON, files: dict[str, bytes]) -> bool:
        self.webhook = None
        return True

    async def _m_setWebhook(self, params: JSON, files: dict[str, bytes]) -> bool:
        self.webhook = params
        return True

    async def _m_sendChatAction(self, params: JSON, files: dict[str, bytes]) -> bool:
        return True

    async def _m_sendMessageDraft(self, params: JSON, files: dict[str, bytes]) -> bool:
        chat_id = int(params["chat_id"])
        chat = self._chats.get(chat_id)
        if chat_id < 0 or (chat is not None and chat.get("type") != "private"):
            raise _ApiError(400, "Bad Request: drafts can be sent to private chats only")
        if not int(params.get("draft_id") or 0):
            raise _ApiError(400, "Bad Request: draft_id must be non-zero")
        text = _parsed(str(params.get("text") or ""), params.get("parse_mode"))
        if _utf16_len(text) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        self.drafts.append((chat_id, int(params["draft_id"]), text))
        return True

    async def _m_editMessageReplyMarkup(self, params: JSON, files: dict[str, bytes]) -> JSON:
        key = (int(params["chat_id"]), int(params["message_id"]))
        sent = self.messages.get(key)
        if sent is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        sent.reply_markup = params.get("reply_markup") or None
        return sent.as_json(self.bot_user, self._chats.get(key[0]) or {"id": key[0]})

    async def _m_answerCallbackQuery(self, params: JSON, files: dict[str, bytes]) -> bool:
        return True

    async def _m_deleteMessage(self, params: JSON, files: dict[str, bytes]) -> bool:
        key = (int(params["chat_id"]), int(params["message_id"]))
        sent = self.messages.pop(key, None)
        if sent is None:
            raise _ApiError(400, "Bad Request: message to delete not found")
        self.deleted.append(sent)
        return True

    async def _m_sendMessage(self, params: JSON, files: dict[str, bytes]) -> JSON:
        chat_id = int(params["chat_id"])
        if chat_id in self.blocked:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        text = _parsed(str(params.get("text", "")), params.get("parse_mode"))
        self._check_text(text, 4096, "message")
        return self._store(chat_id, params, SentMessage(chat_id, 0, text))

    async def _m_sendVideo(self, params: JSON, files: dict[str, bytes]) -> JSON:
        chat_id = int(params["chat_id"])
        video = files.get("video")
        if video is None:
            raise _ApiError(400, "Bad Request: there is no video in the request")
        caption = _parsed(str(params.get("caption", "")), params.get("parse_mode"))
        if _utf16_len(caption) > 1024:
            raise _ApiError(400, "Bad Request: message caption is too long")
        return self._store(
            chat_id, params, SentMessage(chat_id, 0, None, video=video, caption=caption)
        )

    def _store(self, chat_id: int, params: JSON, sent: SentMessage) -> JSON:
        chat = self._chats.get(chat_id) or self._chat({"id": chat_id, "type": "private"})
        sent.message_id = self._next_message_id(chat_id)
        thread = params.get("message_thread_id")
        sent.thread_id = int(thread) if thread is not None else None
        sent.reply_markup = params.get("reply_markup") or None
        reply = params.get("reply_parameters")
        sent.reply_to = reply.get("message_id") if isinstance(reply, dict) else None
        self.messages[(chat_id, sent.message_id)] = sent
        return sent.as_json(self.bot_user, chat)

    async def _m_editMessageText(self, params: JSON, files: dict[str, bytes]) -> JSON:
        key = (int(params["chat_id"]), int(params["message_id"]))
        sent = self.messages.get(key)
        if sent is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        text = _parsed(str(params.get("text", "")), params.get("parse_mode"))
        self._check_text(text, 4096, "message")
        markup = params.get("reply_markup") or None
        if text == sent.text and markup == sent.reply_markup:
            raise _ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup "
                "of the message",
            )
        sent.edits.append(text)
        sent.text, sent.reply_markup = text, markup
        return sent.as_json(self.bot_user, self._chats.get(key[0]) or {"id": key[0]})

    async def _m_getFile(self, params: JSON, files: dict[str, bytes]) -> JSON:
        file_id = str(params["file_id"])
        if file_id not in self._files:
            raise _ApiError(400, "Bad Request: invalid file_id")
        path, _, size = self._files[file_id]
        if self.download_limit is not None and size > self.download_limit:
            # Like the public server (20 MB): it refuses to hand out big files.
            raise _ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": size,
            "file_path": path,
        }

    def _check_text(self, text: str, limit: int, what: str) -> None:
        if not text:
            raise _ApiError(400, f"Bad Request: {what} text is empty")
        if _utf16_len(text) > limit:
            raise _ApiError(400, f"Bad Request: {what} is too long")

    async def _download(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        self.downloads.append(path)
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401}, status=401)
        if path in self.broken_downloads:
            return web.json_response({"ok": False, "error_code": 500}, status=500)
        for stored_path, data, _ in self._files.values():
            if stored_path == path:
                return web.Response(body=data, content_type="application/octet-stream")
        return web.json_response({"ok": False, "error_code": 404}, status=404)


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


async def _serve(args: argparse.Namespace) -> None:
    """Serve until interrupted, printing one line per call (``<method> <text>``)."""
    async with FakeTelegram(args.token, host=args.host, port=args.port) as tg:
        print(f"fake Bot API on {tg.base_url} (token {tg.token})", flush=True)
        for said in args.say:
            user_id, _, text = said.partition(":")
            tg.private_text(user_id=int(user_id), text=text)
        seen = 0
        while True:
            for call in tg.calls[seen:]:
                text = call.params.get("text") or call.params.get("caption") or ""
                print(f"{call.method} {call.status} {str(text)!r}", flush=True)
            seen = len(tg.calls)
            await asyncio.sleep(0.2)


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.fakes.telegram_server``: the fake as its own process."""
    parser = argparse.ArgumentParser(description="A fake Telegram Bot API server.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=8081, help="port (default %(default)s)")
    parser.add_argument("--token", default="123:ABC", help="the bot token it accepts")
    parser.add_argument(
        "--say",
        action="append",
        default=[],
        metavar="USER_ID:TEXT",
        help="queue a private message from USER_ID at start (repeatable)",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()

"""A small fake of Discord's REST API and gateway, for end-to-end tests of the adapter.

It runs on 127.0.0.1 (port 0) inside the test's event loop and speaks just enough
of Discord for the real discord.py client: log-in (``/users/@me``,
``/oauth2/applications/@me``), command sync, interaction callbacks, webhook
(interaction) messages, channel messages with JSON or multipart bodies, DMs,
typing, and a WebSocket gateway (HELLO, IDENTIFY -> READY + GUILD_CREATE,
heartbeat ACKs). Every frame is a text frame: discord.py only decompresses
binary frames, so ignoring the ``compress`` query parameter is enough.

The gateway shards as Discord's does: a client identifies with ``shard: [id, count]``
and gets the guilds ``(guild_id >> 22) % count == id`` in its READY; a guild's events
go to that shard's connection only and DMs to shard 0's (:meth:`FakeDiscord.dispatch`).
There is one guild to begin with; :meth:`FakeDiscord.add_guild` adds more, e.g. one
that lands on a chosen shard.

Every REST call is recorded as a :class:`Recorded` (method, path, JSON body or
multipart parts) so tests can assert on the exact traffic; helpers dispatch
``INTERACTION_CREATE`` (slash commands, button presses) and ``MESSAGE_CREATE``
(mentions, DMs) with attachments served from a local CDN path.

Usage::

    async with FakeDiscord() as fake:
        settings = Settings(
            DISCORD_API_BASE=fake.api_base, DISCORD_GATEWAY_URL=fake.gateway_url, ...
        )
        ...
        await fake.slash("video", {"prompt": "a city"}, user=fake.alice)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

__all__ = ["FakeDiscord", "FakeGuild", "Part", "Recorded", "shard_of"]

DISCORD_EPOCH_MS = 1420070400000
JSON = "application/json"  # exactly: discord.py checks the header verbatim


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def shard_of(guild_id: str | int | None, shard_count: int) -> int:
    """The shard Discord sends a guild's events to; DMs (no guild) go to shard 0."""
    return 0 if guild_id is None else (int(guild_id) >> 22) % shard_count


@dataclass(slots=True, frozen=True)
class FakeGuild:
    """One guild of the fake: its id, a text channel and a thread in it."""

    id: str
    channel_id: str
    thread_id: str


@dataclass(slots=True)
class _Connection:
    """One identified gateway connection and the shard it asked for."""

    ws: web.WebSocketResponse
    seq: Iterator[int]
    shard_id: int = 0
    shard_count: int = 1
    sharded: bool = False  # identified with a ``shard`` field

    def wants(self, guild_id: str | None) -> bool:
        return shard_of(guild_id, self.shard_count) == self.shard_id


@dataclass(slots=True)
class Part:
    """One part of a multipart request body."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(slots=True)
class Recorded:
    """One REST request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    json: Any = None
    parts: list[Part] = field(default_factory=list)
    at: float = field(default_factory=time.monotonic)

    @property
    def payload(self) -> Any:
        """The JSON body, or a multipart request's ``payload_json``."""
        if self.json is not None:
            return self.json
        for part in self.parts:
            if part.name == "payload_json":
                return json.loads(part.data)
        return None

    @property
    def files(self) -> list[Part]:
        """The file parts of a multipart request."""
        return [p for p in self.parts if p.filename is not None]

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


class FakeDiscord:
    """A fake Discord REST + gateway server bound to 127.0.0.1 on a free port."""

    def __init__(self, *, heartbeat_interval_ms: int = 41250) -> None:
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self._ids = itertools.count(1)
        self.app_id = self.snowflake()
        self.guilds: list[FakeGuild] = []
        first = self.add_guild()
        self.guild_id = first.id
        self.channel_id = first.channel_id
        self.thread_id = first.thread_id
        self.bot_user = self._user("nemo", bot=True)
        self.alice = self._user("alice")
        self.bob = self._user("bob")
        self.requests: list[Recorded] = []
        self.commands: list[dict[str, Any]] = []
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.required_shards = 1  # fewer in an IDENTIFY: closed with 4011, as Discord does
        # Where READY tells clients to resume (Discord names one of its own nodes).
        self.resume_gateway_url: str | None = None
        self.deliveries: list[tuple[str, int]] = []  # (event, shard id) per event sent
        self.messages: dict[str, dict[str, Any]] = {}
        self.guild_premium_tier = 0
        self.reject_token = False
        self.max_upload: int | None = None  # answer 413 to bigger multipart bodies
        self.closed_dms = False  # answer 403 "Cannot send messages to this user" in DMs
        self.reject_edits = 0  # answer the next N PATCHes with 404 "Unknown Message"
        self._originals: dict[str, str] = {}  # interaction token -> message id
        self._cdn: dict[str, tuple[bytes, str]] = {}
        self._interaction_channels: dict[str, str] = {}  # interaction token -> channel id
        self._sockets: list[_Connection] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/cdn/{key}/{filename}", self._cdn_get)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect_all()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """The REST root, for ``DISCORD_API_BASE``."""
        return f"{self.base}/api/v10"

    @property
    def gateway_url(self) -> str:
        """The gateway root, for ``DISCORD_GATEWAY_URL``."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    # ------------------------------------------------------------------ payload builders

    def snowflake(self, *, shard: tuple[int, int] | None = None) -> str:
        """A fresh snowflake whose timestamp is now.

        With ``shard=(id, count)``, the timestamp is moved back a few milliseconds so
        that a guild with this id lands on that shard.
        """
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        if shard is not None:
            shard_id, count = shard
            ms -= (ms - shard_id) % count
        return str((ms << 22) | (next(self._ids) & 0x3FFFFF))

    def add_guild(self, *, shard: tuple[int, int] | None = None) -> FakeGuild:
        """A new guild (on shard ``(id, count)`` if given), with a channel and a thread.

        Clients that connect afterwards get it in their READY (if it is on their shard).
        """
        guild = FakeGuild(self.snowflake(shard=shard), self.snowflake(), self.snowflake())
        self.guilds.append(guild)
        return guild

    def add_user(self, name: str) -> dict[str, Any]:
        """A new (non-bot) user payload, e.g. the author of chatter."""
        return self._user(name)

    def _guild(self, guild: FakeGuild | None) -> FakeGuild:
        return guild or self.guilds[0]

    def _guild_of_channel(self, channel_id: str) -> FakeGuild | None:
        return next((g for g in self.guilds if channel_id in (g.channel_id, g.thread_id)), None)

    def _user(self, name: str, *, bot: bool = False) -> dict[str, Any]:
        return {
            "id": self.snowflake(),
            "username": name,
            "discriminator": "0",
            "global_name": name.title(),
            "avatar": None,
            "bot": bot,
            "flags": 0,
            "public_flags": 0,
        }

    def _member(self, user: dict[str, Any]) -> dict[str, Any]:
        return {
            "user": user,
            "roles": [],
            "joined_at": _now_iso(),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "permissions": str((1 << 41) - 1),
        }

    def _text_channel(self, guild: FakeGuild | None = None) -> dict[str, Any]:
        guild = self._guild(guild)
        return {
            "id": guild.channel_id,
            "type": 0,
            "guild_id": guild.id,
            "name": "video-lab",
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "rate_limit_per_user": 0,
            "last_message_id": None,
        }

    def _thread(self, guild: FakeGuild | None = None) -> dict[str, Any]:
        guild = self._guild(guild)
        return {
            "id": guild.thread_id,
            "type": 11,
            "guild_id": guild.id,
            "parent_id": guild.channel_id,
            "owner_id": self.alice["id"],
            "name": "city-edit",
            "message_count": 0,
            "member_count": 2,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": _now_iso(),
                "locked": False,
            },
        }

    def guild_payload(self, guild: FakeGuild | None = None) -> dict[str, Any]:
        """The GUILD_CREATE payload of a guild (by default the first one)."""
        guild = self._guild(guild)
        return {
            "id": guild.id,
            "name": "Nemo Test Guild",
            "icon": None,
            "owner_id": self.alice["id"],
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "premium_tier": self.guild_premium_tier,
            "preferred_locale": "en-US",
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": [
                {
                    "id": guild.id,
                    "name": "@everyone",
                    "permissions": str((1 << 41) - 1),
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                }
            ],
            "channels": [self._text_channel(guild)],
            "threads": [self._thread(guild)],
            "members": [self._member(u) for u in (self.bot_user, self.alice, self.bob)],
            "member_count": 3,
            "large": False,
            "unavailable": False,
            "joined_at": _now_iso(),
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
        }

    def _message(
        self,
        channel_id: str,
        body: dict[str, Any],
        *,
        author: dict[str, Any] | None = None,
        files: list[Part] | None = None,
        message_id: str | None = None,
        webhook_id: str | None = None,
    ) -> dict[str, Any]:
        attachments = [
            {
                "id": self.snowflake(),
                "filename": f.filename or "file",
                "size": len(f.data),
                "url": f"{self.base}/cdn/out/{f.filename}",
                "proxy_url": f"{self.base}/cdn/out/{f.filename}",
                "content_type": f.content_type,
            }
            for f in files or []
        ]
        msg: dict[str, Any] = {
            "id": message_id or self.snowflake(),
            "channel_id": channel_id,
            "author": author or self.bot_user,
            "content": body.get("content") or "",
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments,
            "embeds": body.get("embeds") or [],
            "components": body.get("components") or [],
            "pinned": False,
            "type": 0,
            "flags": body.get("flags") or 0,
        }
        if webhook_id:
            msg["webhook_id"] = webhook_id
            msg["application_id"] = self.app_id
        return msg

    def _store(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.messages[msg["id"]] = msg
        return msg

    def _edit(self, message_id: str, body: dict[str, Any], files: list[Part]) -> dict[str, Any]:
        msg = self.messages.get(message_id)
        if msg is None:
            msg = self._message(self.channel_id, {}, message_id=message_id)
        for key in ("content", "embeds", "components", "flags"):
            if key in body:
                msg[key] = body[key] if body[key] is not None else ([] if key != "content" else "")
        if files:
            msg["attachments"] = self._message("0", {}, files=files)["attachments"]
        elif "attachments" in body and not body["attachments"]:
            msg["attachments"] = []
        msg["edited_timestamp"] = _now_iso()
        return self._store(msg)

    # ------------------------------------------------------------------ recording

    async def _record(self, request: web.Request) -> Recorded:
        rec = Recorded(request.method, request.path, dict(request.query))
        ctype = request.headers.get("Content-Type", "")
        if ctype.startswith("multipart/"):
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                data = await part.read()  # type: ignore[union-attr]
                rec.parts.append(
                    Part(
                        name=part.name or "",  # type: ignore[union-attr]
                        filename=part.filename,  # type: ignore[union-attr]
                        content_type=part.headers.get("Content-Type"),
                        data=bytes(data),
                    )
                )
        elif request.can_read_body:
            raw = await request.read()
            if raw:
                try:
                    rec.json = json.loads(raw)
                except ValueError:
                    rec.json = {"_raw": raw.decode(errors="replace")}
        async with self._changed:
            self.requests.append(rec)
            self._changed.notify_all()
        return rec

    async def wait_for(
        self, predicate: Callable[[Recorded], bool], *, within: float = 10.0, count: int = 1
    ) -> list[Recorded]:
        """Wait until ``count`` recorded requests match ``predicate``; return them."""

        def matches() -> list[Recorded]:
            return [r for r in self.requests if predicate(r)]

        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(matches()) >= count)
        return matches()

    def find(self, method: str, path_part: str) -> list[Recorded]:
        """Recorded requests with this method whose path contains ``path_part``."""
        return [r for r in self.requests if r.method == method and path_part in r.path]

    # ------------------------------------------------------------------ REST

    async def _rest(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        tail = "/" + request.match_info["tail"]
        seg = tail.strip("/").split("/")
        method = request.method
        body = rec.payload if isinstance(rec.payload, dict) else {}
        files = rec.files
        if self.max_upload is not None and sum(len(f.data) for f in files) > self.max_upload:
            return _json({"message": "Request entity too large", "code": 40005}, status=413)
        if method == "PATCH" and self.reject_edits > 0:
            self.reject_edits -= 1
            return _json({"message": "Unknown Message", "code": 10008}, status=404)

        if method == "GET" and tail == "/gateway/bot":
            return _json(
                {
                    "url": self.gateway_url,
                    "shards": 1,
                    "session_start_limit": {
                        "total": 1000,
                        "remaining": 999,
                        "reset_after": 0,
                        "max_concurrency": 1,
                    },
                }
            )
        if method == "GET" and tail == "/gateway":
            return _json({"url": self.gateway_url})
        if method == "GET" and tail == "/users/@me":
            if self.reject_token:
                return _json({"message": "401: Unauthorized", "code": 0}, status=401)
            return _json(self.bot_user)
        if method == "GET" and tail == "/oauth2/applications/@me":
            return _json(self._application())
        if seg[0] == "applications" and seg[-1] == "commands" and method == "PUT":
            cmds = rec.json or []
            self.commands = [
                {
                    **c,
                    "id": self.snowflake(),
                    "application_id": self.app_id,
                    "version": self.snowflake(),
                    "type": c.get("type", 1),
                    "description": c.get("description", ""),
                    "default_member_permissions": c.get("default_member_permissions"),
                    "nsfw": c.get("nsfw", False),
                }
                for c in cmds
            ]
            return _json(self.commands)
        if seg[0] == "applications" and seg[-1] == "commands" and method == "GET":
            return _json(self.commands)
        if seg[0] == "interactions" and seg[-1] == "callback":
            return self._callback(seg[1], seg[2], body, files)
        if seg[0] == "webhooks":
            return self._webhook(method, seg, body, files)
        if seg[0] == "channels":
            return self._channel(method, seg, body, files)
        if tail == "/users/@me/channels" and method == "POST":
            dm_id = self._dm_channel_id(str(body.get("recipient_id")))
            return _json(self._dm_payload(dm_id, str(body.get("recipient_id"))))
        return _json({"message": f"fake: unknown route {method} {tail}", "code": 0}, status=404)

    def _application(self) -> dict[str, Any]:
        return {
            "id": self.app_id,
            "name": "Nemo",
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self.alice,
            "verify_key": "0" * 64,
            "flags": 0,
            "summary": "",
        }

    def _callback(
        self, interaction_id: str, token: str, body: dict[str, Any], files: list[Part]
    ) -> web.Response:
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
        flags = int(data.get("flags") or 0)
        info: dict[str, Any] = {"id": interaction_id, "type": 2}
        resource: dict[str, Any] = {"type": kind}
        if kind in (4, 5):  # a message (or its "thinking" placeholder) now exists
            channel = self._interaction_channels.get(token, self.channel_id)
            msg = self._message(channel, data, files=files, webhook_id=self.app_id)
            msg["flags"] = flags | (128 if kind == 5 else 0)
            self._store(msg)
            self._originals[token] = msg["id"]
            info.update(
                response_message_id=msg["id"],
                response_message_loading=kind == 5,
                response_message_ephemeral=bool(flags & 64),
            )
            resource["message"] = msg
        return _json({"interaction": info, "resource": resource})

    def _webhook(
        self, method: str, seg: list[str], body: dict[str, Any], files: list[Part]
    ) -> web.Response:
        # /webhooks/{app_id}/{token}[/messages/{id|@original}]
        token = seg[2] if len(seg) > 2 else ""
        if len(seg) == 3 and method == "POST":  # followup
            channel = self._interaction_channels.get(token, self.channel_id)
            msg = self._store(self._message(channel, body, files=files, webhook_id=self.app_id))
            return _json(msg)
        if len(seg) == 5 and seg[3] == "messages":
            mid = self._originals.get(token, "") if seg[4] == "@original" else seg[4]
            if method == "DELETE":
                self.messages.pop(mid, None)
                return web.Response(status=204)
            if method == "GET":
                found = self.messages.get(mid)
                if found is None:
                    return _json({"message": "Unknown Message", "code": 10008}, status=404)
                return _json(found)
            if method == "PATCH":
                return _json(self._edit(mid, body, files))
        return _json({"message": "fake: unknown webhook route"}, status=404)

    def _channel(
        self, method: str, seg: list[str], body: dict[str, Any], files: list[Part]
    ) -> web.Response:
        channel_id = seg[1]
        guild = self._guild_of_channel(channel_id)
        if len(seg) == 2 and method == "GET":
            if guild is not None and channel_id == guild.channel_id:
                return _json(self._text_channel(guild))
            if guild is not None:
                return _json(self._thread(guild))
            return _json(self._dm_payload(channel_id, self.alice["id"]))
        if len(seg) == 3 and seg[2] == "typing":
            return web.Response(status=204)
        if len(seg) == 3 and seg[2] == "messages" and method == "POST":
            if self.closed_dms and guild is None:
                closed = {"message": "Cannot send messages to this user", "code": 50007}
                return _json(closed, status=403)
            return _json(self._store(self._message(channel_id, body, files=files)))
        if len(seg) == 4 and seg[2] == "messages" and method == "PATCH":
            return _json(self._edit(seg[3], body, files))
        if len(seg) == 4 and seg[2] == "messages" and method == "DELETE":
            self.messages.pop(seg[3], None)
            return web.Response(status=204)
        return _json({"message": "fake: unknown channel route"}, status=404)

    def _dm_channel_id(self, user_id: str) -> str:
        return str(int(user_id) + 1)

    def _dm_payload(self, channel_id: str, user_id: str) -> dict[str, Any]:
        user = next((u for u in (self.alice, self.bob) if u["id"] == user_id), self.alice)
        return {"id": channel_id, "type": 1, "recipients": [user], "last_message_id": None}

    async def _cdn_get(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        self.requests.append(Recorded("GET", request.path, dict(request.query)))
        if key not in self._cdn:
            return web.Response(status=404)
        data, ctype = self._cdn[key]
        return web.Response(body=data, content_type=ctype)

    def attachment(
        self, filename: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> dict[str, Any]:
        """Serve ``data`` from the local CDN and return a Discord attachment payload."""
        key = self.snowflake()
        self._cdn[key] = (data, content_type)
        url = f"{self.base}/cdn/{key}/{filename}"
        return {
            "id": key,
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
        }

    # ------------------------------------------------------------------ gateway

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        seq = itertools.count(1)
        await ws.send_str(
            json.dumps({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        )
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            payload = json.loads(frame.data)
            op = payload.get("op")
            if op == 1:
                await ws.send_str(json.dumps({"op": 11}))
            elif op == 2:
                self.identifies.append(payload["d"])
                conn = _Connection(ws, seq)
                if payload["d"].get("shard"):
                    conn.shard_id, conn.shard_count = map(int, payload["d"]["shard"])
                    conn.sharded = True
                if conn.shard_count < self.required_shards:
                    await ws.close(code=4011, message=b"Sharding required.")
                    break
                guilds = [g for g in self.guilds if conn.wants(g.id)]
                await self._send(ws, seq, "READY", self._ready(conn, guilds))
                for guild in guilds:
                    await self._send(ws, seq, "GUILD_CREATE", self.guild_payload(guild))
                async with self._changed:
                    self._sockets.append(conn)
                    self._changed.notify_all()
            elif op == 6:  # RESUME: not supported, ask for a fresh IDENTIFY
                self.resumes.append(payload["d"])
                await ws.send_str(json.dumps({"op": 9, "d": False}))
        self._sockets = [c for c in self._sockets if c.ws is not ws]
        return ws

    def _ready(self, conn: _Connection, guilds: list[FakeGuild]) -> dict[str, Any]:
        ready: dict[str, Any] = {
            "v": 10,
            "user": self.bot_user,
            "guilds": [{"id": g.id, "unavailable": True} for g in guilds],
            "session_id": f"session-{self.snowflake()}",
            "resume_gateway_url": self.resume_gateway_url or self.gateway_url,
            "application": {"id": self.app_id, "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        if conn.sharded:
            ready["shard"] = [conn.shard_id, conn.shard_count]
        return ready

    @staticmethod
    async def _send(
        ws: web.WebSocketResponse, seq: Iterator[int], event: str, data: dict[str, Any]
    ) -> None:
        await ws.send_str(json.dumps({"op": 0, "s": next(seq), "t": event, "d": data}))

    async def wait_connected(self, count: int = 1, *, within: float = 10.0) -> None:
        """Wait until ``count`` connections (shards) have identified and are connected."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self._sockets) >= count)

    async def dispatch(self, event: str, data: dict[str, Any], *, shard: int | None = None) -> None:
        """Send a dispatch event to the shard Discord would send it to.

        That is the connection of shard ``(guild_id >> 22) % count`` for a guild event,
        shard 0 for a DM; ``shard`` picks another one instead, as when a change in the
        shard count moves a guild to another process. Every event sent is recorded in
        :attr:`deliveries` with the shard that got it.
        """
        guild_id = data.get("guild_id")
        targets = [
            c
            for c in self._sockets
            if not c.ws.closed and (c.wants(guild_id) if shard is None else c.shard_id == shard)
        ]
        if not targets:
            raise RuntimeError(f"no gateway client connected for the shard of {event}")
        for conn in targets:
            self.deliveries.append((event, conn.shard_id))
            await self._send(conn.ws, conn.seq, event, data)

    async def request_reconnect(self) -> None:
        """Ask every connected client to reconnect and resume (op 7), as Discord does."""
        for conn in list(self._sockets):
            if not conn.ws.closed:
                await conn.ws.send_str(json.dumps({"op": 7, "d": None}))

    async def disconnect_all(self) -> None:
        """Close every gateway connection."""
        for conn in list(self._sockets):
            with contextlib.suppress(Exception):
                await conn.ws.close()
        self._sockets.clear()

    # ------------------------------------------------------------------ events

    def _interaction_base(
        self,
        kind: int,
        user: dict[str, Any],
        *,
        dm: bool,
        locale: str,
        size_limit: int,
        guild: FakeGuild | None = None,
    ) -> dict[str, Any]:
        token = f"itok-{self.snowflake()}"
        guild = self._guild(guild)
        payload: dict[str, Any] = {
            "id": self.snowflake(),
            "application_id": self.app_id,
            "type": kind,
            "token": token,
            "version": 1,
            "locale": locale,
            "attachment_size_limit": size_limit,
            "app_permissions": str((1 << 41) - 1),
            "entitlements": [],
            "authorizing_integration_owners": {},
        }
        if dm:
            dm_id = self._dm_channel_id(user["id"])
            payload.update(
                channel_id=dm_id,
                channel=self._dm_payload(dm_id, user["id"]),
                user=user,
                context=1,
            )
        else:
            payload.update(
                guild_id=guild.id,
                guild_locale="en-US",
                channel_id=guild.channel_id,
                channel=self._text_channel(guild),
                member=self._member(user),
                context=0,
            )
        self._interaction_channels[token] = payload["channel_id"]
        return payload

    async def slash(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user: dict[str, Any] | None = None,
        attachments: dict[str, dict[str, Any]] | None = None,
        dm: bool = False,
        locale: str = "en-US",
        size_limit: int = 10 * 1024 * 1024,
        no_channel: bool = False,
        guild: FakeGuild | None = None,
        shard: int | None = None,
    ) -> dict[str, Any]:
        """Dispatch a slash command; ``attachments`` maps option name -> attachment payload.

        ``no_channel`` leaves out ``channel_id`` and ``channel`` (both optional in Discord's
        payload), e.g. a command used in a DM. ``guild`` is where (default: the first
        guild); ``shard`` overrides the shard it goes to (see :meth:`dispatch`).
        """
        user = user or self.alice
        payload = self._interaction_base(
            2, user, dm=dm, locale=locale, size_limit=size_limit, guild=guild
        )
        if no_channel:
            payload.pop("channel_id", None)
            payload.pop("channel", None)
        opts: list[dict[str, Any]] = [
            {"name": k, "type": 4 if isinstance(v, int) else 3, "value": v}
            for k, v in (options or {}).items()
        ]
        resolved: dict[str, Any] = {}
        for opt_name, att in (attachments or {}).items():
            opts.append({"name": opt_name, "type": 11, "value": att["id"]})
            resolved.setdefault("attachments", {})[att["id"]] = att
        cmd = next((c for c in self.commands if c["name"] == name), {"id": self.snowflake()})
        payload["data"] = {"id": cmd["id"], "name": name, "type": 1, "options": opts}
        if resolved:
            payload["data"]["resolved"] = resolved
        await self.dispatch("INTERACTION_CREATE", payload, shard=shard)
        return payload

    async def press(
        self,
        custom_id: str,
        *,
        user: dict[str, Any] | None = None,
        message_id: str | None = None,
        size_limit: int = 10 * 1024 * 1024,
        guild: FakeGuild | None = None,
        shard: int | None = None,
    ) -> dict[str, Any]:
        """Dispatch a button press on a message (by default the newest one with that button).

        ``guild`` is where the message is (default: the first guild); ``shard`` overrides
        the shard the press goes to (see :meth:`dispatch`).
        """
        user = user or self.alice
        payload = self._interaction_base(
            3, user, dm=False, locale="en-US", size_limit=size_limit, guild=guild
        )
        message_id = message_id or self.message_with(custom_id)
        msg = self.messages.get(message_id or "") or self._message(
            payload["channel_id"],
            {
                "components": [
                    {
                        "type": 1,
                        "components": [
                            {"type": 2, "style": 2, "label": "x", "custom_id": custom_id}
                        ],
                    }
                ]
            },
        )
        payload["message"] = msg
        payload["data"] = {"custom_id": custom_id, "component_type": 2}
        await self.dispatch("INTERACTION_CREATE", payload, shard=shard)
        return payload

    def message_with(self, custom_id: str) -> str | None:
        """The id of the newest stored message that shows a button with ``custom_id``."""
        for msg in reversed(list(self.messages.values())):
            for row in msg.get("components") or []:
                if any(c.get("custom_id") == custom_id for c in row.get("components", [])):
                    return str(msg["id"])
        return None

    async def user_message(
        self,
        content: str,
        *,
        user: dict[str, Any] | None = None,
        mention_bot: bool = True,
        dm: bool = False,
        attachments: list[dict[str, Any]] | None = None,
        thread: bool = False,
        guild: FakeGuild | None = None,
    ) -> dict[str, Any]:
        """Dispatch MESSAGE_CREATE from a user (a mention in a guild, or a DM).

        ``guild`` is where (default: the first guild).
        """
        user = user or self.alice
        guild = self._guild(guild)
        if dm:
            channel_id = self._dm_channel_id(user["id"])
        else:
            channel_id = guild.thread_id if thread else guild.channel_id
        msg = self._message(channel_id, {"content": content}, author=user)
        msg["attachments"] = attachments or []
        if mention_bot and not dm:
            msg["mentions"] = [self.bot_user]
        if not dm:
            msg["guild_id"] = guild.id
            msg["member"] = {k: v for k, v in self._member(user).items() if k != "user"}
        self._store(msg)
        await self.dispatch("MESSAGE_CREATE", msg)
        return msg


def _json(data: Any, *, status: int = 200) -> web.Response:
    # Set the header by hand: ``content_type=`` would append "; charset=utf-8", and
    # discord.py compares the header verbatim before it parses JSON.
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": JSON}
    )

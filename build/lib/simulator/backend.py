"""HTTP handlers of the NemoVideo API, over the state in :mod:`simulator.world`.

Variants exercised on purpose (see NEMO_API.md):

* envelope message key cycles ``message`` → ``msg`` → absent (errors: ``message``/``msg``);
* bad/expired tokens: ``code`` 1001 under HTTP 200; no ``Authorization`` at all: HTTP 401;
* unknown session: HTTP 404 + JSON code 1002 on ``/run_sse``, HTTP 200 + code 1002 elsewhere;
* 429 alternately with and without ``Retry-After``; 5xx alternately 500 JSON / 503 text;
* render replies alternate per render between flat and ``{"success", "data"}`` shapes.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from simulator import sse
from simulator.agent import Turn, run_turn
from simulator.config import SimConfig
from simulator.world import Faults, Session, Token, User, now

ATTRIBUTION = ("X-Skill-Source", "X-Skill-Version", "X-Skill-Platform")
#: Faults handled the same way on every endpoint, before authentication.
_GENERIC = frozenset({"token_expired", "token_invalid_1010", "http_401", "rate_limit"})
_GENERIC |= {"server_error", "client_id_missing"}


class Reply(Exception):
    """Raised inside a handler to answer with ``response`` at once."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__(response.status)
        self.response = response


class RecordedRequest:
    """One API request as the simulator saw it (``headers`` is case-insensitive)."""

    def __init__(self, method: str, path: str, headers: CIMultiDict[str], query: str) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.query = query
        self.endpoint: str | None = None
        self.json: Any = None
        self.time = now()

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form for the admin API."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "endpoint": self.endpoint,
            "headers": dict(self.headers),
            "json": self.json,
            "time": self.time,
        }

    def __repr__(self) -> str:
        return f"<RecordedRequest {self.method} {self.path} endpoint={self.endpoint}>"


def missing_attribution(request: web.Request) -> bool:
    """True when any X-Skill-* attribution header is absent or blank."""
    return any(not request.headers.get(h, "").strip() for h in ATTRIBUTION)


#: Where the middleware keeps the request's record.
RECORD = web.RequestKey("sim_record", RecordedRequest)


class Backend:
    """All backend state plus the handlers of the auth, session, chat, credits and
    state endpoints (uploads and renders live in mixins)."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.faults = Faults(config)
        self.stats: Counter[str] = Counter()
        self.requests: list[RecordedRequest] = []
        self.users: dict[str, User] = {}  # by user_id
        self.clients: dict[str, str] = {}  # client id -> user_id
        self.tokens: dict[str, Token] = {}
        self.client_tokens: dict[str, str] = {}  # client id -> newest token
        self.sessions: dict[str, Session] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.media: dict[str, Path] = {}  # served name -> file
        self.media_dir = Path(tempfile.gettempdir())  # uploads; set by Simulator.start
        self._rng = random.Random(f"{config.seed}:backend")
        self._mints: dict[str, list[float]] = {}
        self._n_envelope = 0
        self._n_errors = 0
        self._n_variant: Counter[str] = Counter()

    # ----------------------------------------------------------------- helpers
    def ok(self, data: Any) -> web.Response:
        """A success envelope; the message key cycles message / msg / absent."""
        self._n_envelope += 1
        body: dict[str, Any] = {"code": 0}
        variant = self._n_envelope % 3
        if variant == 1:
            body["message"] = "success"
        elif variant == 2:
            body["msg"] = "success"
        body["data"] = data
        return web.json_response(body)

    def err(self, code: int, message: str, status: int = 200, **extra: Any) -> web.Response:
        """An error envelope (``message`` or ``msg``) with an HTTP status."""
        self._n_errors += 1
        key = "message" if self._n_errors % 2 else "msg"
        body = {"code": code, key: message, "data": None, **extra}
        self.stats[f"error_{code}"] += 1
        return web.json_response(body, status=status)

    def variant(self, name: str) -> int:
        """A per-purpose counter used to alternate reply variants deterministically."""
        self._n_variant[name] += 1
        return self._n_variant[name] - 1

    def begin(self, request: web.Request, endpoint: str) -> str | None:
        """Count the call, record it, and apply generic faults. Returns the fault kind
        (if any) left for the handler to act on."""
        self.stats[endpoint] += 1
        self.stats["calls"] += 1
        record = request.get(RECORD)
        if record is not None:
            record.endpoint = endpoint
        if endpoint != "token" and missing_attribution(request):
            self.stats["missing_attribution"] += 1
        fault = self.faults.take(endpoint)
        if fault is None:
            return None
        self.stats["faults_injected"] += 1
        self.stats[f"fault_{fault}"] += 1
        if fault in _GENERIC:
            raise Reply(self._generic_fault(fault, request))
        return fault

    def _generic_fault(self, fault: str, request: web.Request) -> web.Response:
        if fault in ("token_expired", "token_invalid_1010", "http_401"):
            token = self._bearer(request)
            if token in self.tokens:
                self.tokens[token].revoked = True
            if fault == "token_expired":
                return self.err(1001, "Token expired")
            if fault == "token_invalid_1010":
                return self.err(1010, "Invalid token")
            return self.err(401, "Unauthorized", status=401)
        if fault == "rate_limit":
            if self.variant("rate_limit") % 2 == 0:
                resp = self.err(429, "Too many requests", status=429)
                resp.headers["Retry-After"] = str(self.config.retry_after_seconds)
                return resp
            return self.err(429, "Rate limit exceeded, slow down", status=429)
        if fault == "server_error":
            if self.variant("server_error") % 2 == 0:
                return self.err(500, "Internal Server Error", status=500)
            return web.Response(
                status=503, text="<html><body>503 Service Unavailable</body></html>"
            )
        return self.err(400, "X-Client-Id header is required", status=400)

    @staticmethod
    def _bearer(request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None

    def auth(self, request: web.Request) -> User:
        """The user behind the bearer token, or a ``Reply`` with the auth error."""
        token = self._bearer(request)
        if token is None:
            self.stats["auth_failures"] += 1
            raise Reply(self.err(401, "Missing Authorization header", status=401))
        record = self.tokens.get(token)
        if record is None or not record.valid(now()):
            self.stats["auth_failures"] += 1
            raise Reply(self.err(1001, "Token expired or invalid"))
        return self.users[record.user_id]

    async def read_json(self, request: web.Request) -> dict[str, Any]:
        """The JSON object body (empty when there is none); HTTP 400 when malformed."""
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise Reply(self.err(400, "Request body is not valid JSON", status=400)) from None
        if not isinstance(body, dict):
            raise Reply(self.err(400, "Request body must be a JSON object", status=400))
        record = request.get(RECORD)
        if record is not None:
            record.json = body
        return body

    def session_for(self, user: User, sid: str, status: int = 200) -> Session:
        """The user's session ``sid``, or a ``Reply`` with code 1002."""
        session = self.sessions.get(sid)
        if session is None or session.user_id != user.user_id:
            raise Reply(self.err(1002, "Session not found", status=status))
        return session

    def lose_session(self, sid: str | None) -> web.Response:
        """Delete a session (``session_lost`` fault) and answer code 1002."""
        if sid:
            self.sessions.pop(sid, None)
        return self.err(1002, "Session not found or expired")

    def spawn(self, coro: Any) -> asyncio.Task[None]:
        """Run ``coro`` in the background; cancelled when the simulator stops."""
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # ---------------------------------------------------------------- handlers
    async def token(self, request: web.Request) -> web.Response:
        """POST /api/auth/anonymous-token: one token per client id per 7 days."""
        self.begin(request, "token")
        client_id = request.headers.get("X-Client-Id", "").strip()
        if not client_id:
            return self.err(400, "X-Client-Id header is required", status=400)
        t = now()
        current = self.tokens.get(self.client_tokens.get(client_id, ""))
        if current is None or not current.valid(t):
            limit = self.config.mint_limit_per_hour
            ip = request.remote or "?"
            recent = [m for m in self._mints.get(ip, []) if t - m < 3600]
            if limit is not None and len(recent) >= limit:
                resp = self.err(429, "Too many tokens from this IP", status=429)
                resp.headers["Retry-After"] = "3600"
                return resp
            self._mints[ip] = [*recent, t]
            current = self._mint(client_id, t)
        user = self.users[current.user_id]
        expires = datetime.fromtimestamp(current.expires_at, UTC).isoformat()
        data = {
            "token": current.token,
            "user_id": user.user_id,
            "credits": user.available,
            "expires_at": expires.replace("+00:00", "Z"),
        }
        return self.ok(data)

    def _mint(self, client_id: str, t: float) -> Token:
        user_id = self.clients.get(client_id)
        if user_id is None:
            rng = random.Random(f"{self.config.seed}:user:{client_id}")
            user_id = f"anon_{rng.getrandbits(64):016x}"
            self.clients[client_id] = user_id
            self.users[user_id] = User(user_id, client_id, self.config.initial_credits)
        n = self.stats["tokens_minted"]
        rng = random.Random(f"{self.config.seed}:token:{client_id}:{n}")
        token = f"nmv_usr_{rng.getrandbits(160):040x}"
        record = Token(token, user_id, client_id, t + self.config.token_ttl_seconds)
        self.tokens[token] = record
        self.client_tokens[client_id] = token
        self.stats["tokens_minted"] += 1
        return record

    async def session(self, request: web.Request) -> web.Response:
        """POST /api/tasks/me/with-session/nemo_agent: a new agent session."""
        self.begin(request, "session")
        user = self.auth(request)
        body = await self.read_json(request)
        n = sum(1 for s in self.sessions.values() if s.user_id == user.user_id)
        rng = random.Random(f"{self.config.seed}:session:{user.user_id}:{n}")
        sid = str(rng.randrange(10**18, 10**19))
        while sid in self.sessions:
            sid = str(rng.randrange(10**18, 10**19))
        task_id = str(rng.randrange(10**17, 10**18))
        language = str(body.get("language") or "en")
        session = Session(sid, task_id, user.user_id, rng, language=language)
        session.draft["m"].update(width=self.config.video_width, height=self.config.video_height)
        self.sessions[sid] = session
        self.stats["sessions_created"] += 1
        data = {
            "task_id": task_id,
            "session_id": sid,
            "task_name": body.get("task_name", "project"),
            "language": language,
        }
        return self.ok(data)

    async def credits(self, request: web.Request) -> web.Response:
        """GET /api/credits/balance/simple."""
        self.begin(request, "credits")
        user = self.auth(request)
        return self.ok({"available": user.available, "frozen": user.frozen, "total": user.total})

    async def state(self, request: web.Request) -> web.Response:
        """GET /api/state/nemo_agent/me/{sid}/latest."""
        sid = request.match_info["sid"]
        fault = self.begin(request, "state")
        user = self.auth(request)
        if fault == "session_lost":
            return self.lose_session(sid)
        session = self.session_for(user, sid)
        data = {"session_id": sid, "task_id": session.task_id, "state": session.state()}
        return self.ok(data)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        """POST /run_sse: one agent turn streamed as server-sent events."""
        fault = self.begin(request, "chat")
        user = self.auth(request)
        body = await self.read_json(request)
        sid = str(body.get("session_id") or "")
        if fault == "session_lost":
            return self.lose_session(sid)
        session = self.session_for(user, sid, status=404)
        parts = (body.get("new_message") or {}).get("parts") or []
        text = "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict)).strip()
        if not text:
            return self.err(400, "new_message.parts[].text is required", status=400)
        if fault == "no_credits" or user.available <= 0:
            return self.err(2001, "Insufficient credits")
        if session.running:
            self.stats["concurrent_chats"] += 1
        if session.running[text] > 0:
            self.stats["concurrent_duplicates"] += 1
        session.running[text] += 1
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        preview = f"http://{request.host}/media/preview.mp4"
        turn = Turn(self.config, session, user, text, fault, self.stats, queue, preview)
        if fault == "stream_error":
            turn.error_variant = self.variant("stream_error")
        self.spawn(run_turn(turn))
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        while True:
            chunk = await queue.get()
            if chunk == sse.END:
                break
            if chunk == sse.DROP:
                # Cut the TCP connection mid-body: the client sees an incomplete
                # chunked response, not a clean end of stream.
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError
            try:
                await resp.write(chunk)
            except (ConnectionError, RuntimeError):
                return resp  # client went away; the turn keeps running server-side
        await resp.write_eof()
        return resp

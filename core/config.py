"""Every setting in one place, read from the environment and a ``.env`` file.

Names follow the outside contract in DESIGN.md. A missing or malformed setting
stops start-up with one clear line per bad variable (:class:`SettingsError`).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Annotated

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from storage.secrets import SecretKeyError, parse_keys

__all__ = ["TERMINAL_USER_PREFIX", "Settings", "SettingsError", "display_value", "load_settings"]

DEFAULT_API_BASE = "https://mega-api-prod.nemovideo.ai"


class SettingsError(Exception):
    """A setting is missing or malformed. ``str()`` is one line per bad variable."""


#: How the terminal chat's user (the login name) is written in a list of user ids.
TERMINAL_USER_PREFIX = "terminal:"

_INTEGER = re.compile(r"-?[0-9]+")

#: The written forms of a boolean setting (any case), README.md's Settings table.
_BOOLEANS = {"true": True, "false": False, "yes": True, "no": False}
_BOOLEANS |= {"on": True, "off": False, "1": True, "0": False}


def _split(value: object) -> object:
    """``"1, 2,,3"`` -> ``["1", "2", "3"]`` (``;`` works too; blanks and spaces are dropped)."""
    if isinstance(value, str):
        return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
    return value


def _refuse(bad: list[str], noun: str, hint: str) -> ValueError:
    """One line naming every bad item: "'x' is not a NOUN: HINT" ("are not NOUNs" for more)."""
    names = ", ".join(repr(item) for item in bad)
    if len(bad) == 1:
        return ValueError(f"{names} is not a {noun}: {hint}")
    return ValueError(f"{names} are not {noun}s: {hint}")


def _id_list(*, users: bool) -> BeforeValidator:
    """Comma-separated platform ids (numbers: Telegram and Discord ids are integers).

    A name such as ``@alice`` would never match anybody, so it stops start-up rather
    than leave a bot open (an allowlist) or an admin locked out. User lists also take
    ``terminal:LOGIN``, the terminal chat's user. Ids are kept as the platforms' ids
    print (``007`` -> ``7``), since they are compared as text.
    """
    if users:
        noun = "user id"
        hint = (
            "Telegram and Discord user ids are numbers (e.g. 123456789); "
            f"the terminal chat's user is {TERMINAL_USER_PREFIX}LOGIN"
        )
    else:
        noun = "chat id"
        hint = "chat ids are numbers (e.g. 123456789, or -1001234567890 for a Telegram group)"

    def parse(value: object) -> object:
        items = _split(value)
        if not isinstance(items, list):
            return items
        ids: list[str] = []
        bad: list[str] = []
        for item in map(str, items):
            login = item.removeprefix(TERMINAL_USER_PREFIX)
            if _INTEGER.fullmatch(item):
                ids.append(str(int(item)))
            elif users and login != item and login:
                ids.append(item)
            else:
                bad.append(item)
        if bad:
            raise _refuse(bad, noun, hint)
        return ids

    return BeforeValidator(parse)


def _shard_numbers(value: object) -> object:
    items = _split(value)
    if not isinstance(items, list):
        return items
    bad = [str(item) for item in items if not re.fullmatch(r"[0-9]+", str(item))]
    if bad:
        raise _refuse(
            bad, "shard number", "shards are numbered 0, 1, ... up to DISCORD_SHARD_COUNT - 1"
        )
    return [int(item) for item in items]


def _boolean(value: object) -> object:
    """true/false, yes/no, on/off, 1/0 in any case; anything else is refused in one line.

    pydantic alone would also take ``t``, ``y``, ``n``... that README does not name.
    """
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word not in _BOOLEANS:
        raise ValueError(f"{str(value)!r} is not true or false (yes/no, on/off and 1/0 work too)")
    return _BOOLEANS[word]


# NoDecode: the documented form of a list is comma-separated, not the JSON list that
# pydantic-settings would otherwise expect from the environment and .env.
UserIds = Annotated[list[str], NoDecode, _id_list(users=True)]
ChatIds = Annotated[list[str], NoDecode, _id_list(users=False)]
ShardIds = Annotated[list[int], NoDecode, BeforeValidator(_shard_numbers)]
Flag = Annotated[bool, BeforeValidator(_boolean)]


class Settings(BaseSettings):
    """The bot's settings. Secrets are ``SecretStr`` so they never print by accident."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
    )

    nemo_api_base: str = Field(DEFAULT_API_BASE, alias="NEMO_API_BASE")
    nemo_token: SecretStr | None = Field(None, alias="NEMO_TOKEN")
    # a SQLite file, or a postgresql:// URL (kept secret: it may carry a password)
    nemo_bot_db: Path | SecretStr = Field(Path("./data/nemo-bot.db"), alias="NEMO_BOT_DB")
    nemo_secret_key: SecretStr | None = Field(None, alias="NEMO_SECRET_KEY")
    skill_source: str = Field("nemo-bot", alias="NEMO_SKILL_SOURCE")
    skill_version: str = Field("0.1.0", alias="NEMO_SKILL_VERSION")
    skill_platform: str = Field("python", alias="NEMO_SKILL_PLATFORM")
    max_upload_mb: int = Field(200, alias="NEMO_MAX_UPLOAD_MB", gt=0, le=100_000)
    heartbeat_notice_s: float = Field(120.0, alias="NEMO_HEARTBEAT_NOTICE_S", gt=0)
    heartbeat_timeout_s: float = Field(600.0, alias="NEMO_HEARTBEAT_TIMEOUT_S", gt=0)
    # The operator's fair limits per chat user (unset: no limit; see core/limits.py).
    limit_requests_per_hour: int | None = Field(
        None, alias="NEMO_LIMIT_REQUESTS_PER_HOUR", ge=0, le=1_000_000
    )
    limit_exports_per_day: int | None = Field(
        None, alias="NEMO_LIMIT_EXPORTS_PER_DAY", ge=0, le=1_000_000
    )
    limit_queue: int | None = Field(None, alias="NEMO_LIMIT_QUEUE", ge=0, le=1000)

    telegram_bot_token: SecretStr | None = Field(None, alias="TELEGRAM_BOT_TOKEN")
    telegram_api_base: str = Field("https://api.telegram.org", alias="TELEGRAM_API_BASE")
    telegram_webhook_secret: SecretStr | None = Field(None, alias="TELEGRAM_WEBHOOK_SECRET")
    telegram_local_mode: Flag = Field(False, alias="TELEGRAM_LOCAL_MODE")
    #: Messages per second across all chats (Telegram documents 30); 0 = no overall cap.
    telegram_overall_rate: int = Field(30, alias="TELEGRAM_OVERALL_RATE", ge=0, le=100_000)

    discord_bot_token: SecretStr | None = Field(None, alias="DISCORD_BOT_TOKEN")
    discord_api_base: str = Field("https://discord.com/api/v10", alias="DISCORD_API_BASE")
    discord_gateway_url: str = Field("wss://gateway.discord.gg", alias="DISCORD_GATEWAY_URL")
    discord_shard_count: int | None = Field(None, alias="DISCORD_SHARD_COUNT", ge=1, le=100_000)
    discord_shard_ids: ShardIds = Field(default_factory=list, alias="DISCORD_SHARD_IDS")

    allowed_user_ids: UserIds = Field(default_factory=list, alias="NEMO_ALLOWED_USERS")
    allowed_chat_ids: ChatIds = Field(default_factory=list, alias="NEMO_ALLOWED_CHATS")
    #: Platform user ids that may use /stats and /broadcast (nobody else sees them).
    admin_user_ids: UserIds = Field(default_factory=list, alias="NEMO_ADMIN_USERS")

    log_level: str = Field("INFO", alias="NEMO_LOG_LEVEL")
    health_port: int | None = Field(None, alias="NEMO_HEALTH_PORT", ge=0, le=65535)
    health_host: str = Field("127.0.0.1", alias="NEMO_HEALTH_HOST")
    replica_name: str = Field(default_factory=socket.gethostname, alias="NEMO_REPLICA_NAME")
    #: Seconds a dead replica's claims (stored updates, session turns, renders) hold
    #: before a live replica takes them over; claims are renewed every third of it.
    replica_lease: float = Field(30.0, alias="NEMO_REPLICA_LEASE", ge=1.0, le=3600.0)

    @field_validator("nemo_bot_db", mode="before")
    @classmethod
    def _db(cls, value: object) -> object:
        if isinstance(value, str):
            if value.startswith(("postgresql://", "postgres://")):
                return SecretStr(value)
            return Path(value)
        return value

    @field_validator("nemo_secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                parse_keys(value.get_secret_value())
            except SecretKeyError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("discord_shard_ids")
    @classmethod
    def _shard_ids(cls, value: list[int], info: ValidationInfo) -> list[int]:
        if not value or "discord_shard_count" not in info.data:
            return value  # nothing to check, or the count is bad and reported already
        count = info.data["discord_shard_count"]
        if count is None:
            raise ValueError("needs DISCORD_SHARD_COUNT (the total number of shards)")
        wrong = [shard for shard in value if not 0 <= shard < count]
        if wrong:
            raise ValueError(
                f"{', '.join(map(str, wrong))} not in 0..{count - 1} (DISCORD_SHARD_COUNT={count})"
            )
        if len(set(value)) != len(value):
            raise ValueError("lists a shard twice")
        return sorted(value)

    @field_validator("nemo_api_base", "telegram_api_base", "discord_api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("discord_gateway_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value.rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @model_validator(mode="after")
    def _notice_before_timeout(self) -> Settings:
        # A notice due at or after the time-out could never be shown.
        if self.heartbeat_notice_s >= self.heartbeat_timeout_s:
            raise ValueError(
                f"NEMO_HEARTBEAT_NOTICE_S ({display_value(self.heartbeat_notice_s)}) must be "
                f"below NEMO_HEARTBEAT_TIMEOUT_S ({display_value(self.heartbeat_timeout_s)}), "
                "or the 'still working' notice never shows"
            )
        return self

    @property
    def db_target(self) -> Path | str:
        """Where the store lives: a SQLite path, or the PostgreSQL URL in the clear."""
        db = self.nemo_bot_db
        return db.get_secret_value() if isinstance(db, SecretStr) else db

    @property
    def discord_shards(self) -> tuple[list[int], int]:
        """The Discord shards this process runs, and the total: ``(ids, count)``.

        Unset, one process runs the single shard 0 of 1; with only
        ``DISCORD_SHARD_COUNT`` it runs every shard of that many.
        """
        count = self.discord_shard_count or 1
        return (self.discord_shard_ids or list(range(count)), count)

    @property
    def max_upload_bytes(self) -> int:
        """The upload cap in bytes."""
        return self.max_upload_mb * 1024 * 1024

    def is_admin(self, user_id: str) -> bool:
        """Whether ``user_id`` is one of ``NEMO_ADMIN_USERS``."""
        return _listed(user_id, self.admin_user_ids)

    def is_allowed(self, user_id: str, chat_id: str) -> bool:
        """Whether the allowlist (if any) admits this user in this chat."""
        if self.allowed_user_ids and not _listed(user_id, self.allowed_user_ids):
            return False
        return not (self.allowed_chat_ids and chat_id not in self.allowed_chat_ids)


def _listed(user_id: str, ids: list[str]) -> bool:
    # Platform ids are numbers and the terminal's user is a login name (useradd refuses
    # all-digit names), so "terminal:alice" can only ever match the terminal chat's alice.
    return user_id in ids or f"{TERMINAL_USER_PREFIX}{user_id}" in ids


def display_value(value: object) -> str:
    """A setting's value as README.md and ``.env.example`` write it.

    ``false``/``true``, lists comma-separated, unset as empty, ``120`` rather than
    ``120.0``; secrets that are set show as ``********``.
    """
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return "********"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Path) and not value.is_absolute() and not str(value).startswith("."):
        return f"./{value}"  # Path("./data/x") prints as "data/x"; keep the written form
    if isinstance(value, list | tuple):
        return ",".join(display_value(item) for item in value)
    return str(value)


def load_settings(**overrides: object) -> Settings:
    """Read settings; raise :class:`SettingsError` with one line per bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if not err["loc"]:  # a rule across settings names them itself
                lines.append(message)
                continue
            name = str(err["loc"][0])
            field = Settings.model_fields.get(name)
            alias = field.alias if field and field.alias else name
            value = err.get("input")
            # Name the bad value too, unless the message already does or it may be a secret.
            if isinstance(value, str) and value not in message and alias not in _secret_names():
                message = f"{message} (got {value!r})"
            lines.append(f"{alias}: {message}")
        raise SettingsError("\n".join(lines)) from None


def _secret_names() -> set[str]:
    """Every name (and alias) of a setting that may hold a secret (``SecretStr``)."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        if "SecretStr" in str(field.annotation):
            names |= {name, field.alias or name}
    return names

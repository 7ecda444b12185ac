"""Every setting in one place, read from the environment and a ``.env`` file.

Names follow the outside contract in DESIGN.md. A missing or malformed setting
stops start-up with one clear line per bad variable (:class:`SettingsError`).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from storage.secrets import SecretKeyError, parse_keys

__all__ = ["Settings", "SettingsError", "display_value", "load_settings"]

DEFAULT_API_BASE = "https://mega-api-prod.nemovideo.ai"


class SettingsError(Exception):
    """A setting is missing or malformed. ``str()`` is one line per bad variable."""


def _split_ids(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
    return value


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
    telegram_local_mode: bool = Field(False, alias="TELEGRAM_LOCAL_MODE")
    #: Messages per second across all chats (Telegram documents 30); 0 = no overall cap.
    telegram_overall_rate: int = Field(30, alias="TELEGRAM_OVERALL_RATE", ge=0, le=100_000)

    discord_bot_token: SecretStr | None = Field(None, alias="DISCORD_BOT_TOKEN")
    discord_api_base: str = Field("https://discord.com/api/v10", alias="DISCORD_API_BASE")
    discord_gateway_url: str = Field("wss://gateway.discord.gg", alias="DISCORD_GATEWAY_URL")
    # Comma-separated in the environment and .env, so NoDecode: not parsed as JSON.
    discord_shard_count: int | None = Field(None, alias="DISCORD_SHARD_COUNT", ge=1, le=100_000)
    discord_shard_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, alias="DISCORD_SHARD_IDS"
    )

    # NoDecode: the documented form is comma-separated ids, not the JSON list that
    # pydantic-settings would otherwise expect from the environment and .env.
    allowed_user_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="NEMO_ALLOWED_USERS"
    )
    allowed_chat_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="NEMO_ALLOWED_CHATS"
    )
    #: Platform user ids that may use /stats and /broadcast (nobody else sees them).
    admin_user_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="NEMO_ADMIN_USERS"
    )

    log_level: str = Field("INFO", alias="NEMO_LOG_LEVEL")
    health_port: int | None = Field(None, alias="NEMO_HEALTH_PORT", ge=0, le=65535)
    health_host: str = Field("127.0.0.1", alias="NEMO_HEALTH_HOST")
    replica_name: str = Field(default_factory=socket.gethostname, alias="NEMO_REPLICA_NAME")
    #: Seconds a dead replica's claims (stored updates, session turns, renders) hold
    #: before a live replica takes them over; claims are renewed every third of it.
    replica_lease: float = Field(30.0, alias="NEMO_REPLICA_LEASE", ge=1.0, le=3600.0)

    @field_validator("allowed_user_ids", "allowed_chat_ids", "admin_user_ids", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        return _split_ids(value)

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

    @field_validator("discord_shard_ids", mode="before")
    @classmethod
    def _shard_id_list(cls, value: object) -> object:
        return _split_ids(value)

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
        return user_id in self.admin_user_ids

    def is_allowed(self, user_id: str, chat_id: str) -> bool:
        """Whether the allowlist (if any) admits this user in this chat."""
        if self.allowed_user_ids and user_id not in self.allowed_user_ids:
            return False
        return not (self.allowed_chat_ids and chat_id not in self.allowed_chat_ids)


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
            lines.append(f"{alias}: {message}")
        raise SettingsError("\n".join(lines)) from None

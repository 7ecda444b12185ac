"""The ``nemo-bot`` command line (the outside contract of DESIGN.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import logging
import signal
import sys
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from bots.status import EXIT_CODES_HELP, ExitCode
from core.config import Settings, SettingsError, display_value, load_settings
from core.logs import setup_logging

if TYPE_CHECKING:
    from core.service import ConversationService

__all__ = ["main"]

log = logging.getLogger("nemo.cli")

#: Library log lines that say nothing an operator can act on, silenced by exact text:
#: discord.py warns on every start that voice is unsupported (this bot never joins a
#: voice channel), and PTB logs a traceback for a non-JSON answer it then raises anyway
#: (the command says what went wrong in one line instead).
_LIBRARY_NOISE = {
    "discord.client": (
        "PyNaCl is not installed, voice will NOT be supported",
        "davey is not installed, voice will NOT be supported",
    ),
    "telegram.request.BaseRequest": ("Can not load invalid JSON data",),
}


class _DropMessages(logging.Filter):
    """Drops records whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes: Sequence[str]) -> None:
        super().__init__()
        self._prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self._prefixes)


def _silence_library_noise() -> None:
    for name, prefixes in _LIBRARY_NOISE.items():
        logging.getLogger(name).addFilter(_DropMessages(prefixes))


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (where there is one worth showing); epilogs as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        if default is None or default is False or default == [] or default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _version() -> str:
    try:
        return importlib.metadata.version("nemo-bot")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def _add_terminal_options(cmd: argparse.ArgumentParser, name: str) -> None:
    """The options ``chat`` and ``demo`` share."""
    cmd.add_argument(
        "-m",
        "--message",
        action="append",
        default=[],
        metavar="TEXT",
        help="send TEXT (repeatable, in order), print the replies and wait for any export, exit",
    )
    cmd.add_argument(
        "--attach",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="upload a photo, clip or audio file first (repeatable)",
    )
    cmd.add_argument(
        "--save-dir",
        type=Path,
        default=Path("videos"),
        metavar="DIR",
        help="save each finished MP4 here (the link dies with the backend's copy)",
    )
    cmd.add_argument(
        "--log-file",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"where log lines go (default: {default_log_file(name)})",
    )
    cmd.add_argument(
        "-v", "--verbose", action="store_true", help="print log lines on stderr instead"
    )


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser, and each command's own (for its usage after a bad flag)."""
    parser = argparse.ArgumentParser(
        prog="nemo-bot",
        description="Make AI videos from a chat: NemoVideo in Telegram, Discord and the terminal.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, text: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=text, description=text, formatter_class=_HelpFormatter, **kwargs
        )

    tg = command("telegram", "run the Telegram bot (long polling, or a webhook)")
    tg.add_argument("--webhook-url", help="receive updates by webhook at this public URL")
    tg.add_argument("--webhook-listen", default="0.0.0.0", help="webhook listen address")
    tg.add_argument("--webhook-port", type=int, default=8443, help="webhook listen port")
    command("discord", "run the Discord bot")
    command("run", "run every platform whose token is set, in one process")
    chat = command("chat", "chat in the terminal (one-shot with -m)", epilog=EXIT_CODES_HELP)
    _add_terminal_options(chat, "chat")
    sim = command("sim", "run the local NemoVideo simulator (offline, no tokens needed)")
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sim.add_argument("--port", type=int, default=8765, help="port to listen on")
    sim.add_argument("--seed", type=int, default=0, help="random seed (same seed, same replies)")
    sim.add_argument(
        "--render-seconds",
        type=float,
        default=None,
        metavar="S",
        help="how long a simulated render takes (default: 6)",
    )
    demo = command(
        "demo", "simulator + terminal chat, offline, no tokens needed", epilog=EXIT_CODES_HELP
    )
    _add_terminal_options(demo, "demo")
    command("config", "print the effective settings as .env.example writes them (secrets masked)")
    return parser, dict(sub.choices)


def default_log_file(command: str) -> Path:
    """Where ``chat`` / ``demo`` write log lines unless told otherwise."""
    return Path(tempfile.gettempdir()) / f"nemo-bot-{command}.log"


def _secrets(settings: Settings) -> list[str]:
    return [
        secret.get_secret_value()
        for secret in (
            settings.nemo_token,
            settings.telegram_bot_token,
            settings.discord_bot_token,
            settings.telegram_webhook_secret,
        )
        if secret is not None
    ]


def _raise_open_file_limit() -> None:
    """Each chat stream is a socket: lift the soft descriptor limit to the hard one."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _tune_garbage_collector() -> None:
    """Let a crowd's live objects be, and keep start-up's out of every collection.

    CPython looks for reference cycles every 700 new container objects, in older
    objects every 10 such passes and in the whole heap every 100. With a thousand
    requests in flight the heap holds hundreds of thousands of live objects (sockets,
    tasks, parsed updates) that each pass walks again: in ``bench/crowd.py`` at
    K=1000 the collector took about 2 s of the bot's CPU (eight full passes of
    ~130 ms), most of it in the first seconds, while the backend streams were
    opening. What exists once every platform is up is frozen out of collection, and
    the passes run every 10,000 new objects, the older generations 50 times less
    often than that: 0.45 s of collecting for the same crowd, the last stream opening
    ~0.7 s sooner, peak RSS +5 MB. Cyclic garbage is still collected, only in fewer,
    larger passes.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 50)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nemo-bot`` console script."""
    parser, commands = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # name the command whose flags were wrong, with its own usage
        commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "sim":
        return _run_sim(args)
    try:
        overrides: dict[str, object] = {}
        if args.command == "demo":
            # Offline and local: the backend's token and the chat platforms' allowlists
            # (ids of Telegram/Discord users) in a .env made for the real bots don't apply.
            overrides = {"NEMO_TOKEN": None, "NEMO_ALLOWED_USERS": [], "NEMO_ALLOWED_CHATS": []}
        settings = load_settings(**overrides)
    except SettingsError as exc:
        for line in str(exc).splitlines():
            print(f"nemo-bot: bad setting {line}", file=sys.stderr)
        return ExitCode.USAGE
    if args.command == "config":
        return _print_config(settings)
    _raise_open_file_limit()
    terminal = args.command in ("chat", "demo")
    log_file: Path | None = None
    if terminal and not args.verbose:
        log_file = args.log_file or default_log_file(args.command)
    try:
        scrubber = setup_logging(settings.log_level, _secrets(settings), file=log_file)
    except OSError as exc:
        print(f"nemo-bot: cannot write the log file {log_file}: {exc.strerror}", file=sys.stderr)
        return ExitCode.USAGE
    _silence_library_noise()
    if terminal:
        from bots.console import run_terminal

        return run_terminal(lambda: _terminal(args, settings, log_file))
    try:
        return asyncio.run(_serve_platforms(args, settings))
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except Exception as exc:  # a platform refused to start: one clear line, no traceback
        log.debug("start-up failed", exc_info=True)
        reason = _diagnose(exc, settings) or f"{type(exc).__name__}: {exc}"
        print(f"nemo-bot: {args.command} stopped: {scrubber.scrub(reason)}", file=sys.stderr)
        return ExitCode.FAILED


def _run_sim(args: argparse.Namespace) -> int:
    from simulator.server import SimConfig, serve

    config = SimConfig(seed=args.seed)
    if args.render_seconds is not None:
        config.render_seconds = args.render_seconds
    # A wildcard address listens on loopback too; chat needs an address to connect to.
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host

    def how_to_chat(port: int) -> str:
        # Printed once the simulator listens, under its "NemoVideo simulator on" line.
        return (
            f"Chat with it from another terminal: NEMO_API_BASE=http://{host}:{port} nemo-bot chat"
        )

    serve(host=args.host, port=args.port, config=config, then=how_to_chat)
    return 0


def _print_config(settings: Settings) -> int:
    for name, field in Settings.model_fields.items():
        print(f"{field.alias or name}={display_value(getattr(settings, name))}")
    return 0


def _diagnose(exc: Exception, settings: Settings) -> str | None:
    """A start-up failure explained in one line, where asking the server tells more."""
    if type(exc).__module__.startswith("telegram") and settings.telegram_bot_token is not None:
        return _probe_bot_api(settings.telegram_api_base, settings.telegram_bot_token)
    return None


def _probe_bot_api(base: str, token: SecretStr) -> str | None:
    """Why ``base`` refused to start the bot: not a Bot API server, or the token rejected.

    PTB reports any 401/404 as "InvalidToken" and a non-JSON answer as a network
    error, so one getMe tells a wrong server from a wrong token. None if it looks fine.
    """
    import httpx

    try:
        response = httpx.post(f"{base}/bot{token.get_secret_value()}/getMe", timeout=10)
    except httpx.HTTPError as exc:
        return f"cannot reach TELEGRAM_API_BASE ({base}): {type(exc).__name__}"
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "ok" not in body:
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        return (
            f"TELEGRAM_API_BASE ({base}) is not a Bot API server: getMe answered "
            f"HTTP {response.status_code} ({kind}); use https://api.telegram.org "
            "or a telegram-bot-api server's root"
        )
    if body.get("ok") is not True:
        return (
            f"the Bot API at {base} rejected TELEGRAM_BOT_TOKEN "
            f"({body.get('error_code', response.status_code)} {body.get('description', '')})"
        ).rstrip()
    return None


async def _terminal(args: argparse.Namespace, settings: Settings, log_file: Path | None) -> int:
    """``nemo-bot chat`` or ``nemo-bot demo``."""
    from bots.console import run_console
    from core.app import open_core
    from storage.base import StoreError

    options: dict[str, Any] = {
        "messages": args.message,
        "attach": args.attach,
        "save_dir": args.save_dir.expanduser().absolute(),
        "log_file": log_file,
    }
    if args.command == "chat":
        try:
            async with open_core(settings) as service:
                return await run_console(service, **options)
        except StoreError as exc:  # e.g. encrypted tokens but no NEMO_SECRET_KEY: one line
            print(f"nemo-bot: chat stopped: {exc}", file=sys.stderr)
            return ExitCode.FAILED

    from simulator.server import SimConfig, Simulator

    print("Starting the offline NemoVideo simulator...", flush=True)
    async with Simulator(SimConfig()) as sim:
        # The database lives in a temporary directory, removed however the demo ends
        # (Ctrl-C, the terminal closing, SIGTERM: run_terminal turns each into a
        # cancellation, so this block unwinds).
        with tempfile.TemporaryDirectory(prefix="nemo-demo-") as tmp:
            demo_settings = settings.model_copy(
                update={"nemo_api_base": sim.base_url, "nemo_bot_db": Path(tmp) / "demo.db"}
            )
            async with open_core(demo_settings) as service:
                return await run_console(service, demo=True, **options)


async def _serve_platforms(args: argparse.Namespace, settings: Settings) -> int:
    from core.app import open_core

    token_name = {"telegram": "TELEGRAM_BOT_TOKEN", "discord": "DISCORD_BOT_TOKEN"}
    missing = token_name.get(args.command)
    if missing and getattr(settings, missing.lower()) is None:
        print(f"nemo-bot: {missing} is not set", file=sys.stderr)
        return ExitCode.USAGE
    runners = _platform_runners(args, settings)
    if not runners:
        print(
            "nemo-bot: set TELEGRAM_BOT_TOKEN and/or DISCORD_BOT_TOKEN "
            "(or try `nemo-bot demo` offline)",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with open_core(settings) as service, contextlib.AsyncExitStack() as stack:
        if settings.health_port is not None:
            from core.health import health_server

            port = await stack.enter_async_context(
                health_server(
                    service.metrics,
                    host=settings.health_host,
                    port=settings.health_port,
                    status=lambda: {"renders_in_flight": service.renders.in_flight},
                    checks={"database": service.store.ping},
                    replica=settings.replica_name,
                )
            )
            log.info("health and metrics on http://%s:%d", settings.health_host, port)
        readies = [asyncio.Event() for _ in runners]
        tasks = [
            asyncio.create_task(run(service, stop, ready))
            for run, ready in zip(runners, readies, strict=True)
        ]

        async def all_ready() -> None:
            for ready in readies:
                await ready.wait()

        waiter = asyncio.create_task(all_ready())
        # Resume renders once every platform is up (or stop waiting if one fails to start).
        await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
        if waiter.done():
            _tune_garbage_collector()
            resumed = await service.start()
            log.info("all platforms up; resumed %d render(s)", resumed)
        try:
            await asyncio.gather(*tasks)
        finally:
            stop.set()
            waiter.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    log.info("stopped cleanly")
    return 0


Runner = Callable[["ConversationService", asyncio.Event, asyncio.Event], Coroutine[Any, Any, None]]


def _platform_runners(args: argparse.Namespace, settings: Settings) -> list[Runner]:
    want_tg = args.command == "telegram" or (args.command == "run" and settings.telegram_bot_token)
    want_dc = args.command == "discord" or (args.command == "run" and settings.discord_bot_token)
    runners: list[Runner] = []
    if want_tg:
        from bots.telegram_bot import run_telegram

        webhook = getattr(args, "webhook_url", None)

        async def tg(
            service: ConversationService, stop: asyncio.Event, ready: asyncio.Event
        ) -> None:
            await run_telegram(
                settings,
                service,
                webhook_url=webhook,
                webhook_listen=getattr(args, "webhook_listen", "0.0.0.0"),
                webhook_port=getattr(args, "webhook_port", 8443),
                stop_event=stop,
                ready=ready,
            )

        runners.append(tg)
    if want_dc:
        from bots.discord_bot import run_discord

        async def dc(
            service: ConversationService, stop: asyncio.Event, ready: asyncio.Event
        ) -> None:
            await run_discord(settings, service, stop_event=stop, ready=ready)

        runners.append(dc)
    return runners


if __name__ == "__main__":
    sys.exit(main())

"""The ``nemo-bot`` command line (the outside contract of DESIGN.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import Settings, SettingsError, load_settings
from core.logs import SecretFilter, setup_logging

if TYPE_CHECKING:
    from core.service import ConversationService

__all__ = ["main"]

log = logging.getLogger("nemo.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nemo-bot",
        description="Make AI videos from a chat: NemoVideo in Telegram, Discord and the terminal.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    tg = sub.add_parser("telegram", help="run the Telegram bot")
    tg.add_argument("--webhook-url", help="receive updates by webhook at this public URL")
    tg.add_argument("--webhook-listen", default="0.0.0.0", help="webhook listen address")
    tg.add_argument("--webhook-port", type=int, default=8443, help="webhook listen port")
    sub.add_parser("discord", help="run the Discord bot")
    sub.add_parser("run", help="run every platform whose token is set, in one process")
    chat = sub.add_parser("chat", help="chat in the terminal (one-shot with -m)")
    chat.add_argument(
        "-m",
        "--message",
        action="append",
        default=[],
        metavar="TEXT",
        help="send TEXT (repeatable, in order), print the replies, exit",
    )
    chat.add_argument(
        "--attach",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="upload a photo, clip or audio file first (repeatable)",
    )
    sim = sub.add_parser("sim", help="run the local NemoVideo simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8765)
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument(
        "--render-seconds", type=float, default=None, help="how long a simulated render takes"
    )
    demo = sub.add_parser("demo", help="simulator + terminal chat, offline, no tokens needed")
    demo.add_argument("-m", "--message", action="append", default=[], metavar="TEXT")
    demo.add_argument("--attach", action="append", default=[], type=Path, metavar="PATH")
    sub.add_parser("config", help="print the effective settings (secrets masked)")
    return parser


def _setup_logging(settings: Settings, level: str) -> SecretFilter:
    secrets = [
        secret.get_secret_value()
        for secret in (
            settings.nemo_token,
            settings.telegram_bot_token,
            settings.discord_bot_token,
            settings.telegram_webhook_secret,
        )
        if secret is not None
    ]
    return setup_logging(level, secrets)


def _raise_open_file_limit() -> None:
    """Each chat stream is a socket: lift the soft descriptor limit to the hard one."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nemo-bot`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "sim":
        return _run_sim(args)
    try:
        overrides: dict[str, object] = {}
        if args.command == "demo":
            overrides = {"NEMO_TOKEN": None}
        settings = load_settings(**overrides)
    except SettingsError as exc:
        for line in str(exc).splitlines():
            print(f"nemo-bot: bad setting {line}", file=sys.stderr)
        return 2
    if args.command == "config":
        return _print_config(settings)
    _raise_open_file_limit()
    quiet = args.command in ("chat", "demo")
    scrubber = _setup_logging(settings, "WARNING" if quiet else settings.log_level)
    try:
        return asyncio.run(_dispatch(args, settings))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a platform refused to start: one clear line, no traceback
        log.debug("start-up failed", exc_info=True)
        reason = scrubber.scrub(f"{type(exc).__name__}: {exc}")
        print(f"nemo-bot: {args.command} stopped: {reason}", file=sys.stderr)
        return 1


def _run_sim(args: argparse.Namespace) -> int:
    from simulator.server import SimConfig, serve

    config = SimConfig(seed=args.seed)
    if args.render_seconds is not None:
        config.render_seconds = args.render_seconds
    serve(host=args.host, port=args.port, config=config)
    return 0


def _print_config(settings: Settings) -> int:
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        shown = "(unset)" if value is None else value
        if hasattr(value, "get_secret_value"):
            shown = "********"
        print(f"{field.alias or name}={shown}")
    return 0


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from core.app import open_core

    if args.command == "demo":
        return await _demo(args, settings)
    if args.command == "chat":
        from bots.console import run_console

        async with open_core(settings) as service:
            return await run_console(service, messages=args.message, attach=args.attach)
    token_name = {"telegram": "TELEGRAM_BOT_TOKEN", "discord": "DISCORD_BOT_TOKEN"}
    missing = token_name.get(args.command)
    if missing and getattr(settings, missing.lower()) is None:
        print(f"nemo-bot: {missing} is not set", file=sys.stderr)
        return 2
    runners = _platform_runners(args, settings)
    if not runners:
        print(
            "nemo-bot: set TELEGRAM_BOT_TOKEN and/or DISCORD_BOT_TOKEN "
            "(or try `nemo-bot demo` offline)",
            file=sys.stderr,
        )
        return 2
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


async def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from bots.console import run_console
    from core.app import open_core
    from simulator.server import SimConfig, Simulator

    print("Starting the offline NemoVideo simulator...", flush=True)
    async with Simulator(SimConfig()) as sim:
        with tempfile.TemporaryDirectory(prefix="nemo-demo-") as tmp:
            demo_settings = settings.model_copy(
                update={"nemo_api_base": sim.base_url, "nemo_bot_db": Path(tmp) / "demo.db"}
            )
            async with open_core(demo_settings) as service:
                return await run_console(service, messages=args.message, attach=args.attach)


if __name__ == "__main__":
    raise SystemExit(main())

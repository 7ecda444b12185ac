"""The ``nemo-bot`` command line (the outside contract of DESIGN.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from core.config import Settings, SettingsError, load_settings

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


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request URL at INFO; Telegram's URLs contain the bot token.
    for noisy in ("httpx", "httpcore", "telegram.ext.ExtBot", "discord.http"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


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
    _setup_logging(settings.log_level if args.command not in ("chat", "demo") else "WARNING")
    try:
        return asyncio.run(_dispatch(args, settings))
    except KeyboardInterrupt:
        return 130


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
    async with open_core(settings) as service:
        await asyncio.gather(*(run(service, stop) for run in runners))
    log.info("stopped cleanly")
    return 0


Runner = Callable[["object", asyncio.Event], Awaitable[None]]


def _platform_runners(args: argparse.Namespace, settings: Settings) -> list[Runner]:
    want_tg = args.command == "telegram" or (args.command == "run" and settings.telegram_bot_token)
    want_dc = args.command == "discord" or (args.command == "run" and settings.discord_bot_token)
    runners: list[Runner] = []
    if want_tg:
        if not settings.telegram_bot_token:
            print("nemo-bot: TELEGRAM_BOT_TOKEN is not set", file=sys.stderr)
            return []
        from bots.telegram_bot import run_telegram

        webhook = getattr(args, "webhook_url", None)

        async def tg(service: object, stop: asyncio.Event) -> None:
            await run_telegram(settings, service, webhook_url=webhook, stop_event=stop)  # type: ignore[arg-type]

        runners.append(tg)
    if want_dc:
        if not settings.discord_bot_token:
            print("nemo-bot: DISCORD_BOT_TOKEN is not set", file=sys.stderr)
            return []
        from bots.discord_bot import run_discord

        async def dc(service: object, stop: asyncio.Event) -> None:
            await run_discord(settings, service, stop_event=stop)  # type: ignore[arg-type]

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

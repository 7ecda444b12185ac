"""The nemo-bot CLI as a subprocess: the simulator in one process, the terminal chat in another."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from simulator import media
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.procs import BotProcess, bot_env, wait_until
from tests.fakes.simproc import ROOT, free_port, sim_process

NEMO_BOT = [sys.executable, "-m", "bots.cli"]


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    """`nemo-bot sim` running as its own process."""
    with sim_process("--render-seconds", "1") as url:
        yield url


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("NEMO_", "TELEGRAM_", "DISCORD_"))
    }
    full_env.update(env or {})
    return subprocess.run(
        [*NEMO_BOT, *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def test_whole_scenario_then_a_second_run_reuses_token_and_session(
    sim_url: str, tmp_path: Path
) -> None:
    env = {"NEMO_API_BASE": sim_url, "NEMO_BOT_DB": str(tmp_path / "bot.db")}
    first = run_cli(
        "chat",
        "--save-dir",
        str(tmp_path / "videos"),
        "-m",
        "generate a 10-second clip of a futuristic city at night",
        "-m",
        "add lo-fi background music",
        "-m",
        'add a title "Urban Dreams"',
        "-m",
        "status",
        "-m",
        "credits",
        "-m",
        "export",
        env=env,
    )
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "Timeline (3 tracks)" in out and "Urban Dreams" in out
    assert "Credits:" in out
    assert "Your video is ready" in out and f"{sim_url}/media/" in out
    # The link dies with the backend's copy: the MP4 is saved too, and its path printed.
    [saved] = list((tmp_path / "videos").iterdir())
    assert f"💾 Saved to {saved}" in out
    assert saved.suffix == ".mp4" and saved.read_bytes()[4:8] == b"ftyp"
    assert "nmv_" not in out + first.stderr
    assert "Traceback" not in first.stderr
    minted = httpx.get(f"{sim_url}/_sim/stats").json()["tokens_minted"]

    second = run_cli("chat", "-m", "status", env=env)
    assert second.returncode == 0, second.stderr
    assert "Timeline (3 tracks)" in second.stdout
    assert httpx.get(f"{sim_url}/_sim/stats").json()["tokens_minted"] == minted


def test_attach_uploads_a_file(sim_url: str, tmp_path: Path) -> None:
    clip = tmp_path / "clip.gif"
    clip.write_bytes(
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01"
        b"\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    )
    env = {"NEMO_API_BASE": sim_url, "NEMO_BOT_DB": str(tmp_path / "bot.db")}
    result = run_cli("chat", "--attach", str(clip), "-m", "status", env=env)
    assert result.returncode == 0, result.stderr
    assert "Added clip.gif" in result.stdout


def test_help_lists_the_subcommands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("telegram", "discord", "run", "chat", "sim", "demo", "config"):
        assert command in result.stdout


def test_unknown_subcommand_is_a_clear_error() -> None:
    result = run_cli("dance")
    assert result.returncode == 2
    assert "invalid choice: 'dance'" in result.stderr


def test_bad_setting_stops_with_one_line_naming_it(tmp_path: Path) -> None:
    result = run_cli(
        "chat", "-m", "hi", env={"NEMO_API_BASE": "ftp://nope", "NEMO_MAX_UPLOAD_MB": "lots"}
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert any("NEMO_API_BASE" in line for line in lines)
    assert any("NEMO_MAX_UPLOAD_MB" in line for line in lines)


def test_platform_command_without_its_token_says_which_variable(tmp_path: Path) -> None:
    result = run_cli("telegram", env={"NEMO_BOT_DB": str(tmp_path / "bot.db")})
    assert result.returncode == 2
    assert "TELEGRAM_BOT_TOKEN" in result.stderr


def test_interactive_chat_reads_lines_until_end_of_input(sim_url: str, tmp_path: Path) -> None:
    env = {"NEMO_API_BASE": sim_url, "NEMO_BOT_DB": str(tmp_path / "bot.db")}
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("NEMO_", "TELEGRAM_"))}
    full_env.update(env)
    result = subprocess.run(
        [*NEMO_BOT, "chat", "--save-dir", str(tmp_path)],
        cwd=ROOT,
        env=full_env,
        input="make a 5-second clip of a red balloon\n\nexport\ncredits\n",
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    ready = out.index("Your video is ready")
    assert out.index("Credits:") > ready  # the export finished before the next line was read
    assert "Tell me what video to make" not in out  # the blank line was skipped


def test_a_missing_attach_path_suggests_quotes_only_when_it_was_not_quoted(
    sim_url: str, tmp_path: Path
) -> None:
    env = {"NEMO_API_BASE": sim_url, "NEMO_BOT_DB": str(tmp_path / "bot.db")}
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("NEMO_", "TELEGRAM_"))}
    full_env.update(env)
    missing = tmp_path / "my clips" / "intro.mp4"
    result = subprocess.run(
        [*NEMO_BOT, "chat"],
        cwd=ROOT,
        env=full_env,
        input=f'/attach "{missing}" use it first\n/attach {missing} use it first\n',
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    quoted, unquoted = [ln for ln in result.stdout.splitlines() if "No such file" in ln]
    assert quoted.endswith(f"No such file: {missing}")  # it was quoted: no advice to quote
    assert unquoted.endswith(
        f"No such file: {tmp_path / 'my'} (put quotes around a path with spaces)"
    )


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"nemo-bot {importlib.metadata.version('nemo-bot')}"


def test_sim_help_describes_every_option_with_its_default() -> None:
    result = run_cli("sim", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "address to listen on (default: 127.0.0.1)" in text
    assert "port to listen on (default: 8765)" in text
    assert "random seed" in text and "(default: 0)" in text
    assert "how long a simulated render takes" in text


def test_a_bad_flag_after_a_command_prints_that_commands_usage() -> None:
    result = run_cli("chat", "--bogus")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: nemo-bot chat ")
    assert "nemo-bot chat: error: unrecognized arguments: --bogus" in result.stderr


@pytest.mark.parametrize("port", ["free", "0"])
def test_the_simulator_says_it_listens_then_prints_the_line_that_points_chat_at_it(
    port: str, tmp_path: Path
) -> None:
    # "0" picks a free port: the line for chat names the one it really listens on.
    wanted = str(free_port()) if port == "free" else port
    proc = subprocess.Popen(
        [*NEMO_BOT, "sim", "--port", wanted],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        listening = re.fullmatch(
            r"NemoVideo simulator on http://127\.0\.0\.1:(\d+)", proc.stdout.readline().strip()
        )
        assert listening, "the first line is not the simulator's listening line"
        if port == "free":
            assert listening.group(1) == wanted
        line = proc.stdout.readline().strip()
        assert line.startswith("Chat with it from another terminal: ")
        # The exact line, as a shell would run it.
        assignment, command = line.split(": ", 1)[1].split(" ", 1)
        assert assignment == f"NEMO_API_BASE=http://127.0.0.1:{listening.group(1)}"
        assert command == "nemo-bot chat"
        name, _, value = assignment.partition("=")
        result = run_cli(
            "chat", "-m", "credits", env={name: value, "NEMO_BOT_DB": str(tmp_path / "b.db")}
        )
        assert result.returncode == 0, result.stderr
        assert "Credits:" in result.stdout
    finally:
        proc.terminate()
        proc.wait(10)


# --- Exit status of `nemo-bot chat -m` (README.md, "Exit status") ---


def _inject(sim_url: str, fault: str, endpoint: str) -> None:
    httpx.post(
        f"{sim_url}/_sim/faults", json={"fault": fault, "count": 1, "endpoint": endpoint}
    ).raise_for_status()


def test_exit_status_when_the_backend_is_unreachable(tmp_path: Path) -> None:
    env = {"NEMO_API_BASE": f"http://127.0.0.1:{free_port()}", "NEMO_BOT_DB": str(tmp_path / "b")}
    result = run_cli("chat", "-m", "make a 3-second clip of a kite", env=env)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "can't reach the video service" in result.stdout
    assert result.stderr.strip() == (
        "nemo-bot: the video service could not be reached (exit status 3)"
    )


def test_exit_status_when_an_attachment_is_refused(sim_url: str, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    env = {"NEMO_API_BASE": sim_url, "NEMO_BOT_DB": str(tmp_path / "bot.db")}
    result = run_cli("chat", "--attach", str(notes), "-m", "status", env=env)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "I can't use notes.txt" in result.stdout
    assert "an attachment was refused (exit status 4)" in result.stderr


def test_exit_status_when_the_export_fails(sim_url: str, tmp_path: Path) -> None:
    env = {"NEMO_API_BASE": sim_url, "NEMO_BOT_DB": str(tmp_path / "bot.db")}
    _inject(sim_url, "render_failed", "render")
    result = run_cli(
        "chat", "--save-dir", str(tmp_path), "-m", "make a 3-second clip of a kite",
        "-m", "export", env=env,
    )  # fmt: skip
    assert result.returncode == 5, result.stdout + result.stderr
    assert "The export failed" in result.stdout
    assert result.stderr.strip() == "nemo-bot: the export failed or could not start (exit status 5)"
    nothing = run_cli("chat", "-m", "new project", "-m", "export", env=env)
    assert nothing.returncode == 5, nothing.stdout + nothing.stderr
    assert "nothing to export" in nothing.stdout
    # No export ran: the one line on stderr must not claim that one failed.
    assert nothing.stderr.strip() == (
        "nemo-bot: the export failed or could not start (exit status 5)"
    )


def test_exit_status_when_the_backend_refuses(sim_url: str, tmp_path: Path) -> None:
    env = {"NEMO_API_BASE": sim_url, "NEMO_BOT_DB": str(tmp_path / "bot.db")}
    _inject(sim_url, "no_credits", "chat")
    result = run_cli("chat", "-m", "make a 3-second clip of a kite", "-m", "credits", env=env)
    assert result.returncode == 6, result.stdout + result.stderr
    assert "out of credits" in result.stdout
    assert "Credits:" in result.stdout  # later messages still ran


def test_exit_status_when_an_attach_file_is_missing(sim_url: str, tmp_path: Path) -> None:
    env = {"NEMO_API_BASE": sim_url, "NEMO_BOT_DB": str(tmp_path / "bot.db")}
    result = run_cli("chat", "--attach", str(tmp_path / "nope.png"), "-m", "status", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == f"nemo-bot: No such file: {tmp_path / 'nope.png'}"
    folder = run_cli("chat", "--attach", str(tmp_path), env=env)
    assert folder.returncode == 2 and "is a folder" in folder.stderr


# --- Start-up failures in one line ---


class _NotABotApi(BaseHTTPRequestHandler):
    """A web server that is not a Bot API server (an HTML 404 for everything)."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = b"<html><body><h1>404 Not Found</h1></body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


class _TokenRejected(_NotABotApi):
    """A Bot API server that rejects the token, as api.telegram.org does."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps({"ok": False, "error_code": 401, "description": "Unauthorized"})
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = _answer


@pytest.mark.parametrize(
    ("server", "says"),
    [
        (_NotABotApi, "is not a Bot API server: getMe answered HTTP 404 (text/html)"),
        (_TokenRejected, "rejected TELEGRAM_BOT_TOKEN (401 Unauthorized)"),
    ],
)
def test_telegram_api_base_that_is_not_a_bot_api_is_one_clear_line(
    server: type[BaseHTTPRequestHandler], says: str, tmp_path: Path
) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    token = "123456789:AAHsampleSampleSampleSampleSample12"
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        result = run_cli(
            "telegram",
            env={
                "TELEGRAM_BOT_TOKEN": token,
                "TELEGRAM_API_BASE": base,
                "NEMO_BOT_DB": str(tmp_path / "bot.db"),
                "NEMO_LOG_LEVEL": "WARNING",
            },
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("nemo-bot: telegram stopped: ")
    assert says in line and base in line
    assert "InvalidToken" not in line and token not in result.stderr


async def test_discord_starts_without_voice_support_warnings(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        env = bot_env(
            DISCORD_BOT_TOKEN="discord-test-token-do-not-log",
            DISCORD_API_BASE=fake.api_base,
            DISCORD_GATEWAY_URL=fake.gateway_url,
            NEMO_BOT_DB=tmp_path / "bot.db",
            NEMO_LOG_LEVEL="INFO",
        )
        async with BotProcess("discord", env=env, cwd=tmp_path) as bot:
            await fake.wait_for(lambda r: "/commands" in r.path, within=60)
            await wait_until(lambda: "all platforms up" in bot.stderr, within=30)
            bot.signal(signal.SIGTERM)
            assert await bot.wait(30) == 0
    assert "voice" not in bot.stderr.lower(), bot.stderr
    assert "PyNaCl" not in bot.stderr and "davey" not in bot.stderr


def test_the_demo_saves_the_video_whose_link_dies_with_it(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    result = run_cli(
        "demo", "--save-dir", str(videos), "-m", "make a 3-second clip of a kite", "-m", "export",
        env={"TMPDIR": str(tmp_path)}, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    link = re.search(r"http://127\.0\.0\.1:\d+/media/\S+\.mp4", result.stdout)
    assert link, result.stdout
    [saved] = list(videos.iterdir())
    assert f"💾 Saved to {saved}" in result.stdout
    assert saved.read_bytes()[4:8] == b"ftyp"
    probed = asyncio.run(media.probe(saved))  # the draft's length, at 1080p
    assert (probed.width, probed.height, probed.duration) == (1920, 1080, 3.0)
    with pytest.raises(httpx.ConnectError):  # the simulator went with the demo
        httpx.get(link.group(0), timeout=5)
    assert list(tmp_path.glob("nemo-demo-*")) == []  # and so did its database


def test_the_demo_runs_with_a_dotenv_made_for_the_real_bots(tmp_path: Path) -> None:
    # Comma-separated allowlists (chat platform ids) and a real backend's settings.
    (tmp_path / ".env").write_text(
        "NEMO_ALLOWED_USERS=123,456\nNEMO_ALLOWED_CHATS=-100123\nNEMO_TOKEN=nmv_not_for_the_demo\n"
    )
    result = subprocess.run(
        [*NEMO_BOT, "demo", "-m", "make a 3-second clip of a kite", "-m", "status"],
        cwd=tmp_path,
        env=bot_env(TMPDIR=tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Timeline (1 track)" in result.stdout
    assert "private" not in result.stdout


def test_the_demo_makes_a_video_from_a_prompt_in_any_of_the_bots_languages(
    tmp_path: Path,
) -> None:
    # README: the bot answers in the language you write in, and `make demo` is the offline
    # way to try it, so a prompt in Chinese or Russian has to make a clip there too.
    result = run_cli(
        "demo", "-m", "生成一段4秒的城市夜景视频", "-m", "状态",
        "-m", "новый проект", "-m", "сделай видео про кота на 3 секунды", "-m", "статус",
        "-m", "nuevo proyecto", "-m", "haz un video de 5 segundos de una ciudad de noche",
        "-m", "estado",
        env={"TMPDIR": str(tmp_path)}, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Tell me what to make" not in result.stdout
    assert "城市夜景 (0-4s)" in result.stdout  # the Chinese timeline summary names the clip
    assert "кота (0-3s)" in result.stdout
    assert "ciudad de noche (0-5s)" in result.stdout


# --- README's opening conversation is what the demo really prints ---


def readme_sample() -> list[str]:
    """The lines of README.md's first code block (the sample conversation)."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("\n## ", 1)[0].split("```\n", 2)[1]
    return block.splitlines()


def run_in_a_terminal(args: list[str], *, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run ``args`` with a pseudo-terminal as stdout (as `make demo` runs); (status, output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.STDOUT
    )
    os.close(slave)
    output = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 180)
            if not ready:
                raise AssertionError(f"no output for 180 s:\n{output.decode(errors='replace')}")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            output += chunk
        status = proc.wait(30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return status, output.decode().replace("\r\n", "\n")


def test_the_readmes_sample_conversation_is_what_the_demo_prints(tmp_path: Path) -> None:
    # `make demo` is the simulator and the terminal chat in one process. Its simulator
    # lets chance pick whether an edit comes with the agent's sentence or none; here
    # the same simulator runs on its own with every edit silent (the README's case) and
    # no chance remarks, and the chat sends the README's own lines in a terminal.
    sample = readme_sample()
    said = [line.removeprefix("🧑 ") for line in sample if line.startswith("🧑 ")]
    assert said[0].startswith("generate") and said[-1] == "export"
    flags = ["--silent-edit-ratio", "1", "--gui-phrase-ratio", "0", "--temporary-issue-ratio", "0"]
    with sim_process(*flags, "--render-seconds", "1", program=("simulator",)) as url:
        env = bot_env(PYTHONPATH=ROOT, NEMO_API_BASE=url, NEMO_BOT_DB=tmp_path / "bot.db")
        args = [arg for text in said for arg in ("-m", text)]
        status, output = run_in_a_terminal([*NEMO_BOT, "chat", *args], env=env, cwd=tmp_path)
    assert status == 0, output
    # Every line of the sample is there, in order (each "…" stands for text left out).
    at = 0
    for line in sample:
        for part in filter(None, line.strip().split("…")):
            found = output.find(part, at)
            assert found >= 0, f"README's {line.strip()!r} ({part!r}) not printed:\n{output}"
            at = found + len(part)
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 1  # "💾 Saved to /…/videos/…"

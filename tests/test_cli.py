"""The nemo-bot CLI as a subprocess: the simulator in one process, the terminal chat in another."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

NEMO_BOT = [sys.executable, "-m", "bots.cli"]
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    """`nemo-bot sim` running as its own process."""
    port = _free_port()
    proc = subprocess.Popen(
        [*NEMO_BOT, "sim", "--port", str(port), "--render-seconds", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/_sim/health", timeout=1).raise_for_status()
            break
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("simulator did not start") from None
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


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
        [*NEMO_BOT, "chat"],
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

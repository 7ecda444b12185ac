"""The terminal chat in a real pseudo-terminal: keys, signals, log lines, saved videos.

``nemo-bot chat`` / ``nemo-bot demo`` run as processes on a pty (tests/fakes/terminal.py),
so Ctrl-C, Ctrl-D and a closing terminal reach them the way they reach a person's.
"""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.procs import bot_env
from tests.fakes.simproc import ROOT, sim_process
from tests.fakes.terminal import Terminal

PROMPT = "🧑 "
BANNER_END = "--verbose prints them here"


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with sim_process("--render-seconds", "1") as url:
        yield url


@pytest.fixture
def chat_env(sim_url: str, tmp_path: Path) -> dict[str, str]:
    return bot_env(NEMO_API_BASE=sim_url, NEMO_BOT_DB=tmp_path / "bot.db", TMPDIR=tmp_path / "tmp")


def _terminal(*args: str, env: dict[str, str], cwd: Path) -> Terminal:
    Path(env["TMPDIR"]).mkdir(exist_ok=True)
    return Terminal(*args, env=env, cwd=cwd)


def test_ctrl_c_at_the_idle_prompt_exits_at_once(chat_env: dict[str, str], tmp_path: Path) -> None:
    term = _terminal("chat", env=chat_env, cwd=tmp_path)
    try:
        term.expect(BANNER_END)
        prompt_at = term.expect(PROMPT)
        term.send("\x03")  # no Enter after it
        assert term.wait(within=20) == 130
    finally:
        term.kill()
    after_prompt = term.output[prompt_at + len(PROMPT.encode()) :].decode()
    # The shell's prompt starts on a fresh line (the terminal itself echoes ^C).
    assert after_prompt.replace("^C", "") == "\r\n"


def test_ctrl_d_ends_the_prompts_line(chat_env: dict[str, str], tmp_path: Path) -> None:
    term = _terminal("chat", env=chat_env, cwd=tmp_path)
    try:
        term.expect(BANNER_END)
        prompt_at = term.expect(PROMPT)
        term.send("\x04")
        assert term.wait(within=20) == 0
    finally:
        term.kill()
    assert term.output[prompt_at:].decode() == PROMPT + "\r\n"


def test_ctrl_c_during_an_export_leaves_the_progress_line_alone(tmp_path: Path) -> None:
    with sim_process("--render-seconds", "60") as slow_sim:
        env = bot_env(NEMO_API_BASE=slow_sim, NEMO_BOT_DB=tmp_path / "bot.db", TMPDIR=tmp_path)
        term = Terminal(
            "chat", "-m", "make a 4-second clip of a red balloon", "-m", "export", env=env,
            cwd=tmp_path,
        )  # fmt: skip
        try:
            term.expect("🎬 [")
            term.expect("%", after=term.output.rfind("🎬 [".encode()))
            term.send("\x03")
            assert term.wait(within=30) == 130
        finally:
            term.kill()
    last_bar = term.text.rindex("%") + 1
    # Whatever follows the bar (the terminal's own ^C aside) starts on a new line.
    assert term.text[last_bar:].replace("^C", "") == "\r\n"


def _demo_dirs(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("nemo-demo-*"))


@pytest.mark.parametrize("how", ["hang up", "SIGTERM"])
def test_the_demo_removes_its_temporary_database_however_it_is_stopped(
    tmp_path: Path, how: str
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = bot_env(TMPDIR=tmp)
    term = Terminal("demo", env=env, cwd=tmp_path)
    try:
        term.expect(BANNER_END, within=120)
        term.expect(PROMPT)
        dirs = _demo_dirs(tmp)
        assert len(dirs) == 1 and (dirs[0] / "demo.db").exists()
        if how == "hang up":
            term.hang_up()  # the terminal window closes: SIGHUP
            expected = 128 + signal.SIGHUP
        else:
            term.signal(signal.SIGTERM)
            expected = 128 + signal.SIGTERM
        assert term.wait(within=30) == expected
    finally:
        term.kill()
    assert _demo_dirs(tmp) == []
    # The log file the banner named survives the demo, with the demo's log lines in it.
    assert "storage migration" in (tmp / "nemo-bot-demo.log").read_text()


def test_attach_in_the_terminal_takes_quoted_paths_tilde_and_refuses_folders(
    chat_env: dict[str, str], tmp_path: Path, png: bytes
) -> None:
    home = tmp_path / "home"
    (home / "My Pictures").mkdir(parents=True)
    (home / "My Pictures" / "red balloon.png").write_bytes(png)
    (home / "tiny.png").write_bytes(png)
    env = {**chat_env, "HOME": str(home)}
    term = _terminal("chat", env=env, cwd=tmp_path)
    try:
        term.expect(BANNER_END)
        at = term.expect(PROMPT)
        term.send(f"/attach '{home}/My Pictures/red balloon.png' make it a 3-second intro\r")
        at = term.expect("Added red balloon.png", after=at)
        at = term.expect(PROMPT, after=at)
        term.send("/attach ~/My Pictures/red balloon.png\r")  # unquoted, spaces and all
        at = term.expect("Added red balloon.png", after=at)
        at = term.expect(PROMPT, after=at)
        term.send("/attach ~/tiny.png\r")
        at = term.expect("Added tiny.png", after=at)
        at = term.expect(PROMPT, after=at)
        term.send("/attach ~/My\\ Pictures\r")
        at = term.expect("is a folder", after=at)
        at = term.expect(PROMPT, after=at)
        term.send("/attach ~/nothing-here.png\r")
        at = term.expect(f"No such file: {home}/nothing-here.png", after=at)
        at = term.expect(PROMPT, after=at)
        term.send("help\r")
        at = term.expect("/attach PATH [instruction]", after=at)
        term.expect(PROMPT, after=at)
        term.send("/quit\r")
        assert term.wait(within=20) == 0
    finally:
        term.kill()
    assert "Traceback" not in term.text


def test_log_lines_never_land_in_the_conversation(sim_url: str, tmp_path: Path) -> None:
    env = bot_env(
        NEMO_API_BASE=sim_url, NEMO_BOT_DB=tmp_path / "bot.db", TMPDIR=tmp_path,
        NEMO_LOG_LEVEL="DEBUG",
    )  # fmt: skip
    term = Terminal("chat", env=env, cwd=tmp_path)
    try:
        term.expect(BANNER_END)
        at = term.expect(PROMPT)
        term.send("make a 3-second clip of a kite\r")
        at = term.expect("→ export", after=at)
        term.expect(PROMPT, after=at)
        term.send("\x04")
        assert term.wait(within=20) == 0
    finally:
        term.kill()
    log_file = tmp_path / "nemo-bot-chat.log"
    assert f"Log lines go to {log_file}" in term.text
    log_line = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR)")
    assert not log_line.search(term.text)
    assert log_line.search(log_file.read_text())
    assert oct(log_file.stat().st_mode & 0o777) == "0o600"


def test_verbose_prints_log_lines_on_stderr_instead(sim_url: str, tmp_path: Path) -> None:
    import subprocess

    from tests.fakes.procs import NEMO_BOT

    env = bot_env(NEMO_API_BASE=sim_url, NEMO_BOT_DB=tmp_path / "bot.db", TMPDIR=tmp_path)
    result = subprocess.run(
        [*NEMO_BOT, "chat", "--verbose", "-m", "status"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    assert "INFO nemo.service: request platform=console" in result.stderr
    assert "INFO" not in result.stdout
    assert not (tmp_path / "nemo-bot-chat.log").exists()


def test_ctrl_c_cancels_the_running_request_and_export_then_prompts_again(
    tmp_path: Path,
) -> None:
    # The edit is applied at once, its reply typed slowly; an export renders for a minute.
    slow = ("--slow-step-seconds", "0.05", "--chunk-delay", "2", "--render-seconds", "60")
    with sim_process(*slow, program=("simulator",)) as slow_sim:
        env = bot_env(NEMO_API_BASE=slow_sim, NEMO_BOT_DB=tmp_path / "bot.db", TMPDIR=tmp_path)
        term = Terminal("chat", "--save-dir", str(tmp_path / "videos"), env=env, cwd=tmp_path)
        try:
            term.expect(BANNER_END)
            at = term.expect(PROMPT)
            term.send("make a 4-second clip of a red balloon\r")
            at = term.expect("red balloon.", after=at)  # the reply's first sentence
            term.send("\x03")
            at = term.expect("Cancelling… (Ctrl-C again quits)", after=at)
            told = term.expect("Stopped your request.", after=at)
            prompt_at = term.expect(PROMPT, after=told)
            # The stream was closed: nothing more of the reply arrives (chunks come every 2 s).
            time.sleep(4.5)
            assert term.text.encode()[prompt_at:] == PROMPT.encode()
            assert not term.exited()
            term.send("export\r")
            at = term.expect("🎬 [", after=prompt_at)
            term.expect("%", after=at)
            term.send("\x03")
            at = term.expect("Stopped the export", after=at)
            at = term.expect(PROMPT, after=at)
            with urllib.request.urlopen(f"{slow_sim}/_sim/stats", timeout=10) as answer:
                stats = json.load(answer)
            term.send("\x03")  # at the idle prompt: quits, as before
            assert term.wait(within=20) == 130
        finally:
            term.kill()
    screen = term.text
    stopped = screen[screen.index("Stopped your request.") :]
    # The backend applied the edit before it started typing: the user is told.
    assert "The timeline did change" in stopped.split(PROMPT)[0]
    assert stats.get("renders_cancelled") == 1  # the backend was asked to stop rendering
    assert "Your video is ready" not in screen and not (tmp_path / "videos").exists()
    assert "Traceback" not in screen

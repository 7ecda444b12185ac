"""Every documented setting, in its documented form, from the environment and from `.env`.

The list of settings comes from README.md's Settings table (the contract): each one
needs a sample below, and each is set through the environment and through a `.env`
file and read back with `nemo-bot config` run as a process. A setting added to the
README without a sample here fails `test_every_documented_setting_has_a_sample`.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from core.config import Settings
from tests.fakes.procs import NEMO_BOT, bot_env
from tests.fakes.simproc import ROOT, free_port

#: A documented (non-default) value for each setting, and what `nemo-bot config` prints.
SAMPLES: dict[str, tuple[str, str]] = {
    "NEMO_API_BASE": ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
    "NEMO_TOKEN": ("nmv_sample_operator_token", "********"),
    "NEMO_BOT_DB": ("/srv/nemo-bot/bot.db", "/srv/nemo-bot/bot.db"),
    "TELEGRAM_BOT_TOKEN": ("123456789:AAHsampleSampleSampleSampleSample12", "********"),
    "TELEGRAM_API_BASE": ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
    "TELEGRAM_LOCAL_MODE": ("true", "true"),
    "TELEGRAM_WEBHOOK_SECRET": ("sample-webhook-secret", "********"),
    "DISCORD_BOT_TOKEN": ("MTIzNDU2.sample.discord-token", "********"),
    "DISCORD_API_BASE": ("http://127.0.0.1:9001/api/v10", "http://127.0.0.1:9001/api/v10"),
    "DISCORD_GATEWAY_URL": ("ws://127.0.0.1:9002", "ws://127.0.0.1:9002"),
    "NEMO_MAX_UPLOAD_MB": ("50", "50"),
    "NEMO_ALLOWED_USERS": ("123,456", "123,456"),
    "NEMO_ALLOWED_CHATS": ("-1001234,-1005678", "-1001234,-1005678"),
    "NEMO_SKILL_SOURCE": ("my-bot", "my-bot"),
    "NEMO_SKILL_VERSION": ("2.1.0", "2.1.0"),
    "NEMO_SKILL_PLATFORM": ("linux", "linux"),
    "NEMO_HEARTBEAT_NOTICE_S": ("45", "45"),
    "NEMO_HEARTBEAT_TIMEOUT_S": ("900", "900"),
    "NEMO_LOG_LEVEL": ("debug", "DEBUG"),
    "NEMO_HEALTH_PORT": ("8080", "8080"),
    "NEMO_HEALTH_HOST": ("0.0.0.0", "0.0.0.0"),
    "TELEGRAM_OVERALL_RATE": ("10", "10"),
    "NEMO_SECRET_KEY": (
        "MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=,MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE=",
        "********",
    ),
    "DISCORD_SHARD_COUNT": ("4", "4"),
    "DISCORD_SHARD_IDS": ("0,1", "0,1"),
    "NEMO_LIMIT_REQUESTS_PER_HOUR": ("30", "30"),
    "NEMO_LIMIT_EXPORTS_PER_DAY": ("5", "5"),
    "NEMO_LIMIT_QUEUE": ("2", "2"),
    "NEMO_ADMIN_USERS": ("123,terminal:alice", "123,terminal:alice"),
    "NEMO_REPLICA_NAME": ("bot-a", "bot-a"),
    "NEMO_REPLICA_LEASE": ("12.5", "12.5"),
}
#: Settings that only make sense with another one set too.
COMPANIONS: dict[str, dict[str, str]] = {
    "DISCORD_SHARD_IDS": {"DISCORD_SHARD_COUNT": "4"},
}


def documented_settings() -> list[str]:
    """The variable names in README.md's Settings table (``A`` / ``_B`` rows expanded)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Settings", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cell = line.split("|")[1]
        first: str | None = None
        for word in re.findall(r"`([A-Z_][A-Z0-9_]*)`", cell):
            if word.startswith("_") and first:  # `NEMO_SKILL_SOURCE` / `_VERSION`
                word = first.rsplit("_", 1)[0] + word
            first = first or word
            names.append(word)
    return names


DOCUMENTED = documented_settings()


def config(env: dict[str, str] | None = None, dotenv: str | None = None, *, cwd: Path) -> str:
    """``nemo-bot config`` run as a process in ``cwd``: its output (it must succeed)."""
    if dotenv is not None:
        (cwd / ".env").write_text(dotenv)
    result = subprocess.run(
        [*NEMO_BOT, "config"],
        cwd=cwd,
        env=bot_env(PYTHONPATH=ROOT, **(env or {})),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def shown(output: str, name: str) -> str:
    """The value ``nemo-bot config`` printed for ``name``."""
    for line in output.splitlines():
        key, _, value = line.partition("=")
        if key == name:
            return value
    raise AssertionError(f"{name} missing from nemo-bot config:\n{output}")


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> str:
    return config(cwd=tmp_path_factory.mktemp("defaults"))


def test_the_readme_table_is_read() -> None:
    # The parser of the README table itself: the known rows, expanded.
    assert {"NEMO_API_BASE", "NEMO_ALLOWED_USERS", "NEMO_ALLOWED_CHATS"} <= set(DOCUMENTED)
    assert {"NEMO_SKILL_VERSION", "NEMO_SKILL_PLATFORM", "NEMO_HEALTH_HOST"} <= set(DOCUMENTED)


def test_every_documented_setting_has_a_sample() -> None:
    missing = [name for name in DOCUMENTED if name not in SAMPLES]
    assert not missing, f"add a sample value to SAMPLES for {missing}"


def test_every_setting_the_bot_reads_is_documented_and_in_env_example() -> None:
    aliases = [field.alias for field in Settings.model_fields.values()]
    assert sorted(set(aliases) - set(DOCUMENTED)) == []
    example = (ROOT / ".env.example").read_text()
    assert [name for name in DOCUMENTED if not re.search(rf"^#? ?{name}=", example, re.M)] == []


@pytest.mark.parametrize("name", DOCUMENTED)
@pytest.mark.parametrize("source", ["environment", ".env"])
def test_each_documented_setting_works_in_its_documented_form(
    name: str, source: str, tmp_path: Path, defaults: str
) -> None:
    value, expected = SAMPLES[name]
    assert shown(defaults, name) != expected  # the sample is not the default
    values = {**COMPANIONS.get(name, {}), name: value}
    if source == "environment":
        output = config(values, cwd=tmp_path)
    else:
        lines = "".join(f"{key}={text}\n" for key, text in values.items())
        output = config(dotenv=f"# written as README.md writes it\n{lines}", cwd=tmp_path)
    assert shown(output, name) == expected
    if expected == "********":
        assert value not in output


@pytest.mark.parametrize("value", ["123", "123,456", " 123 , 456 ", "123;456"])
def test_allowlists_take_one_id_or_a_comma_separated_list(value: str, tmp_path: Path) -> None:
    output = config({"NEMO_ALLOWED_USERS": value, "NEMO_ALLOWED_CHATS": value}, cwd=tmp_path)
    want = ",".join(part.strip() for part in re.split("[,;]", value))
    assert shown(output, "NEMO_ALLOWED_USERS") == want
    assert shown(output, "NEMO_ALLOWED_CHATS") == want


def test_config_prints_values_as_the_readme_writes_them(defaults: str) -> None:
    assert shown(defaults, "TELEGRAM_LOCAL_MODE") == "false"
    assert shown(defaults, "NEMO_ALLOWED_USERS") == ""
    assert shown(defaults, "NEMO_HEALTH_PORT") == ""
    assert shown(defaults, "NEMO_HEARTBEAT_NOTICE_S") == "120"
    assert shown(defaults, "NEMO_BOT_DB") == "./data/nemo-bot.db"
    for line in defaults.splitlines():
        assert not re.search(r"=(False|True|None|\[\]|\d+\.0)$", line), line


def test_env_example_as_a_dotenv_gives_the_documented_defaults(
    tmp_path: Path, defaults: str
) -> None:
    # `cp .env.example .env` changes nothing: every line is the default or unset.
    output = config(dotenv=(ROOT / ".env.example").read_text(), cwd=tmp_path)
    assert output == defaults


def _bad(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NEMO_BOT, "config"],
        cwd=tmp_path,
        env=bot_env(PYTHONPATH=ROOT, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("source", ["environment", ".env"])
def test_a_heartbeat_notice_that_could_never_show_is_refused_in_one_line(
    source: str, tmp_path: Path
) -> None:
    values = {"NEMO_HEARTBEAT_NOTICE_S": "700", "NEMO_HEARTBEAT_TIMEOUT_S": "600"}
    if source == ".env":
        (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        values = {}
    result = _bad(values, tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("nemo-bot: bad setting NEMO_HEARTBEAT_NOTICE_S (700)")
    assert "NEMO_HEARTBEAT_TIMEOUT_S (600)" in line


def _run(
    command: str, values: dict[str, str], source: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """``nemo-bot COMMAND`` with ``values`` set through the environment or a ``.env`` file."""
    env = dict(values)
    if source == ".env":
        (cwd / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        env = {}
    return subprocess.run(
        [*NEMO_BOT, command],
        cwd=cwd,
        env=bot_env(PYTHONPATH=ROOT, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


#: A bad value for each list of ids, the item it must name, and what an id is there.
BAD_IDS = [
    ("NEMO_ALLOWED_USERS", "12,abc", "'abc' is not a user id"),
    ("NEMO_ALLOWED_CHATS", "-100123, @mygroup", "'@mygroup' is not a chat id"),
    ("NEMO_ADMIN_USERS", "12,alice ,x", "'alice', 'x' are not user ids"),
    ("DISCORD_SHARD_IDS", "0,one", "'one' is not a shard number"),
]


@pytest.mark.parametrize("source", ["environment", ".env"])
@pytest.mark.parametrize(("name", "value", "said"), BAD_IDS)
def test_a_non_numeric_id_stops_the_bot_at_start_in_one_line(
    name: str, value: str, said: str, source: str, tmp_path: Path
) -> None:
    # `nemo-bot run` with a token: were the list accepted, the bot would go on to
    # start Telegram (against a port nobody answers on) and fail otherwise.
    values = {
        "TELEGRAM_BOT_TOKEN": SAMPLES["TELEGRAM_BOT_TOKEN"][0],
        "TELEGRAM_API_BASE": f"http://127.0.0.1:{free_port()}",
        "NEMO_BOT_DB": str(tmp_path / "bot.db"),
        "DISCORD_SHARD_COUNT": "2",
        name: value,
    }
    result = _run("run", values, source, tmp_path)
    assert result.returncode == 2, result.stderr  # README, "Exit status": a bad setting
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"nemo-bot: bad setting {name}: {said}: "), line
    assert "number" in line and "Traceback" not in result.stderr
    assert not (tmp_path / "bot.db").exists()  # stopped before anything was opened


@pytest.mark.parametrize("source", ["environment", ".env"])
def test_id_lists_tolerate_blank_items_and_spaces(source: str, tmp_path: Path) -> None:
    values = {
        "NEMO_ALLOWED_USERS": " 12 , ,34,, terminal:alice ",
        "NEMO_ALLOWED_CHATS": ",-1001234, 007,",
        "NEMO_ADMIN_USERS": " , ",
        "DISCORD_SHARD_COUNT": "4",
        "DISCORD_SHARD_IDS": " 3,, 1 ",
    }
    result = _run("config", values, source, tmp_path)
    assert result.returncode == 0, result.stderr
    assert shown(result.stdout, "NEMO_ALLOWED_USERS") == "12,34,terminal:alice"
    assert shown(result.stdout, "NEMO_ALLOWED_CHATS") == "-1001234,7"  # as Telegram prints it
    assert shown(result.stdout, "NEMO_ADMIN_USERS") == ""
    assert shown(result.stdout, "DISCORD_SHARD_IDS") == "1,3"


def test_the_terminal_user_in_a_list_is_the_terminal_chats_login_only() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, NEMO_ADMIN_USERS="terminal:alice,42", NEMO_ALLOWED_USERS="terminal:alice"
    )
    assert settings.is_admin("alice") and settings.is_admin("42")
    assert not settings.is_admin("bob") and not settings.is_admin("4")
    assert settings.is_allowed("alice", "terminal") and not settings.is_allowed("42", "42")


#: Every written form of a boolean README's Settings table names, and what it means.
BOOLEAN_FORMS = [
    ("true", "true"), ("false", "false"), ("yes", "true"), ("no", "false"),
    ("on", "true"), ("off", "false"), ("1", "true"), ("0", "false"),
    ("TRUE", "true"), ("Off", "false"),
]  # fmt: skip


@pytest.mark.parametrize("source", ["environment", ".env"])
@pytest.mark.parametrize(("value", "meaning"), BOOLEAN_FORMS)
def test_a_boolean_takes_each_documented_form(
    value: str, meaning: str, source: str, tmp_path: Path
) -> None:
    result = _run("config", {"TELEGRAM_LOCAL_MODE": value}, source, tmp_path)
    assert result.returncode == 0, result.stderr
    assert shown(result.stdout, "TELEGRAM_LOCAL_MODE") == meaning


def test_the_readme_names_every_boolean_form_the_bot_takes() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Settings", 1)[1].split("\n## ", 1)[0]
    intro = " ".join(section.split("\n| variable |", 1)[0].split())
    for value, _ in BOOLEAN_FORMS:
        if value.islower() or value.isdigit():
            assert f"`{value}`" in intro, f"README's Settings intro does not name {value}"


@pytest.mark.parametrize("source", ["environment", ".env"])
@pytest.mark.parametrize("value", ["maybe", "t", "enabled"])
def test_a_boolean_in_no_documented_form_is_refused_in_one_line(
    value: str, source: str, tmp_path: Path
) -> None:
    result = _run("config", {"TELEGRAM_LOCAL_MODE": value}, source, tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"nemo-bot: bad setting TELEGRAM_LOCAL_MODE: '{value}' is not true or false "
        "(yes/no, on/off and 1/0 work too)"
    ]


@pytest.mark.parametrize("source", ["environment", ".env"])
def test_a_bad_value_is_named_unless_it_may_be_a_secret(source: str, tmp_path: Path) -> None:
    key = "not-a-fernet-key-but-maybe-a-real-secret"
    values = {"NEMO_MAX_UPLOAD_MB": "lots", "NEMO_LOG_LEVEL": "verbose", "NEMO_SECRET_KEY": key}
    result = _run("config", values, source, tmp_path)
    assert result.returncode == 2
    lines = sorted(result.stderr.splitlines())
    assert len(lines) == 3, lines
    assert lines[0].startswith("nemo-bot: bad setting NEMO_LOG_LEVEL: must be one of DEBUG")
    assert lines[0].endswith(" (got 'verbose')")
    assert lines[1].startswith("nemo-bot: bad setting NEMO_MAX_UPLOAD_MB: ")
    assert lines[1].endswith(" (got 'lots')")
    assert lines[2].startswith("nemo-bot: bad setting NEMO_SECRET_KEY: ")
    assert key not in result.stderr


# --- The README's Docker recipe: `cp .env.example .env` + `docker run --env-file .env` ---


def dockerfile_env() -> dict[str, str]:
    """The ``ENV`` values the image sets (``ENV A=1 \\`` continuation lines joined)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip().upper().startswith("ENV "):
            words = shlex.split(line.strip()[4:])
            if words and "=" not in words[0]:  # the old `ENV KEY value` form
                env[words[0]] = " ".join(words[1:])
                continue
            for word in words:
                key, _, value = word.partition("=")
                env[key] = value
    return env


def docker_env_file(text: str, host_env: dict[str, str]) -> dict[str, str]:
    """What ``docker run --env-file`` passes: ``KEY=VALUE`` taken literally (an empty
    value too), a bare ``KEY`` copied from the host if set there, ``#`` lines skipped."""
    env: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        if eq:
            env[key] = value
        elif key in host_env:
            env[key] = host_env[key]
    return env


def recipe_config(env_file: str, tmp_path: Path) -> str:
    """``nemo-bot config`` with the environment the container would get."""
    container_env = {**dockerfile_env(), **docker_env_file(env_file, {})}
    workdir = tmp_path / "app"  # the image's WORKDIR holds no .env
    workdir.mkdir()
    return config(container_env, cwd=workdir)


def test_the_docker_env_file_parser_follows_docker() -> None:
    parsed = docker_env_file("# c\n\n A=1\nB=\nC= spaced \nD\nE\n", {"D": "host"})
    assert parsed == {"A": "1", "B": "", "C": " spaced ", "D": "host"}


def test_the_docker_recipe_keeps_the_images_data_volume_and_health_check(tmp_path: Path) -> None:
    image = dockerfile_env()
    dockerfile = (ROOT / "Dockerfile").read_text()
    volume = re.search(r'^VOLUME \["([^"]+)"\]', dockerfile, re.M)
    health = re.search(r"127\.0\.0\.1:(\d+)/healthz", dockerfile)
    assert volume and health, "the Dockerfile lost its VOLUME or HEALTHCHECK"
    output = recipe_config((ROOT / ".env.example").read_text(), tmp_path)
    # Every setting the image chooses survives the copied .env.example.
    for name, value in image.items():
        if name in DOCUMENTED:
            assert shown(output, name) == value, name
    assert shown(output, "NEMO_BOT_DB").startswith(volume.group(1) + "/")
    assert shown(output, "NEMO_HEALTH_PORT") == health.group(1)
    assert shown(output, "NEMO_HEALTH_HOST") == "0.0.0.0"


def test_the_docker_recipe_passes_what_the_user_fills_in(tmp_path: Path) -> None:
    env_file = (ROOT / ".env.example").read_text()
    token = SAMPLES["TELEGRAM_BOT_TOKEN"][0]
    env_file = env_file.replace("\nTELEGRAM_BOT_TOKEN=\n", f"\nTELEGRAM_BOT_TOKEN={token}\n")
    env_file = env_file.replace("\nNEMO_ALLOWED_USERS=\n", "\nNEMO_ALLOWED_USERS=123,456\n")
    output = recipe_config(env_file, tmp_path)
    assert shown(output, "TELEGRAM_BOT_TOKEN") == "********"
    assert shown(output, "NEMO_ALLOWED_USERS") == "123,456"
    assert shown(output, "NEMO_BOT_DB") == dockerfile_env()["NEMO_BOT_DB"]

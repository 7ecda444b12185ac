"""Building the package, as `make install` and the Docker image do, prints no deprecations."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.fakes.simproc import ROOT


def test_building_the_package_prints_no_setuptools_deprecation(tmp_path: Path) -> None:
    # A copy of what the image copies: pip builds in the source tree (build/, egg-info).
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("bots", "core", "storage", "simulator"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    wheels = tmp_path / "wheels"
    # -v shows the build backend's own output (setuptools' warnings), as an editable
    # first install does.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(wheels), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "running bdist_wheel" in output  # the backend's output is really in there
    assert "Deprecat" not in output and "deprecat" not in output
    [wheel] = wheels.glob("nemo_bot-*.whl")
    assert wheel.stat().st_size > 0

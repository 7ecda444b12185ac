"""``python -m bench.simproc '<SimConfig fields as JSON>'``: a simulator on a free port.

Prints ``NemoVideo simulator on http://127.0.0.1:PORT`` once it accepts connections,
serves until SIGTERM. The benchmarks run it as a subprocess (see
:func:`bench.common.simulator_process`) so the bot's CPU and memory are its own.
"""

from __future__ import annotations

import json
import logging
import sys

from bench.common import raise_nofile
from simulator.config import SimConfig
from simulator.server import serve


def main() -> None:
    """Parse the config and serve."""
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    if isinstance(config.get("render_seconds_range"), list):
        config["render_seconds_range"] = tuple(config["render_seconds_range"])
    raise_nofile()
    # Clients that leave mid-request (the cut-off benchmark run) are expected here.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    serve("127.0.0.1", 0, SimConfig(**config))


if __name__ == "__main__":
    main()

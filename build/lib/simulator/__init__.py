"""A local NemoVideo-compatible server (aiohttp) for offline demos and tests.

It imports nothing from ``core/``. Entry points: :class:`simulator.server.Simulator`,
:func:`simulator.server.serve`, and ``python -m simulator``.
"""

from simulator.config import FAULT_KINDS, SimConfig
from simulator.server import Simulator, serve

__all__ = ["FAULT_KINDS", "SimConfig", "Simulator", "serve"]

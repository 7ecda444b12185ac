"""Which proxy, if any, a request to an origin goes through: the environment, read once.

``HTTP(S)_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` are honoured as httpx's own transport
honours them, but read when the client is made and decided once per origin: aiohttp's
``trust_env`` looks them (and ``~/.netrc``) up again in a worker thread on every
request, two thread hops a call. Used by the NemoVideo client (:mod:`core.nemo_http`)
and by the Bot API transport (:mod:`core.transport`).
"""

from __future__ import annotations

import urllib.request

__all__ = ["ProxyRoutes"]


class ProxyRoutes:
    """The environment's proxy for each ``scheme://host``, decided on first use."""

    def __init__(self) -> None:
        self._proxies = urllib.request.getproxies_environment()
        self._routes: dict[str, str | None] = {}  # scheme://host -> proxy URL (None: direct)

    def proxy_for(self, scheme: str, host: str) -> str | None:
        """The proxy URL for requests to ``scheme://host``; None: connect directly."""
        origin = f"{scheme}://{host}"
        if origin not in self._routes:
            proxy = self._proxies.get(scheme) or self._proxies.get("all")
            bypass = proxy and urllib.request.proxy_bypass(host)
            self._routes[origin] = None if bypass else proxy
        return self._routes[origin]

"""Injected failures: which request fails, how, and whether before or after the stop.

:class:`FaultPlan` decides from ``(seed, job_id, build_no, n)`` alone, ``n`` counting the
requests for that target that got past throttling, so a run is reproducible. The kinds
(:data:`~bulkstop.simulator.config.FAULT_KINDS`) occupy consecutive bands of [0, 1) in that
order; one hash gives the band and a second, independent one decides before/after.

What each kind looks like on the wire:

================  =====================================================================
error_500         500 ``CB.00060101 internal error`` (1 in 2: ``CB.00060100 network busy``)
html_502          502 with a ``text/html`` gateway page
unavailable_503   503 with a ``text/html`` page and ``Retry-After: 1``
reset             the TCP connection is reset, no response at all
hang              no answer for ``hang_seconds``, then a 504 HTML page (the client is gone)
bad_json_200      200 ``application/json`` whose body is cut off mid-JSON
================  =====================================================================

Adding a kind: a field in :class:`~bulkstop.simulator.config.FaultConfig`, its name in
``FAULT_KINDS``, and its answer in ``Simulator._fault_response``.
"""

from __future__ import annotations

from typing import NamedTuple

from bulkstop.simulator.config import FAULT_KINDS, FaultConfig
from bulkstop.simulator.model import SeededHash

__all__ = ["Fault", "FaultPlan"]

HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
HTML_503 = (
    b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n"
)
HTML_504 = (
    b"<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    b"<center><h1>504 Gateway Time-out</h1></center>\r\n</body>\r\n</html>\r\n"
)
#: A 200 body that starts like an answer and stops: the client must not take it for one.
TRUNCATED_JSON = b'{"result": tr'


class Fault(NamedTuple):
    """One decided fault."""

    kind: str
    after_stop: bool
    #: position inside the kind's band, in [0, 1): picks a variant (e.g. which 500 code)
    variant: float


class FaultPlan:
    """Decides, per stop request, whether and how it fails.

    Attributes:
        config: the probabilities.
        enabled: ``False`` when every probability is 0 (the request path then skips the plan).
    """

    __slots__ = ("_bands", "_hash", "_seen", "config", "enabled")

    def __init__(self, config: FaultConfig, *, seed: int) -> None:
        self.config = config
        self._hash = SeededHash(b"bulkstop.fault", seed, count=2)
        self.enabled = config.total > 0
        bands: list[tuple[float, float, str]] = []
        low = 0.0
        for kind in FAULT_KINDS:
            width = getattr(config, kind)
            if width > 0:
                bands.append((low, width, kind))
                low += width
        self._bands = tuple(bands)
        self._seen: dict[tuple[str, int], int] = {}

    def decide(self, job_id: str, build_no: int) -> Fault | None:
        """The fault for the next request of this target, or ``None``."""
        if not self.enabled:
            return None
        key = (job_id, build_no)
        n = self._seen.get(key, 0) + 1
        self._seen[key] = n
        u, v = self._hash(job_id, build_no, n)
        for low, width, kind in self._bands:
            if u < low + width:
                return Fault(kind, v < self.config.after_stop, (u - low) / width)
        return None

    def __repr__(self) -> str:
        return f"FaultPlan(enabled={self.enabled}, targets={len(self._seen)})"

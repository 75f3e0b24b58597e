"""The report journal's CPU per target: one in-flight marker and one record, as a run writes them.

Each figure is the median of alternating rounds, each round a fresh process that writes N
targets (markers before the stops are sent, then the records) to a new report through the
public ``ReportWriter`` API, inside an event loop as the CLI does. Markers go 16 to a write, as
a run at concurrency 16 or more announces them (``attempting_many``); a checkout without that
call writes them one by one. With ``--before DIR`` (another
checkout of bulkstop, e.g. ``git worktree add ../before <commit>``) the same rounds run against
that code too, interleaved with this checkout's, and the two are printed side by side.

    python benchmarks/journal.py                     # this checkout
    python benchmarks/journal.py --before ../before  # beside an older checkout, in one run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # this checkout
FORMATS = ("csv", "jsonl", "json")


def _child(fmt: str, n: int, directory: str) -> None:
    """Write n targets' markers and records; print µs of CPU per target, as JSON."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    from bulkstop.models import Outcome, Result
    from bulkstop.report import ReportWriter

    now = datetime.now(UTC)
    results = [
        Result(
            line=i + 2,
            job_id=f"{i:032x}",
            build_no=str(1 + i % 5000),
            outcome=Outcome.STOPPED,
            http_status=200,
            request_id=f"{i:032x}",
            attempts=1,
            started_at=now,
            finished_at=now,
            elapsed_ms=12,
        )
        for i in range(n)
    ]

    async def main() -> dict[str, float]:
        figures: dict[str, float] = {}
        for case in ("markers", "records", "both"):
            path = Path(directory) / f"{case}.{fmt}"
            writer = ReportWriter(path)
            many = getattr(writer, "attempting_many", None)
            started = time.process_time()
            for start in range(0, n, 16):
                batch = results[start : start + 16]
                if case != "records":
                    if many is not None:
                        many([(r.line, r.job_id, int(r.build_no)) for r in batch])
                    else:
                        for r in batch:
                            writer.attempting(r.line, r.job_id, int(r.build_no))
                if case != "markers":
                    for result in batch:
                        writer.write(result)
            writer.finalize()
            figures[case] = (time.process_time() - started) / n * 1e6
        return figures

    print(json.dumps(asyncio.run(main())))


def _round(root: Path, fmt: str, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        out = subprocess.run(
            [sys.executable, __file__, "_child", fmt, str(n), directory],
            env={**os.environ, "PYTHONPATH": str(root)},
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
    figures: dict[str, float] = json.loads(out.stdout.splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", type=Path, help="another checkout of bulkstop to compare")
    parser.add_argument("--n", type=int, default=20_000, help="targets per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("_child", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        _, fmt, n, directory = args._child
        _child(fmt, int(n), directory)
        return
    contenders = {"this": HERE} if args.before is None else {"before": args.before, "this": HERE}
    print(
        f"Journal CPU per target (µs): N={args.n}, median of {args.rounds} alternating rounds,"
        f" one marker and one record per target; Python {sys.version.split()[0]}"
    )
    print(f"  {'format':<8}{'case':<10}" + "".join(f"{name:>12}" for name in contenders))
    for fmt in FORMATS:
        seen: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
        for i in range(args.rounds):
            names = list(contenders) if i % 2 == 0 else list(reversed(contenders))
            for name in names:
                seen[name].append(_round(contenders[name], fmt, args.n))
        for case in ("markers", "records", "both"):
            medians = [sorted(r[case] for r in seen[name])[args.rounds // 2] for name in seen]
            cells = "".join(f"{m:>12.1f}" for m in medians)
            ratio = f"   ×{medians[0] / medians[-1]:.1f} less" if len(medians) == 2 else ""
            print(f"  {fmt:<8}{case:<10}{cells}{ratio}")


if __name__ == "__main__":
    main()

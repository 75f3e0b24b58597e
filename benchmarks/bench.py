"""bulkstop benchmarks: each figure beside a baseline measured in the same run.

The simulator runs in its own process (``bulkstop simulate``) on 127.0.0.1, so server and
client each have a core. The baseline is the script a user would write: one aiohttp session,
a semaphore, ``asyncio.gather`` over every target, no retries.

    python benchmarks/bench.py all            # everything (about 5 minutes on 2 cores)
    python benchmarks/bench.py overhead --n 20000
    python benchmarks/bench.py throttled | latency | rate | memory | startup | breakdown

Every request goes to 127.0.0.1; every loop is bounded by its N.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import itertools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp

import bulkstop
from bulkstop import CodeArtsClient, Outcome, Pacer, RunSettings, Stopper, TokenAuth

TOKEN = "bench-token-" + uuid.uuid4().hex
#: the process of each running simulator, by its URL (for :func:`server_cpu`)
_SIMULATORS: dict[str, subprocess.Popen[str]] = {}


# -- helpers -------------------------------------------------------------------------------


@contextlib.contextmanager
def simulator(*flags: str) -> Iterator[str]:
    """Start ``bulkstop simulate`` on a free port in a subprocess; yield its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulkstop", "simulate", "--port", "0", "--token", TOKEN,
         "--log-level", "warning", *flags],
        stdout=subprocess.PIPE,
        text=True,
    )
    url = ""
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split(" on ", 1)[1].split()[0]
        _SIMULATORS[url] = proc
        yield url
    finally:
        _SIMULATORS.pop(url, None)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def server_cpu(url: str) -> float | None:
    """CPU seconds (user + system) the simulator at ``url`` has used so far, read from
    ``/proc`` (Linux, in clock ticks: 10 ms each); ``None`` where there is no ``/proc``."""
    proc = _SIMULATORS.get(url)
    if proc is None:
        return None
    try:
        # the fields after the command name's closing parenthesis: utime and stime are the
        # 12th and 13th of them (proc(5) numbers them 14 and 15)
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


async def sim_stats(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/_sim/stats") as resp:
        result: dict[str, Any] = await resp.json()
        return result


def iter_targets(n: int, jobs: int = 50) -> Iterator[tuple[str, int]]:
    """n distinct targets over ``jobs`` jobs, fresh ids each call, generated lazily."""
    prefix = uuid.uuid4().hex[:24]
    pairs = ((f"{prefix}{j:08x}", b) for b in range(1, n // jobs + 2) for j in range(jobs))
    return itertools.islice(pairs, n)


async def round_trip(url: str, samples: int = 10) -> float:
    """Median time of one stop call on an idle simulator: its real latency on this machine."""
    times = []
    async with aiohttp.ClientSession() as session:
        for i in range(samples):
            started = time.perf_counter()
            async with session.post(
                f"{url}/v3/jobs/stop",
                json={"job_id": f"{i:032x}", "build_no": "1"},
                headers={"X-Auth-Token": TOKEN},
            ) as resp:
                await resp.read()
            times.append(time.perf_counter() - started)
    return sorted(times)[samples // 2]


def make_targets(n: int, jobs: int = 50) -> list[tuple[str, int]]:
    return list(iter_targets(n, jobs))


async def run_bulkstop(
    url: str, targets: list[tuple[str, int]], *, concurrency: int, rate: float, burst: int = 1,
    timer: Callable[[], float] = time.perf_counter,
) -> tuple[float, Counter[Outcome], bulkstop.RunStats]:
    """The library: a Stopper over a list, no report; timed by ``timer`` (wall time, or CPU)."""
    async with CodeArtsClient(url, TokenAuth(TOKEN), pool_size=concurrency) as client:
        stopper = Stopper(
            client,
            pacer=Pacer(rate=rate, burst=burst),
            settings=RunSettings(concurrency=concurrency),
        )
        counts: Counter[Outcome] = Counter()
        started = timer()
        run = stopper.run(targets)
        async with run as results:
            async for result in results:
                counts[result.outcome] += 1
        return timer() - started, counts, run.stats


async def run_baseline(
    url: str, targets: list[tuple[str, int]], *, concurrency: int
) -> tuple[float, Counter[str]]:
    """The loop a user would write: semaphore + gather, no retry, no pacing."""
    counts: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        sem = asyncio.Semaphore(concurrency)

        async def one(job_id: str, build_no: int) -> None:
            async with sem:
                try:
                    async with session.post(
                        f"{url}/v3/jobs/stop",
                        json={"job_id": job_id, "build_no": str(build_no)},
                        headers={"X-Auth-Token": TOKEN},
                    ) as resp:
                        body = await resp.json(content_type=None)
                        if resp.status == 200:
                            counts["stopped" if body.get("result") else "not_stopped"] += 1
                        else:
                            counts["failed"] += 1
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    counts["failed"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(one(j, b) for j, b in targets))
        return time.perf_counter() - started, counts


async def warm_up() -> None:
    """Run every contender once on a few targets, so no figure includes first-use costs.

    anyio imports its asyncio backend on first use and structlog builds its loggers lazily:
    ~0.1 s that would otherwise land in whichever benchmark happens to run first; a first
    ``Job`` imports the report's modules (~50 ms) in the first round of ``bulkstop run``.
    """
    with simulator("--finished-ratio", "0", "--jobs", "0") as url, \
            tempfile.TemporaryDirectory() as tmp:
        await run_baseline(url, make_targets(64), concurrency=8)
        await run_bulkstop(url, make_targets(64), concurrency=8, rate=1e9, burst=8)
        path = Path(tmp, "warm.csv")
        write_targets(path, 64)
        await run_job(url, path, Path(tmp, "warm-report.csv"), concurrency=8)


def row(label: str, *cells: object) -> None:
    print(f"  {label:<42}" + "".join(f"{c!s:>16}" for c in cells))


# -- the five benchmarks ---------------------------------------------------------------------


def write_targets(path: Path, n: int) -> None:
    """A CSV input of n distinct targets over 50 jobs, fresh ids each call."""
    with path.open("w") as f:
        f.write("job_id,build_no\n")
        for job_id, build_no in iter_targets(n):
            f.write(f"{job_id},{build_no}\n")


async def run_baseline_file(url: str, path: Path, *, concurrency: int) -> tuple[float, float]:
    """The plain script, reading its targets from the same CSV file.

    Returns its run time from opening the file to its last answer, as :func:`run_job` times
    ``bulkstop run`` (input, session and all), and the time from its first request only.
    """
    import csv

    started = time.perf_counter()
    with path.open(newline="") as f:
        targets = [(row["job_id"], int(row["build_no"])) for row in csv.DictReader(f)]
    sending, counts = await run_baseline(url, targets, concurrency=concurrency)
    whole = time.perf_counter() - started
    assert counts["stopped"] == len(targets), counts
    return whole, sending


async def run_job(
    url: str, path: Path, report: Path, *, concurrency: int,
    timer: Callable[[], float] = time.perf_counter,
) -> float:
    """bulkstop as ``bulkstop run`` runs it: reader → engine → journal → finalized report;
    timed by ``timer`` (wall time, or CPU)."""
    from bulkstop import Job, JobSettings

    settings = JobSettings(
        input=str(path), endpoint=url, report=report, overwrite=True,
        concurrency=concurrency, rate=1e9, burst=concurrency,
    )
    started = timer()
    async with Job(settings, environ={"CODEARTS_TOKEN": TOKEN}) as job:
        outcome = await job.run()
    elapsed = timer() - started
    assert outcome.stats.count(Outcome.STOPPED) == outcome.stats.rows, outcome
    return elapsed


async def bench_overhead(
    n: int, concurrencies: tuple[int, ...] = (8, 64), rounds: int = 25
) -> None:
    print(f"\n1. Overhead: N={n} per round, {rounds} rounds per concurrency (contenders in turn,"
          " the order rotating), unlimited rate, no latency, no throttling")
    print("  baseline: the plain script (CSV in, aiohttp + semaphore + gather, no report);"
          " bulkstop run: reader → engine → crash-safe journal → finalized report, as the CLI"
          " runs it; library: Stopper over a list, no report")
    print("  the script and bulkstop run are each timed from opening the input to the end;"
          " 'first-request ratio' times the script from its first request instead (its"
          " reading and session left out)")
    row("", "baseline", "bulkstop run", "library", "run ratio", "run range")
    with simulator("--finished-ratio", "0", "--jobs", "0") as url, \
            tempfile.TemporaryDirectory() as tmp:
        for concurrency in concurrencies:
            speed: dict[str, list[float]] = {"base": [], "run": [], "lib": []}
            cpu: dict[str, list[float]] = {"base": [], "run": [], "lib": []}
            server: dict[str, list[float]] = {"base": [], "run": [], "lib": []}
            ratios: list[float] = []
            early: list[float] = []  # bulkstop run / the script timed from its first request
            for i in range(rounds):
                # Short rounds, rotating which contender goes first: this machine's speed
                # swings between runs, and a ratio within one round compares like with like.
                order = ["base", "run", "lib"]
                order = order[i % 3:] + order[: i % 3]
                seen: dict[str, float] = {}
                sending = 0.0
                for who in order:
                    path = Path(tmp, "targets.csv")
                    write_targets(path, n)  # fresh ids: every contender stops running builds
                    started_cpu = time.process_time()
                    started_server = server_cpu(url)
                    if who == "base":
                        elapsed, sending = await run_baseline_file(
                            url, path, concurrency=concurrency
                        )
                    elif who == "run":
                        elapsed = await run_job(
                            url, path, Path(tmp, "report.csv"), concurrency=concurrency
                        )
                    else:
                        elapsed, counts, _ = await run_bulkstop(
                            url, make_targets(n), concurrency=concurrency, rate=1e9,
                            burst=concurrency,
                        )
                        assert counts[Outcome.STOPPED] == n, counts
                    cpu[who].append((time.process_time() - started_cpu) / n * 1e6)
                    ended_server = server_cpu(url)
                    if started_server is not None and ended_server is not None:
                        server[who].append((ended_server - started_server) / n * 1e6)
                    seen[who] = n / elapsed
                    speed[who].append(seen[who])
                ratios.append(seen["run"] / seen["base"])
                early.append(seen["run"] * sending / n)
            mid = rounds // 2
            med = {who: sorted(values)[mid] for who, values in speed.items()}
            cpu_med = {who: sorted(values)[mid] for who, values in cpu.items()}
            ratio = sorted(ratios)[mid]
            row(f"concurrency {concurrency}: req/s (median)", f"{med['base']:.0f}",
                f"{med['run']:.0f}", f"{med['lib']:.0f}", f"{ratio:.3f}",
                f"{min(ratios):.2f}–{max(ratios):.2f}")
            row("  client CPU per request (µs)", f"{cpu_med['base']:.0f}",
                f"{cpu_med['run']:.0f}", f"{cpu_med['lib']:.0f}",
                f"{cpu_med['run'] / cpu_med['base']:.2f}")
            row("  first-request ratio", "", "", "", f"{sorted(early)[mid]:.3f}",
                f"{min(early):.2f}–{max(early):.2f}")
            if all(server.values()):
                # Each process has a core: the busier the simulator is per request, the more
                # of the client's own work it hides (the client waits for it either way).
                row("  server CPU per request (µs)",
                    *(f"{sorted(server[who])[mid]:.0f}" for who in ("base", "run", "lib")))
            print(f"  target ≥ 0.95 at concurrency {concurrency} (bulkstop run / baseline,"
                  f" median of per-round ratios): {'PASS' if ratio >= 0.95 else 'FAIL'}")


async def bench_throttled(n: int, limit: int = 200, concurrency: int = 8) -> None:
    rate = limit * 5
    print(f"\n2. Throttled makespan: N={n}, server limit {limit}/s (unknown to the client), "
          f"--rate {rate} (5x too high), concurrency {concurrency}")
    ideal = n / limit
    with simulator("--throttle", str(limit), "--finished-ratio", "0") as url:
        elapsed, counts, stats = await run_bulkstop(
            url, make_targets(n), concurrency=concurrency, rate=rate
        )
        server = await sim_stats(url)
    throttled_share = stats.throttled / stats.requests
    failed = n - counts[Outcome.STOPPED]
    with simulator("--throttle", str(limit), "--finished-ratio", "0") as url:
        b_elapsed, b_counts = await run_baseline(url, make_targets(n), concurrency=concurrency)
    row("", "baseline", "bulkstop")
    row("makespan (s)", f"{b_elapsed:.2f}", f"{elapsed:.2f}")
    row("makespan / (N / L)", f"{b_elapsed / ideal:.3f}", f"{elapsed / ideal:.3f}")
    row("requests sent", n, stats.requests)
    row("throttled answers", b_counts["failed"], f"{stats.throttled} ({throttled_share:.1%})")
    row("items failed", b_counts["failed"], failed)
    row("server: effective stops", "", server.get("effective_stops"))
    ok = elapsed / ideal <= 1.15 and throttled_share <= 0.10 and failed == 0
    print(f"  targets: ratio ≤ 1.15, ≤ 10 % throttled, 0 failed: {'PASS' if ok else 'FAIL'}")


async def bench_latency(
    n: int, concurrency: int = 32, latency: float = 0.1, rounds: int = 3
) -> None:
    ideal = concurrency / latency
    print(f"\n3. Latency-bound: N={n}, {latency * 1000:.0f} ms server latency, "
          f"concurrency {concurrency}, ideal {ideal:.0f} req/s, median of {rounds} rounds")
    # bulkstop runs three ways. The target is judged on --rate 2x what the concurrency
    # allows: set above the reachable rate, as a user would, so the concurrency is the limit.
    # --rate 1000 and an unlimited rate with a burst of 32 show what happens further up: the
    # closer together the starts, the more requests meet at the single-core server at once.
    judged = f"--rate {2 * ideal:g}"
    contenders: dict[str, tuple[float, int]] = {  # label: (rate, burst)
        judged: (2 * ideal, 1),
        "--rate 1000": (1000, 1),
        "unlimited": (1e9, concurrency),
    }
    times: dict[str, list[float]] = {"baseline": [], **{name: [] for name in contenders}}
    with simulator("--latency", str(latency), "--finished-ratio", "0") as url:
        rtt = await round_trip(url)
        for _ in range(rounds):  # interleaved, so drift hits all alike
            elapsed, _ = await run_baseline(url, make_targets(n), concurrency=concurrency)
            times["baseline"].append(elapsed)
            for name, (rate, burst) in contenders.items():
                elapsed, counts, _ = await run_bulkstop(
                    url, make_targets(n), concurrency=concurrency, rate=rate, burst=burst
                )
                assert counts[Outcome.STOPPED] == n, counts
                times[name].append(elapsed)
    throughput = {name: n / sorted(t)[rounds // 2] for name, t in times.items()}
    reachable = concurrency / rtt
    row("", *times)
    row("throughput (req/s)", *(f"{x:.1f}" for x in throughput.values()))
    row("throughput / (C / latency)", *(f"{x / ideal:.3f}" for x in throughput.values()))
    row(f"throughput / (C / {rtt * 1000:.1f} ms measured)",
        *(f"{x / reachable:.3f}" for x in throughput.values()))
    ratio = throughput[judged] / ideal
    print(f"  target ≥ 0.95 ({judged}): {'PASS' if ratio >= 0.95 else 'FAIL'}")


async def bench_rate(n: int, rate: float = 100.0) -> None:
    print(f"\n4. Rate accuracy: --rate {rate:g}, N={n}, unthrottled server")
    with simulator("--finished-ratio", "0") as url:
        elapsed, _, stats = await run_bulkstop(url, make_targets(n), concurrency=8, rate=rate)
        server = await sim_stats(url)
    row("", "asked", "achieved")
    row("mean rate (req/s)", f"{rate:g}", f"{stats.requests / elapsed:.2f}")
    row("max requests in any 1 s window", f"≤ {rate + 1:g}", server["max_requests_in_1s"])


def _rss_child(path: str, resume: bool) -> None:
    """Run the whole pipeline (reader → engine → report) with an instant client; print RSS.

    With ``resume``, continue the report a first run left at ``path + ".report.csv"``, opened
    by :func:`bulkstop.report.open_resume`: every target is carried over, so the figure is
    what holding a resume plan costs.
    """
    import logging

    import structlog

    from bulkstop.models import Reply, ReplyKind

    # stdout carries the figures: keep the library's log events off it
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    from bulkstop.report import ReportWriter, open_resume
    from bulkstop.sources import open_source

    class Instant:
        async def stop(self, target: bulkstop.Target) -> Reply:
            return Reply(kind=ReplyKind.STOPPED, http_status=200)

        async def refresh_credentials(self, generation: int) -> bool:
            return False

    report = Path(path + ".report.csv")

    async def main() -> int:
        done = 0
        with contextlib.ExitStack() as held:
            if resume:
                opened = held.enter_context(open_resume(report, path))
                source, run, lock, carried = (
                    opened.source,
                    opened.plan.run,
                    opened.lock,
                    opened.plan.carried,
                )
            else:
                source, run, lock, carried = held.enter_context(open_source(path)), 1, None, None
            stopper = Stopper(
                Instant(),
                pacer=Pacer(rate=1e9, burst=64),
                settings=RunSettings(concurrency=64, run=run),
            )
            writer = ReportWriter(
                report, run=run, append=resume, lock=lock, carried=carried, overwrite=not resume
            )
            with writer:
                async with stopper.run(iter(source), carried=carried) as results:
                    async for result in results:
                        writer.write(result)
                        done += 1
        return done

    done = asyncio.run(main())
    print(done, peak_rss_kib())


def peak_rss_kib() -> int:
    """This process's peak RSS in KiB.

    ``VmHWM`` belongs to the address space made at exec; ``ru_maxrss`` would also count the
    parent's peak from before the fork (Linux carries it across exec).
    """
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _distinct_targets(n: int) -> Iterator[tuple[str, int]]:
    """n targets, each of its own job, with build numbers spread as real ones are."""
    prefix = uuid.uuid4().hex[:20]
    for i in range(n):
        yield f"{prefix}{i:012x}", 1 + (i * 7919) % 5000


#: Child processes per size whose median peak RSS is taken (one below _ONE_RSS_RUN_FROM rows):
#: one process's peak varies by a few hundred KiB, a few bytes a target at 100,000.
_RSS_RUNS = 3
_ONE_RSS_RUN_FROM = 1_000_000


def _measure_rss(path: str, resume: bool, runs: int) -> tuple[int, float]:
    """Rows done and the median peak RSS (MiB) of ``runs`` child processes."""
    peaks: list[float] = []
    done = 0
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, __file__, "_rss", path, *(["--resume"] if resume else [])],
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()[-1].split()
        done = int(out[0])
        peaks.append(int(out[1]) / 1024)
    return done, sorted(peaks)[runs // 2]


def bench_memory(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)) -> None:
    print("\n5. Memory: peak RSS of the whole pipeline (streamed CSV in, CSV report out), every "
          "target of its own job; network replaced by an instant client")
    fresh: dict[int, float] = {}
    resumed: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = os.path.join(tmp, f"t{n}.csv")
            # Lazily, so this process stays small (the child measures its own address space).
            with open(path, "w") as f:
                f.write("job_id,build_no\n")
                for j, b in _distinct_targets(n):
                    f.write(f"{j},{b}\n")
            runs = _RSS_RUNS if n < _ONE_RSS_RUN_FROM else 1
            done, fresh[n] = _measure_rss(path, resume=False, runs=runs)
            assert done == n, (done, n)
            # The resume of that run's report: every target carried over.
            done, resumed[n] = _measure_rss(path, resume=True, runs=runs)
            assert done == n, (done, n)
    small = sizes[0]
    row("", "fresh run (MiB)", "bytes/target", "resume (MiB)", "bytes/target")
    for n in sizes:
        cells: list[str] = []
        for peaks in (fresh, resumed):
            per = "" if n == small else f"{(peaks[n] - peaks[small]) * 2**20 / (n - small):.0f}"
            cells += [f"{peaks[n]:.1f}", per]
        row(f"{n:,} rows", *cells)
    print(f"  bytes/target: per target beyond the {small:,}-row run of the same kind (the fixed"
          f" base: interpreter, modules, buffers); peak RSS the median of {_RSS_RUNS} processes"
          f" below {_ONE_RSS_RUN_FROM:,} rows; target ≤ 32 for both")


def _startup_case(cmd: list[str], env: dict[str, str], cwd: str) -> float:
    """The wall time of one process, from its start to its exit.

    Waited for with a blocking wait and a timer that kills a child that hangs: with a
    timeout, ``subprocess`` polls for the child's exit with sleeps that grow to 50 ms, which
    rounded every figure up to the next rung of a ladder 0.05 s apart (0.2635 s, 0.3135 s...).
    """
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        code = proc.wait()
    finally:
        watchdog.cancel()
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} exited with {code}")
    return elapsed


def _compiled_copy(directory: str) -> str:
    """A copy of the bulkstop package with its bytecode compiled, as ``pip install`` leaves
    an installed package; returns the ``PYTHONPATH`` that finds it first."""
    root = Path(directory, "installed")
    shutil.copytree(Path(bulkstop.__file__).parent, root / "bulkstop",
                    ignore=shutil.ignore_patterns("__pycache__"))
    compileall.compile_dir(root / "bulkstop", quiet=1)
    return str(root)


def bench_startup(rounds: int = 15) -> None:
    print(f"\n6. Start-up: wall time of a fresh process, median of {rounds} alternating rounds")
    # Without a bytecode cache (PYTHONDONTWRITEBYTECODE) every start compiles the modules that
    # have no .pyc, which an editable install's are, while the baseline's installed packages
    # have theirs: bulkstop is then measured twice, as it is here and byte-compiled as an
    # installed package is.
    compiled = sys.dont_write_bytecode
    if compiled:
        print("  (no bytecode cache here: \"compiled\" rows run a byte-compiled copy of bulkstop,"
              " as pip installs it)")
    py = sys.executable
    exe = [py, "-m", "bulkstop"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEARTS_", "HUAWEICLOUD_"))}
    with simulator("--finished-ratio", "0", "--jobs", "0") as url, \
            tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp, "one.csv")
        one.write_text("job_id,build_no\nf9d6c8466d614a9788e9a0acf6c15f46,20\n")
        report = Path(tmp, "r.csv")
        run_env = {**env, "CODEARTS_TOKEN": TOKEN}
        run = [*exe, "run", str(one), "--endpoint", url, "--report", str(report), "--overwrite",
               "--progress", "never"]
        cases: dict[str, tuple[list[str], dict[str, str]]] = {
            "import aiohttp, anyio, click, structlog": (
                [py, "-c", "import aiohttp, anyio, click, structlog"], env),
            "import aiohttp, anyio": ([py, "-c", "import aiohttp, anyio"], env),
            "bulkstop --help": ([*exe, "--help"], env),
            "bulkstop --version": ([*exe, "--version"], env),
            "bulkstop run (1 row)": (run, run_env),
        }
        if compiled:
            path = {"PYTHONPATH": _compiled_copy(tmp)}
            # ``python -m`` puts the working directory first on sys.path, and the editable
            # install's finder answers after PYTHONPATH: the cases run in ``tmp`` so that neither
            # a checkout's bulkstop/ nor the editable one shadows the copy. Checked, not assumed.
            found = subprocess.run([py, "-c", "import bulkstop; print(bulkstop.__file__)"],
                                   env={**env, **path}, cwd=tmp, capture_output=True, text=True,
                                   check=True, timeout=60).stdout.strip()
            if not found.startswith(path["PYTHONPATH"]):
                raise SystemExit(f"the compiled copy is not what runs: bulkstop is {found}")
            cases["bulkstop --help, compiled"] = ([*exe, "--help"], {**env, **path})
            cases["bulkstop --version, compiled"] = ([*exe, "--version"], {**env, **path})
            cases["bulkstop run (1 row), compiled"] = (run, {**run_env, **path})
        times: dict[str, list[float]] = {name: [] for name in cases}
        for i in range(rounds):
            names = list(cases) if i % 2 == 0 else list(reversed(cases))
            for name in names:
                times[name].append(_startup_case(*cases[name], cwd=tmp))
    med = {name: sorted(t)[rounds // 2] for name, t in times.items()}
    four, two = med["import aiohttp, anyio, click, structlog"], med["import aiohttp, anyio"]
    row("", "seconds", "vs import 4", "vs import 2")
    for name, value in med.items():
        row(name, f"{value:.3f}", f"{value / four:.2f}", f"{value / two:.2f}")
    for suffix in ("", ", compiled") if compiled else ("",):
        ok = (med[f"bulkstop --help{suffix}"] <= 0.5 * four
              and med[f"bulkstop --version{suffix}"] <= 0.5 * two
              and med[f"bulkstop run (1 row){suffix}"] <= 1.2 * four)
        print(f"  targets{suffix}: --help ≤ 0.5× import 4, --version ≤ 0.5× import 2, a run ≤"
              f" 1.2× import 4: {'PASS' if ok else 'FAIL'}")


#: What ``breakdown`` switches off, each alone and then all three (for measurement only: a
#: run without them is not crash-safe and does not dedupe). The record is its encoding, its
#: buffering and its write; the marker its line and its share of a write.
_PIECES: dict[str, str] = {
    "record": "journal record",
    "marker": "in-flight marker",
    "dedupe": "dedupe",
}


def _cpu_child(who: str, off: str, n: int, concurrency: int) -> None:
    """bulkstop's own CPU per target, the network replaced by an instant client: ``lib`` (a
    Stopper over a list) or ``job`` (reader → engine → journal → report, as ``bulkstop run``),
    with the pieces named in ``off`` (comma-separated) switched off; prints the least of three
    runs in µs, after a warm-up run."""
    import logging

    import structlog

    from bulkstop.dedupe import SeenTargets
    from bulkstop.models import Reply, ReplyKind
    from bulkstop.report.writer import ReportWriter

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    reply = Reply(kind=ReplyKind.STOPPED, http_status=200)

    async def instant(self: CodeArtsClient, target: bulkstop.Target, *args: Any,
                      **kwargs: Any) -> Reply:
        return reply

    CodeArtsClient.stop = instant  # type: ignore[method-assign]
    pieces = set(filter(None, off.split(",")))
    if "record" in pieces:
        ReportWriter._append = lambda self, result, run: None  # type: ignore[method-assign]
    if "marker" in pieces:
        ReportWriter.attempting_many = lambda self, targets: None  # type: ignore[method-assign]
    if "dedupe" in pieces:
        SeenTargets.add = lambda self, key: True  # type: ignore[method-assign]

    url = "http://127.0.0.1:9"  # never reached: every stop is answered at once

    async def job(tmp: str, k: int) -> float:
        path = Path(tmp, "in.csv")
        write_targets(path, k)
        return await run_job(url, path, Path(tmp, "r.csv"), concurrency=concurrency,
                             timer=time.process_time)

    async def lib(tmp: str, k: int) -> float:
        elapsed, counts, _ = await run_bulkstop(url, make_targets(k), concurrency=concurrency,
                                                rate=1e9, burst=concurrency,
                                                timer=time.process_time)
        assert counts[Outcome.STOPPED] == k, counts
        return elapsed

    run = job if who == "job" else lib
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(tmp, 64))
        best = min(asyncio.run(run(tmp, n)) for _ in range(3))
    print(f"{best / n * 1e6:.3f}")


def bench_breakdown(n: int, rounds: int = 5, concurrency: int = 8) -> None:
    print(f"\n7. Breakdown: bulkstop's own CPU per target (µs), the network replaced by an instant"
          f" client; N={n}, concurrency {concurrency}, median of {rounds} alternating rounds of"
          " fresh processes (each the least of three runs)")
    cases: dict[str, tuple[str, str]] = {
        "library (Stopper over a list, no report)": ("lib", ""),
        "bulkstop run": ("job", ""),
    }
    for piece, label in _PIECES.items():
        cases[f"  without the {label}"] = ("job", piece)
    cases["  without all three"] = ("job", ",".join(_PIECES))
    times: dict[str, list[float]] = {name: [] for name in cases}
    for i in range(rounds):
        names = list(cases) if i % 2 == 0 else list(reversed(cases))
        for name in names:
            who, off = cases[name]
            out = subprocess.run(
                [sys.executable, __file__, "_cpu", who, "--off", off, "--n", str(n),
                 "--concurrency", str(concurrency)],
                capture_output=True, text=True, check=True, timeout=600,
            ).stdout.split()[-1]
            times[name].append(float(out))
    med = {name: sorted(t)[rounds // 2] for name, t in times.items()}
    whole = med["bulkstop run"]
    row("", "µs/target", "saved")
    for name, value in med.items():
        switched_off = cases[name][1]
        row(name, f"{value:.2f}", f"{whole - value:.2f}" if switched_off else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["all", "overhead", "throttled", "latency", "rate",
                                          "memory", "startup", "breakdown", "_rss", "_cpu"])
    parser.add_argument("path", nargs="?")
    parser.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds per concurrency of 'overhead' (default 25)")
    parser.add_argument("--off", default="", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=8, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.which == "_rss":
        _rss_child(args.path, args.resume)
        return
    if args.which == "_cpu":
        _cpu_child(args.path, args.off, args.n, args.concurrency)
        return
    print(f"bulkstop {bulkstop.__version__}, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores")
    if args.which not in ("memory", "startup", "breakdown"):  # these run in child processes
        asyncio.run(warm_up())
    if args.which in ("all", "overhead"):
        asyncio.run(bench_overhead(args.n or 4_000, rounds=args.rounds or 25))
    if args.which in ("all", "throttled"):
        asyncio.run(bench_throttled(args.n or 2_000))
    if args.which in ("all", "latency"):
        asyncio.run(bench_latency(args.n or 3_200))
    if args.which in ("all", "rate"):
        asyncio.run(bench_rate(args.n or 1_000))
    if args.which in ("all", "memory"):
        bench_memory()
    if args.which in ("all", "startup"):
        bench_startup()
    if args.which in ("all", "breakdown"):
        bench_breakdown(args.n or 20_000)


if __name__ == "__main__":
    main()


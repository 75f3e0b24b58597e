"""Discovery and verification through the top-level names, as the README shows them."""

from __future__ import annotations

import asyncio

import bulkstop
from bulkstop.simulator import Simulator, SimulatorConfig, WorldConfig

PROJECT = "0123456789abcdef0123456789abcdef"
Keys = set[tuple[str, int]]
Keys = set[tuple[str, int]]


def test_discover_stop_and_verify_with_the_top_level_names_under_asyncio_run() -> None:
    world = WorldConfig(project_id=PROJECT, jobs=10, running_ratio=0.5, stop_delay=0.1,
                        ignore_stop_ratio=0.0)  # fmt: skip

    async def main() -> tuple[Keys, list[bulkstop.VerifyResult], Keys]:
        async with asyncio.timeout(60), Simulator(SimulatorConfig(token="t", world=world)) as sim:
            running = set(sim.running_builds())
            auth = bulkstop.TokenAuth("t")
            async with bulkstop.CodeArtsClient(sim.url, auth) as client:
                reads = bulkstop.ReadSettings(rate=100)
                discovery = bulkstop.Discovery(
                    client, bulkstop.DiscoverQuery(project_id=PROJECT), settings=reads
                )
                async with discovery as builds:
                    found = [build async for build in builds]
                stopper = bulkstop.Stopper(client, pacer=bulkstop.Pacer(rate=100))
                async with stopper.run([build.target for build in found]) as results:
                    async for _ in results:
                        pass
                settings = bulkstop.VerifySettings(poll_initial=0.1, timeout=10, reads=reads)
                async with bulkstop.Verification(client, found, settings=settings) as verdicts:
                    checked = [verdict async for verdict in verdicts]
        return running, checked, {(b.job_id, b.build_no) for b in found}

    running, checked, found = asyncio.run(main())

    assert found == running
    assert {(v.job_id, v.build_no) for v in checked} == running
    assert {v.verdict for v in checked} == {bulkstop.VerifyVerdict.ENDED}

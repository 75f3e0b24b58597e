"""The public surface: ``__all__`` is explicit, complete and importable."""

from __future__ import annotations

import asyncio

import bulkstop


def test_all_names_are_exported_and_exist() -> None:
    assert sorted(bulkstop.__all__) == sorted(set(bulkstop.__all__))
    for name in bulkstop.__all__:
        assert hasattr(bulkstop, name), name


def test_public_classes_live_in_bulkstop_modules() -> None:
    for name in bulkstop.__all__:
        member = getattr(bulkstop, name)
        module = getattr(member, "__module__", "bulkstop")
        assert module.startswith("bulkstop"), (name, module)


def test_library_runs_under_asyncio_run() -> None:
    class Client:
        async def stop(self, target: bulkstop.Target) -> bulkstop.Reply:
            return bulkstop.Reply(kind=bulkstop.ReplyKind.STOPPED, http_status=200)

        async def refresh_credentials(self, generation: int) -> bool:
            return False

    async def main() -> list[bulkstop.Outcome]:
        stopper = bulkstop.Stopper(Client(), pacer=bulkstop.Pacer(rate=1000))
        async with stopper.run([("f9d6c8466d614a9788e9a0acf6c15f46", 20)]) as results:
            return [result.outcome async for result in results]

    assert asyncio.run(main()) == [bulkstop.Outcome.STOPPED]

"""The engine's hand-off queue: order, back-pressure, end of stream, and cancelled waiters."""

from __future__ import annotations

import asyncio

import anyio
import anyio.abc
import pytest
from anyio.lowlevel import checkpoint

from bulkstop.handoff import HandOff

pytestmark = pytest.mark.anyio


async def settle() -> None:
    """Let every task that can run, run (a few scheduling rounds; no time passes)."""
    for _ in range(5):
        await checkpoint()


async def fill_with_a_putter_waiting(
    queue: HandOff[int], tg: anyio.abc.TaskGroup, put_done: list[int]
) -> None:
    """Offer 0-3 to ``queue`` (high 4), start a putter of 4 in ``tg``, which appends 4 to
    ``put_done`` once its put returns, and check that it waits."""
    for i in range(4):
        assert queue.offer(i)

    async def putter() -> None:
        await queue.put(4)
        put_done.append(4)

    tg.start_soon(putter)
    await settle()
    assert put_done == []  # full: the putter waits


async def test_items_come_out_in_order_then_none_after_the_last_sender() -> None:
    queue = HandOff[int](high=10, senders=2)
    for i in range(3):
        await queue.put(i)
    queue.sender_done()
    assert [await queue.get() for _ in range(3)] == [0, 1, 2]
    got: list[int | None] = []

    async def getter() -> None:
        got.append(await queue.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(getter)
        await settle()
        assert got == []  # one sender is still there: the getter waits
        queue.sender_done()
    assert got == [None]
    assert await queue.get() is None


async def test_a_full_queue_blocks_putters_until_drained_to_half() -> None:
    queue = HandOff[int](high=4)
    put: list[int] = []

    async def producer() -> None:
        for i in range(8):
            await queue.put(i)
            put.append(i)

    async with anyio.create_task_group() as tg:
        tg.start_soon(producer)
        await settle()
        assert put == [0, 1, 2, 3]  # high water: the fifth put waits
        assert await queue.get() == 0
        await settle()
        assert put == [0, 1, 2, 3]  # 3 left, above half: still waiting
        assert await queue.get() == 1
        await settle()
        assert put == [0, 1, 2, 3, 4, 5]  # drained to 2 = half: refilled to high water
        rest = [await queue.get() for _ in range(6)]
    assert rest == [2, 3, 4, 5, 6, 7]


async def test_a_getter_cancelled_while_waiting_takes_nothing() -> None:
    queue = HandOff[str](high=4)
    got: list[str | None] = []

    async def getter() -> None:
        got.append(await queue.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(getter)
        await settle()
        cancelled = anyio.CancelScope()

        async def doomed() -> None:
            with cancelled:
                await queue.get()

        tg.start_soon(doomed)
        await settle()
        cancelled.cancel()
        await settle()
        await queue.put("a")
        await settle()
    assert got == ["a"]  # the cancelled getter did not swallow the item


async def test_a_getter_woken_then_cancelled_passes_the_wake_up_on() -> None:
    # Plain asyncio tasks: Task.cancel() right after the wake-up is certain to land before
    # the woken getter runs (an anyio scope delivers its cancellation a little later).
    queue = HandOff[str](high=4)
    first = asyncio.create_task(queue.get())
    await settle()
    second = asyncio.create_task(queue.get())
    await settle()
    await queue.put("a")  # wakes the first getter...
    first.cancel()  # ...which is cancelled before it runs
    with anyio.fail_after(5):
        assert await second == "a"  # the second getter got the item instead of waiting
    assert first.cancelled()


async def test_the_repr_shows_the_live_state() -> None:
    queue = HandOff[int](high=4, senders=2)
    await queue.put(1)
    await queue.put(2)
    queue.sender_done()
    assert len(queue) == 2
    assert repr(queue) == (
        "HandOff(queued=2, high=4, low=2, senders=1, waiting_getters=0, putters_waiting=False)"
    )


async def test_an_offer_queues_at_once_while_there_is_room_and_wakes_a_getter() -> None:
    queue = HandOff[int](high=2)
    got: list[int | None] = []

    async def getter() -> None:
        got.append(await queue.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(getter)
        await settle()
        assert queue.offer(1) is True
        await settle()
        assert got == [1]  # the waiting getter was woken
    assert (queue.offer(2), queue.offer(3), queue.offer(4)) == (True, True, False)
    assert [await queue.get(), await queue.get(), len(queue)] == [2, 3, 0]  # 4 was not queued


async def test_get_nowait_takes_what_is_queued_and_wakes_a_putter_at_low() -> None:
    queue = HandOff[int](high=4)
    assert queue.get_nowait() is None  # nothing queued: None, and nothing waits
    put_done: list[int] = []
    async with anyio.create_task_group() as tg:
        await fill_with_a_putter_waiting(queue, tg, put_done)
        assert queue.get_nowait() == 0
        await settle()
        assert put_done == []  # 3 queued, above low (2)
        assert queue.get_nowait() == 1
        await settle()
        assert put_done == [4]  # drained to low: the putter went on
    assert [queue.get_nowait() for _ in range(4)] == [2, 3, 4, None]
    queue.sender_done()
    assert queue.get_nowait() is None
    assert await queue.get() is None  # the end is get's to say


async def test_take_all_takes_every_queued_item_in_order_and_lets_a_putter_go_on() -> None:
    queue = HandOff[int](high=4)
    assert queue.take_all() == []  # nothing queued: nothing taken, nothing waits
    put_done: list[int] = []
    async with anyio.create_task_group() as tg:
        await fill_with_a_putter_waiting(queue, tg, put_done)
        assert queue.take_all() == [0, 1, 2, 3]
        assert len(queue) == 0
        await settle()
        assert put_done == [4]  # drained at once: the putter went on
    assert queue.take_all() == [4]


async def test_get_all_waits_for_the_first_item_then_takes_the_rest_and_ends_empty() -> None:
    queue = HandOff[int](high=10)
    batches: list[list[int]] = []

    async def consumer() -> None:
        while batch := await queue.get_all():
            batches.append(batch)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer)
        await settle()
        assert batches == []  # nothing queued yet: the consumer waits
        queue.offer(1)
        queue.offer(2)  # queued before the waiting consumer runs: one batch
        await settle()
        assert batches == [[1, 2]]
        for i in (3, 4, 5):
            queue.offer(i)
        await settle()
        assert batches == [[1, 2], [3, 4, 5]]
        queue.sender_done()  # the last sender: the consumer sees the end
    assert batches == [[1, 2], [3, 4, 5]]
    assert await queue.get_all() == []

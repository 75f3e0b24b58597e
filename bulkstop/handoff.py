"""The hand-off queue between a run's tasks: producer → workers → the consumer of results.

A bounded FIFO, refilled in bulk and closed when its last sender is done::

    queue = HandOff[int](high=8, senders=2)
    await queue.put(1)         # waits while 8 items are queued, until half were taken
    queue.sender_done()        # one sender finished; after the last one...
    await queue.get()          # ...``None`` once the queue is empty: the end of the stream

Hand-written rather than an anyio memory stream because the stream costs a scheduling round
trip per item on both sides: ``receive()`` yields to the event loop even when an item is
waiting, and a blocked ``send()`` is woken for every freed slot. At thousands of targets a
second those round trips were most of the engine's cost in the overhead benchmark. Here a
getter takes a waiting item at once, and a blocked putter waits until the queue has drained to
half before refilling it.

A wait is a bare asyncio future: aiohttp ties bulkstop to asyncio anyway, and an
``anyio.Event`` looks up the running backend each time one is made (once per result, for a
consumer that keeps up). anyio's cancel scopes cancel these waits like any other.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
from typing import Generic, TypeVar

__all__ = ["HandOff"]

T = TypeVar("T")


class HandOff(Generic[T]):
    """A bounded FIFO between tasks, refilled in bulk; closed when its last sender is done.

    Attributes:
        high: items queued at most; a putter waits at this many.
        low: a waiting putter goes on once the queue has drained to this many (``high // 2``).
        senders: senders not yet done; at 0 a getter of an empty queue gets ``None``.
    """

    __slots__ = ("_getters", "_items", "_loop", "_space", "high", "low", "senders")

    def __init__(self, high: int, senders: int = 1) -> None:
        self._items: collections.deque[T] = collections.deque()
        self.high = max(1, high)
        self.low = self.high // 2
        self.senders = senders
        self._space: asyncio.Future[None] | None = None  # shared by every blocked putter
        self._getters: collections.deque[asyncio.Future[None]] = collections.deque()
        # the loop of the first wait: one queue serves one run, on one loop, and on Python 3.11
        # each lookup of the running loop checks the process id with a system call
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        """Items queued now."""
        return len(self._items)

    async def put(self, item: T) -> None:
        """Queue ``item``; wait first while the queue is full, until it drained to ``low``."""
        while len(self._items) >= self.high:
            if self._space is None:
                self._space = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._space)  # one putter's cancellation spares the others'
        self._items.append(item)
        if self._getters:
            self._wake_getter()

    def offer(self, item: T) -> bool:
        """Queue ``item`` now if the queue is not full; ``False`` (and nothing queued) if it is.

        What :meth:`put` does when it need not wait, without making a coroutine: the producer
        and every worker hand each item on this way first.
        """
        if len(self._items) >= self.high:
            return False
        self._items.append(item)
        if self._getters:
            self._wake_getter()
        return True

    def peek(self, count: int) -> list[T]:
        """Up to ``count`` items from the head of the queue, left in it: the next ones taken."""
        return list(itertools.islice(self._items, count))

    def sender_done(self) -> None:
        """One sender has finished; after the last one, getters see the end."""
        self.senders -= 1
        if self.senders <= 0:
            while self._getters:
                self._wake_getter()

    def get_nowait(self) -> T | None:
        """The next item if one is queued now, else ``None`` (then :meth:`get` says whether
        more come). What :meth:`get` does when it need not wait, without making a coroutine:
        every worker and the consumer take each item this way first."""
        if not self._items:
            return None
        item = self._items.popleft()
        space = self._space
        if space is not None and len(self._items) <= self.low:
            self._space = None
            space.set_result(None)
        return item

    def take_all(self) -> list[T]:
        """Every item queued now, in order (perhaps none): :meth:`get_nowait` until it gives
        ``None``, in one call. A blocked putter goes on at once."""
        items = self._items
        if not items:
            return []
        taken = list(items)
        items.clear()
        space = self._space
        if space is not None:
            self._space = None
            space.set_result(None)
        return taken

    async def get_all(self) -> list[T]:
        """Every item queued once there is one (:meth:`take_all`); an empty list once every
        sender is done and the queue is empty."""
        if not self._items:
            item = await self.get()
            if item is None:
                return []
            return [item, *self.take_all()]
        return self.take_all()

    async def get(self) -> T | None:
        """The next item, or ``None`` once every sender is done and the queue is empty."""
        while True:
            if (item := self.get_nowait()) is not None:
                return item
            if self.senders <= 0:
                return None
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_getter()  # woken, then cancelled: pass the wake-up on
                else:
                    with contextlib.suppress(ValueError):
                        self._getters.remove(waiter)
                raise

    def _wake_getter(self) -> None:
        getters = self._getters
        while getters:
            waiter = getters.popleft()
            if not waiter.done():  # a cancelled getter's future is done already
                waiter.set_result(None)
                return

    def __repr__(self) -> str:
        return (
            f"HandOff(queued={len(self._items)}, high={self.high}, low={self.low}, "
            f"senders={self.senders}, waiting_getters={len(self._getters)}, "
            f"putters_waiting={self._space is not None})"
        )

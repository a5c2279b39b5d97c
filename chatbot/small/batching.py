"""Micro-batching for the router inside the ASGI server.

Many chats ask at once; encoding them one by one wastes the CPU on per-call overhead. Requests from
the event loop queue up here; one background thread takes whatever is waiting (up to MAX_BATCH) and
routes it as one batch (`chatbot.routing.route_many`: one encoder call for every message and segment).
While it works, new requests gather for the next batch, so under load the batches grow by themselves
and a lone question never waits for company (MAX_WAIT adds such a wait when set). The event loop never
blocks on inference.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass, field

from chatbot.routing import Incoming, Routed, route_many
from chatbot.small.model import get_small_model

MAX_BATCH = 32
MAX_WAIT_SECONDS = 0.0


@dataclass
class _Request:
    message: Incoming
    future: asyncio.Future[Routed] = field(repr=False)


class MicroBatcher:
    def __init__(self, max_batch: int = MAX_BATCH, max_wait: float = MAX_WAIT_SECONDS) -> None:
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        # One thread: the encoder is not safe to call concurrently, and one torch thread per process
        # is the fastest on a small, shared machine.
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="small-model")
        self._runner: asyncio.Task[None] | None = None

    async def route(self, message: Incoming) -> Routed:
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future[Routed] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(message, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            messages = [request.message for request in batch]
            try:
                results = await loop.run_in_executor(self._executor, _route_many, messages)
            except Exception as error:  # noqa: BLE001 - every waiting caller must hear about it
                if len(batch) == 1:
                    if not batch[0].future.done():
                        batch[0].future.set_exception(error)
                    continue
                # One bad message must not fail the others that happened to share its batch: each is
                # routed again on its own, and only the one that fails again hears about it.
                for request in batch:
                    await self._route_alone(request)
                continue
            for request, result in zip(batch, results, strict=True):
                if not request.future.done():
                    request.future.set_result(result)

    async def _route_alone(self, request: _Request) -> None:
        try:
            [result] = await asyncio.get_running_loop().run_in_executor(self._executor, _route_many, [request.message])
        except Exception as error:  # noqa: BLE001 - the caller decides what a failure means
            if not request.future.done():
                request.future.set_exception(error)
            return
        if not request.future.done():
            request.future.set_result(result)


def _route_many(messages: list[Incoming]) -> list[Routed]:
    return route_many(get_small_model(), messages)


_batchers: dict[asyncio.AbstractEventLoop, MicroBatcher] = {}


async def route(message: Incoming) -> Routed:
    """Route from async code without blocking the event loop; concurrent calls share batches."""
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None:
        batcher = _batchers[loop] = MicroBatcher()
    return await batcher.route(message)

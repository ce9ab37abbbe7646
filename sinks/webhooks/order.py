"""One delivery at a time per key, in the order the turns were taken."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from types import TracebackType

__all__ = ["KeyedOrder", "Turn"]


class Turn:
    """A place in line for one key: `async with turn:` waits for the previous one."""

    __slots__ = ("_done", "_key", "_order", "_previous")

    def __init__(
        self, order: KeyedOrder, key: Hashable, previous: asyncio.Future[None] | None
    ) -> None:
        self._order = order
        self._key = key
        self._previous = previous
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def __aenter__(self) -> None:
        if self._previous is not None:
            await asyncio.shield(self._previous)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """End this turn (also when it never ran): the next one of the key may start."""
        if not self._done.done():
            self._done.set_result(None)
        if self._order.tails.get(self._key) is self._done:
            del self._order.tails[self._key]


class KeyedOrder:
    """Keeps what was started for a key in order (e.g. the actions of one message for
    one endpoint) while other keys go on in parallel. Take turns synchronously, in the
    order the work arrived: `turn = order.turn(key)`."""

    def __init__(self) -> None:
        self.tails: dict[Hashable, asyncio.Future[None]] = {}

    def turn(self, key: Hashable) -> Turn:
        """The next place in line for `key`."""
        turn = Turn(self, key, self.tails.get(key))
        self.tails[key] = turn._done
        return turn

    def __len__(self) -> int:
        """Keys with a turn pending or running."""
        return len(self.tails)

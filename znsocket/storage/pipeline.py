"""A redis-py-style pipeline over any storage, for code that uses a store in its own process.

``storage.pipeline()`` returns a :class:`StoragePipeline`: command calls on it are queued
(each returns the pipeline, so calls chain) and :meth:`StoragePipeline.execute` runs them in
order through the storage's :meth:`~znsocket.storage.base.StorageCommands.execute_many`.
Like redis-py's non-transactional pipeline, leaving a ``with`` block discards what was not
executed, and every queued command runs even after one fails; the first error is raised
after all ran (or returned in place with ``raise_on_error=False``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from znsocket.storage.base import COMMANDS, CommandCall

if TYPE_CHECKING:
    from types import TracebackType

    from znsocket.storage.base import StorageCommands

__all__ = ["StoragePipeline"]


class StoragePipeline:
    """Commands queued for one :meth:`execute` on ``storage``."""

    def __init__(self, storage: StorageCommands) -> None:
        self.storage = storage
        self.commands: list[CommandCall] = []

    def __len__(self) -> int:
        return len(self.commands)

    def __enter__(self) -> StoragePipeline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.reset()

    def __getattr__(self, name: str) -> Callable[..., StoragePipeline]:
        if name not in COMMANDS:
            raise AttributeError(f"{name!r} is not a storage command")

        def queue(*args: Any, **kwargs: Any) -> StoragePipeline:
            self.commands.append((name, args, kwargs))
            return self

        queue.__name__ = name
        return queue

    def reset(self) -> None:
        """Forget the queued commands."""
        self.commands = []

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Run the queued commands in order and return their results (the queue empties).

        Raises:
            Exception: the first command's error, after every command ran, when
                ``raise_on_error`` (otherwise errors are returned in place).
        """
        calls, self.commands = self.commands, []
        results: list[Any] = []
        while len(results) < len(calls):
            done = self.storage.execute_many(calls[len(results) :])
            results.extend(done)
            if not done:  # pragma: no cover - a backend that ran nothing
                break
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results

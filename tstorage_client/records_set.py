"""The collection protocol GET results and PUT inputs use."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Sized
from typing import Protocol, TypeVar

from .record import Record

__all__ = ["GetCallback", "RecordsSet"]

T = TypeVar("T")


class RecordsSet(Iterable[Record[T]], Sized, Protocol):
    """RecordsSet[T] is iterable, sized and appendable abstract collection of Record[T]."""

    @abstractmethod
    def append(self, value: Record[T]) -> None:
        """Add one record."""


GetCallback = Callable[[RecordsSet[T]], None]
"""GetCallback[T] is an generic alias to any callable taking RecordsSet[T] as argument and returning nothing."""

"""Threads for independent work on the CPU: the trainees of a probe pass, the blocks of a statistics pass.

Each piece of work runs exactly the ops it would run alone, every torch op on one thread (the caller sets torch's
intra-op threads to 1), so the results do not depend on the number of threads; the cores share out the pieces
instead of splitting each small op. On CUDA the work runs inline, in turn (one stream).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

_END = object()  # the end of an iterator drawn ahead


class Workers:
    """Applies a function to independent items (trainees, blocks) on ``n`` threads, in order of the items; inline when
    ``n`` is 1 or the device is not the CPU. A context manager: the threads end with it."""

    def __init__(self, n: int, device: torch.device) -> None:
        self.n = n if device.type == "cpu" else 1
        self._pool = concurrent.futures.ThreadPoolExecutor(self.n) if self.n > 1 else None

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(item) for item in items]``, the items spread over the threads (which start in grad mode: a
        ``torch.no_grad`` around the call does not reach them)."""
        return list(self._pool.map(fn, items)) if self._pool is not None else [fn(item) for item in items]

    def ahead(self, items: Iterable[T]) -> Iterator[T]:
        """``items``, the next one drawn on a thread of its own while the current one is used (inline when ``n`` is
        1): a batch is read, standardised and permuted while the trainees step on the one before."""
        if self._pool is None:
            yield from items
            return
        iterator = iter(items)
        with concurrent.futures.ThreadPoolExecutor(1) as drawer:
            pending = drawer.submit(next, iterator, _END)
            while (item := pending.result()) is not _END:
                pending = drawer.submit(next, iterator, _END)
                yield item

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()

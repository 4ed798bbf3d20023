"""Truncated forwards: keep the outputs (or inputs) of some modules and stop the forward once the last of them has
run."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import ForesightError


@dataclass(frozen=True)
class Input:
    """A wanted module's first positional input (taken before the module runs) instead of its output."""

    module: nn.Module  # hashed and compared by identity, as modules are


class _Truncate(Exception):
    """Raised by the hook of the last wanted module to end the forward there."""


def truncated_forward(forward: Callable[[], Any], wanted: Iterable[nn.Module | Input]) -> dict[nn.Module | Input, Any]:
    """Run ``forward()`` until every wanted tap has been seen; return what each saw.

    A module taps its output (forward hook), an :class:`Input` its module's first positional input (pre-hook).
    The hook that completes the set raises, so nothing after the deepest wanted tap runs (an input tap stops the
    forward before its module runs). Each module must run once per forward.
    """
    taps = set(wanted)
    outputs: dict[nn.Module | Input, Any] = {}

    def seen(tap: nn.Module | Input, value: Any) -> None:
        outputs[tap] = value
        if len(outputs) == len(taps):
            raise _Truncate

    handles = [
        tap.module.register_forward_pre_hook(lambda m, args, tap=tap: seen(tap, args[0]))
        if isinstance(tap, Input)
        else tap.register_forward_hook(lambda m, args, output, tap=tap: seen(tap, output))
        for tap in taps
    ]
    try:
        forward()
    except _Truncate:
        pass
    finally:
        for handle in handles:
            handle.remove()
    if len(outputs) != len(taps):
        raise ForesightError(f"the forward ran {len(outputs)} of {len(taps)} wanted modules")
    return outputs

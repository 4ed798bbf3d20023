"""Truncated forwards: keep the outputs of some modules and stop the forward once the last of them has run."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from torch import nn

from ..errors import ForesightError


class _Truncate(Exception):
    """Raised by the hook of the last wanted module to end the forward there."""


def truncated_forward(forward: Callable[[], Any], modules: Iterable[nn.Module]) -> dict[nn.Module, Any]:
    """Run ``forward()`` until every module in ``modules`` has produced its output; return those outputs.

    Each module's forward hook stores its output; the hook that completes the set raises, so nothing
    after the deepest wanted module runs. Each module must run once per forward.
    """
    wanted = set(modules)
    outputs: dict[nn.Module, Any] = {}

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        outputs[module] = output
        if len(outputs) == len(wanted):
            raise _Truncate

    handles = [module.register_forward_hook(hook) for module in wanted]
    try:
        forward()
    except _Truncate:
        pass
    finally:
        for handle in handles:
            handle.remove()
    if len(outputs) != len(wanted):
        raise ForesightError(f"the forward ran {len(outputs)} of {len(wanted)} wanted modules")
    return outputs

"""The workloads' own options on `bench run`: read from the workload registry, so that adding a workload with
options of its own touches no code of the command line.

`with_workload_options(fn)` gives a command function whose last parameter is `**options` every option of
every registered workload, as typer options placed after `--workload`; their help says which workloads take
each. What a workload does with them, and the refusal of an option the chosen workload does not take, is the
registry's (`runners.workloads.make_workload`).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Annotated

import typer

from runners.workloads import all_options


def workload_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per workload option, typed and with its help, in registry order."""
    out = []
    for name, (opt, takers) in all_options().items():
        kind = opt.type if opt.default is not None else opt.type | None
        help_ = f"{', '.join(takers)} only: {opt.help}"
        out.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt.default,
                                     annotation=Annotated[kind, typer.Option(help=help_)]))
    return out


def with_workload_options(fn: Callable[..., None]) -> Callable[..., None]:
    """`fn`, whose signature ends in `**options`, with those options spliced in after its `workload`
    parameter (typer reads the signature and the annotations)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    params = [p.replace(annotation=hints.get(p.name, p.annotation), kind=inspect.Parameter.KEYWORD_ONLY)
              if p.kind is not inspect.Parameter.VAR_KEYWORD else p
              for p in inspect.signature(fn).parameters.values()]
    at = next(i for i, p in enumerate(params) if p.name == "workload") + 1
    spliced = [p for p in params[:at] if p.kind is not inspect.Parameter.VAR_KEYWORD]
    spliced += workload_parameters()
    spliced += [p for p in params[at:] if p.kind is not inspect.Parameter.VAR_KEYWORD]
    # ctx (the typer.Context) stays positional, as typer passes it.
    spliced[0] = spliced[0].replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD)
    fn.__signature__ = inspect.Signature(spliced)  # type: ignore[attr-defined]
    fn.__annotations__ = {p.name: p.annotation for p in spliced} | {"return": None}
    return fn


def workload_option_names() -> tuple[str, ...]:
    return tuple(all_options())


__all__ = ["with_workload_options", "workload_option_names", "workload_parameters"]

"""`--pipeline-arg key=value`: extra keyword arguments of a pipeline call, typed by the pipeline class's
`__call__` signature and checked before a run (one BenchError line naming the argument).

A value takes the first type of the argument's annotation it parses as, in the order None ("none"), bool
("true"/"false"), int, float, a JSON list or object, str. Arguments syncbench sets itself (the prompt, the
images, the size, the steps, the CFG settings, the generator, the output type, the step callback) are
refused with the option that sets them; an argument no command line can spell (a tensor, a generator, a
callable) is refused too. It imports diffusers (seconds) only to read a signature; it calls nothing.
"""

from __future__ import annotations

import inspect
import json
import math
import types
import typing
from collections.abc import Sequence
from typing import Any

from bench.errors import BenchError

# What the harness sets on every call, and where what the adapters set comes from on the command line.
HARNESS = ("generator", "output_type", "return_dict", "callback_on_step_end",
           "callback_on_step_end_tensor_inputs")
OPTION_OF = {"image": "--input-dir or --tasks", "prompt": "--prompt or --tasks",
             "negative_prompt": "--negative-prompt", "true_cfg_scale": "--true-cfg-scale", "height": "--size",
             "width": "--size", "max_area": "--size", "num_inference_steps": "--steps", "generator": "--seed"}
_NONE = ("none", "null")
_BOOL = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def parse(pairs: Sequence[str], pipeline: str, sets: Sequence[str]) -> tuple[tuple[str, Any], ...]:
    """`pairs` ("key=value") as (key, typed value) for a call of the diffusers class `pipeline`, whose
    adapter sets the arguments `sets`. BenchError for a malformed pair, an argument the call does not take
    or syncbench sets, a value of the wrong type, or a key given twice."""
    import diffusers

    params = _arguments(getattr(diffusers, pipeline).__call__)
    settable = [k for k, ann in params.items() if _settable(ann) and k not in sets]
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BenchError(f"--pipeline-arg {pair!r}: expected key=value")
        if key in HARNESS or key in sets:
            how = OPTION_OF.get(key)
            raise BenchError(f"--pipeline-arg {key}: syncbench sets {key} itself" + (f" (use {how})" if how
                                                                                      else ""))
        if key not in params:
            raise BenchError(f"--pipeline-arg {key}: {pipeline} takes no such argument (it takes: "
                             f"{', '.join(settable)})")
        if key not in settable:
            raise BenchError(f"--pipeline-arg {key}: {pipeline}'s {key} ({_name(params[key])}) cannot be "
                             "given on the command line")
        if key in out:
            raise BenchError(f"--pipeline-arg {key} is given twice")
        out[key] = convert(key, raw, params[key])
    return tuple(out.items())


def _arguments(fn: Any) -> dict[str, Any]:
    """The keyword arguments of `fn` but the harness's, with their annotations."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation that does not resolve: the raw ones
        hints = {}
    out = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or name in HARNESS:
            continue
        out[name] = hints.get(name, p.annotation)
    return out


def _settable(ann: Any) -> bool:
    """Whether a command line can give an argument of this annotation something other than None."""
    return any(_spellable(m) for m in _members(ann) if m is not type(None))


def _name(ann: Any) -> str:
    return " | ".join("None" if m is type(None) else m.__name__ if typing.get_origin(m) is None else str(m)
                      for m in _members(ann))


def _members(ann: Any) -> list[Any]:
    """The types of a (possibly union) annotation; an unannotated argument takes a string."""
    if ann is inspect.Parameter.empty or ann is Any:
        return [str]
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(ann) for m in _members(a)]
    return [ann]


def _spellable(m: Any) -> bool:
    """Whether a command line can spell a value of type `m`: None, a scalar, a dict, a list of scalars."""
    if m in (type(None), bool, int, float, str, dict, list, tuple) or typing.get_origin(m) is dict:
        return True
    return typing.get_origin(m) in (list, tuple) and _element(m) in (None, bool, int, float, str)


def convert(key: str, raw: str, ann: Any) -> Any:
    """`raw` as the first member type of `ann` it parses as (the module docstring's order)."""
    members = _members(ann)
    text = raw.strip()
    if type(None) in members and text.lower() in _NONE:
        return None
    if bool in members and text.lower() in _BOOL:
        return _BOOL[text.lower()]
    for kind in (int, float):
        if kind in members:
            try:
                value = kind(text)
            except ValueError:
                continue
            if math.isfinite(value):
                return value
    for m in members:
        origin = typing.get_origin(m) or m
        if origin in (list, tuple, dict) and text[:1] in "[{":
            value = _json(text)
            if isinstance(value, dict) and origin is dict:
                return value
            if isinstance(value, list) and origin is not dict and _elements_fit(value, m):
                return [float(v) if _element(m) is float else v for v in value]
    if str in members:
        return raw
    wanted = _name(ann).replace(" | ", " or ")
    raise BenchError(f"--pipeline-arg {key}={raw}: expected {wanted}")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _element(m: Any) -> Any:
    args = typing.get_args(m)
    return args[0] if typing.get_origin(m) in (list, tuple) and args else None


def _elements_fit(value: Any, m: Any) -> bool:
    """Whether a JSON list's elements are of the list annotation's element type (ints count as floats)."""
    el = _element(m)
    if el is None or isinstance(value, dict):
        return True
    ok = {float: (int, float), int: (int,), str: (str,), bool: (bool,)}.get(el)
    return ok is None or all(isinstance(v, ok) and (el is bool or not isinstance(v, bool)) for v in value)

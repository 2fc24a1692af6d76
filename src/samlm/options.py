"""Options declared once, in dataclass field metadata (as ``transformers``'
``HfArgumentParser`` reads its dataclasses): :func:`option` gives a field its help, choices,
flag and the rules saying when it has an effect (:class:`Needs`); from that declaration

* :func:`add_arguments` writes the command-line arguments (flag, type from the annotation,
  choices, help with the default);
* :func:`check_declared` checks each value's type and choices (``optim/validation.py``'s
  rules) and :func:`check_inert` refuses an option given where it has no effect;
* :func:`marked` lists the fields carrying a mark (e.g. what a grid passes to its cells),
  :func:`same_as` declares a field as another dataclass's (its default, help, rules), and
  :func:`upgrade` maps the old names of renamed fields in saved files to the new ones.

Generic: it knows nothing of samlm's packages (which import it) but the validation rules.
"""

from __future__ import annotations

import argparse
import functools
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any


@dataclass(frozen=True, eq=False)
class Needs:
    """When an option has an effect: ``test(values)`` (the resolved options, by attribute)
    is true. An option given where it is false is refused with ``message``, formatted with
    ``given`` (``--flag value, ...``), ``flags`` (``--flag, ...``), ``has`` (has / have)
    and ``says``: "--lora-r 4 has an effect only with --peft lora"."""

    test: Callable[[Any], bool]
    says: str = ""
    message: str = "{given} {has} an effect only with {says}"


def option(
    default: Any = MISSING,
    *,
    help: str,
    choices: Iterable[Any] | None = None,
    needs: Needs | tuple[Needs, ...] = (),
    flag: str | None = None,
    default_factory: Any = MISSING,
    shown_default: Any = None,
    cli: bool = True,
    old_names: tuple[str, ...] = (),
    **marks: Any,
) -> Any:
    """A dataclass field declared with everything a command line and its checks need:
    ``help``; ``choices``; ``needs``, the rule(s) for when it has an effect; ``flag``
    (default ``--name-with-dashes``); ``shown_default``, the default the help names when
    the field's own is None (e.g. a variant's); ``cli=False`` keeps it off the command
    line; ``old_names``, what saved files and flags called it; ``marks``, free labels read back by
    :func:`marked`."""
    meta = {
        "help": help,
        "choices": tuple(choices) if choices is not None else None,
        "needs": needs if isinstance(needs, tuple) else (needs,),
        "flag": flag,
        "shown_default": shown_default,
        "cli": cli,
        "old_names": old_names,
        **marks,
    }
    return field(default=default, default_factory=default_factory, metadata=meta)


def same_as(cls: type, name: str, *, default: Any = MISSING, **changes: Any) -> Any:
    """A field declared as ``cls``'s field ``name`` (its default, help, choices, rules),
    with ``changes`` to its metadata and, when given, another ``default``."""
    source = _field(cls, name)
    meta = {**source.metadata, **changes}
    if default is MISSING:
        default, factory = source.default, source.default_factory
    else:
        factory = MISSING
    return field(default=default, default_factory=factory, metadata=meta)


def flag(name: str) -> str:
    """The command-line flag of option ``name``: ``lora_r`` -> ``--lora-r``."""
    return "--" + name.replace("_", "-")


def flag_values(values: Mapping[str, Any]) -> str:
    """``--flag value, --flag value`` for each option and value of ``values``."""
    return ", ".join(f"{flag(name)} {value}" for name, value in values.items())


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _hint(cls: type, name: str) -> tuple[Any, bool]:
    """Field ``name``'s annotation without its ``| None``, and whether None is allowed."""
    hint = _hints(cls)[name]
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next(a for a in args if a is not type(None)), type(None) in args
    return hint, False


def kind_of(cls: type, name: str) -> tuple[type, bool]:
    """Field ``name``'s type (``list[int]`` as ``list``) and whether None is allowed."""
    hint, optional = _hint(cls, name)
    return typing.get_origin(hint) or hint, optional


def _item_kind(cls: type, name: str) -> type:
    """The item type of a ``list[...]`` field."""
    return (typing.get_args(_hint(cls, name)[0]) or (str,))[0]


def declared(cls: type) -> list[Field]:
    """The fields of ``cls`` declared with :func:`option` (or :func:`same_as`)."""
    return [f for f in fields(cls) if "help" in f.metadata]


def marked(cls: type, mark: str, value: Any = True) -> tuple[str, ...]:
    """The names of ``cls``'s fields whose metadata ``mark`` is ``value``."""
    return tuple(f.name for f in fields(cls) if f.metadata.get(mark) == value)


def defaults(cls: type) -> dict[str, Any]:
    """Each field's default (what a file saved before the field existed means)."""
    out = {f.name: f.default for f in fields(cls) if f.default is not MISSING}
    factories = {f.name: f.default_factory for f in fields(cls)}
    return {**{n: make() for n, make in factories.items() if make is not MISSING}, **out}


def add_arguments(
    parser: argparse.ArgumentParser | Any,
    cls: type,
    *,
    only: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    with_defaults: bool = False,
    show_defaults: bool = True,
    underscores: bool = False,
) -> None:
    """Add an argument for each of ``cls``'s declared fields (those in ``only``, in its
    order, none of ``exclude``). Without ``with_defaults`` an option not given parses as
    None (a config file's or a preset's value then stands); its help still shows the
    default (``show_defaults``). A bool is ``--flag`` / ``--no-flag``, a list a
    comma-separated value; with ``underscores``, ``--flag_name`` also parses (as the
    Hugging Face example scripts spell their flags)."""
    names = [f.name for f in declared(cls)] if only is None else list(only)
    for name in names:
        if name in exclude:
            continue
        f = _field(cls, name)
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        default = f.default if f.default is not MISSING else None
        if f.default_factory is not MISSING:
            default = f.default_factory()
        text = meta["help"]
        shown = default if meta.get("shown_default") is None else meta["shown_default"]
        if show_defaults and shown is not None:
            text += f" (default: {shown})"
        common = dict(dest=name, default=default if with_defaults else None, help=text)
        # a renamed option's old flags still parse (saved scripts)
        flags = [meta.get("flag") or flag(name), *map(flag, meta.get("old_names", ()))]
        if underscores and "_" in name:
            flags.append("--" + name)
        kind, _ = kind_of(cls, name)
        if kind is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
            continue
        convert: Any = kind
        if kind is list:
            convert = csv_of(_item_kind(cls, name))
        choices = meta.get("choices")
        parser.add_argument(
            *flags,
            type=convert,
            choices=choices if kind is not list else None,
            metavar=None if choices and kind is not list else name.upper(),
            **common,
        )


def csv_of(kind: type) -> Callable[[str], list[Any]]:
    """An argparse type: a comma-separated value as a list of ``kind``."""

    def parse(text: str) -> list[Any]:
        return [kind(x.strip()) for x in text.split(",") if x.strip()]

    return parse


def check_declared(obj: Any) -> None:
    """Each declared field of ``obj`` of its annotated type and among its choices
    (:func:`samlm.optim.validation.of_type`, :func:`~samlm.optim.validation.one_of`)."""
    from .optim.validation import of_type, one_of

    cls = type(obj)
    for f in declared(cls):
        value = getattr(obj, f.name)
        kind, optional = kind_of(cls, f.name)
        of_type(f.name, value, kind, none_ok=optional)
        choices = f.metadata.get("choices")
        if choices and kind is not list:
            one_of(f.name, value, choices, none_ok=optional)


def check_inert(cls: type, values: Any, given: Iterable[str]) -> None:
    """Refuse the options of ``given`` that have no effect with ``values`` (the resolved
    options, read by attribute): for the first rule (in field order) that fails, the
    options it names, in one message."""
    given = set(given)
    failed: dict[Needs, list[str]] = {}
    for f in fields(cls):
        if f.name not in given:
            continue
        for rule in f.metadata.get("needs", ()):
            if not rule.test(values):
                failed.setdefault(rule, []).append(f.name)
    for rule, names in failed.items():
        raise ValueError(
            rule.message.format(
                given=flag_values({n: getattr(values, n) for n in names}),
                flags=", ".join(flag(n) for n in names),
                has="has" if len(names) == 1 else "have",
                says=rule.says,
            )
        )


def changed(obj: Any) -> list[str]:
    """The fields of dataclass ``obj`` whose value is not their plain default."""
    return [
        f.name
        for f in fields(obj)
        if f.default is not MISSING and getattr(obj, f.name) != f.default
    ]


def upgrade(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (a saved file's) with each renamed field's old key (its ``old_names``)
    under its new name; a value under the new name wins."""
    out = dict(values)
    for f in fields(cls):
        for old in f.metadata.get("old_names", ()):
            if old in out:
                value = out.pop(old)
                out.setdefault(f.name, value)
    return out


def _field(cls: type, name: str) -> Field:
    for f in fields(cls):
        if f.name == name:
            return f
    raise KeyError(f"{cls.__name__} has no field {name!r}")

"""Frozen records: ``@dataclass(frozen=True)`` without its cost at import.

CPython 3.11's dataclass() writes each class's __init__, __repr__, __eq__,
__hash__, __setattr__ and __delattr__ as source text and exec()s each one: about
4 M instructions a class, and an idle audit defines some 26 record classes, a
quarter of its start-up. `record` lets dataclasses find the fields (so
fields(), replace(), asdict(), __match_args__ and mypy see a dataclass), then
gives the class the methods dataclass would, behaving the same: repr, eq, hash
and the frozen guards as closures over the field names (the field tuples made by
operator.attrgetter, in C), and __init__ compiled from the same source dataclass
writes, once, the first time the class is instantiated. The one visible
difference is ``__dataclass_params__``, which reports the flags dataclass() was
called with (no init, repr, eq or frozen). ``tests/model/test_record.py``
compares every method with ``@dataclass(frozen=True)``'s.
"""

from __future__ import annotations

import dataclasses
import reprlib
import sys
from collections.abc import Callable
from dataclasses import MISSING, Field, FrozenInstanceError, field
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform, overload

T = TypeVar("T", bound=type)


class _Factory:
    """The default of a parameter whose field has a default_factory (dataclass shows it so)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


@overload
def record(cls: T, /) -> T: ...
@overload
def record(*, eq: bool = True) -> Callable[[T], T]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def record(cls: T | None = None, /, *, eq: bool = True) -> T | Callable[[T], T]:
    """Make ``cls`` a frozen dataclass (``eq=False``: identity equality, as dataclass's)."""

    def wrap(cls: T) -> T:
        return _make_record(cls, eq)

    return wrap if cls is None else wrap(cls)


def _make_record(cls: T, eq: bool) -> T:
    if not cls.__doc__:  # dataclass would write one from the signature, here empty
        raise TypeError(f"{cls.__qualname__}: a record needs a docstring")
    own = dict(cls.__dict__)
    # dataclass's rule: a __hash__ written in the class is kept (an __eq__ alone sets it to None)
    explicit_hash = own.get("__hash__", MISSING)
    keeps_hash = not (explicit_hash is MISSING or (explicit_hash is None and "__eq__" in own))
    dataclasses.dataclass(cls, init=False, repr=False, eq=False)
    fields = dataclasses.fields(cls)
    for one in fields:
        if not one.init or one.kw_only:
            raise TypeError(f"{cls.__qualname__}.{one.name}: a record takes every field in order")
    names = tuple(one.name for one in fields)
    owner: type = cls

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(owner, self).__setattr__(name, value)  # type: ignore[arg-type]

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(owner, self).__delattr__(name)  # type: ignore[arg-type]

    methods: dict[str, Callable[..., Any]] = {
        "__init__": _lazy_init(cls, fields),
        "__repr__": _repr([one.name for one in fields if one.repr]),
    }
    if eq:
        compared = _values([one.name for one in fields if one.compare])
        hashed = _values([one.name for one in fields if _hashed(one)])

        def __eq__(self: Any, other: Any) -> Any:
            if other.__class__ is self.__class__:
                return compared(self) == compared(other)
            return NotImplemented

        def __hash__(self: Any) -> int:
            return hash(hashed(self))

        methods["__eq__"] = __eq__
        if not keeps_hash:
            cls.__hash__ = __hash__  # type: ignore[assignment]
            _name(cls, __hash__)
    for name, method in methods.items():
        if name not in own:  # dataclass keeps an __init__, __repr__ or __eq__ the class wrote
            setattr(cls, name, method)
            _name(cls, method)
    for method in (__setattr__, __delattr__):
        if method.__name__ in own:
            raise TypeError(f"Cannot overwrite attribute {method.__name__} in class {cls.__name__}")
        setattr(cls, method.__name__, method)
        _name(cls, method)
    return cls


def _name(cls: type, method: Callable[..., Any]) -> None:
    method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"


def _hashed(one: Field[Any]) -> bool:
    return one.compare if one.hash is None else one.hash


def _values(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """Return a function giving an instance's ``names`` as a tuple (attrgetter's, in C)."""
    if not names:
        return lambda _self: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda self: (one(self),)
    return attrgetter(*names)


def _repr(names: list[str]) -> Callable[[Any], str]:
    @reprlib.recursive_repr("...")
    def __repr__(self: Any) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{self.__class__.__qualname__}({shown})"

    return __repr__


def _lazy_init(cls: type, fields: tuple[Field[Any], ...]) -> Callable[..., None]:
    """Return an __init__ that compiles the real one on first use, installs it, and runs it."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        compiled = cls.__dict__["__init__"]
        if compiled is __init__:
            compiled = _compiled_init(cls, fields)
            _name(cls, compiled)
            setattr(cls, "__init__", compiled)  # noqa: B010 (mypy refuses cls.__init__ = ...)
        compiled(self, *args, **kwargs)

    return __init__


def _compiled_init(cls: type, fields: tuple[Field[Any], ...]) -> Callable[..., None]:
    """Return the __init__ dataclass(frozen=True) writes for ``fields``."""
    self_name = "__dataclass_self__" if "self" in {one.name for one in fields} else "self"
    scope: dict[str, Any] = {"__dataclass_factory__": _FACTORY, "__dataclass_object__": object}
    params, body = [self_name], []
    for one in fields:
        value = one.name
        if one.default is not MISSING:
            scope[f"__dataclass_dflt_{one.name}__"] = one.default
            params.append(f"{one.name}=__dataclass_dflt_{one.name}__")
        elif one.default_factory is not MISSING:
            scope[f"__dataclass_dflt_{one.name}__"] = one.default_factory
            params.append(f"{one.name}=__dataclass_factory__")
            value = (
                f"__dataclass_dflt_{one.name}__() "
                f"if {one.name} is __dataclass_factory__ else {one.name}"
            )
        else:
            params.append(one.name)
        body.append(f"  __dataclass_object__.__setattr__({self_name}, {one.name!r}, {value})")
    if hasattr(cls, "__post_init__"):
        body.append(f"  {self_name}.__post_init__()")
    source = (
        f"def __create_fn__({', '.join(scope)}):\n"
        f" def __init__({', '.join(params)}):\n" + ("\n".join(body) or "  pass") + "\n"
        " return __init__"
    )
    module = sys.modules.get(cls.__module__)
    namespace: dict[str, Any] = {}
    exec(source, module.__dict__ if module is not None else {}, namespace)
    init: Callable[..., None] = namespace["__create_fn__"](**scope)
    init.__annotations__ = {one.name: one.type for one in fields} | {"return": None}
    return init

"""`record` behaves as `@dataclass(frozen=True)`: each class is defined twice and compared."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tcptune.model.record import record


def _twins(
    decorate: Callable[[type], type],
) -> tuple[type, type, type, type, type]:
    class Plain:
        """Two fields, a default and a factory."""

        name: str
        count: int
        port: int = 80
        tags: list[str] = field(default_factory=list)

    class Empty:
        """No field at all."""

    class One:
        """One field: its tuples still are tuples."""

        value: float

    class Checked:
        """A __post_init__ that normalizes through object.__setattr__ and may refuse."""

        low: int
        high: int = 10

        def __post_init__(self) -> None:
            if self.low > self.high:
                raise ValueError("low above high")
            object.__setattr__(self, "high", self.high + 0)

    class Selfish:
        """A field named self."""

        self: int

    return (
        decorate(Plain),
        decorate(Empty),
        decorate(One),
        decorate(Checked),
        decorate(Selfish),
    )


RECORDS = _twins(record)
DATACLASSES = _twins(dataclass(frozen=True))


def _both(index: int, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    return RECORDS[index](*args, **kwargs), DATACLASSES[index](*args, **kwargs)


@pytest.mark.parametrize(
    ("index", "args", "kwargs"),
    [
        (0, ("a", 1), {}),
        (0, ("a",), {"count": 2, "port": 443, "tags": ["x"]}),
        (1, (), {}),
        (2, (float("nan"),), {}),
        (3, (1,), {}),
        (4, (3,), {}),
    ],
)
def test_repr_eq_hash_fields_and_replace_match(
    index: int, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    ours, theirs = _both(index, *args, **kwargs)
    again, _ = _both(index, *args, **kwargs)
    assert repr(ours) == repr(theirs)
    assert (ours == ours) is (theirs == theirs)  # the same object, even holding nan
    assert (ours == again) is (theirs == _both(index, *args, **kwargs)[1])
    assert (ours != again) is (theirs != _both(index, *args, **kwargs)[1])
    assert ours.__eq__(theirs) is NotImplemented  # another class, however alike
    if index != 0:  # Plain holds a list, so hashing it fails the same way below
        assert hash(ours) == hash(theirs)
    names = [one.name for one in dataclasses.fields(theirs)]
    assert [one.name for one in dataclasses.fields(ours)] == names
    assert dataclasses.asdict(ours) == dataclasses.asdict(theirs)
    assert type(ours).__match_args__ == type(theirs).__match_args__
    assert dataclasses.is_dataclass(ours)
    assert dataclasses.replace(ours) == ours
    assert repr(copy.deepcopy(ours)) == repr(ours)


def test_signature_and_argument_errors_match() -> None:
    for ours, theirs in zip(RECORDS, DATACLASSES, strict=True):
        with pytest.raises(TypeError) as ours_error:
            ours(1, 2, 3, 4, 5, 6)
        with pytest.raises(TypeError) as theirs_error:
            theirs(1, 2, 3, 4, 5, 6)
        assert str(ours_error.value) == str(theirs_error.value)
        assert str(inspect.signature(ours)) == str(inspect.signature(theirs))
        assert ours.__init__.__qualname__ == theirs.__init__.__qualname__
    with pytest.raises(TypeError) as ours_error:
        RECORDS[0]()
    with pytest.raises(TypeError) as theirs_error:
        DATACLASSES[0]()
    assert str(ours_error.value) == str(theirs_error.value)


def test_frozen_and_post_init_match() -> None:
    ours, theirs = _both(0, "a", 1)
    for target in (ours, theirs):
        with pytest.raises(FrozenInstanceError, match="cannot assign to field 'count'"):
            target.count = 2
        with pytest.raises(FrozenInstanceError, match="cannot delete field 'name'"):
            del target.name
        with pytest.raises(FrozenInstanceError, match="cannot assign to field 'other'"):
            target.other = 1
    assert _both(0, "a", 1)[0].tags is not _both(0, "a", 1)[0].tags  # a fresh list each
    for checked in (RECORDS[3], DATACLASSES[3]):
        with pytest.raises(ValueError, match="low above high"):
            checked(11)
    with pytest.raises(TypeError):
        hash(ours)
    with pytest.raises(TypeError):
        hash(theirs)


@record
class Pickled:
    """Defined at module level, so pickle finds it."""

    name: str
    port: int = 80


def test_pickle_round_trips() -> None:
    ours = Pickled("a")
    assert pickle.loads(pickle.dumps(ours)) == ours
    assert repr(pickle.loads(pickle.dumps(ours))) == "Pickled(name='a', port=80)"


def test_a_recursive_repr_stops_as_dataclass_does() -> None:
    ours, theirs = _both(0, "a", 1)
    ours.tags.append(ours)  # type: ignore[arg-type]
    theirs.tags.append(theirs)
    assert repr(ours) == repr(theirs)


def test_eq_false_keeps_identity_and_a_written_method_wins() -> None:
    @record(eq=False)
    class Same:
        """Compared by identity."""

        value: int

    @record
    class Written:
        """Its own repr and hash stay."""

        value: int

        def __repr__(self) -> str:
            return "mine"

        def __hash__(self) -> int:
            return 7

    one = Same(1)
    assert one == one and Same(1) != Same(1)
    assert repr(Written(1)) == "mine" and hash(Written(1)) == 7
    assert Written(1) == Written(1)


def test_fields_it_cannot_take_are_refused() -> None:
    class Later:
        """Not every field in __init__."""

        value: int = field(init=False, default=0)

    class Undocumented:
        value: int

    for cls in (Later, Undocumented):
        with pytest.raises(TypeError):
            record(cls)


def test_tcptune_declares_its_records_with_record() -> None:
    """A plain @dataclass would bring back its exec()s at import: every record uses `record`."""
    package = Path(__file__).resolve().parents[2] / "tcptune"
    plain = [
        str(path.relative_to(package))
        for path in sorted(package.rglob("*.py"))
        if path.name != "record.py" and "@dataclass" in path.read_text(encoding="utf-8")
    ]
    assert plain == []

"""One validating mechanism for settings: pydantic types, and one line for the user when a value is wrong.

Settings (the typed generation request, sampling configs) declare each field's type and range once, with
``typing.Annotated`` and pydantic's ``Field``/``Strict``; pydantic checks them when the object is built.
:func:`one_line` turns pydantic's multi-line ``ValidationError`` into the one line openimagen's errors promise,
with a dotted field name and the value given, e.g. ``steps[1] should be greater than or equal to 1, got 0``.

A value error raised by a field validator (for example :class:`~openimagen.errors.UnknownNameError` for an
unknown sampler name, which lists the valid ones) keeps its type where it is a kind of the error asked for (an
``InvalidArgumentError`` for requests; config files raise ``ConfigError`` throughout).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Callable, Optional, Type, TypeVar, Union, get_args, get_origin

from pydantic import BeforeValidator, Field, Strict, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError
from typing_extensions import is_typeddict

from openimagen.errors import OpenImagenError

_PREFIXES = ("Value error, ", "Assertion failed, ")
T = TypeVar("T")


_PLAIN_TAGS = ("bool", "int", "float", "str")     # a union member that is a plain, unconstrained type


def _is_tag(part) -> bool:
    """pydantic's name for a union member in an error location ('constrained-int', 'tuple[...]', 'function-after[...]',
    or a plain type such as 'bool'); field names never contain '-' or '[' and are never a bare type name."""
    return isinstance(part, str) and ("-" in part or "[" in part or part in _PLAIN_TAGS)


def _path(loc: tuple, data: Any = None) -> str:
    """('steps', 'tuple[constrained-int, ...]', 1) -> 'steps[1]': dotted fields, [i] indices, union tags dropped. A
    part that is a key of ``data`` (what the user gave) at that point is a key even if it looks like a tag
    (``gan-sr``); a key that is not an identifier is written ``['...']`` with repr, so a newline in it stays on
    the error's one line."""
    out, node = "", data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif (isinstance(node, dict) and part in node) or not _is_tag(part):
            name = str(part)
            out += (f".{name}" if out else name) if name.isidentifier() else f"[{name!r}]"
        else:
            continue                                   # a union member's tag: not in the data, not in the path
        node = _value_at(node, (part,))
    return out


def _value_at(data: Any, loc: tuple) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _members(kind: Any) -> list:
    """The types ``kind`` may be: Annotated stripped, a Union (Optional) split into its members, None dropped."""
    while get_origin(kind) is Annotated:
        kind = get_args(kind)[0]
    if get_origin(kind) is Union or type(kind).__name__ == "UnionType":
        return [m for arg in get_args(kind) if arg is not type(None) for m in _members(arg)]
    return [kind]


def _hints(kind: Any) -> Optional[dict]:
    """The field types of a dataclass, TypedDict or pydantic model ``kind``; None for any other type."""
    if dataclasses.is_dataclass(kind) or is_typeddict(kind) or hasattr(kind, "model_fields"):
        try:
            return typing.get_type_hints(kind, include_extras=True)
        except (NameError, TypeError):
            return None
    return None


def _descend(kind: Any, part: Any) -> Any:
    """The type at key or index ``part`` of a value of type ``kind``; None where the type does not say."""
    for member in _members(kind):
        hints, origin, args = _hints(member), get_origin(member), get_args(member)
        if hints is not None and isinstance(part, str) and part in hints:
            return hints[part]
        if isinstance(part, int) and origin is not None and isinstance(origin, type) and \
                issubclass(origin, Sequence) and not issubclass(origin, str) and args:
            return args[0] if len(args) == 1 or args[-1] is Ellipsis else (args[part] if part < len(args) else None)
        if isinstance(part, str) and origin is not None and isinstance(origin, type) and issubclass(origin, Mapping) \
                and len(args) == 2:
            return args[1]
    return None


def valid_keys(kind: Any, loc: tuple, data: Any = None) -> Optional[list[str]]:
    """The field names allowed at the container holding an unknown key at ``loc`` (a pydantic error location,
    union tags skipped as in :func:`_path`) of a value of type ``kind`` (a dataclass, TypedDict or pydantic model,
    possibly nested in Optional, sequences and mappings); None when the type does not say."""
    node = data
    for part in loc[:-1]:
        if _is_tag(part) and not (isinstance(node, dict) and part in node):
            continue
        kind, node = _descend(kind, part), _value_at(node, (part,))
        if kind is None:
            return None
    for member in _members(kind):
        hints = _hints(member)
        if hints is not None:
            return sorted(hints)
    return None


def _pick(errors: list[dict], data: Any) -> dict:
    """The error to report. For a value that may be one item or a sequence (a per-stage setting), pydantic reports
    a failure for each union member; report the member matching what the user gave."""
    for err in errors:
        tags = [p for p in err["loc"] if _is_tag(p)]
        if not tags:
            return err
        field = tuple(p for p in err["loc"][:err["loc"].index(tags[0])] if not _is_tag(p))
        given_seq = isinstance(_value_at(data, field), (list, tuple))
        if given_seq == tags[0].startswith(("tuple[", "list[")):
            return err
    return errors[0]


def one_line(e: ValidationError, data: Any = None, root: str = "",
             kind: Any = None) -> tuple[str, BaseException | None]:
    """The first error of ``e`` as one line (and the original exception when a validator raised one of ours).
    ``root``: the name of the value validated, put before the field path (``stage.resolution``); ``kind``: its
    type, so that an unknown key's error lists the valid ones (:func:`valid_keys`)."""
    return errors_one_line(e.errors(), data, root, kind)


def errors_one_line(errors: list[dict], data: Any = None, root: str = "",
                    kind: Any = None) -> tuple[str, BaseException | None]:
    """:func:`one_line` for a list of pydantic error dicts (what FastAPI's ``RequestValidationError`` holds)."""
    err = _pick(list(errors), data)
    path, msg = _path(err["loc"], data), err["msg"]
    path = f"{root}.{path}" if root and path and not path.startswith("[") else root + path
    cause = (err.get("ctx") or {}).get("error")
    for prefix in _PREFIXES:
        msg = msg.removeprefix(prefix)
    first, _, rest = msg.partition(" ")
    if rest.startswith("should") and first in ("Input", "Tuple", "List", "String", "Value", "Dictionary"):
        msg = f"{path or 'value'} {rest.replace(' after validation', '')}"
    elif msg.startswith("Extra inputs are not permitted") or err["type"] == "unexpected_keyword_argument":
        names = valid_keys(kind, tuple(err["loc"]), data) if kind is not None else None
        return f"unknown field {path!r}" + (f" (valid: {', '.join(names)})" if names else ""), None
    elif msg == "Field required":
        return f"{path} is required", None
    elif path:
        msg = f"{path}: {msg}"
    if err["type"] not in ("missing", "value_error") and "input" in err:
        got = repr(err["input"])
        msg += f", got {got if len(got) <= 80 else got[:77] + '...'}"
    return msg, cause if isinstance(cause, OpenImagenError) else None


def raise_one_line(e: ValidationError, error_cls: Type[OpenImagenError], data: Any = None, what: str = "",
                   root: str = "", kind: Any = None):
    """Raise ``e`` as ``error_cls`` (or as the openimagen error a validator raised) with a one-line message,
    prefixed by ``what`` (the file or object) and with ``root`` before the field path; ``kind``: the type
    validated, so that an unknown key's error lists the valid ones."""
    msg, cause = one_line(e, data, root, kind)
    msg = f"{what}: {msg}" if what else msg
    if isinstance(cause, error_cls):  # keep the validator's error type (e.g. UnknownNameError), with the field's name
        cause.args = (msg,)
        raise cause from None
    raise error_cls(msg) from None


def checked(build: Callable[[], T], error_cls: Type[OpenImagenError], data: Any = None, what: str = "",
            root: str = "", kind: Any = None) -> T:
    """``build()``, with a pydantic ``ValidationError`` raised as ``error_cls`` in one line (see :func:`raise_one_line`);
    ``data`` is what the user gave (to report the right member of a per-stage union), ``kind`` the type built."""
    try:
        return build()
    except ValidationError as e:
        raise_one_line(e, error_cls, data, what, root, kind)


def check_value(kind: Any, value: Any, name: str, error_cls: Type[OpenImagenError]):
    """Validate one ``value`` against the annotated type ``kind``; the one-line error names it ``name``."""
    return checked(lambda: TypeAdapter(kind).validate_python(value), error_cls, value, root=name, kind=kind)


def _plain_number(value: Any) -> Any:
    """NumPy and other ``numbers.Real`` scalars as Python ``int``/``float`` (bools and strings left to fail); NaN and
    inf are refused here, before any range check, so the message says what is wrong with them."""
    if isinstance(value, (bool, str)) or not isinstance(value, numbers.Real):
        return value
    value = int(value) if isinstance(value, numbers.Integral) else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("finite_number", "Input should be a finite number")
    return value


PlainNumber = BeforeValidator(_plain_number)   # in an Annotated int/float after Field(...) (so JSON schemas keep minimum/maximum) and before Strict(): np.float32(2) is 2.0


# The counts every config and request shares (NumPy integers accepted, bools and strings refused).
PositiveInt = Annotated[int, Field(ge=1), PlainNumber, Strict()]
NonNegativeInt = Annotated[int, Field(ge=0), PlainNumber, Strict()]

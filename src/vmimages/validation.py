"""Request parameters: a declared spec per action, checked in one pass with precise error codes.

Rules (docs/errors.md): an unknown name is an error, never ignored; `null` means "not given";
a JSON number that is a whole number (`20`, `20.0`, `1e3`) counts as an integer.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Final

from vmimages.errors import ApiError, Code, json_type, shown

STRING: Final = "String"
INTEGER: Final = "Integer"
STRING_ARRAY: Final = "Array of String"
BOOLEAN: Final = "Boolean"
NUMBER: Final[tuple[type, ...]] = (int, float)  # one tuple object, compiled (tally.py says why)


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: str = STRING
    required: bool = False
    choices: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    min_length: int | None = None  # characters of a string, items of an array
    max_length: int | None = None
    item_max_length: int | None = None  # characters of each array item
    pattern: re.Pattern[str] | None = None
    pattern_text: str | None = None  # the pattern in words, for the error message
    default: Any = None
    any_case: bool = False  # a choice given in another case counts, answered in its own form


Spec = dict[str, Param]  # an action's parameters by name, in declared order


def spec(*params: Param) -> Spec:
    return {param.name: param for param in params}


def validate(body: dict[str, Any], params: Spec, action: str) -> dict[str, Any]:
    """The body's parameters, checked against the spec in its declared order (so the answer
    names the first problem, docs/errors.md), with defaults filled in."""
    for name in body:
        if name not in params:
            raise ApiError(Code.INVALID_PARAMETER_VALUE, _unknown(name, params, action))
    values: dict[str, Any] = {}
    for name, param in params.items():
        raw = body.get(name)
        if raw is None:
            if param.required:
                raise ApiError(Code.MISSING_PARAMETER, f"The parameter `{name}` is required.")
            values[name] = param.default
        else:
            values[name] = _check(param, raw)
    return values


def _unknown(name: str, params: Spec, action: str) -> str:
    message = f"The parameter `{shown(name)}` is not a parameter of {action}."
    close = difflib.get_close_matches(name, list(params), n=1, cutoff=0.6)
    if not close:
        close = [known for known in params if known.lower() == name.lower()]
    if close:
        message += f" Did you mean `{close[0]}`?"
    return message + f" Valid parameters: {', '.join(params)}."


def _type_error(param: Param, value: Any) -> ApiError:
    return ApiError(
        Code.INVALID_PARAMETER_TYPE,
        f"The parameter `{param.name}` must be of type {param.kind}, got a {json_type(value)}.",
    )


def _check(param: Param, value: Any) -> Any:
    if param.kind == INTEGER:
        return _check_integer(param, value)
    if param.kind == BOOLEAN:
        if not isinstance(value, bool):
            raise _type_error(param, value)
        return value
    if param.kind == STRING:
        if not isinstance(value, str):
            raise _type_error(param, value)
        return _check_string(param, param.name, value, param.min_length, param.max_length)
    if not isinstance(value, list):
        raise _type_error(param, value)
    _check_length(param.name, len(value), param.min_length, param.max_length, "items")
    items = []
    for i, item in enumerate(value):
        label = f"{param.name}[{i}]"
        if not isinstance(item, str):
            raise ApiError(
                Code.INVALID_PARAMETER_TYPE,
                f"The parameter `{label}` must be of type String, got a {json_type(item)}.",
            )
        items.append(_check_string(param, label, item, 1, param.item_max_length))
    return items


def _check_integer(param: Param, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, NUMBER):
        raise _type_error(param, value)
    if isinstance(value, float):
        if not value.is_integer():
            raise _type_error(param, value)
        value = int(value)
    if param.minimum is not None and value < param.minimum:
        raise ApiError(
            Code.INVALID_PARAMETER_LESS_MINIMUM,
            f"The parameter `{param.name}` must be at least {param.minimum}, got {value}.",
        )
    if param.maximum is not None and value > param.maximum:
        raise ApiError(
            Code.INVALID_PARAMETER_EXCEED_MAXIMUM,
            f"The parameter `{param.name}` must be at most {param.maximum}, got {value}.",
        )
    return int(value)


# Control characters have no place in a parameter (PostgreSQL cannot even store NUL); tab and
# line breaks may stand in a description.
CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _check_string(
    param: Param, label: str, value: str, min_length: int | None, max_length: int | None
) -> str:
    _check_length(label, len(value), min_length, max_length, "characters")
    if CONTROL.search(value):
        raise ApiError(
            Code.INVALID_PARAMETER_VALUE,
            f"The parameter `{label}` must not contain control characters (such as NUL).",
        )
    if param.choices is not None and value not in param.choices:
        if param.any_case:
            for choice in param.choices:
                if choice.casefold() == value.casefold():
                    return choice
        raise ApiError(
            Code.INVALID_PARAMETER_VALUE,
            f"The parameter `{label}` must be one of {', '.join(param.choices)},"
            f" got `{shown(value)}`.",
        )
    if param.pattern is not None and not param.pattern.fullmatch(value):
        raise ApiError(
            Code.INVALID_PARAMETER_PATTERN_ERROR,
            f"The parameter `{label}` must be {param.pattern_text}."
            if param.pattern_text
            else f"The parameter `{label}` does not match the pattern {param.pattern.pattern}.",
        )
    return value


def _check_length(
    label: str, length: int, min_length: int | None, max_length: int | None, unit: str
) -> None:
    if min_length is not None and length < min_length:
        raise ApiError(
            Code.INVALID_PARAMETER_LESS_LENGTH,
            f"The parameter `{label}` must have at least {min_length} {unit}, got {length}.",
        )
    if max_length is not None and length > max_length:
        raise ApiError(
            Code.INVALID_PARAMETER_EXCEED_LENGTH,
            f"The parameter `{label}` must have at most {max_length} {unit}, got {length}.",
        )

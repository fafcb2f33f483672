"""Shared API building blocks: strict models and validated text types."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class StrictModel(BaseModel):
    """Refuses unknown fields: a typo in a request is an error, not a silent no-op."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)


def _no_control_chars(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


def _single_line(value: str) -> str:
    value = _no_control_chars(value).strip()
    if "\n" in value or "\r" in value or "\t" in value:
        raise ValueError("must be a single line")
    if not value:
        raise ValueError("must not be blank")
    return value


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_single_line)]
Text = Annotated[str, Field(max_length=20_000), AfterValidator(_no_control_chars)]
Username = Annotated[str, Field(min_length=3, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")]

"""The trigger form's values as the workflows take them: codes, dates, free text kept with a change, and
amounts as a checker reads them. A value that does not fit is a RequestError naming the parameter."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal

from benefitflow.core.errors import RequestError

CODE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,29}$")
MAX_REASON = 500


def code_of(options: Mapping[str, object], name: str) -> str:
    """A plan's, cycle's or payroll's code: 1 to 30 letters, digits, '.', '_' or '-'."""
    value = options.get(name)
    if not isinstance(value, str) or not CODE_PATTERN.match(value.strip()):
        raise RequestError(f"{name}: a code of 1 to 30 letters, digits, '.', '_' or '-' is required, "
                           f"not {str(value)[:40]!r}")
    return value.strip()


def date_of(options: Mapping[str, object], name: str) -> date:
    value = options.get(name)
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise RequestError(f"{name}: not a date (YYYY-MM-DD): {str(value)[:40]!r}") from None


def required_text(options: Mapping[str, object], name: str, max_length: int, missing: str) -> str:
    """A free-text parameter kept with a change (a reason, a comment): present, not blank, not too long."""
    value = options.get(name)
    if not isinstance(value, str) or not value.strip():
        raise RequestError(missing)
    if len(value) > max_length:
        raise RequestError(f"the {name} is longer than {max_length} characters")
    return value.strip()


def reason_of(options: Mapping[str, object]) -> str:
    """The `reason` kept with every beneficiary or bill a change touches."""
    return required_text(options, "reason", MAX_REASON, "give a reason: it is kept with every change")


def money(amount: Decimal | None, currency: str | None) -> str | None:
    """An amount as a checker reads it: 12,345.67 KES."""
    return None if amount is None else f"{amount:,.2f} {currency or ''}".strip()

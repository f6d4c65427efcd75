"""A payment provider's answers to a payroll file, simulated: for the demo, the bench and the tests.

The provider sends the exported payroll file back with `Paid` and `Receipt` filled, and often
`Amount Paid` and `Paid On` added. The copy is streamed row by row (a million rows never sit in
memory); `answer(row_number, row)` says which columns the provider fills or changes in each row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO, TextIO

Answer = Callable[[int, dict[str, str]], Mapping[str, str]]
ADDED_COLUMNS = ("Amount Paid", "Paid On")


def write_answers(payroll_file: Path | BinaryIO, target: Path, answer: Answer,
                  added_columns: Sequence[str] = ADDED_COLUMNS) -> int:
    """Write the provider's filled copy of `payroll_file` (a path, or a file opened for reading) to `target`;
    returns the rows written."""
    rows = 0
    with _text(payroll_file) as source, target.open("w", encoding="utf-8", newline="") as sink:
        reader = csv.DictReader(source)
        header = list(reader.fieldnames or [])
        writer = csv.DictWriter(sink, fieldnames=[*header, *(c for c in added_columns if c not in header)],
                                lineterminator="\n")
        writer.writeheader()
        for rows, row in enumerate(reader, start=1):
            writer.writerow({**row, **answer(rows, row)})
    return rows


def paid(row: Mapping[str, str], receipt: str, paid_on: str) -> dict[str, str]:
    """A payment made: the amount due paid on `paid_on`, with the provider's receipt."""
    return {"Paid": "Yes", "Receipt": receipt, "Amount Paid": row["Amount"], "Paid On": paid_on}


def unpaid() -> dict[str, str]:
    return {"Paid": "No", "Receipt": "", "Amount Paid": "", "Paid On": ""}


def _text(payroll_file: Path | BinaryIO) -> TextIO:
    if isinstance(payroll_file, Path):
        return payroll_file.open(encoding="utf-8", newline="")
    return io.TextIOWrapper(payroll_file, encoding="utf-8", newline="")

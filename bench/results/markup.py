"""Tables as Markdown and HTML text: the one place that writes `| a | b |` rows and `<table>`
elements, for the leaderboards, the report, the calibration table and the experiments' write-ups.
(pandas' `to_markdown` would need `tabulate`, which bench does not install; these are short.)"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:  # only annotations: `bench perf` and `bench check` print tables without pandas
    import pandas as pd


def _cell(value: Any) -> str:
    # a | inside a cell would end it; a newline would end the row
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_row(cells: Sequence[Any]) -> str:
    """One `| a | b |` line: for tables printed a row at a time as their rows are measured."""
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def markdown_head(header: Sequence[Any]) -> str:
    """The header row and the `|---|` rule under it."""
    return markdown_row(header) + "\n|" + "---|" * len(header)


def markdown(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table: a header row, the `|---|` rule, one line per row."""
    return "\n".join([markdown_head(header), *(markdown_row(row) for row in rows)])


def markdown_frame(frame: pd.DataFrame) -> str:
    """`markdown` of a DataFrame's columns and rows (its index left out)."""
    return markdown(list(frame.columns), list(frame.itertuples(index=False)))


def html_table(frame: pd.DataFrame, cell_class: Callable[[str, Any], str] | None = None) -> str:
    """A plain HTML table of a DataFrame (index left out, every cell escaped); `cell_class(column,
    value)` may name a CSS class for a cell, e.g. to colour verdicts."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for col, value in zip(frame.columns, row, strict=True):
            cls = cell_class(col, value) if cell_class else ""
            attr = f" class='{cls}'" if cls else ""
            cells.append(f"<td{attr}>{html.escape(str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

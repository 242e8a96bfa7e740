"""The terminal view of ``paysim fit``: one row per label, sample beside fit; where that does not
fit the terminal, one narrow table per label (quantities down), so no number is cut."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paysim.fit.model import LabelFit

COLUMNS = ("label", "count", "rate /s", "profile", "service", "mean", "p50", "p99", "KS", "errors",
           "in flight (Little / measured)")


def fit_tables(fits: dict[str, LabelFit], console: Console) -> list[Table]:
    """The wide table if it fits ``console``'s width, else one two-column table per label."""
    wide = fit_table(fits)
    # squeezed below its natural width, rich wraps and then cuts cells (``1,9…``): only whole rows are shown
    if console.measure(wide, options=console.options.update_width(10_000)).maximum <= console.width:
        return [wide]
    tables = []
    for row in _cells(wide):
        table = Table(title=f"{row[0]} (times in ms; fit / sample)")
        table.add_column("quantity")
        table.add_column("value", justify="right")
        for name, cell in zip(COLUMNS[1:], row[1:]):
            table.add_row(name, cell)
        tables.append(table)
    return tables


def _cells(table: Table) -> list[list[str]]:
    """The table's cells row by row (as markup strings)."""
    columns = [list(column.cells) for column in table.columns]
    return [list(row) for row in zip(*columns)]


def fit_table(fits: dict[str, LabelFit]) -> Table:
    table = Table(title="fitted per label (times in ms; fit / sample)")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("label", "profile", "service") else "right")
    for label, fit in fits.items():
        service = fit.service
        profile = " → ".join(f"{p.rate:.3g} @{p.start_s:g}s" for p in fit.profile) if len(fit.profile) > 1 else "constant"
        pair = [f"{service.fitted(what) * 1000:.4g} / {getattr(service, what) * 1000:.4g}" for what in ("mean", "p50", "p99")]
        ks = f"{service.chosen.ks:.4f}" if service.chosen else "-"
        check = "" if fit.littles_law_holds else " ✗"
        table.add_row(escape(label), f"{fit.count:,}", f"{fit.rate:.4g}", profile, service.dist, *pair, ks,
                      f"{fit.error_rate:.3%}", f"{fit.concurrency:.3g} / {fit.overlap.mean:.3g}{check}")
    return table

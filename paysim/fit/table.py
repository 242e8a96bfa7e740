"""The terminal view of ``paysim fit``: one row per label, sample beside fit."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from paysim.fit.model import LabelFit


def fit_table(fits: dict[str, LabelFit]) -> Table:
    table = Table(title="fitted per label (times in ms; fit / sample)")
    for column in ("label", "count", "rate /s", "profile", "service", "mean", "p50", "p99", "KS",
                   "errors", "in flight (Little / measured)"):
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

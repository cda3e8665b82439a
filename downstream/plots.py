"""Matplotlib plots (every function takes ``ax=None`` and returns the Axes).

Conventions: compute on a log x-axis labelled with its unit; scores in percent; rates that span
decades (tiny pass rates) on a log y-axis; held-out values as black stars; forecasts with their
90% interval; targets ordered by compute; legends legible at README size.

Examples
--------
>>> import matplotlib; matplotlib.use("Agg")
>>> import numpy as np
>>> from downstream.fit.regressor import ScalingLawRegressor
>>> x = np.logspace(0, 3, 6); y = 2 + 3 * x ** -0.4
>>> ax = ScalingLawRegressor(law="power", n_bootstrap=0).fit(x, y).plot(x, y)
>>> ax.get_xlabel()
'training compute (FLOPs)'
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_fit", "plot_backtest_task", "save_backtest_plots", "plot_clusters",
           "plot_store_forecast", "plot_item_diagnostics", "plot_pass_at_k"]

LEGEND = 8


def _axes(ax, size=(6.4, 4.4)):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=size)
    return ax


def _spans_decades(values, decades: float = 1.5) -> bool:
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    return len(v) > 1 and np.log10(v.max() / v.min()) > decades


def plot_fit(est, X=None, y=None, *, ax=None, targets=None, actual=None, alpha=0.1, label=None,
             groups=None, xlabel="training compute (FLOPs)", ylabel="score", logy="auto"):
    """Observed points (coloured by run when ``groups`` is given), the fitted curve, its
    confidence band and the prediction band for a new run, and held-out targets.

    ``logy="auto"`` puts the y-axis on a log scale when the positive values span more than 1.5
    decades (e.g. tiny pass rates)."""
    ax = _axes(ax)
    lo_hi = []
    if X is not None:
        X = np.asarray(X, float).reshape(-1)
        lo_hi += [X.min(), X.max()]
        if groups is None:
            ax.scatter(X, y, s=14, color="0.3", label="observed", zorder=3)
        else:
            groups = np.asarray(groups)
            for g in dict.fromkeys(groups):
                m = groups == g
                ax.scatter(X[m], np.asarray(y)[m], s=12, label=str(g), zorder=3)
    if targets is not None:
        targets = np.asarray(targets, float).reshape(-1)
        lo_hi += [targets.min(), targets.max()]
    if not lo_hi:
        raise ValueError("plot_fit needs X or targets to choose the x range")
    grid = np.logspace(np.log10(min(lo_hi)) - 0.1, np.log10(max(lo_hi)) + 0.1, 120)
    sf = est.summary_frame(grid, alpha=alpha)
    pct = round(100 * (1 - alpha))
    ax.plot(grid, sf["mean"], color="C0", lw=2, label=label or "fit")
    if np.isfinite(sf["mean_ci_lower"]).any():
        ax.fill_between(grid, sf["obs_ci_lower"], sf["obs_ci_upper"], color="C0", alpha=0.12,
                        label=f"{pct}% interval, new run")
        ax.fill_between(grid, sf["mean_ci_lower"], sf["mean_ci_upper"], color="C0", alpha=0.3,
                        label=f"{pct}% interval, curve")
    if targets is not None:
        ax.scatter(targets, est.predict(targets), marker="X", color="C3", s=60, zorder=4,
                   label="forecast")
        if actual is not None:
            ax.scatter(targets, actual, marker="*", color="k", s=140, zorder=5,
                       label="held-out actual")
    ax.set_xscale("log")
    if (logy == "auto" and y is not None and _spans_decades(y)) or logy is True:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=LEGEND)
    return ax


def _short_label(target: object) -> str:
    """``"rpj:rpj-open_lm_1b-1.0"`` -> ``"rpj-open_lm_1b-1.0"`` (a prefix the name repeats)."""
    t = str(target)
    head, sep, tail = t.partition(":")
    return tail if sep and tail.startswith(head) else t


def plot_backtest_task(rows, *, ax=None, title=None, logy: bool = False):
    """Held-out actual (black stars) vs each method's forecast with its 90% interval, one group
    per held-out target, targets ordered by compute (``rows``: backtest rows of one task, scores
    as fractions; drawn in percent)."""
    ax = _axes(ax, size=(9.2, 4.6))
    rows = rows.reindex(columns=[*rows.columns, *(c for c in ("lo90", "hi90") if c not in rows)])
    order = (rows.drop_duplicates("target").sort_values("flops")["target"].tolist()
             if "flops" in rows else list(dict.fromkeys(rows["target"])))
    methods = list(dict.fromkeys(rows["method"]))
    width = 0.8 / max(len(methods), 1)
    for j, m in enumerate(methods):
        r = rows[rows["method"] == m].set_index("target").reindex(order)
        xs = np.arange(len(order)) + (j - (len(methods) - 1) / 2) * width
        y = 100 * r["predicted"].to_numpy(float)
        lo, hi = 100 * r["lo90"].to_numpy(float), 100 * r["hi90"].to_numpy(float)
        yerr = np.vstack([y - lo, hi - y])
        yerr = np.where(np.isfinite(yerr), np.maximum(yerr, 0), 0)
        default = bool(r["is_default"].fillna(False).any()) if "is_default" in r else False
        ax.errorbar(xs, y, yerr=yerr, fmt="o", ms=6 if default else 4, capsize=2,
                    label=f"{m} (default)" if default else m, lw=2 if default else 1)
    act = rows.drop_duplicates("target").set_index("target").reindex(order)["actual"]
    ax.scatter(np.arange(len(order)), 100 * act.to_numpy(float), marker="*", color="k", s=160,
               zorder=5, label="held-out actual")
    ax.set_xticks(np.arange(len(order)))
    many = len(order) > 12  # crowded: drop organisation prefixes, smaller steeper labels
    labels = [_short_label(t).rsplit("/", 1)[-1] if many else _short_label(t) for t in order]
    ax.set_xticklabels(labels, rotation=45 if many else 20, ha="right", fontsize=6 if many else 8)
    ax.set_xlabel("held-out target (ordered by training compute)")
    ax.set_ylabel("score (%)")
    if logy:  # pass rates spanning decades; zeros cannot be drawn on a log axis
        ax.set_yscale("log")
        ax.set_ylabel("score (%, log scale)")
    else:
        lo, hi = ax.get_ylim()
        ax.set_ylim(max(lo, -2), min(hi, 102))
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    # outside the axes, so it never hides a star or an interval
    ax.legend(fontsize=LEGEND - 1, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return ax


def save_backtest_plots(results, folder, *, dpi: int = 110) -> list[Path]:
    """One PNG per task of a backtest (``results``: :func:`downstream.backtest.backtest_task`
    rows); returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .data.store import encode_name

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for task, r in results.dropna(subset=["predicted"]).groupby("task"):
        fig, ax = plt.subplots(figsize=(9.2, 4.6))
        plot_backtest_task(r, ax=ax, title=f"{task}: forecasts of the held-out runs")
        fig.tight_layout()
        p = out / f"{encode_name(str(task))}.png"
        fig.savefig(p, dpi=dpi)
        plt.close(fig)
        paths.append(p)
    return paths


def plot_clusters(cod, *, ax=None, targets=None):
    """COD view: each cluster's mean score per small model with its fitted law (drawn out to the
    largest of ``targets``); kept clusters solid, dropped dashed; log y when scores span
    decades."""
    ax = _axes(ax)
    diag = cod.clusters_
    C = cod.compute_
    top = max(C.max(), float(np.max(targets)) if targets is not None else C.max())
    grid = np.logspace(np.log10(C.min()) - 0.2, np.log10(top) + 0.2, 100)
    curves = []
    for _, row in diag.iterrows():
        mean = row["curve"]
        curves.append(mean)
        line = ax.plot(C, 100 * mean, "o", ms=4)[0]
        if row["fit"] is not None:
            ax.plot(grid, 100 * row["fit"].predict(grid / cod.x_unit), "-" if row["kept"] else "--",
                    color=line.get_color(), lw=1.5,
                    label=f"cluster {row['cluster']} ({row['size']} items)"
                          f"{'' if row['kept'] else ', dropped'}")
    ax.set_xscale("log")
    if curves and _spans_decades(np.concatenate(curves)):
        ax.set_yscale("log")
    ax.set_xlabel("training compute (FLOPs)")
    ax.set_ylabel("cluster mean score (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=LEGEND - 1, ncol=2)
    return ax


def plot_store_forecast(data, table, targets, *, ax=None, title=None, curves=None):
    """Training checkpoints of a task (score vs compute, one colour per run), each method's
    forecast with its 90% interval at the targets (and its curve when ``curves`` maps a method
    to (compute, score) arrays), and the held-out actual value (black star).

    ``table`` is :func:`downstream.forecast.forecast_task` output (fractions), ``targets`` the
    target rows (flops, actual). Pass rates that span decades go on a log y-axis; there, zeros
    are drawn as triangles on the axis floor (a third of the smallest positive value)."""
    ax = _axes(ax)
    s = data.score.sort_values(["run", "step"])
    runs = list(s.groupby("run")["flops"].max().sort_values().index)
    cmap = _cmap(len(runs))
    preds = table[["forecast", "lo90", "hi90"]].to_numpy(float).ravel()
    act = np.asarray(targets["actual"], float)
    allv = np.concatenate([s["value"].to_numpy(float), preds, act])
    logy = bool(data.generative and _spans_decades(allv))
    pos = allv[np.isfinite(allv) & (allv > 0)]
    floor = 100 * float(pos.min()) / 3 if logy and len(pos) else 0.0

    def y(v):
        v = 100 * np.asarray(v, float)
        return np.where(v > floor, v, floor) if logy else v

    for i, r in enumerate(runs):
        g = s[s["run"] == r]
        v = g["value"].to_numpy(float)
        ax.plot(g["flops"], y(v), "-", lw=1, color=cmap(i))
        ax.plot(g["flops"][v > 0] if logy else g["flops"], y(v[v > 0] if logy else v), "o", ms=3,
                color=cmap(i), label=f"{r} (training run)")
        if logy and (v <= 0).any():
            ax.plot(g["flops"][v <= 0], np.full(int((v <= 0).sum()), floor), "v", ms=4,
                    color=cmap(i))
    markers = {"default": "o", "baseline": "s"}
    for j, (m, g) in enumerate(table.groupby("method", sort=False)):
        color = f"C{j + 3}"
        if curves and m in curves:
            cx, cy = curves[m]
            ax.plot(cx, y(cy), "-", color=color, lw=1.5, alpha=0.8)
        x = np.asarray(g["flops"] if "flops" in g else targets["flops"], float) * (1.0 + 0.08 * (j - 0.5))
        yy = y(g["forecast"])
        lo, hi = y(g["lo90"]), y(g["hi90"])
        err = np.vstack([np.where(np.isfinite(lo), yy - lo, 0), np.where(np.isfinite(hi), hi - yy, 0)])
        role = str(g["role"].iloc[0]) if "role" in g else ""
        ax.errorbar(x, yy, yerr=np.maximum(err, 0), fmt=markers.get(role, "D"), ms=7, capsize=3,
                    color=color, label=f"{m} ({role}): forecast, 90% interval" if role else m)
    ok = np.isfinite(act)
    ax.scatter(np.asarray(targets["flops"], float)[ok], y(act[ok]), marker="*", s=220,
               color="k", zorder=6, label="held-out actual")
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor * 0.8)
    ax.set_xlabel("training compute (FLOPs, 6ND)")
    ax.set_ylabel("pass rate (%)" + (", zeros on the floor" if logy else "")
                  if data.generative else "accuracy (%)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=LEGEND - 1, loc="upper left")
    ax.grid(alpha=0.3)
    return ax


def _cmap(n):
    import matplotlib

    cm = matplotlib.colormaps["viridis"]
    return lambda i: cm(0.1 + 0.8 * i / max(n - 1, 1))


def plot_item_diagnostics(diag, path=None, *, dpi: int = 100):
    """Two panels of :class:`~downstream.diagnostics.ItemDiagnostics`: each checkpoint's ability
    against compute (one line per run; a flat top warns that rising laws will over-predict) and
    each item's difficulty against its discrimination (items never solved on a training cell in
    red). Saved to ``path`` when given; returns the Figure."""
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.6))
    cells = diag.cells
    runs = list(dict.fromkeys(cells.sort_values("flops")["run"]))
    colour = _cmap(len(runs))
    for i, r in enumerate(runs):
        c = colour(i)
        g = cells[cells["run"] == r].sort_values("flops")
        a1.plot(g["flops"], g["ability"], "o-", color=c, ms=4, label=str(r))
    a1.set(xscale="log", xlabel="training compute (FLOPs)",
           ylabel="ability of the checkpoint (standardised)",
           title="Ability per checkpoint (item model)")
    if len(runs) <= 12:
        a1.legend(fontsize=LEGEND, ncol=2)
    a1.grid(alpha=0.3)
    it = diag.items
    never = it["cells_solved"] == 0
    a2.scatter(it.loc[~never, "difficulty"], it.loc[~never, "discrimination"], s=10,
               alpha=0.6, label="solved on some training checkpoint")
    if never.any():
        a2.scatter(it.loc[never, "difficulty"], it.loc[never, "discrimination"], s=12,
                   color="tab:red", label="never solved on a training checkpoint")
    a2.set(xlabel="item difficulty (ability at which it is half solved)",
           ylabel="discrimination", title=f"{len(it)} items")
    a2.legend(fontsize=LEGEND)
    a2.grid(alpha=0.3)
    s = diag.summary
    extra = f"; {s['flat_top_warning']}" if s.get("flat_top_warning") else ""
    fig.suptitle(f"{diag.task}: item diagnostics ({s['response']} responses, "
                 f"{s['checkpoints']} checkpoints){extra}", fontsize=10)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
    return fig


def plot_pass_at_k(rows, *, ax=None, title=None):
    """pass@k against k (log k, log pass@k) for one target: each method's forecast with its 90%
    interval, and the actual pass@k where ``rows`` has an ``actual`` column (black stars)."""
    ax = _axes(ax)
    methods = list(dict.fromkeys(rows["method"]))
    colour = _cmap(len(methods))
    for i, m in enumerate(methods):
        c = colour(i)
        g = rows[rows["method"] == m].sort_values("k")
        ax.plot(g["k"], 100 * g["forecast"], "o-", color=c, ms=3, label=m)
        ax.fill_between(g["k"], 100 * g["lo90"], 100 * g["hi90"], color=c, alpha=0.12)
    if "actual" in rows:
        a = rows.drop_duplicates("k").sort_values("k")
        a = a[np.isfinite(a["actual"])]
        ax.plot(a["k"], 100 * a["actual"], "k*", ms=9, label="held-out actual")
    ax.set(xscale="log", yscale="log", xlabel="k (attempts per item)", ylabel="pass@k (%)",
           title=title or "")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=LEGEND)
    return ax

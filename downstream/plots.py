"""Matplotlib plots (every function takes ``ax=None`` and returns the Axes).

Examples
--------
>>> import matplotlib; matplotlib.use("Agg")
>>> import numpy as np
>>> from downstream.fit.regressor import ScalingLawRegressor
>>> x = np.logspace(0, 3, 6); y = 2 + 3 * x ** -0.4
>>> ax = ScalingLawRegressor(law="power", n_bootstrap=0).fit(x, y).plot(x, y)
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_fit", "plot_backtest_task", "plot_clusters"]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5, 3.6))
    return ax


def plot_fit(est, X=None, y=None, *, ax=None, targets=None, actual=None, alpha=0.1, label=None,
             groups=None):
    """Observed points (coloured by run when ``groups`` is given), the fitted curve, its
    confidence band and the prediction band for a new run, and held-out targets."""
    ax = _axes(ax)
    lo_hi = []
    if X is not None:
        X = np.asarray(X, float).reshape(-1)
        lo_hi += [X.min(), X.max()]
        if groups is None:
            ax.scatter(X, y, s=12, color="0.3", label="observed", zorder=3)
        else:
            groups = np.asarray(groups)
            for g in dict.fromkeys(groups):
                m = groups == g
                ax.scatter(X[m], np.asarray(y)[m], s=10, label=str(g), zorder=3)
    if targets is not None:
        targets = np.asarray(targets, float).reshape(-1)
        lo_hi += [targets.min(), targets.max()]
    if not lo_hi:
        raise ValueError("plot_fit needs X or targets to choose the x range")
    grid = np.logspace(np.log10(min(lo_hi)) - 0.1, np.log10(max(lo_hi)) + 0.1, 120)
    sf = est.summary_frame(grid, alpha=alpha)
    ax.plot(grid, sf["mean"], color="C0", label=label or "fit")
    if np.isfinite(sf["mean_ci_lower"]).any():
        ax.fill_between(grid, sf["obs_ci_lower"], sf["obs_ci_upper"], color="C0", alpha=0.12,
                        label=f"{int(100 * (1 - alpha))}% new-run interval")
        ax.fill_between(grid, sf["mean_ci_lower"], sf["mean_ci_upper"], color="C0", alpha=0.3,
                        label=f"{int(100 * (1 - alpha))}% curve interval")
    if targets is not None:
        ax.scatter(targets, est.predict(targets), marker="x", color="C3", s=40, zorder=4,
                   label="forecast")
        if actual is not None:
            ax.scatter(targets, actual, marker="*", color="k", s=60, zorder=5, label="actual")
    ax.set_xscale("log")
    ax.legend(fontsize=7)
    return ax


def plot_backtest_task(rows, *, ax=None, title=None):
    """Held-out actual vs forecast per method with 90% intervals (rows: backtest DataFrame of
    one task)."""
    ax = _axes(ax)
    methods = list(dict.fromkeys(rows["method"]))
    targets = list(dict.fromkeys(rows["target"]))
    width = 0.8 / max(len(methods), 1)
    for j, m in enumerate(methods):
        r = rows[rows["method"] == m].set_index("target").reindex(targets)
        xs = np.arange(len(targets)) + (j - (len(methods) - 1) / 2) * width
        yerr = np.vstack([r["predicted"] - r["lo90"], r["hi90"] - r["predicted"]])
        yerr = np.where(np.isfinite(yerr), np.maximum(yerr, 0), 0)
        ax.errorbar(xs, r["predicted"], yerr=yerr, fmt="o", ms=4, capsize=2, label=m)
    act = rows.drop_duplicates("target").set_index("target").reindex(targets)["actual"]
    ax.scatter(np.arange(len(targets)), act, marker="*", color="k", s=80, zorder=5, label="actual")
    ax.set_xticks(np.arange(len(targets)))
    ax.set_xticklabels([str(t) for t in targets], rotation=20, fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6)
    return ax


def plot_clusters(cod, *, ax=None, targets=None):
    """COD view: each cluster's mean score per small model with its fitted law (drawn out to the
    largest of ``targets``); kept clusters solid, dropped dashed."""
    ax = _axes(ax)
    diag = cod.clusters_
    C = cod.compute_
    top = max(C.max(), float(np.max(targets)) if targets is not None else C.max())
    grid = np.logspace(np.log10(C.min()) - 0.2, np.log10(top) + 0.2, 100)
    for _i, row in diag.iterrows():
        mean = row["curve"]
        line = ax.plot(C, mean, "o", ms=3)[0]
        if row["fit"] is not None:
            ax.plot(grid, row["fit"].predict(grid / cod.x_unit), "-" if row["kept"] else "--",
                    color=line.get_color(), lw=1,
                    label=f"c{row['cluster']} n={row['size']}{'' if row['kept'] else ' (dropped)'}")
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("cluster mean score")
    ax.legend(fontsize=5, ncol=2)
    return ax


def plot_store_forecast(data, table, targets, *, ax=None, title=None):
    """Training checkpoints of a task (score vs compute, one colour per run), each method's
    forecast with its 90% interval at the targets, and the held-out actual value.

    ``table`` is :func:`downstream.forecast.forecast_task` output (fractions), ``targets`` the
    target rows (flops, actual)."""
    ax = _axes(ax)
    s = data.score.sort_values(["run", "step"])
    runs = list(s.groupby("run")["flops"].max().sort_values().index)
    cmap = _cmap(len(runs))
    for i, r in enumerate(runs):
        g = s[s["run"] == r]
        ax.plot(g["flops"], 100 * g["value"], "o-", ms=3, lw=1, color=cmap(i), label=f"{r} (fit)")
    markers = {"default": "o", "baseline": "s"}
    for j, (m, g) in enumerate(table.groupby("method", sort=False)):
        x = np.asarray(targets["flops"], float) * (1.0 + 0.08 * (j - 0.5))
        y = 100 * g["forecast"].to_numpy(float)
        lo = 100 * g["lo90"].to_numpy(float)
        hi = 100 * g["hi90"].to_numpy(float)
        err = np.vstack([np.where(np.isfinite(lo), y - lo, 0), np.where(np.isfinite(hi), hi - y, 0)])
        role = str(g["role"].iloc[0]) if "role" in g else ""
        ax.errorbar(x, y, yerr=np.maximum(err, 0), fmt=markers.get(role, "D"), ms=6, capsize=3,
                    color=f"C{j + 3}", label=f"{m} ({role}) forecast, 90% interval" if role else m)
    act = np.asarray(targets["actual"], float)
    ok = np.isfinite(act)
    ax.scatter(np.asarray(targets["flops"], float)[ok], 100 * act[ok], marker="*", s=180,
               color="k", zorder=6, label="held-out actual")
    ax.set_xscale("log")
    ax.set_xlabel("training compute (FLOPs, 6ND)")
    ax.set_ylabel("pass rate (%)" if data.generative else "accuracy (%)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    return ax


def _cmap(n):
    import matplotlib

    cm = matplotlib.colormaps["viridis"]
    return lambda i: cm(0.1 + 0.8 * i / max(n - 1, 1))

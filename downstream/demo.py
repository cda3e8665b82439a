"""The README demo: store -> fit -> forecast table -> plots.

By default it runs on the project's own real per-item ladder committed under
``results/ladder/store`` (six GPT-2 sizes trained on arithmetic by
``benchmarks/ladder/make_ladder.py`` and collected through lm-eval with ``downstream collect``).
The largest size is held out: every method is fitted on the five smaller sizes and forecasts it
(and a 10x larger model). ``simulated=True`` runs the same pipeline on a SIMULATED ladder instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .cod import CODPredictor
from .estimator import ScalingLawRegressor
from .fitting import FitError, fit_law
from .itemchain import PerItemChain
from .methods import default_store_method
from .simulate import simulate_ladder, to_store_records
from .store import Store

__all__ = ["run_demo", "LADDER_STORE"]

log = logging.getLogger(__name__)

LADDER_STORE = Path(__file__).resolve().parents[1] / "results" / "ladder" / "store"


def _scores(df: pd.DataFrame) -> pd.DataFrame:
    gen = (df["output_type"] == "generate_until").all()
    s = df["n_pass"] / df["n_samples"] if gen else df["acc_ll"]
    return (df.assign(score=s).groupby(["run", "step"])
            .agg(score=("score", "mean"), flops=("flops", "first"),
                 params=("params_nonembed", "first")).reset_index())


def _forecast_task(df: pd.DataFrame, small: list[str], targets: np.ndarray, boot: int):
    tr = df[df["run"].isin(small)]
    agg = _scores(tr)
    gen = (df["output_type"] == "generate_until").all()
    rows = {}
    direct = ScalingLawRegressor(law="direct_sigmoid", x_unit=1e18, n_bootstrap=boot,
                                 fixed={"floor": float(min(0.25 if not gen else 0.0, agg["score"].min()))}
                                 ).fit(agg["flops"], agg["score"], groups=agg["run"])
    sf = direct.summary_frame(targets)
    rows["direct_sigmoid"] = (sf["mean"], sf["obs_ci_lower"], sf["obs_ci_upper"], "baseline")
    method = default_store_method(df["output_type"].iloc[0])
    cod = None
    if method == "per_item_chain":
        ch = PerItemChain(n_bootstrap=boot).fit(tr, smooth=2)
        p = ch.get_prediction(targets)
        ci = p.conf_int(0.1)
        rows["per_item_chain"] = (p.mean, ci[:, 0], ci[:, 1], "default")
    else:
        cod = CODPredictor(n_bootstrap=boot, smooth=2, chance=0.0, score="pass_rate").fit(tr)
        if cod.clusters_["kept"].any():
            sf = cod.get_prediction(targets).summary_frame()
            rows["cod"] = (sf["mean"], sf["obs_ci_lower"], sf["obs_ci_upper"], "default")
        else:
            fin = agg.sort_values("step").groupby("run").tail(1)
            try:
                r = fit_law("passuntil", fin["params"].to_numpy() / 1e4,
                            np.clip(fin["score"].to_numpy(), 1e-9, 1))
                # targets keep the ladder's fixed tokens-per-parameter ratio: C = 6 r N^2
                last = tr.sort_values("step").groupby("run").tail(1)
                ratio = float(np.median(last["tokens"] / last["params_nonembed"]))
                N = np.sqrt(targets / (6 * ratio))
                rows["passuntil_dataset"] = (r.predict(N / 1e4), np.full(len(N), np.nan),
                                             np.full(len(N), np.nan),
                                             "default (COD kept no cluster)")
            except FitError as exc:
                log.warning("PassUntil law: %s", exc)
    return rows, direct, agg, cod


def run_demo(out: str | Path = "demo_out", *, store: str | Path | None = None,
             simulated: bool = False, n_bootstrap: int = 100, seed: int = 0) -> pd.DataFrame:
    """Run the demo; returns the forecast table (also written to ``out/forecast.csv``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if simulated:
        st = Store(out / "sim_store")
        if st.list().empty:
            lad = simulate_ladder(n_items=2000, n_models=8, flops_range=(1e18, 1e22), seed=seed,
                                  item_jitter=0.03, n_samples=200)
            st.write(to_store_records(lad))
    else:
        st = Store(store or LADDER_STORE)
        if st.list().empty:
            raise FileNotFoundError(f"{st.root}: no ladder store (run benchmarks/ladder/make_ladder.py)")
    files = st.list()
    label = "SIMULATED ladder" if simulated else "real ladder (results/ladder/store)"
    rows = []
    tasks = sorted(files["task"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        df = st.load(tasks=[task], with_derived=True)
        size = df.groupby("run")["flops"].max().sort_values()
        small, held = list(size.index[:-1]), size.index[-1]
        held_df = df[(df["run"] == held) & (df["step"] == df.loc[df["run"] == held, "step"].max())]
        actual = float(_scores(held_df)["score"].iloc[0])
        targets = np.array([size[held], 10 * size[held]])
        preds, direct, agg, cod = _forecast_task(df, small, targets, n_bootstrap)
        for name, (mean, lo, hi, role) in preds.items():
            for i, tname in enumerate([f"{held} (held out)", "10x largest"]):
                rows.append({"data": label, "task": task, "target": tname, "flops": targets[i],
                             "method": name, "role": role, "forecast": float(mean[i]),
                             "lo90": float(lo[i]), "hi90": float(hi[i]),
                             "actual": actual if i == 0 else np.nan})
        direct.plot(agg["flops"].to_numpy(), agg["score"].to_numpy(), ax=ax, targets=targets,
                    label="direct sigmoid", groups=agg["run"].to_numpy())
        for name, (mean, *_r) in preds.items():
            if name != "direct_sigmoid":
                ax.scatter(targets, mean, marker="o", s=45, zorder=6, label=f"{name} forecast")
        ax.scatter([targets[0]], [actual], marker="*", c="k", s=90, zorder=7, label="actual (held out)")
        ax.set_title(f"{label}: {task}", fontsize=8)
        ax.set_xlabel("training FLOPs")
        ax.legend(fontsize=5)
        if cod is not None and cod.clusters_["kept"].any():
            fig2, ax2 = plt.subplots(figsize=(5, 3.6))
            cod.plot(ax=ax2)
            fig2.savefig(out / f"cod_clusters_{task}.png", dpi=90)
            plt.close(fig2)
    fig.tight_layout()
    fig.savefig(out / "demo.png", dpi=90)
    plt.close(fig)
    table = pd.DataFrame(rows)
    table.to_csv(out / "forecast.csv", index=False)
    return table

"""``compare --plot DIR``: accuracy curves of few-shot and noisy-label suites, one PNG each.

Metric names carry the x value after ``@``:

* few-shot: ``few_shot.acc@n20`` (N labelled examples in all), ``acc@k5`` (k per class),
  ``acc@p1`` (1% of the labels): x = N, k or the percentage, on a log axis;
* noisy-label: ``noisy_label.acc@sym0.2`` (symmetric noise), ``acc@asym0.4`` (class-dependent
  noise): x = the noise rate, on a linear axis.

One PNG per (suite, suite version, protocol, mode[, statistic]) with one line per method
(with its variant; a comparability group of its own, e.g. another config hash, gets its own
``[cfg ...]`` line since groups are never averaged). y = the mean over pretraining seeds;
the band is the 95% interval: over pretraining seeds when n >= 2, else from the metric's
within-run repetitions (``per_seed`` / ``std`` / ``n``: few-shot subsets), see
:func:`sslbench.results.frame.aggregate`. Only ``ok`` runs. Drawn with the Agg canvas (no
display, no global pyplot state).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from .frame import aggregate, records_frame, short_id

_X = re.compile(r"^(?P<protocol>.+)\.(?P<stat>[A-Za-z0-9_]+)@(?P<mode>n|k|p|sym|asym)(?P<x>[0-9]*\.?[0-9]+(?:e-?[0-9]+)?)$")

FEW_SHOT_MODES = {"n": "labelled examples N (in all)", "k": "labelled examples per class k",
                  "p": "labelled fraction (%)"}
NOISE_MODES = {"sym": "noise rate (symmetric)", "asym": "noise rate (class-dependent)"}


def parse_curve_metric(name: str) -> tuple[str, str, str, float] | None:
    """``few_shot.acc@n20`` -> ("few_shot", "acc", "n", 20.0); None for any other metric.

    Only accuracy statistics (``acc*``, ``top*``) are curves; ``noisy_label.noise@sym0.2`` (the
    measured noise rate) is not.
    """
    m = _X.match(str(name))
    if not m or not m["stat"].startswith(("acc", "top")):
        return None
    return m["protocol"], m["stat"], m["mode"], float(m["x"])


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def curve_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The aggregated curve points: aggregate() rows of curve metrics with protocol, stat, mode, x, label."""
    agg = aggregate(records_frame(records))
    parsed = [parse_curve_metric(m) for m in agg["metric"]]
    keep = [p is not None for p in parsed]
    agg = agg[keep].reset_index(drop=True)
    if agg.empty:
        return agg
    parsed = [p for p in parsed if p is not None]
    agg["curve_protocol"] = [p[0] for p in parsed]
    agg["stat"] = [p[1] for p in parsed]
    agg["mode"] = [p[2] for p in parsed]
    agg["x"] = [p[3] for p in parsed]
    # a method with several comparability groups in one suite version gets one line per group
    labels = []
    for _, r in agg.iterrows():
        same = agg[(agg["method"] == r["method"]) & (agg["suite"] == r["suite"])
                   & (agg["suite_version"] == r["suite_version"])]
        label = str(r["method"])
        if same["config_hash"].nunique(dropna=False) > 1:
            label += f" [cfg {short_id(r['config_hash'])}]"
        if same["data_fingerprint"].nunique(dropna=False) > 1:
            label += f" [data {short_id(r['data_fingerprint'])}]"
        if same["method_version"].nunique(dropna=False) > 1:
            label += f" v{r['method_version']}"
        labels.append(label)
    agg["label"] = labels
    return agg


def plot_curves(records: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Write one PNG per (suite, version, protocol, mode) curve; returns their paths (none: [])."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import ScalarFormatter

    pts = curve_frame(records)
    if pts.empty:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    keys = ["suite", "suite_version", "curve_protocol", "mode"]
    for (suite, version, protocol, mode), part in pts.groupby(keys, dropna=False, sort=True):
        stats = sorted(part["stat"].unique())
        for stat in stats:
            data = part[part["stat"] == stat]
            fig = Figure(figsize=(6.4, 4.2), dpi=110)
            FigureCanvasAgg(fig)
            ax = fig.add_subplot()
            within = False
            for label, line in data.groupby("label", sort=True):
                line = line.sort_values("x")
                x, y = line["x"].to_numpy(float), line["mean"].to_numpy(float)
                half = line["interval"].to_numpy(float)
                inner = (line["interval_source"] == "within-run").any()
                seeds = f"n={int(line['n'].max())}" + (", band within-run" if inner else "")
                (drawn,) = ax.plot(x, y, marker="o", label=f"{label} ({seeds})")
                ok = [math.isfinite(h) for h in half]
                if any(ok):
                    xs = [a for a, o in zip(x, ok, strict=True) if o]
                    lo = [m - h for m, h, o in zip(y, half, ok, strict=True) if o]
                    hi = [m + h for m, h, o in zip(y, half, ok, strict=True) if o]
                    ax.fill_between(xs, lo, hi, color=drawn.get_color(), alpha=0.2, linewidth=0)
                within |= bool((line["interval_source"] == "within-run").any())
            few_shot = mode in FEW_SHOT_MODES
            if few_shot:
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(ScalarFormatter())
            ticks = sorted(data["x"].unique())
            ax.set_xticks(ticks)
            ax.set_xticklabels([f"{t:g}" for t in ticks])
            ax.set_xlabel(FEW_SHOT_MODES.get(mode) or NOISE_MODES.get(mode, mode))
            unit = data["unit"].iloc[0] or ""
            ax.set_ylabel(f"{protocol}.{stat}" + (f" ({unit})" if unit else "") + ", mean over seeds")
            vtext = f" v{version}" if version is not None and not pd.isna(version) else ""
            band = "band: 95% interval" + (" (within-run repeats where n=1)" if within else "")
            ax.set_title(f"{suite}{vtext} — {protocol} ({mode})\n{band}", fontsize=10)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
            fig.tight_layout()
            name = f"{suite}-v{version}-{protocol}-{mode}" + (f"-{stat}" if len(stats) > 1 or stat != "acc" else "")
            path = out_dir / f"{_safe(name)}.png"
            fig.savefig(path)
            written.append(path)
    return written

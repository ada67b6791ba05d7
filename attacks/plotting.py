"""Attack plots: ROC curves of several attacks on log-log axes (the low-FPR
regime), and the best attacks (attacker-side choice and victim-side max) per
pruning iteration."""

import io
from typing import Any, Mapping, Optional, Sequence

from matplotlib import colormaps
from matplotlib import figure as mpl_figure
import numpy as np

from attacks import metrics as metrics_lib
from wemem_tf import io_utils


def save_png(fig: mpl_figure.Figure, path: str) -> None:
  """Writes `fig` as a 120-dpi PNG atomically (temp file + rename)."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=120)
  io_utils.atomic_write_bytes(path, buffer.getvalue())


def plot_roc_curves(results: Sequence[metrics_lib.AttackResult],
                    path: Optional[str] = None, title: str = ""):
  """Plots every attack's ROC (log-log) and writes a PNG to `path`.

  Rates of 0 cannot be drawn on log axes; the axes start at
  1 / (number of non-members) and 1 / (number of members).

  Returns:
    The matplotlib `Figure` (not attached to pyplot, so no GUI backend is
    touched).
  """
  if not results:
    raise ValueError("no attack results to plot.")
  fig = mpl_figure.Figure(figsize=(6, 5.5))
  ax = fig.subplots()
  low_x = min(1.0 / len(r.non_member_scores) for r in results)
  low_y = min(1.0 / len(r.member_scores) for r in results)
  grid = np.logspace(np.log10(low_x), 0, 100)
  ax.plot(grid, grid, "k--", lw=0.8, label="chance")
  colors = colormaps["tab20"].colors
  for i, r in enumerate(results):
    fpr = np.maximum(np.asarray(r.roc.fpr), low_x)
    tpr = np.maximum(np.asarray(r.roc.tpr), low_y)
    ax.plot(fpr, tpr, lw=1.3, color=colors[(2 * i) % 20 + (i // 10) % 2],
            linestyle=("-", "--", "-.", ":")[i // 5 % 4],
            label=f"{r.attack} (AUC {r.auc:.3f}, bal.acc {r.balanced_accuracy:.3f})")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlim(low_x, 1.0)
  ax.set_ylim(low_y, 1.05)
  ax.set_xlabel("false positive rate")
  ax.set_ylabel("true positive rate")
  if title:
    ax.set_title(title)
  ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  if path is not None:
    save_png(fig, path)
  return fig


VICTIM_SIDE_LABEL = "victim-side max (optimistic)"
ATTACKER_SIDE_LABEL = "attacker-side"


def _percent(best: Optional[Mapping[str, Any]]) -> float:
  """A best-attack entry's victim balanced accuracy in percent; NaN (a gap
  in the line) when it has none."""
  value = None if best is None else best.get("balanced_accuracy")
  return float("nan") if value is None else 100 * value


def plot_attack_per_iteration(series: Mapping[str, Mapping[str, Any]],
                              path: Optional[str] = None, title: str = ""):
  """Best attacks and victim test accuracy per pruning iteration.

  Two panels sharing the x axis (pruning iteration, labelled with its target
  sparsity). Top: the victim balanced accuracy of two best attacks at each
  iteration, marker labels naming the attack: the attacker-side choice
  ("best_attack_attacker_side", picked on the attacker's own calibration
  data; solid line, names below the markers) and the victim-side maximum
  ("best_attack", picked on the victim's labels, the optimistic worst case;
  dashed line, names above). Bottom: the victim's test accuracy. One color
  per configuration. Documents written before the attacker-side entry
  existed get only the victim-side line; iterations without an
  attacker-side choice leave a gap.

  Args:
    series: {configuration label: an iterations.json document
      (`wemem_eval.iterations.IterationsResult.to_json`)}.
    path: where to write the PNG (atomically); None: do not write.
    title: figure title.

  Returns:
    The matplotlib `Figure` (not attached to pyplot).
  """
  series = {label: doc for label, doc in series.items() if doc["iterations"]}
  if not series:
    raise ValueError("no per-iteration results to plot.")
  fig = mpl_figure.Figure(figsize=(6.4, 7.0))
  top, bottom = fig.subplots(2, 1, sharex=True,
                             gridspec_kw={"height_ratios": (3, 2)})
  ticks = {}
  for i, (label, doc) in enumerate(series.items()):
    its = doc["iterations"]
    x = [it["iteration"] for it in its]
    for it in its:
      ticks.setdefault(it["iteration"], it["target_sparsity"])
    color = colormaps["tab10"].colors[i % 10]
    curves = [("best_attack", VICTIM_SIDE_LABEL, "--", "^", (3, 3))]
    if any(it.get("best_attack_attacker_side") for it in its):
      curves.append(("best_attack_attacker_side", ATTACKER_SIDE_LABEL, "-",
                     "o", (3, -9)))
    for key, kind, style, marker, offset in curves:
      bests = [it.get(key) for it in its]
      y = [_percent(b) for b in bests]
      top.plot(x, y, marker=marker, ls=style, color=color,
               label=f"{label}, {kind}")
      for xi, yi, best in zip(x, y, bests):
        if best and best.get("attack") and np.isfinite(yi):
          top.annotate(best["attack"], (xi, yi), fontsize=6,
                       textcoords="offset points", xytext=offset,
                       color=color)
    bottom.plot(x, [100 * it["victim_test_accuracy"] for it in its],
                marker="s", color=color, label=label)
  top.axhline(50, color="k", lw=0.8, ls=":")
  top.set_ylabel("best attack, balanced accuracy\non the victim (%)")
  bottom.set_ylabel("victim test accuracy (%)")
  order = sorted(ticks)
  bottom.set_xticks(order)
  bottom.set_xticklabels([f"{k}\ns={ticks[k]:.2f}" for k in order])
  bottom.set_xlabel("pruning iteration (target sparsity)")
  for ax in (top, bottom):
    ax.grid(alpha=0.3)
  top.legend(fontsize=7)
  bottom.legend(fontsize=7)
  top.set_title(title or "attacks on the models after each pruning iteration")
  fig.tight_layout()
  if path is not None:
    save_png(fig, path)
  return fig

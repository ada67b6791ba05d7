"""ROC curves of several attacks on log-log axes (the low-FPR regime)."""

import io
from typing import Optional, Sequence

from matplotlib import colormaps
from matplotlib import figure as mpl_figure
import numpy as np

from attacks import metrics as metrics_lib
from wemem_tf import io_utils


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
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    io_utils.atomic_write_bytes(path, buffer.getvalue())
  return fig

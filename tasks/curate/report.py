"""The curation funnel chart: documents kept after each step, rejected counts annotated."""
from __future__ import annotations


def preload_chart() -> None:
    """Import the plotting library ahead (a third of a second) while the driver waits on the workers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401


def funnel_chart(funnel, path: str) -> str:
    """Documents kept after each curation step, with the rejected share annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    steps = [s.step for s in funnel]
    kept = [s.kept for s in funnel]
    ax.bar(steps, [s.received for s in funnel], color="#ddd", label="in")
    ax.bar(steps, kept, color="#3b7dd8", label="kept")
    for i, s in enumerate(funnel):
        rej = s.received - s.kept
        if rej:
            ax.annotate(f"-{rej}", (i, s.received), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("documents")
    ax.set_title("curation funnel")
    ax.tick_params(axis="x", rotation=30)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

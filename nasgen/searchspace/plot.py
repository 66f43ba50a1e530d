"""Cell diagrams (PNG) with matplotlib, no graphviz needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .ops import ZERO_OP
from .space import CellSearchSpace, CellSpace, Genotype, NB201SearchSpace

_COLOURS = {"skip_connect": "#1b9e77", "max_pool": "#7570b3", "avg_pool": "#7570b3",
            "sep_conv": "#d95f02", "dil_conv": "#e7298a", "conv": "#66a61e"}


def _colour(op: str) -> str:
    for prefix, colour in _COLOURS.items():
        if op.startswith(prefix):
            return colour
    return "#444444"


def _layout(space: CellSpace) -> tuple[dict, dict, list[tuple[int, int]], int, list[int]]:
    """Positions and labels of the states, ``(to, from)`` state of each edge, the output state
    and the states joined into it (DARTS: a concatenation node; nb201: its last node)."""
    n = space.n_nodes
    if isinstance(space, NB201SearchSpace):
        positions = {0: (0.0, 0.5)}
        positions.update({k: (float(k), 0.5 + (0.18 if k % 2 else -0.18)) for k in range(1, n + 1)})
        labels = {0: "in", n: f"{n} (out)"}
        labels.update({k: str(k) for k in range(1, n)})
        return positions, labels, list(space.edges), n, []
    positions = {0: (0.0, 0.25), 1: (0.0, 0.75)}
    for node in range(n):
        positions[node + 2] = (1.0 + node, 0.5 + (0.18 if node % 2 else -0.18))
    output = n + 2
    positions[output] = (n + 1.0, 0.5)
    labels = {0: "c_{k-2}", 1: "c_{k-1}", output: "c_{k}"}
    # Intermediate nodes are numbered as in the genotype and describe(): states 2..n+1.
    labels.update({node + 2: str(node + 2) for node in range(n)})
    return positions, labels, [(node + 2, src) for node, src in space.edges], output, list(range(2, n + 2))


#: Node radius in inches (the marker of size 900 points squared), and the clearance an edge keeps.
_NODE_RADIUS, _CLEARANCE = 0.23, 0.3
#: Bends tried, in order, for an edge's curve: the first that passes no other node is drawn.
_BENDS = (0.12, -0.12, 0.3, -0.3, 0.5, -0.5, 0.7, -0.7)


def _bezier(a: np.ndarray, b: np.ndarray, bend: float, points: int = 41) -> np.ndarray:
    """A quadratic curve from ``a`` to ``b`` whose middle is pushed sideways by ``bend`` times
    their distance, stopping short of both nodes' circles."""
    direction = (b - a) / np.linalg.norm(b - a)
    a, b = a + direction * _NODE_RADIUS, b - direction * _NODE_RADIUS
    normal = np.array([-(b - a)[1], (b - a)[0]])
    control = (a + b) / 2 + bend * normal
    t = np.linspace(0.0, 1.0, points)[:, None]
    return (1 - t) ** 2 * a + 2 * (1 - t) * t * control + t ** 2 * b


def _clear_curve(nodes: dict, src: int, to: int) -> np.ndarray:
    """The edge ``src -> to`` (positions in inches) as the first curve of ``_BENDS`` that keeps
    ``_CLEARANCE`` from every other node, so an edge is never drawn through a node."""
    others = np.array([xy for key, xy in nodes.items() if key not in (src, to)])
    curve = None
    for bend in _BENDS:
        curve = _bezier(nodes[src], nodes[to], bend)
        if not len(others) or np.min(np.linalg.norm(curve[:, None, :] - others[None], axis=2)) > _CLEARANCE:
            return curve
    return curve


def plot_cell(space: CellSpace, arch: Any, cell_type: str, path: str | Path,
              title: str | None = None) -> Path:
    """Draw one cell of ``arch`` as a DAG and save it as a PNG.

    Args:
        space: the cell space (DARTS cells or the NAS-Bench-201 cell).
        arch: int architecture.
        cell_type: one of ``space.cell_types`` (``"normal"``/``"reduce"``; ``"cell"`` for nb201).
        path: where to write the PNG.
        title: figure title (default: the cell type).

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arch = space.validate(arch)
    if cell_type not in space.cell_types:
        raise ValueError(f"cell_type must be one of {space.cell_types}, got {cell_type!r}")
    cell_arch = arch[space.cell_slice(cell_type)]
    positions, labels, edge_states, output, joined = _layout(space)
    width = max(x for x, _ in positions.values())

    size = (2.2 * (width + 1), 3.6)
    fig, ax = plt.subplots(figsize=size)
    scale = np.array([size[0] / (width + 1.0), size[1]])  # data units -> inches (x spans width + 1, y spans 1)
    nodes = {key: np.array(xy) * scale for key, xy in positions.items()}
    for e, (to, src) in enumerate(edge_states):
        op = space.op_names[cell_arch[e]]
        if op == ZERO_OP:
            continue
        curve = _clear_curve(nodes, src, to) / scale
        colour = _colour(op)
        ax.plot(curve[:, 0], curve[:, 1], color=colour, lw=1.6, zorder=1)
        ax.annotate("", xy=curve[-1], xytext=curve[-3],
                    arrowprops=dict(arrowstyle="->", color=colour, lw=1.6, shrinkA=0, shrinkB=0))
        middle = curve[len(curve) // 2]
        ax.text(middle[0], middle[1] + 0.03, op, fontsize=7, ha="center", color=colour,
                bbox=dict(facecolor="white", edgecolor="none", alpha=0.7, pad=0.5))
    for state in joined:
        ax.annotate("", xy=positions[output], xytext=positions[state],
                    arrowprops=dict(arrowstyle="->", color="#999999", lw=1.0, shrinkA=14, shrinkB=14))
    n_inputs = min(to for to, _ in edge_states)
    for key, (x, y) in positions.items():
        colour = "#c6dbef" if key < n_inputs else ("#fdd0a2" if key == output else "#e5e5e5")
        ax.scatter([x], [y], s=900, color=colour, edgecolors="black", zorder=3)
        ax.text(x, y, labels[key], ha="center", va="center", fontsize=8, zorder=4)
    ax.set_xlim(-0.5, width + 0.5)
    ax.set_ylim(0.0, 1.0)
    ax.axis("off")
    ax.set_title(title or f"{cell_type} cell")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_genotype(space: CellSearchSpace, genotype: Genotype, folder: str | Path,
                  prefix: str = "") -> list[Path]:
    """Write ``{prefix}normal.png`` and ``{prefix}reduce.png`` for a DARTS genotype."""
    arch = space.from_genotype(genotype)
    folder = Path(folder)
    return [plot_cell(space, arch, cell, folder / f"{prefix}{cell}.png") for cell in space.cell_types]


def plot_op_probabilities(space, probs: Any, path: str | Path | None = None, title: str = ""):
    """Heatmap of per-decision op probabilities; returns the figure (saved when ``path``).

    The layout keeps every label inside the figure (TensorBoard shows the canvas as drawn, not
    a tight crop). In a cell space the rows are grouped by cell: each group is named on the
    right, a line separates them, and each row is labelled by its edge ``node<-input``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probs = np.asarray(probs, dtype=float)
    n_rows, n_cols = probs.shape
    fig, ax = plt.subplots(figsize=(max(4.5, 0.55 * n_cols + 3), max(3.0, 0.24 * n_rows + 1.6)),
                           layout="constrained")
    image = ax.imshow(probs, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
    op_names = getattr(space, "op_names", None)
    ax.set_xticks(range(n_cols))
    ax.set_xticklabels(op_names if op_names else range(n_cols), rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(n_rows))
    if isinstance(space, CellSearchSpace) and n_rows == space.n_decisions:
        ax.set_yticklabels([f"{node + 2}<-{src}" for _ in space.cell_types for node, src in space.edges],
                           fontsize=6)
        for k in range(1, len(space.cell_types)):
            ax.axhline(k * space.n_edges - 0.5, color="white", lw=2)
        cells = ax.secondary_yaxis("right")
        cells.set_yticks([(k + 0.5) * space.n_edges - 0.5 for k in range(len(space.cell_types))])
        cells.set_yticklabels([f"{cell} cell" for cell in space.cell_types], rotation=90, va="center", fontsize=8)
        cells.tick_params(length=0)
    else:
        ax.set_yticklabels([space.decision_name(i) for i in range(n_rows)], fontsize=6)
    ax.set_xlabel("op")
    fig.colorbar(image, ax=ax, fraction=0.04, label="probability")
    ax.set_title(title or "op probabilities")
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig

"""Recover the plotted data of the paper's Figures 2, 3, 4 and 7 from the authors' vector PDFs.

Needs PyMuPDF, which is not a runtime dependency of synflow: ``pip install pymupdf`` into the
environment that runs this script (numpy comes with synflow).

Source: github.com/ganguli-lab/Synaptic-Flow, ``Results/Plots/Fig2.pdf``, ``Fig3.pdf``,
``Fig4.pdf``, ``Fig7a.pdf``, ``Fig7b.pdf`` (drawn by their ``Results/figures.ipynb``). Get them
once, for example from a clone: ``git show HEAD:Results/Plots/Fig4.pdf > pdfs/Fig4.pdf``, then

    python tools/extract_paper_figures.py pdfs/            # writes into synflow.analysis.reference.paper_dir()
    python tools/extract_paper_figures.py pdfs/ --out DIR  # or into DIR

It reads nothing else (no network, no other folder) and writes, each file atomically:

- ``fig2_reference.csv``: per method, per compression curve, the kept fraction per layer;
- ``fig3_reference.csv``: per method, per hidden unit, total score in and out (and Pearson r);
- ``fig4_reference.csv``: per method, per layer, inverse layer size and average score (and the
  fitted log-log slope);
- ``fig7_reference.csv``: per schedule, per compression, the prune-size ratio per iteration count.

How: every axes is a white filled rectangle in the PDF. Its axis calibration is a least-squares
line through (tick-mark position, tick-label value) pairs, log10 of the value on log axes; tick
labels are text spans (``10`` plus a superscript, ``4 x 10`` plus a superscript, or a plain
number), and their minus signs are small filled black bars drawn just left of the digits.
Markers (Figures 3, 4) are the centres of their circle paths, in drawing order (= the order of
the authors' data arrays); curves (Figures 2, 7) are the vertices of their polylines, told apart
by stroke opacity (the authors' alpha = 1 - 0.6 j / n for curve j) and dash pattern.
See paper/README.md for each file's columns and precision.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

try:
    import pymupdf  # noqa: F401 - used through pdf_plot_geometry
except ImportError as error:  # pragma: no cover - depends on the environment
    raise SystemExit("tools/extract_paper_figures.py needs PyMuPDF: pip install pymupdf") from error

import pdf_plot_geometry as geo  # beside this script in tools/

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from synflow.analysis.reference import paper_dir

METHODS = ["random", "magnitude", "snip", "grasp", "synflow"]  # panel order, figures.ipynb
FIG2_CURVES = 12  # j = 0, 2, ..., 22 in figures.ipynb; alpha = 1 - 0.6 j / 20
FIG7_EXPONENTS = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]  # log10 compression, figures.ipynb
FIG7_ITERATIONS = [1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]


# --------------------------------------------------------------------------- figures
def figure4(pdf: Path) -> list[dict]:
    page = geo.page_of(pdf)
    rows = []
    for method, frame in zip(METHODS, geo.frames(page), strict=True):
        fx, ex = geo.calibration(page, frame, "x", log=True)
        centres = np.array([c for _, c in geo.markers(page, frame)])
        fy, ey = _figure4_y(page, frame, centres[:, 1])
        lx, ly = fx(centres[:, 0]), fy(centres[:, 1])
        slope = float(np.polyfit(lx, ly, 1)[0])
        for layer, (x, y) in enumerate(zip(lx, ly), start=1):
            rows.append({"method": method, "layer": layer, "log10_inverse_size": round(float(x), 4),
                         "log10_average_score": round(float(y), 4), "fitted_slope": round(slope, 4),
                         "calibration_residual_log10": round(max(ex, ey), 4)})
    return rows


def _figure4_y(page, frame, ys):
    """The y calibration of a Figure 4 panel. The authors set ylim = [min / 2, 2 max] of the
    plotted scores (figures.ipynb), so the top marker centre lies log10(2) below the frame's
    top and the bottom one log10(2) above its bottom: that fixes the decades per point; the
    tick labels then fix the offset (one label suffices; the magnitude panel has just one).
    The residual returned is the largest disagreement, in log10, between this line and the
    tick labels."""
    decades = np.log10(2) / (ys.min() - frame.y0)  # log10 per point, from the top marker
    decades_bottom = np.log10(2) / (frame.y1 - ys.max())
    if abs(decades - decades_bottom) > 0.02 * decades:
        raise ValueError(f"Figure 4 panel at x={frame.x0:.0f}: markers are not log10(2) inside the frame")
    per_point = -(decades + decades_bottom) / 2
    pairs = [(c, np.log10(v)) for c, v in geo.labels(page, frame, "y")]
    if not pairs:
        raise ValueError(f"Figure 4 panel at x={frame.x0:.0f} has no y tick label")
    offsets = [v - per_point * t for t, v in pairs]
    offset = float(np.mean(offsets))
    residual = float(max(abs(o - offset) for o in offsets))

    def to_data(p):
        return per_point * np.asarray(p, dtype=float) + offset
    return to_data, residual


def figure3(pdf: Path) -> list[dict]:
    page = geo.page_of(pdf)
    offsets = {}
    for span in geo.spans(page):  # matplotlib's offset text, e.g. "1e32", scales one axis
        if span["text"].startswith("1e"):
            offsets[(round(span["bbox"].x0), round(span["bbox"].y0))] = float(span["text"])
    rows = []
    for method, frame in zip(METHODS, geo.frames(page), strict=True):
        fx, _ = geo.calibration(page, frame, "x", log=False)
        fy, _ = geo.calibration(page, frame, "y", log=False)
        scale_x = scale_y = 1.0
        for (x0, y0), factor in offsets.items():
            if frame.x0 <= x0 <= frame.x1 + 30 and y0 > frame.y1:
                scale_x = factor
            if frame.x0 - 60 <= x0 <= frame.x1 and y0 < frame.y0:
                scale_y = factor
        centres = np.array([c for _, c in geo.markers(page, frame)])
        xs, ys = fx(centres[:, 0]) * scale_x, fy(centres[:, 1]) * scale_y
        r = float(np.corrcoef(xs, ys)[0, 1])
        for unit, (x, y) in enumerate(zip(xs, ys)):
            rows.append({"method": method, "unit": unit, "score_in": f"{x:.4g}", "score_out": f"{y:.4g}",
                         "pearson_r": round(r, 4)})
    return rows


def figure2(pdf: Path) -> list[dict]:
    page = geo.page_of(pdf)
    frames = geo.frames(page)
    rows = []
    for method, frame in zip(METHODS, frames, strict=True):
        fy, ey = geo.calibration(page, frame, "y", log=True, label_frame=frames[0])  # sharey
        # x: xlim [1, 19] spans the frame exactly (set_xlim in figures.ipynb); layer = vertex x
        x0, width = frame.x0, frame.width
        curves = geo.curves(page, frame, width=3.0)
        js = [round((1 - c["opacity"]) * 20 / 0.6) for c in curves]
        if len(set(js)) != len(js) or not set(js) <= set(range(0, 2 * FIG2_CURVES, 2)):
            raise ValueError(f"{pdf}: {method} panel has curves of opacity index {js}, "
                             f"expected distinct ones among 0, 2, ..., {2 * FIG2_CURVES - 2}")
        for j, curve in zip(js, curves, strict=True):
            values = {}
            for x, y in curve["points"]:
                layer = 1 + 18 * (x - x0) / width
                if abs(layer - round(layer)) > 0.05:
                    raise ValueError(f"{pdf}: vertex at layer {layer:.2f} is not on a layer")
                values[round(layer)] = float(fy(y))
            for layer in range(1, 20):
                if layer in values:
                    status, value = "plotted", round(values[layer], 4)
                elif (layer - 1 in values or layer == 1) and (layer + 1 in values or layer == 19):
                    status, value = "empty", ""  # a gap between two drawn vertices: NaN = 0 kept
                else:
                    status, value = "empty_or_isolated", ""  # an isolated point draws nothing
                rows.append({"method": method, "curve_index": j // 2, "authors_j": j,
                             "dashed": int(curve["dashed"]), "layer": layer, "status": status,
                             "log10_kept_fraction": value,
                             "calibration_residual_log10": round(ey, 4)})
        for j in sorted(set(range(0, 2 * FIG2_CURVES, 2)) - set(js)):  # nothing of it is drawn
            rows += [{"method": method, "curve_index": j // 2, "authors_j": j, "dashed": "",
                      "layer": layer, "status": "not_drawn", "log10_kept_fraction": "",
                      "calibration_residual_log10": round(ey, 4)} for layer in range(1, 20)]
    return rows


def figure7(pdf: Path, schedule: str) -> list[dict]:
    page = geo.page_of(pdf)
    (frame,) = geo.frames(page)
    fx, ex = geo.calibration(page, frame, "x", log=False)
    fy, ey = geo.calibration(page, frame, "y", log=False)
    curves = [c for c in geo.curves(page, frame, width=3.0) if len(c["points"]) == len(FIG7_ITERATIONS)]
    if len(curves) != len(FIG7_EXPONENTS):
        raise ValueError(f"{pdf}: {len(curves)} curves of 11 points, expected {len(FIG7_EXPONENTS)}")
    rows = []
    for curve in curves:
        j = round((1 - curve["opacity"]) * len(FIG7_EXPONENTS) / 0.6)
        for (x, y), iterations in zip(curve["points"], FIG7_ITERATIONS, strict=True):
            if abs(float(fx(x)) - iterations) > 0.5:
                raise ValueError(f"{pdf}: vertex at {float(fx(x)):.2f} iterations, expected {iterations}")
            rows.append({"schedule": schedule, "log10_compression": FIG7_EXPONENTS[j],
                         "iterations": iterations, "prune_size_ratio": round(float(fy(y)), 4),
                         "calibration_residual": round(max(ex, ey), 4)})
    return rows


def check_against(tables: dict[str, list[dict]], data: Path) -> None:
    """Print the largest difference between the recovered numbers and the authors' arrays in
    their ``Results/data`` folder (``data``): Figure 4 from ``layer_conservation``, Figure 3
    from ``unit_conservation``, Figure 7 from ``flow`` (numpy files, read without pickle).
    Figure 2's data are pandas pickles, which this script does not load."""
    short = {"random": "rand", "magnitude": "mag", "snip": "cs", "grasp": "grasp", "synflow": "sf"}
    layers = data / "layer_conservation" / "imagenet" / "vgg19"
    units = data / "unit_conservation" / "imagenet" / "vgg19"
    inv = np.log10(np.load(layers / "inv-size.npy", allow_pickle=False))
    for method, name in short.items():
        rows = [r for r in tables["fig4_reference.csv"] if r["method"] == method]
        score = np.log10(np.load(layers / f"{name}-initialization.npy", allow_pickle=False))
        dx = np.abs(np.array([r["log10_inverse_size"] for r in rows]) - inv).max()
        dy = np.abs(np.array([r["log10_average_score"] for r in rows]) - score).max()
        print(f"Figure 4 {method:9}: max |error| log10 inverse size {dx:.4f}, log10 score {dy:.4f}; "
              f"slope {rows[0]['fitted_slope']:.4f} (arrays: {np.polyfit(inv, score, 1)[0]:.4f})")
        rows = [r for r in tables["fig3_reference.csv"] if r["method"] == method]
        score_in, score_out = np.load(units / f"{name}-initialization.npy", allow_pickle=False)
        ex = np.abs(np.array([float(r["score_in"]) for r in rows]) - score_in).max() / np.ptp(score_in)
        ey = np.abs(np.array([float(r["score_out"]) for r in rows]) - score_out).max() / np.ptp(score_out)
        print(f"Figure 3 {method:9}: max |error| / axis range in {ex:.5f}, out {ey:.5f}; Pearson r "
              f"{rows[0]['pearson_r']:.4f} (arrays: {np.corrcoef(score_in, score_out)[0, 1]:.4f})")
    ratios = np.load(data / "flow" / "imagenet" / "vgg19" / "ratios.npy", allow_pickle=False)
    for index, schedule in enumerate(("linear", "exponential")):  # their schedule_conservation.py
        worst = max(abs(r["prune_size_ratio"] - ratios[index][FIG7_EXPONENTS.index(r["log10_compression"])]
                        [FIG7_ITERATIONS.index(r["iterations"])])
                    for r in tables["fig7_reference.csv"] if r["schedule"] == schedule)
        print(f"Figure 7 {schedule:11}: max |error| of the prune-size ratio {worst:.4f}")


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` to ``path`` atomically (:func:`synflow.core.files.atomic_write`)."""
    from synflow.core.files import atomic_write

    def write(handle):
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    atomic_write(path, write, text=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdf_dir", type=Path, help="folder holding Fig2.pdf, Fig3.pdf, Fig4.pdf, Fig7a.pdf, Fig7b.pdf")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: synflow.analysis.reference.paper_dir())")
    parser.add_argument("--png", type=Path, default=None, help="also render each page to PNG here, to check by eye")
    parser.add_argument("--check-against", type=Path, default=None, metavar="RESULTS_DATA",
                        help="the authors' Results/data folder: print the recovered numbers' errors")
    args = parser.parse_args(argv)
    out = args.out or paper_dir()
    pdfs = args.pdf_dir.expanduser().resolve()
    tables = {
        "fig2_reference.csv": figure2(pdfs / "Fig2.pdf"),
        "fig3_reference.csv": figure3(pdfs / "Fig3.pdf"),
        "fig4_reference.csv": figure4(pdfs / "Fig4.pdf"),
        "fig7_reference.csv": figure7(pdfs / "Fig7a.pdf", "linear") + figure7(pdfs / "Fig7b.pdf", "exponential"),
    }
    for name, rows in tables.items():
        write_csv(out / name, rows)
        print(f"wrote {out / name} ({len(rows)} rows)")
    if args.check_against:
        check_against(tables, args.check_against.expanduser().resolve())
    if args.png:
        args.png.mkdir(parents=True, exist_ok=True)
        for name in ("Fig2", "Fig3", "Fig4", "Fig7a", "Fig7b"):
            geo.page_of(pdfs / f"{name}.pdf").get_pixmap(dpi=110).save(args.png / f"{name}.png")


if __name__ == "__main__":
    main()

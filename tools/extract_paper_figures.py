"""Recover the plotted data of the paper's Figures 2, 3, 4 and 7 from the authors' vector PDFs.

Needs PyMuPDF, which is not a runtime dependency of synflow: ``pip install pymupdf`` into the
environment that runs this script (numpy comes with synflow).

Source: github.com/ganguli-lab/Synaptic-Flow, ``Results/Plots/Fig2.pdf``, ``Fig3.pdf``,
``Fig4.pdf``, ``Fig7a.pdf``, ``Fig7b.pdf`` (drawn by their ``Results/figures.ipynb``). Get them
once, for example from a clone: ``git show HEAD:Results/Plots/Fig4.pdf > pdfs/Fig4.pdf``, then

    python tools/extract_paper_figures.py pdfs/            # writes into synflow.paths.paper_dir()
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
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

try:
    import pymupdf
except ImportError as error:  # pragma: no cover - depends on the environment
    raise SystemExit("tools/extract_paper_figures.py needs PyMuPDF: pip install pymupdf") from error

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from synflow.paths import paper_dir

METHODS = ["random", "magnitude", "snip", "grasp", "synflow"]  # panel order, figures.ipynb
FIG2_CURVES = 12  # j = 0, 2, ..., 22 in figures.ipynb; alpha = 1 - 0.6 j / 20
FIG7_EXPONENTS = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]  # log10 compression, figures.ipynb
FIG7_ITERATIONS = [1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
# Where matplotlib puts a y tick relative to a mathtext label "10^n" (va="center_baseline"):
# 0.348 font sizes above the baseline of "10"; measured on Fig2.pdf, whose y axis has both tick
# marks and such labels (6.96 pt at 20 pt, for all three labels). Figure 4 has no y tick marks.
MATHTEXT_TICK_ABOVE_BASELINE = 0.348


# --------------------------------------------------------------------------- PDF geometry
def _page(pdf: Path):
    if not pdf.is_file():
        raise FileNotFoundError(f"{pdf} not found; give the folder holding the authors' PDFs")
    return pymupdf.open(pdf)[0]


def _frames(page) -> list:
    """The axes rectangles (white fills smaller than the page), left to right."""
    frames = [d["rect"] for d in page.get_drawings()
              if d["type"] == "f" and d["items"][0][0] == "re" and d.get("fill") == (1.0, 1.0, 1.0)
              and d["rect"].width < page.rect.width * 0.9]
    return sorted(frames, key=lambda r: r.x0)


def _minus_bars(page) -> list:
    """Small filled black bars: the minus signs of tick labels."""
    return [d["rect"] for d in page.get_drawings()
            if d["type"] == "f" and d.get("fill") == (0.0, 0.0, 0.0) and d["rect"].height < 1.5
            and 3 < d["rect"].width < 10]


def _spans(page) -> list[dict]:
    spans = []
    for block in page.get_text("rawdict")["blocks"]:
        for line in block.get("lines", []):
            for span in line["spans"]:
                text = "".join(c["c"] for c in span["chars"]).strip()
                if text:
                    spans.append({"text": text, "size": span["size"], "bbox": pymupdf.Rect(span["bbox"]),
                                  "baseline": span["chars"][0]["origin"][1]})
    return spans


def _negated(rect, bars) -> bool:
    """Whether a minus bar sits just left of ``rect`` at its height."""
    return any(0 <= rect.x0 - bar.x1 < 4 and rect.y0 < bar.y0 < rect.y1 for bar in bars)


def _labels(page, frame, axis: str) -> list[tuple[float, float]]:
    """(centre position, value) of the tick labels of one axis of ``frame``."""
    bars = _minus_bars(page)
    if axis == "x":
        near = [s for s in _spans(page) if frame.y1 < s["bbox"].y0 + 8 < frame.y1 + 30
                and frame.x0 - 30 < s["bbox"].x0 < frame.x1 + 30]
    else:
        near = [s for s in _spans(page) if frame.x0 - 80 < s["bbox"].x1 <= frame.x0 + 1
                and frame.y0 - 20 < s["bbox"].y0 < frame.y1]
    labels = []
    used = set()
    for i, span in enumerate(near):
        if i in used or span["size"] < 12 or not _is_number(span["text"]):
            continue
        base = span
        sup = [j for j, s in enumerate(near) if j not in used and s["size"] < base["size"] * 0.8
               and 0 <= s["bbox"].x0 - base["bbox"].x1 < 16 and abs(s["bbox"].y0 - base["bbox"].y0) < 4
               and _is_number(s["text"])]
        text = base["text"].replace(" ", "")
        if sup:
            j = sup[0]
            used.add(j)
            exponent = float(near[j]["text"]) * (-1 if _negated(near[j]["bbox"], bars) else 1)
            mantissa = float(text.split("×")[0]) if "×" in text else 1.0
            value = mantissa * 10.0 ** exponent
            extent = base["bbox"] | near[j]["bbox"]
        else:
            value = float(text) * (-1 if _negated(base["bbox"], bars) else 1)
            extent = pymupdf.Rect(base["bbox"])
            if _negated(base["bbox"], bars):
                extent.x0 -= 8
        if axis == "x":
            anchor = (extent.x0 + extent.x1) / 2
        elif sup:  # "10^n": the tick is 0.348 font sizes above the baseline of "10" (measured
            anchor = base["baseline"] - MATHTEXT_TICK_ABOVE_BASELINE * base["size"]  # on Fig2.pdf)
        else:
            anchor = (extent.y0 + extent.y1) / 2
        labels.append((anchor, value))
    return labels


def _is_number(text: str) -> bool:
    try:
        float(text.replace(" ", "").split("×")[0])
    except ValueError:
        return False
    return True


def _ticks(page, frame, axis: str) -> list[float]:
    """Positions of the tick marks (short black strokes outside the frame)."""
    ticks = []
    for d in page.get_drawings():
        if d.get("color") != (0.0, 0.0, 0.0) or len(d["items"]) != 1 or d["items"][0][0] != "l":
            continue
        r = d["rect"]
        if axis == "x" and r.width < 0.01 and abs(r.y0 - frame.y1) < 0.5 and 2 < r.height < 10 \
                and frame.x0 - 0.5 <= r.x0 <= frame.x1 + 0.5:
            ticks.append(r.x0)
        if axis == "y" and r.height < 0.01 and abs(r.x1 - frame.x0) < 0.5 and 2 < r.width < 10 \
                and frame.y0 - 0.5 <= r.y0 <= frame.y1 + 0.5:
            ticks.append(r.y0)
    return sorted({round(t, 3) for t in ticks})


def calibration(page, frame, axis: str, log: bool, label_frame=None):
    """A function from PDF coordinate to data value, and the worst tick residual (data units,
    log10 units on a log axis), from the tick labels of ``label_frame`` (default ``frame``)."""
    label_frame = label_frame or frame
    ticks = _ticks(page, label_frame, axis)
    pairs = []
    for centre, value in _labels(page, label_frame, axis):
        tick = min(ticks, key=lambda t: abs(t - centre)) if ticks else centre
        if abs(tick - centre) > 3:
            raise ValueError(f"tick label {value} at {centre:.1f} has no tick mark near it")
        pairs.append((tick, np.log10(value) if log else value))
    if len(pairs) < 2:
        raise ValueError(f"axis {axis} of frame {frame} has {len(pairs)} tick labels; need 2")
    pos, val = np.array(pairs).T
    slope, intercept = np.polyfit(pos, val, 1)
    residual = float(np.max(np.abs(slope * pos + intercept - val)))
    if residual > 0.01 * (val.max() - val.min()):
        raise ValueError(f"tick labels of axis {axis} do not lie on a line: {pairs}")
    shift = label_frame.y0 - frame.y0 if axis == "y" else label_frame.x0 - frame.x0

    def to_data(p):
        return slope * (np.asarray(p, dtype=float) + shift) + intercept
    return to_data, residual


def _markers(page, frame) -> list[tuple[tuple, tuple[float, float]]]:
    """(fill colour, centre) of every filled circle path inside ``frame``, in drawing order."""
    out = []
    for d in page.get_drawings():
        r = d["rect"]
        if d["type"] in ("f", "fs") and d["items"][0][0] == "c" and frame.contains(r.tl) \
                and frame.x0 <= (r.x0 + r.x1) / 2 <= frame.x1:
            out.append((d.get("fill"), ((r.x0 + r.x1) / 2, (r.y0 + r.y1) / 2)))
    return out


def _curves(page, frame, width: float) -> list[dict]:
    """Polylines of stroke ``width`` inside ``frame``: vertices, opacity, dashed."""
    out = []
    for d in page.get_drawings():
        if d["type"] != "s" or abs((d.get("width") or 0) - width) > 0.01:
            continue
        centre = ((d["rect"].x0 + d["rect"].x1) / 2, (d["rect"].y0 + d["rect"].y1) / 2)
        if not (frame.x0 - 1 <= centre[0] <= frame.x1 + 1):
            continue
        points = []
        for item in d["items"]:
            for p in item[1:]:
                if (p.x, p.y) not in points:
                    points.append((p.x, p.y))
        dashes = d.get("dashes") or ""
        out.append({"points": points, "opacity": d.get("stroke_opacity", 1.0),
                    "dashed": bool(dashes) and dashes.strip() not in ("[] 0", "[]0", ""),
                    "color": d.get("color")})
    return out


# --------------------------------------------------------------------------- figures
def figure4(pdf: Path) -> list[dict]:
    page = _page(pdf)
    rows = []
    for method, frame in zip(METHODS, _frames(page), strict=True):
        fx, ex = calibration(page, frame, "x", log=True)
        centres = np.array([c for _, c in _markers(page, frame)])
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
    pairs = [(c, np.log10(v)) for c, v in _labels(page, frame, "y")]
    if not pairs:
        raise ValueError(f"Figure 4 panel at x={frame.x0:.0f} has no y tick label")
    offsets = [v - per_point * t for t, v in pairs]
    offset = float(np.mean(offsets))
    residual = float(max(abs(o - offset) for o in offsets))

    def to_data(p):
        return per_point * np.asarray(p, dtype=float) + offset
    return to_data, residual


def figure3(pdf: Path) -> list[dict]:
    page = _page(pdf)
    offsets = {}
    for span in _spans(page):  # matplotlib's offset text, e.g. "1e32", scales one axis
        if span["text"].startswith("1e"):
            offsets[(round(span["bbox"].x0), round(span["bbox"].y0))] = float(span["text"])
    rows = []
    for method, frame in zip(METHODS, _frames(page), strict=True):
        fx, _ = calibration(page, frame, "x", log=False)
        fy, _ = calibration(page, frame, "y", log=False)
        scale_x = scale_y = 1.0
        for (x0, y0), factor in offsets.items():
            if frame.x0 <= x0 <= frame.x1 + 30 and y0 > frame.y1:
                scale_x = factor
            if frame.x0 - 60 <= x0 <= frame.x1 and y0 < frame.y0:
                scale_y = factor
        centres = np.array([c for _, c in _markers(page, frame)])
        xs, ys = fx(centres[:, 0]) * scale_x, fy(centres[:, 1]) * scale_y
        r = float(np.corrcoef(xs, ys)[0, 1])
        for unit, (x, y) in enumerate(zip(xs, ys)):
            rows.append({"method": method, "unit": unit, "score_in": f"{x:.4g}", "score_out": f"{y:.4g}",
                         "pearson_r": round(r, 4)})
    return rows


def figure2(pdf: Path) -> list[dict]:
    page = _page(pdf)
    frames = _frames(page)
    rows = []
    for method, frame in zip(METHODS, frames, strict=True):
        fy, ey = calibration(page, frame, "y", log=True, label_frame=frames[0])  # sharey
        # x: xlim [1, 19] spans the frame exactly (set_xlim in figures.ipynb); layer = vertex x
        x0, width = frame.x0, frame.width
        curves = _curves(page, frame, width=3.0)
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
    page = _page(pdf)
    (frame,) = _frames(page)
    fx, ex = calibration(page, frame, "x", log=False)
    fy, ey = calibration(page, frame, "y", log=False)
    curves = [c for c in _curves(page, frame, width=3.0) if len(c["points"]) == len(FIG7_ITERATIONS)]
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
    """Write ``rows`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdf_dir", type=Path, help="folder holding Fig2.pdf, Fig3.pdf, Fig4.pdf, Fig7a.pdf, Fig7b.pdf")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: synflow.paths.paper_dir())")
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
            _page(pdfs / f"{name}.pdf").get_pixmap(dpi=110).save(args.png / f"{name}.png")


if __name__ == "__main__":
    main()

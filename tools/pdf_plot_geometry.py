"""Reading matplotlib plots back from their vector PDFs: axes frames, tick labels, axis
calibration, markers and polylines (for tools/extract_paper_figures.py, whose docstring says
how). Needs PyMuPDF: ``pip install pymupdf`` (not a runtime dependency of synflow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pymupdf

# Where matplotlib puts a y tick relative to a mathtext label "10^n" (va="center_baseline"):
# 0.348 font sizes above the baseline of "10"; measured on Fig2.pdf, whose y axis has both tick
# marks and such labels (6.96 pt at 20 pt, for all three labels). Figure 4 has no y tick marks.
MATHTEXT_TICK_ABOVE_BASELINE = 0.348


def page_of(pdf: Path):
    if not pdf.is_file():
        raise FileNotFoundError(f"{pdf} not found; give the folder holding the authors' PDFs")
    return pymupdf.open(pdf)[0]


def frames(page) -> list:
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


def spans(page) -> list[dict]:
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


def labels(page, frame, axis: str) -> list[tuple[float, float]]:
    """(centre position, value) of the tick labels of one axis of ``frame``."""
    bars = _minus_bars(page)
    if axis == "x":
        near = [s for s in spans(page) if frame.y1 < s["bbox"].y0 + 8 < frame.y1 + 30
                and frame.x0 - 30 < s["bbox"].x0 < frame.x1 + 30]
    else:
        near = [s for s in spans(page) if frame.x0 - 80 < s["bbox"].x1 <= frame.x0 + 1
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


def ticks(page, frame, axis: str) -> list[float]:
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
    marks = ticks(page, label_frame, axis)
    pairs = []
    for centre, value in labels(page, label_frame, axis):
        tick = min(marks, key=lambda t: abs(t - centre)) if marks else centre
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


def markers(page, frame) -> list[tuple[tuple, tuple[float, float]]]:
    """(fill colour, centre) of every filled circle path inside ``frame``, in drawing order."""
    out = []
    for d in page.get_drawings():
        r = d["rect"]
        if d["type"] in ("f", "fs") and d["items"][0][0] == "c" and frame.contains(r.tl) \
                and frame.x0 <= (r.x0 + r.x1) / 2 <= frame.x1:
            out.append((d.get("fill"), ((r.x0 + r.x1) / 2, (r.y0 + r.y1) / 2)))
    return out


def curves(page, frame, width: float) -> list[dict]:
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

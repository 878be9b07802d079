"""The curation funnel chart: documents kept after each step, rejected counts annotated.

Drawn with Pillow: one bar chart does not need a plotting library, whose import (half a second of CPU) the curate
stage paid on every run while the workers ran the rules.
"""
from __future__ import annotations

BLUE, GREY, INK, FAINT = (59, 125, 216), (221, 221, 221), (34, 34, 34), (120, 120, 120)


def funnel_chart(funnel, path: str) -> str:
    """Documents kept after each curation step (one row per step: the documents in, in grey, the kept ones over
    them in blue), with `kept / in` and the rejected count written beside each bar. Returns `path` (a PNG)."""
    from PIL import Image, ImageDraw, ImageFont

    size = 14
    font, small, bold = ImageFont.load_default(size), ImageFont.load_default(size - 2), ImageFont.load_default(size + 2)
    steps = list(funnel)
    row, top, left = 26, 44, 16 + max([int(font.getlength(s.step)) for s in steps] + [60])
    bar_w, note_w = 420, 200
    width, height = left + 12 + bar_w + note_w, top + row * max(len(steps), 1) + 30
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((width // 2, 12), "curation funnel", fill=INK, font=bold, anchor="mt")
    most = max([s.received for s in steps] + [1])
    x0 = left + 12
    for i, s in enumerate(steps):
        y = top + i * row
        draw.text((left, y + row // 2), s.step, fill=INK, font=font, anchor="rm")
        draw.rectangle((x0, y + 4, x0 + max(1, round(bar_w * s.received / most)), y + row - 4), fill=GREY)
        if s.kept:
            draw.rectangle((x0, y + 4, x0 + max(1, round(bar_w * s.kept / most)), y + row - 4), fill=BLUE)
        rejected = s.received - s.kept
        note = f"{s.kept:,} / {s.received:,}" + (f"  (-{rejected:,})" if rejected else "")
        draw.text((x0 + bar_w + 8, y + row // 2), note, fill=INK, font=small, anchor="lm")
    legend_y = top + row * max(len(steps), 1) + 8
    for j, (label, colour) in enumerate((("in", GREY), ("kept", BLUE))):
        x = x0 + j * 80
        draw.rectangle((x, legend_y + 3, x + 12, legend_y + 15), fill=colour)
        draw.text((x + 18, legend_y + 9), label, fill=FAINT, font=small, anchor="lm")
    img.save(path, format="PNG", optimize=True)
    return path

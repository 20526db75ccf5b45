"""Contact sheets of the radiograph phantoms (limb parts and AP pelvis) at 128 and 64 px.

Writes build/contact_sheet_limb.png and build/contact_sheet_pelvic.png: each tile is labelled
with its class, fracture type, displacement (mm) and, for fractures, a small tick at the
fracture point (right-hand copy of each tile) so a reader can check the cue.

    python scripts/contact_sheet.py [--out build] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from hipaug.data.phantoms import render_limb, render_pelvic


def _tile(img: np.ndarray, scale: int, text: str, mark=None) -> Image.Image:
    S = img.shape[0]
    im = Image.fromarray(np.clip(np.rint(img * 255), 0, 255).astype(np.uint8), "L")
    im = im.resize((S * scale, S * scale), Image.NEAREST).convert("RGB")
    canvas = Image.new("RGB", (im.width, im.height + 14), (30, 30, 30))
    canvas.paste(im, (0, 14))
    d = ImageDraw.Draw(canvas)
    d.text((2, 1), text[: im.width // 6], fill=(255, 220, 120))
    if mark is not None and np.all(np.isfinite(mark)):
        x, y = mark[0] * im.width, mark[1] * im.height + 14
        d.ellipse((x - 7, y - 7, x + 7, y + 7), outline=(255, 60, 60))
    return canvas


def _sheet(tiles: list[Image.Image], cols: int) -> Image.Image:
    w, h = tiles[0].size
    rows = (len(tiles) + cols - 1) // cols
    out = Image.new("RGB", (cols * (w + 4), rows * (h + 4)), (0, 0, 0))
    for i, t in enumerate(tiles):
        out.paste(t, ((i % cols) * (w + 4), (i // cols) * (h + 4)))
    return out


def _tiles(render, label) -> list[Image.Image]:
    """Tiles of `render(image_size)` at 128 px (x2) and 64 px (x4), captioned by `label(meta_row, size)`."""
    tiles = []
    for S, scale in ((128, 2), (64, 4)):
        b = render(S)
        for i in range(len(b)):
            m = b.meta.iloc[i]
            tiles.append(_tile(b.images[i], scale, label(m, S), (m.frac_x, m.frac_y) if m.fracture else None))
    return tiles


def limb_sheet(seed: int, per: int = 3) -> Image.Image:
    tiles = _tiles(lambda S: render_limb(per, image_size=S, seed=seed),
                   lambda m, S: f"{m.part} {m.fracture_type} {m.displacement:.0f}mm {S}px")
    return _sheet(tiles, 2 * per)


def pelvic_sheet(seed: int, n: int = 12) -> Image.Image:
    tiles = _tiles(lambda S: render_pelvic(n, image_size=S, seed=seed),
                   lambda m, S: f"{m.fracture_type[:6]} {m.side} {m.displacement:.0f}mm {'imp' if m.impacted else ''}")
    return _sheet(tiles, 6)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    limb_sheet(a.seed).save(out / "contact_sheet_limb.png")
    pelvic_sheet(a.seed).save(out / "contact_sheet_pelvic.png")
    print(out / "contact_sheet_limb.png", out / "contact_sheet_pelvic.png")


if __name__ == "__main__":
    main()

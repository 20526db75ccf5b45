"""The book's editions on real radiographs: a FracAtlas release imported once into the artifact store.

`fracatlas_folders(src)` imports the release at `src` (FracAtlas.zip or the folder it extracts to,
`hipaug.data.import_release`) into the artifact store, keyed by what identifies the release, and
returns its limb and hip dataset folders: `hipaug reproduce --fracatlas SRC` and
`make book FRACATLAS=SRC` run the whole experiment on them, under the source name
`fracatlas-<fingerprint>`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hipaug.core.artifacts import load_or_run
from hipaug.errors import DataError

FRACATLAS_PROFILE = "fracatlas"  # the profile an edition on FracAtlas runs with unless another is named


def _identity(src: Path) -> dict:
    """What identifies a release on disk: the zip's size and digest, or the folder's dataset.csv and file count."""
    if src.is_file():
        h = hashlib.sha256()
        with open(src, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return {"zip": str(src), "sha256": h.hexdigest()}
    csv = next(iter(sorted(src.rglob("dataset.csv"))), None)
    if csv is None:
        raise DataError(f"{src}: no dataset.csv; expected FracAtlas.zip or the folder it extracts to")
    images = sum(1 for p in csv.parent.glob("images/*/*") if p.is_file())
    return {"folder": str(src), "dataset_csv": hashlib.sha256(csv.read_bytes()).hexdigest(), "images": images}


def fracatlas_folders(src: str | Path, artifacts: str | Path | None = None) -> tuple[Path, Path]:
    """Import the FracAtlas release at `src` (once per release) and return its (limb, hip) dataset folders."""
    from hipaug.data import import_release

    src = Path(src).expanduser().resolve()
    if not src.exists():
        raise DataError(f"fracatlas={str(src)!r} does not exist; expected FracAtlas.zip or the folder it extracts to")
    art = load_or_run("fracatlas-import", _identity(src), lambda out: import_release(src, out / "import"),
                      root=artifacts)
    return art.path / "import" / "limb", art.path / "import" / "hip"

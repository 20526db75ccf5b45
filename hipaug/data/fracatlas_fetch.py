"""Download the FracAtlas release with pooch: a progress bar, resume after a broken download, a check by content.

Paper step: data (the public limb set standing in for Lin & Chung's private radiographs, TAAI 2019).
``hipaug data fetch fracatlas --out DIR [--url URL]``; then ``hipaug data fracatlas DIR/FracAtlas.zip``.

Where from
    ``DEFAULT_URL`` is figshare's download link (``https://figshare.com/ndownloader/files/<id>``)
    of the release's one file, FracAtlas.zip, in the item doi:10.6084/m9.figshare.22363012. If
    figshare replaces the file (a new version gets a new id) the link fails with the HTTP status
    named: give the new link with ``url=`` (``--url``), found on the item's page.

How
    ``pooch.retrieve`` drives the download through ``ResumingDownloader``, which writes
    ``DIR/FracAtlas.zip.part`` and, after a broken connection, asks for the rest with an HTTP
    ``Range`` request (up to ``MAX_ATTEMPTS`` tries per call; a later call continues the same
    part file; a server that ignores ``Range`` sends everything again). The release publishes no
    checksum, so the zip is checked by its content before pooch moves it into place: every
    member's CRC, then the rows of dataset.csv against the image files, the importer's own
    inventory (``hipaug.data.fracatlas_release.verify_release_zip``). A zip that fails is kept as
    ``FracAtlas.zip.rejected`` and the error names it.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from hipaug.core import progress as progress_bar
from hipaug.data.fracatlas_release import Inventory, verify_release_zip
from hipaug.data.images import one_line
from hipaug.errors import ConfigError, DataError

__all__ = ["ZIP_NAME", "DEFAULT_URL", "MAX_ATTEMPTS", "ResumingDownloader", "fetch_release", "check_download"]

ZIP_NAME = "FracAtlas.zip"  # the release's file name on figshare
DEFAULT_URL = "https://figshare.com/ndownloader/files/43283628"  # FracAtlas.zip in figshare item 22363012
MAX_ATTEMPTS = 5  # connections tried per call before giving up (each resumes where the last one broke)
_CHUNK = 1 << 16  # what a broken connection can lose of the last read: requests drops a partial chunk


@dataclass(frozen=True)
class ResumingDownloader:
    """A pooch downloader that resumes a broken download from its part file with HTTP Range requests."""

    part: Path  # the partial download, kept between calls so a later call resumes it
    progress: bool = True  # show a progress bar (HIPAUG_PROGRESS=0 hides it anyway)
    attempts: int = MAX_ATTEMPTS  # connections tried before giving up
    timeout: float = 60.0  # seconds without data before a connection counts as broken

    def __call__(self, url: str, output_file: str, pooch=None) -> None:
        """Download `url` to the part file, check it is the release, then move it to pooch's `output_file`."""
        import requests

        error: BaseException | None = None
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(0 if attempt == 1 else min(2 ** (attempt - 2), 30))  # retry at once, then back off
            try:
                if self._get(requests, url):
                    break
                error = None
            except (requests.RequestException, OSError) as exc:
                error = exc
        else:
            why = f" ({one_line(error)})" if error else ""
            raise DataError(f"{url}: download broke off {self.attempts} times{why}; run again to resume {self.part}")
        try:
            verify_release_zip(self.part)
        except DataError as exc:
            rejected = self.part.with_name(ZIP_NAME + ".rejected")
            os.replace(self.part, rejected)
            raise DataError(f"{url}: the download is not the FracAtlas release, kept as {rejected}: {exc}") from None
        os.replace(self.part, output_file)

    def _get(self, requests, url: str) -> bool:
        """One connection: append what the server sends to the part file; True when the file is complete."""
        have = self.part.stat().st_size if self.part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as r:
            if r.status_code == 416:  # nothing after `have`: complete if the server's size is `have`, else restart
                m = re.fullmatch(r"bytes \*/(\d+)", r.headers.get("Content-Range", ""))
                if m and int(m.group(1)) == have:
                    return True
                self.part.unlink(missing_ok=True)
                return False
            if 400 <= r.status_code < 500:
                raise DataError(f"{url}: HTTP {r.status_code} {r.reason}; check the URL (--url)")
            r.raise_for_status()
            start = _range_start(r) if r.status_code == 206 else 0
            if start != have:  # the server ignored or changed the range: start over
                have = 0
            total = int(r.headers["Content-Length"]) + have if "Content-Length" in r.headers else None
            with open(self.part, "ab" if have else "wb") as fh, \
                    progress_bar(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                                 desc=ZIP_NAME, disable=not self.progress) as bar:
                for chunk in r.iter_content(_CHUNK):
                    fh.write(chunk)
                    bar.update(len(chunk))
        return total is None or self.part.stat().st_size >= total


def _range_start(r) -> int:
    m = re.match(r"bytes (\d+)-", r.headers.get("Content-Range", ""))
    return int(m.group(1)) if m else -1


def fetch_release(out: str | Path, url: str | None = None, progress: bool = True) -> Path:
    """Download FracAtlas.zip into the folder `out` (resuming a broken download), check it, return its path.

    An existing ``out/FracAtlas.zip`` is checked and returned without downloading.
    """
    out = Path(out).expanduser()
    target = out / ZIP_NAME
    if target.is_file():
        check_download(target)
        return target
    url = url or DEFAULT_URL
    if not re.match(r"https?://", url):
        raise ConfigError(f"url={url!r}: expected an http:// or https:// link to FracAtlas.zip")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot create the folder ({one_line(exc)})") from None
    import pooch

    downloader = ResumingDownloader(out / (ZIP_NAME + ".part"), progress=progress)
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")  # pooch's hash advice does not apply: the zip is checked by content
    try:
        return Path(pooch.retrieve(url, known_hash=None, fname=ZIP_NAME, path=out, downloader=downloader))
    finally:
        logger.setLevel(level)


def check_download(path: str | Path) -> Inventory:
    """Check a FracAtlas.zip by content (CRCs, rows against images); DataError naming it when it fails."""
    try:
        return verify_release_zip(path)
    except DataError as exc:
        raise DataError(f"{exc} (remove {path} to download it again)") from None

"""`make test` sets up its browser (scripts/ensure_chromium.sh): install when it can, else one line naming it.

Each case runs the script with a PATH of its own (a folder of links), so no real package is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ensure_chromium.sh"


def _bin(tmp_path: Path, apt: str | None = None, chromium: bool = False) -> Path:
    """A PATH folder with bash and id, optionally a fake apt-get (its body) and a chromium."""
    b = tmp_path / "bin"
    b.mkdir()
    for tool in ("bash", "id"):
        (b / tool).symlink_to(shutil.which(tool))
    for name, body in (("apt-get", apt), ("chromium", "exit 0" if chromium else None)):
        if body is not None:
            (b / name).write_text(f"#!{shutil.which('bash')}\n{body}\n")
            (b / name).chmod(0o755)
    return b


def _run(path: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run([shutil.which("bash"), str(SCRIPT)], env={"PATH": str(path), **env}, capture_output=True,
                          text=True, timeout=60)


def test_nothing_to_do_when_chromium_is_there(tmp_path):
    res = _run(_bin(tmp_path, chromium=True))
    assert res.returncode == 0 and res.stdout == res.stderr == ""


def test_without_apt_it_stops_with_one_line_naming_the_package(tmp_path):
    res = _run(_bin(tmp_path))
    assert res.returncode == 1 and res.stdout == ""
    assert len(res.stderr.splitlines()) == 1 and "install the package chromium" in res.stderr


def test_no_apt_flag_forbids_the_install(tmp_path):
    res = _run(_bin(tmp_path, apt="touch /nonexistent; exit 0"), HIPAUG_NO_APT="1")
    assert res.returncode == 1 and "install the package chromium" in res.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the install path runs only as root")
def test_as_root_with_apt_it_installs_chromium(tmp_path):
    b = tmp_path / "bin"
    # The fake apt-get "installs" chromium into the PATH folder when asked to install it.
    apt = (f'[[ " $* " == *" install "* && " $* " == *" chromium "* ]] && '
           f'printf "#!/bin/sh\\n" > {b}/chromium && {shutil.which("chmod")} +x {b}/chromium; exit 0')
    res = _run(_bin(tmp_path, apt=apt))
    assert res.returncode == 0, res.stderr
    assert (b / "chromium").is_file()


@pytest.mark.skipif(os.geteuid() != 0, reason="the install path runs only as root")
def test_a_failed_install_stops_with_one_line(tmp_path):
    res = _run(_bin(tmp_path, apt="exit 100"))
    assert res.returncode == 1 and res.stderr.splitlines()[-1].startswith("hipaug: error: 'apt-get install chromium'")


def test_not_root_it_does_not_try_apt(tmp_path):
    b = _bin(tmp_path, apt=f"{shutil.which('touch')} {tmp_path}/apt-ran; exit 0")
    (b / "id").unlink()
    (b / "id").write_text(f"#!{shutil.which('bash')}\necho 1000\n")  # a user, not root
    (b / "id").chmod(0o755)
    res = _run(b)
    assert res.returncode == 1 and len(res.stderr.splitlines()) == 1 and "chromium" in res.stderr
    assert not (tmp_path / "apt-ran").exists()

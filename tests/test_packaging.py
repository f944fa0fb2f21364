"""``python -m build`` makes an sdist and, from it, a wheel that holds the whole package
(templates, static files, compiled translations, migrations, ``py.typed``) and nothing
else; the build runs on a copy of the tree, so the working tree stays as it was."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "flask_maildelivery"


def git(*args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout


def source_files() -> list[str]:
    """The files of the tree as a clone holds them: tracked, or new and not ignored."""
    listed = git("ls-files", "--cached", "--others", "--exclude-standard").splitlines()
    return sorted({name for name in listed if (ROOT / name).is_file()})


def test_build_makes_an_sdist_and_a_wheel_with_the_whole_package(tmp_path: Path) -> None:
    status_before = git("status", "--porcelain")
    files = source_files()
    source = tmp_path / "source"
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path / "dist"
    # no --sdist/--wheel: the wheel is built from the sdist, so a file the sdist lacks is
    # missing from the wheel too
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert git("status", "--porcelain") == status_before

    [wheel] = out.glob("*.whl")
    [sdist] = out.glob("*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
    package_files = {name for name in files if name.startswith(f"{PACKAGE}/")}
    # every file of the package, and nothing beside it but the wheel's metadata
    assert {name for name in in_wheel if name.startswith(f"{PACKAGE}/")} == package_files
    assert {name.split("/")[0] for name in in_wheel} == {
        PACKAGE,
        wheel.name.split("-py3")[0] + ".dist-info",
    }
    for name in (
        "py.typed",
        "static/maildelivery.css",
        "templates/maildelivery/detail.html",
        "templates/maildelivery/index.html",
        "translations/fr/LC_MESSAGES/messages.mo",
        "migrations/env.py",
        "migrations/script.py.mako",
        "migrations/versions/0001_initial.py",
    ):
        assert f"{PACKAGE}/{name}" in in_wheel, name
    versions = {
        name for name in package_files if name.startswith(f"{PACKAGE}/migrations/versions/")
    }
    assert versions <= in_wheel

    with tarfile.open(sdist) as archive:
        top = sdist.name.removesuffix(".tar.gz")
        in_sdist = {name.removeprefix(f"{top}/") for name in archive.getnames() if name != top}
    # the source tree, tests and example included, without the CI and editor files
    assert {name for name in files if not name.startswith(".")} <= in_sdist
    assert not [name for name in in_sdist if name.endswith(".pyc") or "/instance/" in name]

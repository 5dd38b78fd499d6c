"""``pip install .`` (and ``pipx install .``, which does the same in an environment of its own) gives a working
``image-analysis``: the wheel is built from a copy of the sources and installed, with the dependencies it
declares and nothing else, in a fresh virtual environment.

The dependencies come from PyPI (the one network this project may use) through pip. It takes tens of
seconds, so the test is marked ``packaging``: ``-m "not packaging"`` leaves it out of a quick run.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[2]
LAYER_PACKAGE = ROOT / "layers" / "shared" / "image_analysis"
CLI_PACKAGE = ROOT / "image_analysis_cli"


def _clean_env() -> dict[str, str]:
    """No path of this work tree may leak into the installed command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"
    return done


def _packages(root: Path, name: str) -> set[str]:
    """Every package under ``root`` (a folder with ``__init__.py``), dotted, named from ``name``."""
    return {
        ".".join([name, *init.parent.relative_to(root).parts])
        for init in root.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


def _modules_the_command_imports() -> set[str]:
    """Every module ``image_analysis_cli`` imports, at the top of a file or inside a function (a command's
    lazy import fails only when the command runs, long after ``--help`` worked)."""
    found = set()
    for source in CLI_PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
    return {m for m in found if m.split(".")[0] not in sys.stdlib_module_names and m != "__future__"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed; its ``bin`` folder."""
    work = tmp_path_factory.mktemp("package")
    source = work / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "build.json")
    shutil.copytree(LAYER_PACKAGE, source / "layers" / "shared" / "image_analysis", ignore=ignore)
    shutil.copytree(CLI_PACKAGE, source / "image_analysis_cli", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    # A subpackage nobody listed anywhere: the wheel must pick it up by itself.
    (source / "layers" / "shared" / "image_analysis" / "zz_new_room").mkdir()
    (source / "layers" / "shared" / "image_analysis" / "zz_new_room" / "__init__.py").write_text("ROOM = 'new'\n")

    _run(sys.executable, "-m", "pip", "wheel", source, "--no-deps", "--quiet", "-w", work / "dist", cwd=work)
    (wheel,) = (work / "dist").glob("image_analysis-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    in_wheel = {os.path.dirname(n).replace("/", ".") for n in names if n.endswith("/__init__.py")}
    expected = _packages(LAYER_PACKAGE, "image_analysis") | _packages(CLI_PACKAGE, "image_analysis_cli")
    assert in_wheel == expected | {"image_analysis.zz_new_room"}
    assert not [n for n in names if n.startswith(("tests/", "local/", "layers/"))]

    environment = work / "env"
    _run(sys.executable, "-m", "venv", "--without-pip", environment, cwd=work)
    python = environment / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", wheel, cwd=work)
    return environment / "bin"


def test_the_installed_command_runs(installed):
    done = _run(installed / "image-analysis", "--help", cwd=installed)
    for command in ("backfill", "reprocess", "reconcile", "results", "flagged", "find"):
        assert command in done.stdout


def test_every_command_loads_with_the_declared_dependencies_alone(installed):
    # Each command's own help loads its module-level code; a bad argument runs it up to the first AWS call.
    for command in ("backfill", "reprocess", "reconcile", "results", "flagged", "find"):
        _run(installed / "image-analysis", command, "--help", cwd=installed)
    modules = sorted(_modules_the_command_imports())
    assert "image_analysis.merge" in modules  # `results --raw` imports it inside the command
    check = f"import importlib\nfor name in {modules!r}:\n    importlib.import_module(name)\n"
    _run(installed / "python", "-c", check, cwd=installed)
    # And nothing is found in this work tree instead of the environment.
    where = _run(
        installed / "python",
        "-c",
        "import image_analysis, image_analysis_cli; print(image_analysis.__file__)",
        cwd=installed,
    ).stdout
    assert str(ROOT) not in where and "site-packages" in where


def test_a_new_subpackage_is_installed_without_a_line_in_pyproject(installed):
    done = _run(installed / "python", "-c", "from image_analysis.zz_new_room import ROOM; print(ROOM)", cwd=installed)
    assert done.stdout.strip() == "new"

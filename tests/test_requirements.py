"""Every package of requirements.txt is imported by the code in ``src/``, and every third-party
package ``src/`` imports is listed (the code uses the listed library, not a hand-written copy)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: requirement -> the module it installs, where the names differ
IMPORT_NAMES = {"opencv-python-headless": "cv2", "scikit-image": "skimage", "pillow": "PIL", "pyyaml": "yaml"}
#: requirements ``src/`` does not import by name, and why
USED_OTHERWISE = {
    "pytest": "runs the tests (tests/, scripts/test.sh)",
    "tensorboard": "used through torch.utils.tensorboard (dmm.engine.hooks)",
}
#: modules ``src/`` imports that come with a listed package
BUNDLED = {"triton": "comes with torch's CUDA wheels; dmm.model.matching_triton runs only on CUDA"}


def requirements() -> list[str]:
    names = []
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.append(re.split(r"[<>=!~\[; ]", line)[0].lower())
    return names


def imported_modules() -> set[str]:
    """Top-level names of the absolute imports in ``src/`` (every import statement)."""
    found = set()
    for path in (REPO / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_every_requirement_is_imported_by_the_code():
    imported = imported_modules()
    unused = [r for r in requirements() if r not in USED_OTHERWISE and IMPORT_NAMES.get(r, r) not in imported]
    assert not unused, f"listed in requirements.txt but imported nowhere in src/: {unused}"
    assert set(USED_OTHERWISE) <= set(requirements())


def test_every_third_party_import_is_a_requirement():
    listed = {IMPORT_NAMES.get(r, r) for r in requirements()}
    third_party = {m for m in imported_modules() if m not in sys.stdlib_module_names and m not in ("dmm", "__future__")}
    unlisted = sorted(third_party - listed - set(BUNDLED))
    assert not unlisted, f"imported in src/ but not in requirements.txt: {unlisted}"

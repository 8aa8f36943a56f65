"""Run Python in a child process where some installed modules cannot be imported, as in an install
without the extras that bring them: a `sitecustomize` on PYTHONPATH puts a finder first on
`sys.meta_path` that answers ModuleNotFoundError for them (and `importlib.util.find_spec` too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from ferkit.extras import EXTRAS

REPO = Path(__file__).resolve().parent.parent
#: Every module an extra brings, and the large ones they pull in: what a core install lacks.
EXTRA_MODULES = frozenset({m for extra in EXTRAS.values() for m in extra.modules} | {"scipy", "pandas", "starlette"})

_BLOCKER = '''
import os, sys
from importlib.abc import MetaPathFinder

BLOCKED = frozenset(os.environ["FERKIT_TEST_BLOCKED"].split(","))


class _Missing(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Missing())
'''


def run_without(modules: Iterable[str], code: str, folder: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code args`` with ``modules`` (top-level names) not importable; cwd is ``folder``."""
    blocker = folder / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(_BLOCKER)
    env = dict(os.environ, FERKIT_TEST_BLOCKED=",".join(sorted(modules)),
               PYTHONPATH=os.pathsep.join([str(blocker), str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code, *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def json_without(modules: Iterable[str], code: str, folder: Path, *args: str) -> object:
    """As run_without; ``code`` prints one JSON value as its last line of standard output, returned here."""
    done = run_without(modules, code, folder, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])

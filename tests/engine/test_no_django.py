import pkgutil
import subprocess
import sys
from pathlib import Path

import engine

ROOT = Path(engine.__file__).resolve().parent.parent


def run_alone(code: str) -> None:
    """Run ``code`` in a fresh interpreter that sees only the project (no Django settings, no site env)."""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_engine_never_imports_django():
    modules = sorted(m.name for m in pkgutil.walk_packages(engine.__path__, prefix="engine."))
    assert "engine.batch" in modules and "engine.recipes.user_personalization" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {['engine', *modules]!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    run_alone(code)


def test_scoring_leaves_training_only_imports_out():
    """A batch worker holds its models in memory; scipy.stats and scipy.optimize (40 MB between them) are
    imported only by tuning and training, so a worker that only scores never pays for them."""
    code = (
        "import sys\n"
        "import engine.batch, engine.realtime, engine.serving, engine.hpo, engine.recipes, engine.artifacts\n"
        "bad = sorted(m for m in ('scipy.stats', 'scipy.optimize') if m in sys.modules)\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    run_alone(code)

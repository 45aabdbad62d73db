#!/usr/bin/env python
import os
import sys
from pathlib import Path


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    try:
        from django.core.management import execute_from_command_line
    except ImportError:
        # `python manage.py ...` typed beside `make run` with the system's python: run it with the project's
        # virtualenv, which `make run` and `make test` create, instead of failing on a missing Django.
        venv_python = Path(__file__).resolve().parent / ".venv" / "bin" / "python"
        if venv_python.exists() and Path(sys.prefix).resolve() != venv_python.parent.parent.resolve():
            os.execv(venv_python, [str(venv_python), *sys.argv])
        raise SystemExit(
            "Django is not installed for this python. Run `make run` (or `make test`) once to create .venv, "
            "or use .venv/bin/python."
        ) from None
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

"""``python -m cnnviz_widgets report ...``: see :func:`cnnviz_widgets.report.main`."""

from __future__ import annotations

import sys


def main() -> int:
    """Entry point of the ``cnnviz`` command."""
    from .report import main as run

    return run(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

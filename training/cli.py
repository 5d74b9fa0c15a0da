"""Command-line entry points: a problem with the user's input prints one line and exits with 2
(as argparse does for bad arguments); anything else is a bug and keeps its traceback."""
from __future__ import annotations

import sys
from collections.abc import Callable

from model.skeleton import MappingError
from training.bvh import BVHError

USER_ERRORS = (BVHError, MappingError, FileNotFoundError)


def run(main: Callable[[], object]) -> None:
    """Call `main()`; print a user error's message without a traceback and exit with status 2."""
    try:
        main()
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

"""``python -m intentflow``: the same as the ``intentflow`` command."""

import sys

from intentflow.cli import main

if __name__ == "__main__":  # importing this module (as doctest collection does) runs nothing
    sys.exit(main())

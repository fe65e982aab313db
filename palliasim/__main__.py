"""``python -m palliasim``: the same as the ``palliasim`` console script."""

from palliasim.experiments.cli import main

main()

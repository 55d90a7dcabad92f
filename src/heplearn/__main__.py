"""``python -m heplearn``: the ``heplearn`` command."""

from heplearn.cli import main

main()

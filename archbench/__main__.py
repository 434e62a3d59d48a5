"""`python -m archbench` runs the command-line interface."""

from archbench.cli import main

main()

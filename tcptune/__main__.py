"""Run tcptune as ``python -m tcptune``."""

from tcptune.cli import main

main()

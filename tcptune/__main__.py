"""Run tcptune as ``python -m tcptune``."""

from tcptune.entry import run

if __name__ == "__main__":
    run()

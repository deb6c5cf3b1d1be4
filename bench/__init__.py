"""The tcptune benchmark (run bench/bench.py; see bench/README.md)."""

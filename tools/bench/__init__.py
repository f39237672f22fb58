"""Load benchmark for the fake server (see tools/bench/README.md)."""

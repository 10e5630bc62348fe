"""The scale benchmark: `python -m bench --n 100 500 1000 2000` (see docs/performance.md)."""

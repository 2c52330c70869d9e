"""The worker's former module path: the worker lives in skilltrain.comparison.worker. `python -m skilltrain.worker`
and `from skilltrain.worker import run_one, serve` keep working."""

from skilltrain.comparison.worker import die_with_parent, run_one, serve

__all__ = ["die_with_parent", "run_one", "serve"]

if __name__ == "__main__":
    import sys

    serve(int(sys.argv[1]))

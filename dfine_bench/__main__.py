"""``python -m dfine_bench`` is the same as the ``dfine-bench`` command."""

from dfine_bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

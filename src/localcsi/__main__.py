"""``python -m localcsi``: the same as the ``localcsi`` command."""

from localcsi.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

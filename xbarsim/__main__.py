"""``python -m xbarsim``: the command-line interface."""

from xbarsim.cli import main

if __name__ == "__main__":
    main()

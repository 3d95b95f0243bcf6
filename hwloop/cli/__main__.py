"""``python -m hwloop.cli``: the same app as the ``hwloop`` command."""

from hwloop.cli.app import main

if __name__ == "__main__":
    main()

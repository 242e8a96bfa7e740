"""``python -m paysim`` and the ``paysim`` command."""

import sys


def main() -> None:
    # importing the CLI pulls in numpy, scipy and matplotlib: a Ctrl-C meanwhile is still a clean exit
    try:
        from paysim.cli import app
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    app(prog_name="paysim")


if __name__ == "__main__":
    main()

"""``python -m paysim`` and the ``paysim`` command."""

import os
import sys
import warnings


def main() -> None:
    # library warnings (numpy on an empty slice, a deprecation) are not the user's to read; the
    # environment carries the choice into worker processes; -W or PYTHONWARNINGS still apply
    if not sys.warnoptions and not os.environ.get("PYTHONWARNINGS"):
        os.environ["PYTHONWARNINGS"] = "ignore"
        warnings.simplefilter("ignore")
    # importing the CLI pulls in numpy, scipy and matplotlib: a Ctrl-C meanwhile is still a clean exit
    try:
        from paysim.cli import app
    except KeyboardInterrupt:
        # os._exit: an interrupt that landed inside an extension module's own PyRun_* call
        # marks the interpreter, which would then end by killing itself with SIGINT (-2)
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
        os._exit(130)
    from paysim.outputs import closed_stdout_is_quiet
    with closed_stdout_is_quiet():
        app(prog_name="paysim")


if __name__ == "__main__":
    main()

"""``python -m flowlaws`` and the ``flowlaws`` command: the command's imports, guarded,
so that Ctrl-C while they load is one line and exit 130, never a traceback."""

import sys


def main() -> int:
    try:
        from flowlaws.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("flowlaws: interrupted\n")
        return 130
    return run()


if __name__ == "__main__":
    sys.exit(main())

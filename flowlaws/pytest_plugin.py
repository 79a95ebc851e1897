"""pytest plugin (entry point ``pytest11``): registers the Hypothesis profiles
``flowlaws-dev``/``-ci``/``-thorough`` (it loads none: a user's settings are theirs),
adds ``--flowlaws-report-dir``, and renders the counterexamples captured by
`flowlaws.testing.assert_conserved` in the terminal summary (saving them when a report
folder is given)."""

from __future__ import annotations

from flowlaws.strategies.profiles import register_profiles

register_profiles()


def pytest_addoption(parser):
    group = parser.getgroup("flowlaws")
    group.addoption("--flowlaws-report-dir", default=None, metavar="DIR",
                    help="save counterexamples found by assert_conserved here (JSON, text, SVG, HTML)")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from flowlaws.testing import CAPTURED

    if not CAPTURED:
        return
    from rich.console import Console

    terminalreporter.section("flowlaws counterexamples")
    console = Console(file=terminalreporter._tw._file, width=100, highlight=False)
    folder = config.getoption("flowlaws_report_dir")
    from flowlaws.errors import InvalidArgument

    for cx in CAPTURED:
        path = None
        if folder:
            try:
                path = cx.save(folder)
            except InvalidArgument as error:  # never crash the session over a report folder
                terminalreporter.write_line(f"flowlaws: {error}")
        if cx.test:
            terminalreporter.write_line(f"found by {cx.test}")
        console.print(cx.renderable(replay_path=path))

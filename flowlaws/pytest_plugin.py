"""pytest plugin (entry point ``pytest11``): registers the Hypothesis profiles
``flowlaws-dev``/``-ci``/``-thorough`` (it loads none: a user's settings are theirs),
adds ``--flowlaws-report-dir``, and renders the counterexamples captured by
`flowlaws.testing.assert_conserved` in the terminal summary (saving them when a report
folder is given). Under pytest-xdist a worker attaches each counterexample to its test's
report (as JSON, in ``user_properties``) and the controller collects them, so the summary
is the same with ``-n 2``."""

from __future__ import annotations

from flowlaws.strategies.profiles import register_profiles

register_profiles()


def pytest_addoption(parser):
    group = parser.getgroup("flowlaws")
    group.addoption("--flowlaws-report-dir", default=None, metavar="DIR",
                    help="save counterexamples found by assert_conserved here (JSON, text, SVG, HTML)")


PROPERTY = "flowlaws_counterexample"


def pytest_runtest_makereport(item, call):
    """Attach the counterexamples a test captured to its report (read by an xdist controller)."""
    import json

    from flowlaws.testing import CAPTURED

    if call.when != "call" or not hasattr(item.config, "workerinput"):
        return
    for cx in CAPTURED:
        if cx.test == item.nodeid and (PROPERTY, None) not in item.user_properties:
            item.user_properties.append((PROPERTY, json.dumps(cx.to_json())))


def pytest_runtest_logreport(report):
    """On an xdist controller: collect the counterexamples the workers attached (data only:
    JSON, never code)."""
    import json

    from flowlaws.report import Counterexample
    from flowlaws.testing import CAPTURED

    if getattr(report, "node", None) is None or report.when != "call":  # only a worker's call phase
        return
    for name, value in report.user_properties:
        if name == PROPERTY:
            CAPTURED.append(Counterexample.from_json(json.loads(value), report.nodeid))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from flowlaws.testing import CAPTURED

    if not CAPTURED or hasattr(config, "workerinput"):  # an xdist worker: its controller renders them
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
        cx.print_to(console, replay_path=path)

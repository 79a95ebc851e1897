"""Counterexamples: everything needed to replay a violation, as versioned JSON, and a
rich rendering (theorem, hypotheses, architecture tree, params, law sparkline,
residual vs tolerance, attribution, replay command) exported as text, SVG and HTML."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from flowlaws.checking import Evidence, Level, Scenario
from flowlaws.errors import InvalidArgument

FORMAT = "flowlaws-counterexample"
VERSION = 1
SPARKS = "▁▂▃▄▅▆▇█"


def versions() -> dict:
    """Versions of flowlaws and the libraries a replay depends on."""
    from importlib.metadata import version

    found = {name: version(name) for name in ("flowlaws", "hypothesis", "autograd", "numpy", "scipy")}
    return {**found, "python": platform.python_version()}


@dataclass(frozen=True)
class Counterexample:
    """A scenario, the theorem (or explore settings) it was checked against, the verdict."""

    theorem: str
    statement: str
    scenario: Scenario
    verdict: str
    evidence: Evidence
    hypotheses: tuple = ()  # (name, reason or None)
    explore: dict | None = None  # settings of an ad-hoc theorem (explore, assert_conserved)
    seed: int | None = None
    versions: dict = field(default_factory=versions)
    test: str | None = None  # the pytest node id that found it (assert_conserved)

    @property
    def stem(self) -> str:
        """A file name that says what failed: the test or theorem, the architecture and
        the optimizer."""
        s = self.scenario
        parts = [self.test or self.theorem, s.model.spec, s.optimizer.spec if s.optimizer is not None else ""]
        text = "-".join(p for p in parts if p)
        return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in text)[:160]

    @classmethod
    def of(cls, thm, scenario: Scenario, verdict, seed=None, explore=None) -> Counterexample:
        """The counterexample of ``verdict``, with every hypothesis of ``thm`` evaluated
        (and, for an expected break, the one it violates)."""
        from flowlaws.theorems import HYPOTHESES

        hyps = [(h.name, h.why(scenario)) for h in thm.hypotheses]
        if thm.broken:
            reason = HYPOTHESES[thm.broken].why(scenario)
            hyps.append((thm.broken, reason or "the law is altered: " + verdict.evidence.law))
        return cls(thm.id, thm.statement, scenario, verdict.status, verdict.evidence, tuple(hyps),
                   explore, seed)

    # --- JSON ---------------------------------------------------------------------------------
    def to_json(self) -> dict:
        s = self.scenario
        return {
            "format": FORMAT, "version": VERSION, "theorem": self.theorem,
            "statement": self.statement, "verdict": self.verdict,
            "spec": s.model.spec, "loss": s.loss.spec,
            "optimizer": s.optimizer.spec if s.optimizer is not None else None,
            "steps": s.steps, "T": s.T, "flow_steps": s.flow_steps, "seed": self.seed,
            "params": {name: np.asarray(p).tolist()
                       for (name, _), p in zip(s.model.param_specs, s.params, strict=True)},
            "X": np.asarray(s.X).tolist(), "Y": np.asarray(s.Y).tolist(),
            "evidence": self.evidence.to_json(),
            "hypotheses": [list(h) for h in self.hypotheses],
            "explore": self.explore, "versions": self.versions, "test": self.test,
        }

    @classmethod
    def from_json(cls, data: dict, source: str = "report") -> Counterexample:
        from flowlaws.flows import optimizer
        from flowlaws.losses import loss
        from flowlaws.models import parse

        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InvalidArgument(f"{source} is not a flowlaws counterexample (no 'format': '{FORMAT}')")
        if data.get("version") != VERSION:
            raise InvalidArgument(
                f"{source} has report version {data.get('version')!r}; this flowlaws reads version {VERSION}")
        try:
            model = parse(data["spec"])
            params = tuple(np.asarray(data["params"][name], dtype=float) for name, _ in model.param_specs)
            scenario = Scenario(
                model, params, np.asarray(data["X"], dtype=float), np.asarray(data["Y"], dtype=float),
                loss(data["loss"]), optimizer(data["optimizer"]) if data["optimizer"] else None,
                int(data["steps"]), float(data["T"]), int(data["flow_steps"]))
            fields = Evidence.__dataclass_fields__
            ev = {k: v for k, v in data["evidence"].items() if k in fields}
            ev["unit"], ev["series"] = tuple(ev.get("unit", ())), tuple(ev.get("series", ()))
            ev = {k: (float("inf") if k == "effect" and v is None else v) for k, v in ev.items()}
            evidence = Evidence(**ev)
            return cls(data["theorem"], data["statement"], scenario, data["verdict"], evidence,
                       tuple(tuple(h) for h in data.get("hypotheses", ())), data.get("explore"),
                       data.get("seed"), data.get("versions", {}), data.get("test"))
        except InvalidArgument as error:
            raise InvalidArgument(f"{source}: {error}") from None
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidArgument(f"{source} is a damaged counterexample ({type(error).__name__}: {error}); "
                                  "re-run explore or check to regenerate it") from None

    def save(self, directory, stem: str | None = None) -> Path:
        """Write ``stem.json`` atomically (default: `stem`; ``-2``, ``-3`` ... appended so
        that no report overwrites another), with ``.txt``, ``.svg`` and ``.html`` renderings.
        A folder that cannot be written raises InvalidArgument naming it."""
        try:
            return self._save(Path(directory), _unused(Path(directory), stem or self.stem))
        except OSError as error:
            raise InvalidArgument(f"cannot write reports to {directory}: {error.strerror or error}; "
                                  "choose a writable report folder") from None

    def _save(self, directory: Path, stem: str) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{stem}.json"
        _atomic_write(path, json.dumps(self.to_json(), indent=1))
        console = Console(record=True, width=100, file=open(os.devnull, "w"))  # noqa: SIM115
        self.print_to(console, replay_path=path)
        _atomic_write(directory / f"{stem}.txt", console.export_text(clear=False))
        _atomic_write(directory / f"{stem}.svg", console.export_svg(title=f"flowlaws: {stem}", clear=False))
        _atomic_write(directory / f"{stem}.html", console.export_html())
        console.file.close()
        return path

    # --- rich ---------------------------------------------------------------------------------
    def __rich_console__(self, console, options):
        yield self.renderable()

    def print_to(self, console, replay_path=None) -> None:
        """The panel, then the replay hint on a line of its own: printed soft-wrapped, so a
        long report path is never broken across lines, and the panel only as wide as it
        needs (a log is never padded to the console's width)."""
        console.print(self.renderable())
        console.print(Text(self.hint(replay_path), style="dim"), soft_wrap=True)

    def hint(self, replay_path=None) -> str:
        return (f"replay: flowlaws replay {replay_path}" if replay_path else
                "not saved: pass --flowlaws-report-dir DIR (pytest) or --report-dir DIR to keep a replayable file")

    def renderable(self):
        s, e = self.scenario, self.evidence
        head = Text.assemble((f"{self.theorem}", "bold"), "  ", (self.verdict, _style(self.verdict)),
                             "\n", (self.statement, "italic"))
        hyps = Table.grid(padding=(0, 1))
        for name, reason in self.hypotheses:
            hyps.add_row("✗" if reason else "✓", Text(name), Text(reason or "", style="red"))
        figures = Table(show_header=True, header_style="bold", box=None)
        for column in ("level", "law", "unit", "where", "residual", "tolerance", "effect size"):
            figures.add_column(column)
        figures.add_row(e.level, Text(e.law), str(e.unit), Text(e.where), f"{e.residual:.3e}", f"{e.tolerance:.3e}",
                        f"{e.effect:.3g}")
        parts = [head, hyps, _tree(s), _params_table(s), figures]
        if e.attribution:
            parts.append(Text(f"attribution: {e.attribution} (2B(θ,Δ) = {e.first_order:.3e}, "
                              f"Q(Δ) = {e.second_order:.3e})"))
        series = e.series or law_series(self)
        if len(series) > 1:
            parts.append(Text.assemble("law value over time  ", (sparkline(series), "cyan"),
                                       f"  {series[0]:.6g} → {series[-1]:.6g}"))
        return Panel(Group(*parts), title="flowlaws counterexample", border_style=_style(self.verdict), expand=False)


def _style(verdict: str) -> str:
    return {"holds": "green", "break-confirmed": "yellow", "violated": "red"}.get(verdict, "magenta")


def _tree(s: Scenario) -> Tree:
    tree = Tree(Text(s.model.spec, style="bold"))
    shapes = getattr(s.model, "_chain", None)
    if shapes is None:
        for name, shape in s.model.param_specs:
            tree.add(f"{name} {shape}")
        return tree
    for layer, shape in zip(s.model.layers, shapes.shapes[1:], strict=True):
        node = tree.add(Text(f"{layer.spec} → {shape}"))
        for inner in getattr(layer, "block", ()):
            node.add(Text(inner.spec))
    data = tree.add(f"data: {len(s.X)} sample(s), loss {s.loss.spec}")
    if s.optimizer is not None:
        data.add(f"optimizer {s.optimizer.spec}, {s.steps} steps")
    return tree


def _params_table(s: Scenario) -> Table:
    table = Table(title="params", show_header=False, box=None, title_justify="left")
    for (name, _), p in zip(s.model.param_specs, s.params, strict=True):
        flat = np.ravel(p)
        text = np.array2string(np.asarray(p), precision=3, suppress_small=False, max_line_width=80)
        table.add_row(name, Text(text) if flat.size <= 24 else f"{flat.size} values, |max| {np.max(np.abs(flat)):.3g}")
    return table


def sparkline(values) -> str:
    """Unicode sparkline of a series (flat series draw as a flat line)."""
    v = np.asarray(values, dtype=float)
    span = float(np.ptp(v))
    if not np.isfinite(span) or span <= 1e-12 * float(np.max(np.abs(v), initial=0.0)):  # round-off: flat
        return SPARKS[0] * len(v)
    return "".join(SPARKS[round((x - v.min()) / span * (len(SPARKS) - 1))] for x in v)


def law_series(cx: Counterexample, points: int = 12) -> tuple:
    """The evidence law's value (its worst unit) along the run that failed: the optimizer's
    steps for a step-level failure, else a short gradient flow."""
    from flowlaws.flows import descend, implicit_midpoint
    from flowlaws.invariants import candidate_laws, laws, one_to_one, rowwise, skip_ignored_laws, without_bias

    s = cx.scenario
    name = cx.evidence.law
    pool = {*laws(s.model, s.loss), *laws(s.model, "cross_entropy"), *candidate_laws(s.model),
            *skip_ignored_laws(s.model)}
    pool |= {without_bias(law) for law in pool} | {one_to_one(law) for law in pool} | {rowwise(law) for law in pool}
    law = next((law for law in pool if law.name == name), None)
    if law is None:
        return ()
    if cx.evidence.level == Level.STEP and s.optimizer is not None:
        run = descend(s.model, s.loss, s.params, s.X, s.Y, s.optimizer, max(s.steps, points - 1))
    else:
        run = implicit_midpoint(s.model, s.loss, s.params, s.X, s.Y, s.T or 0.5, max(s.flow_steps, points - 1))
    pick = lambda value: float(np.asarray(value)[cx.evidence.unit] if np.ndim(value) else value)  # noqa: E731
    try:
        return tuple(pick(law.value(p)) for p in run.params)
    except IndexError:
        return ()


def _unused(directory: Path, stem: str) -> str:
    candidate, number = stem, 1
    while (directory / f"{candidate}.json").exists():
        number += 1
        candidate = f"{stem}-{number}"
    return candidate


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path) -> Counterexample:
    """Read a saved counterexample; a damaged or foreign file raises InvalidArgument."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidArgument(f"cannot read {path}: {error.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidArgument(f"{path} is not valid JSON ({error.msg} at line {error.lineno}); "
                              "it may be truncated: regenerate it") from None
    return Counterexample.from_json(data, str(path))

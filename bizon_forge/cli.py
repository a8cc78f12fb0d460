"""`bizon-forge`: serve the MCP server, make workspaces, and validate or generate without MCP (for pipelines)."""

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bizon_forge import atomic, audit, interpreter, validators, workspace
from bizon_forge.connector import RECEIVER_PORT, Connector
from bizon_forge.dependencies import InstallResult, install_dependencies
from bizon_forge.findings import Refused, Result, failed
from bizon_forge.interpreter import forge_command
from bizon_forge.pipeline import GenerateResult, generate, generate_source, is_source_spec
from bizon_forge.validators.report import ValidationResult

MOCK_REPORT_VAR = "BIZON_FORGE_MOCK_API_REPORT"  # mock-api --run's --report default (the demo sets it)


class _Defaults(argparse.HelpFormatter):
    """Each option's help ends with its default, when it has one worth saying (not a flag's False, not None)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS) or "%(default)" in text or action.nargs == 0:
            return text
        return text + " (default: %(default)s)"


HELP = {"formatter_class": _Defaults}
PYTHON_HELP = "the interpreter that runs the workspace's bizon (default: its .venv, else this one)"
LEVEL_HELP = (
    "fast: static checks and the tree's tests (seconds); full: also a real bizon run (tens of seconds); live: a "
    "source only, a bounded read of its real API (--save DIR keeps the pages)"
)
GENERATE_LEVEL_HELP = "fast: static checks and the tree's tests (seconds); full: also real bizon runs (tens of seconds)"


def _interpreter(value: str) -> str:
    """A path given for --python is taken from the folder the command runs in (the checks run elsewhere); a bare
    name (python3.11) is looked up on PATH as it is."""
    return str(Path(value).absolute()) if os.sep in value else value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bizon-forge")
    except PackageNotFoundError:  # run from a source folder that was never installed
        from bizon_forge import __version__

        return __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bizon-forge", description=__doc__, formatter_class=_Defaults)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _fakes_parsers(sub)
    _token_parser(sub)
    _workspace_parser(sub)
    _tree_parsers(sub)
    _schema_parser(sub)
    return p


def _schema_parser(sub) -> None:
    schema = sub.add_parser(
        "schema",
        help="print the JSON schema of a spec file `generate` takes (a destination's or a source's)",
        **HELP,
    )
    schema.add_argument("kind", choices=["destination", "source"], help="which spec (examples/ has one of each)")


def _serve_parser(sub) -> None:
    serve = sub.add_parser("serve", help="run the MCP server (stdio unless --http)", **HELP)
    serve.add_argument(
        "--workspace",
        action="append",
        default=[],
        metavar="DIR",
        help="a root the server may touch (repeatable); the first is the default workspace. None: any path",
    )
    serve.add_argument("--python", type=_interpreter, help=PYTHON_HELP)
    serve.add_argument("--http", action="store_true", help="serve streamable HTTP on /mcp")
    serve.add_argument("--host", default="127.0.0.1", help="--http: the address to listen on")
    serve.add_argument("--port", type=int, default=8765, help="--http: the port to listen on (0: a free one)")
    serve.add_argument("--stateless", action="store_true", help="stateless HTTP, for many processes behind a balancer")
    auth = serve.add_argument_group("HTTP authentication (required unless --no-auth on loopback)")
    auth.add_argument(
        "--tokens",
        metavar="FILE",
        help="static bearer tokens (`token add` makes them); also read: the env var BIZON_FORGE_TOKENS",
    )
    auth.add_argument("--jwt-issuer", help="accept JWTs with this `iss`, signed by a key of --jwt-jwks-url")
    auth.add_argument("--jwt-audience", help="the `aud` they must carry (e.g. this server's public /mcp URL)")
    auth.add_argument("--jwt-jwks-url", help="the issuer's JWKS (https; http only on loopback)")
    auth.add_argument("--jwt-roots-claim", default="bizon_forge_roots", help="claim listing a JWT's roots")
    auth.add_argument("--no-auth", action="store_true", help="serve HTTP without credentials (loopback only)")


# source_render's MOCK_URL_VAR and MOCK_TOKEN_URL_VAR, for the help: importing it would put the mock API (http.server,
# its pages and auth) on the start-up path of every command, `serve` among them (tests/test_install_startup.py
# checks that they agree and that serve's start-up imports none of it).
MOCK_VARS = ("BIZON_FORGE_MOCK_API_URL", "BIZON_FORGE_MOCK_API_TOKEN_URL")


def _fakes_parsers(sub) -> None:
    """The local stand-ins the rendered configs print: the receiver and a source's mock API."""
    receiver = sub.add_parser("receiver", help="serve the local HTTP receiver the http check configs post to", **HELP)
    receiver.add_argument("--port", type=int, help=f"default {RECEIVER_PORT}, as the check configs print")
    receiver.add_argument("--ignore-replace", action="store_true", help='ignore "replace": true, as delete_first says')

    mock = sub.add_parser(
        "mock-api",
        **HELP,
        help="serve a source spec as a local mock API (prints its URL), or only while a command runs (--run)",
        epilog="e.g. cd WORKSPACE && bizon-forge mock-api SPEC --run -- .venv/bin/bizon run CHECK_CONFIG: the mock "
        f"on a free port, {MOCK_VARS[0]} (and {MOCK_VARS[1]}) set to it for the command, stopped after it; "
        "the exit code is the command's.",
    )
    mock.add_argument("spec", help="the SourceSpec as a JSON file")
    mock.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    mock.add_argument("--clean", action="store_true", help="no 429/503 on the way")
    mock.add_argument("--recorded", metavar="DIR", help="serve the JSON pages saved from the real API in DIR")
    mock.add_argument("--case", help="serve the base_url of this misbehaviour case (the mock's module doc)")
    mock.add_argument(
        "--run",
        action="store_true",
        help="-- COMMAND...: the last option; run COMMAND with the mock's URL in its environment, then stop",
    )
    mock.add_argument(
        "--report",
        metavar="FILE",
        default=os.environ.get(MOCK_REPORT_VAR),
        help=f"with --run: write what the mock served (its /_report JSON) to FILE (default: ${MOCK_REPORT_VAR})",
    )


def _token_parser(sub) -> None:
    token = sub.add_parser("token", help="mint or revoke a static bearer token for `serve --http --tokens FILE`")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    add = token_sub.add_parser(
        "add", help="add a token to FILE and print its secret (shown once, stored hashed)", **HELP
    )
    add.add_argument("--file", required=True, help="the token file (made if absent)")
    add.add_argument("--id", required=True, help="who holds it: the name logs and the audit trail show")
    add.add_argument("--root", action="append", required=True, help="a workspace root it may use (repeatable)")
    add.add_argument("--read-only", action="store_true", help="only tools that read (inspect_workspace)")
    rm = token_sub.add_parser("remove", help="revoke a token (a running server reads FILE at start)", **HELP)
    rm.add_argument("--file", required=True, help="the token file")
    rm.add_argument("--id", required=True, help="the id the token was added with")


def _workspace_parser(sub) -> None:
    ws = sub.add_parser("workspace", help="workspace commands")
    ws_sub = ws.add_subparsers(dest="ws_command", required=True)
    init = ws_sub.add_parser("init", help="make a workspace from bizon's sdist on PyPI, with its own .venv", **HELP)
    init.add_argument("dir", help="an absent or empty folder")
    init.add_argument(
        "--bizon-version", default="0.6.4", help="bizon's release on PyPI (the tests run 0.6.4 and 0.5.2)"
    )
    init.add_argument("--no-venv", action="store_true", help="skip DIR/.venv (the checks then use --python or ours)")
    venv = ws_sub.add_parser(
        "venv", help="make DIR/.venv: the tree in editable mode plus its test group (resumes an init)", **HELP
    )
    venv.add_argument("dir", help="the workspace")


def _tree_parsers(sub) -> None:
    """install, validate and generate: what runs on a workspace's connector without MCP."""
    inst = sub.add_parser("install", help="install a connector's client libraries into the workspace's Python", **HELP)
    inst.add_argument("name", help="a destination's or a source's (a source's when only a source has the name)")
    inst.add_argument("--source", action="store_true", help="NAME is the source, when a destination shares it")
    _tree_options(inst)

    val = sub.add_parser(
        "validate",
        help="validate a destination (or a source: NAME is one, or --source) and exit non-zero on failure",
        **HELP,
    )
    val.add_argument("name", help="the destination or source")
    val.add_argument("--level", choices=["fast", "full", "live"], default="fast", help=LEVEL_HELP)
    val.add_argument("--fix", action="store_true", help="apply ruff's fixes to the destination's files")
    val.add_argument("--verbose", action="store_true", help="list passing and consequential checks too")
    val.add_argument("--no-cache", action="store_true", help="rerun checks whose inputs are unchanged")
    val.add_argument("--source", action="store_true", help="NAME is a source (run validate_source)")
    val.add_argument("--recorded", help="a source: serve these saved JSON pages instead of generated ones")
    val.add_argument("--save", metavar="DIR", help="live: save the pages read in DIR (replayed by --recorded DIR)")
    _tree_options(val)

    gen = sub.add_parser(
        "generate",
        help="describe -> render -> register -> install -> validate from a spec file (a source: describe -> render "
        "-> install -> validate)",
        **HELP,
    )
    gen.add_argument(
        "spec", help="JSON or YAML: describe_target's arguments, or describe_source's spec (streams); see examples/"
    )
    gen.add_argument("--level", choices=["fast", "full"], default="fast", help=GENERATE_LEVEL_HELP)
    _tree_options(gen)


def _tree_options(parser) -> None:
    parser.add_argument("--workspace", default=".", metavar="DIR", help="the bizon tree")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("--python", type=_interpreter, help=PYTHON_HELP)


def _print(result, as_json: bool, show_next: bool = False) -> None:
    data = result.model_dump(mode="json", exclude_none=True)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    if data.get("steps"):
        print("steps: " + ", ".join(f"{s['step']} {'ok' if s['ok'] else 'FAILED'}" for s in data["steps"]))
    for f in data.get("findings", []):
        where = f" {f['file']}:{f.get('line', '')}" if f.get("file") else ""
        print(f"{f['status'].upper():4} {f['id']}{where}: {f['message']}")
        if f.get("hint") and f["status"] != "pass":
            print(f"     hint: {f['hint']}")
        if f.get("excerpt") and f["status"] == "fail":
            print("     | " + f["excerpt"].replace("\n", "\n     | "))
    for fixed in data.get("fixed") or []:
        print(f"FIXED {fixed['path']}" + (f" ({fixed['note']})" if fixed.get("note") else ""))
    if data.get("summary"):
        print(data["summary"])
    if data.get("log_dir"):
        print(f"logs: {data['log_dir']}")
    if data.get("next") and show_next:
        print(f"next: {data['next']}")


def _only_a_source(ws, name: str) -> bool:
    """`validate NAME` of a source needs no --source when no destination has that name."""
    return (ws.root / Connector(name, "source").dir).is_dir() and not (ws.root / Connector(name).dir).is_dir()


def _split_run(argv: list[str]) -> tuple[list[str], list[str]]:
    """`mock-api ... --run -- COMMAND...`: the options before --run, and COMMAND (argparse cannot take it whole)."""
    if argv[:1] != ["mock-api"] or "--run" not in argv:
        return argv, []
    at = argv.index("--run")
    command = argv[at + 1 :]
    return argv[: at + 1], command[1:] if command[:1] == ["--"] else command


def main(argv: list[str] | None = None) -> None:
    given = sys.argv[1:] if argv is None else argv
    argv, command = _split_run(given)
    args = _parser().parse_args(argv)
    args.command_line = command
    if args.command in ("validate", "generate", "install"):
        signal.signal(signal.SIGINT, _two_step_interrupt(args, given))
    try:
        with _heartbeat(_long_step(args)):
            code = _run(args)
    except Refused as refused:
        for f in refused.findings:
            print(f"FAIL {f.id}: {f.message}" + (f"\n     hint: {f.hint}" if f.hint else ""), file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"\n{_interrupted(args, given)}", file=sys.stderr)
        _exit_now(130)
    except BrokenPipeError:  # `bizon-forge schema destination | head`: the reader left, as a shell's tools allow
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit must not fail
        sys.exit(141)
    sys.exit(code)


def _two_step_interrupt(args, given: list[str]):
    """Ctrl-C while checks run: the first lets the checks under way end and remove their scratch data (tables a
    check wrote in a scratch database, say), saying so at once; a second stops at once."""
    count = [0]

    def handle(signum, frame) -> None:
        count[0] += 1
        if count[0] == 1:
            _progress("stopping: the checks under way end and clean up first (Ctrl-C again: stop now)")
            _step[0] = "stopping (Ctrl-C again: now)"
            raise KeyboardInterrupt
        print(
            f"\n{_interrupted(args, given)} Stopped at once: scratch data of those checks may be left.", file=sys.stderr
        )
        sys.stderr.flush()
        os._exit(130)

    return handle


def _exit_now(code: int) -> None:
    """Exit without waiting for check threads still blocked on their subprocesses: those run in sessions of their
    own (the Ctrl-C never reached them) but are tied to the threads that started them (workspace.tied_to_server),
    so the kernel ends them as this process ends. A normal exit would first wait for every check to finish."""
    sys.stdout.flush()
    sys.stderr.flush()
    if any(t is not threading.main_thread() and not t.daemon and t.is_alive() for t in threading.enumerate()):
        os._exit(code)
    sys.exit(code)


def _long_step(args) -> str | None:
    """What a command that may run for minutes is doing, for its heartbeat; None for the servers and quick ones."""
    if args.command == "workspace":
        return f"making {args.dir}" if args.ws_command == "init" else f"making {args.dir}/.venv"
    if args.command == "validate":
        return f"validating {args.name} ({args.level})"
    if args.command == "generate":
        return f"generating from {args.spec} ({args.level})"
    if args.command == "install":
        return f"installing the libraries of {args.name}"
    return None


def _interrupted(args, given: list[str]) -> str:
    """What a Ctrl-C left, and the command that resumes."""
    again = forge_command(*given)
    if args.command in ("serve", "receiver", "mock-api"):
        return f"bizon-forge {args.command} stopped."
    if args.command == "workspace":
        dest = Path(args.dir).expanduser().resolve()
        if args.ws_command == "venv" or (dest / workspace.MODELS_FILE).is_file():
            return f"interrupted: {dest} holds bizon's tree, its .venv unfinished. Resume with: " + forge_command(
                "workspace", "venv", str(dest)
            )
        return f"interrupted before bizon's tree was in place: {dest} is empty or absent. Run it again: {again}"
    return (
        "interrupted: a write it had begun is rolled back by the next command (none stays half done). "
        f"Run it again: {again}"
    )


_said = [0.0]  # when the last progress line was printed (time.monotonic)
_step = [""]  # what the heartbeat says is under way
HEARTBEAT_S = 5.0


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)
    _said[0] = time.monotonic()


def _checks_progress(done: float, total: float, message: str) -> None:
    """The validators' progress (done of total checks) as a line."""
    _progress(f"[{done:.0f}/{total:.0f}] {message}" if total else message)


@contextmanager
def _heartbeat(step: str | None) -> Iterator[None]:
    """A line on stderr whenever `step` has printed nothing for 5 s: no command stays silent."""
    if step is None:
        yield
        return
    started = time.monotonic()
    _step[0] = step
    _progress(f"{step} ...")  # at once: a start-up (uvx's, say) plus a first beat would be silent for over 5 s
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(min(0.5, HEARTBEAT_S / 4)):
            if time.monotonic() - _said[0] >= HEARTBEAT_S:
                _progress(f"... {_step[0]}: {time.monotonic() - started:.0f} s")

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def spec_schema(kind: str) -> dict:
    """The JSON schema of a spec file: describe_target's arguments, or describe_source's spec (the resource
    bizon-forge://source-spec serves the same)."""
    from bizon_forge.spec import destination, source

    if kind == "source":
        return source.schema()
    out = destination.DestinationSpec.model_json_schema()
    out["description"] = "describe_target's arguments, as a JSON or YAML file for `bizon-forge generate`."
    return out


def _run(args) -> int:
    if args.command == "serve":
        return _serve(args)
    if args.command == "token":
        return _token(args)
    if args.command in ("receiver", "mock-api"):
        return _fakes(args)
    if args.command == "workspace":
        return _workspace(args)
    if args.command == "schema":
        print(json.dumps(spec_schema(args.kind), indent=1))
        return 0
    settings = workspace.Settings.from_paths([args.workspace], python=args.python)
    ws = workspace.resolve(None, settings)
    atomic.roll_back_interrupted(ws.state_dir)  # as every tool does: a write a dead process left half done
    if args.command == "validate":
        return _validate(args, ws)
    if args.command == "install":
        kind = "source" if args.source else None
        result = install_dependencies(ws, args.name, progress=_progress, kind=kind)
        _audit(ws, args.name, result)
        _print(result, args.json)
        return 0 if result.ok else 1
    return _generate(args, ws)


def _generate(args, ws) -> int:
    """generate: a spec file through every step, printed with the next step as a command."""
    loaded = _load_spec(Path(args.spec))
    if is_source_spec(loaded):
        result = generate_source(ws, loaded, level=args.level)
        result.next = _source_next(ws, args, loaded["name"], result)
        _audit(ws, loaded["name"], result)
        _print(result, args.json, show_next=True)
        return 0 if result.ok else 1
    result = generate(ws, loaded, level=args.level)
    name = loaded.get("name") if isinstance(loaded, dict) else None
    if result.steps and result.steps[-1].step == "validate":
        result.next = _destination_next(ws, args, str(name), result)
    _audit(ws, name, result)
    _print(result, args.json, show_next=True)
    return 0 if result.ok else 1


def _validate(args, ws) -> int:
    """validate: a source's or a destination's checks, printed with the next step as a command."""
    if args.source or args.recorded or args.level == "live" or _only_a_source(ws, args.name):
        result: Result = validators.validate_source(
            ws,
            args.name,
            level=args.level,
            verbose=args.verbose,
            recorded=args.recorded,
            save=args.save,
            progress=_checks_progress,
        )
        result.next = _source_next(ws, args, args.name, result)
        _audit(ws, args.name, result, "validate_source")
        _print(result, args.json, show_next=True)
        return 0 if result.ok else 1
    result = validators.validate_destination(
        ws,
        args.name,
        level=args.level,
        fix=args.fix,
        verbose=args.verbose,
        use_cache=not args.no_cache,
        progress=_checks_progress,
    )
    result.next = _destination_next(ws, args, args.name, result)
    _audit(ws, args.name, result)
    _print(result, args.json, show_next=True)
    return 0 if result.ok else 1


def _fakes(args) -> int:
    from bizon_forge.validators.fakes import mock_api, receiver  # http.server and the fakes: not on serve's start-up

    if args.command == "receiver":
        return receiver.serve_forever(args.port or RECEIVER_PORT, honours_replace=not args.ignore_replace)
    if args.run:
        return _mock_run(args)
    return mock_api.serve_forever(
        args.spec, args.port, "clean" if args.clean else "unreliable", args.recorded, args.case
    )


def _mock_run(args) -> int:
    """The mock API on a free port (or --port) for as long as a command runs, its URL in the command's environment:
    a printed command carries no port, and two runs side by side do not collide."""
    from bizon_forge.source_render import MOCK_TOKEN_URL_VAR, MOCK_URL_VAR
    from bizon_forge.validators.fakes import mock_api

    command = args.command_line
    if not command:
        print("bizon-forge mock-api: --run needs a command after it: --run -- COMMAND...", file=sys.stderr)
        return 2
    spec = json.loads(Path(args.spec).read_text(encoding="utf-8"))
    with mock_api.start(
        spec, mode="clean" if args.clean else "unreliable", recorded=args.recorded, port=args.port
    ) as api:
        try:
            urls = (api.case_url(args.case), api.case_token_url(args.case)) if args.case else (api.url, api.token_url)
        except KeyError as error:
            print(error.args[0], file=sys.stderr)
            return 2
        env = {**os.environ, MOCK_URL_VAR: urls[0], MOCK_TOKEN_URL_VAR: urls[1]}
        print(f"mock API of {spec.get('name', '?')} at {urls[0]} while {shlex.join(command)} runs", file=sys.stderr)
        try:
            code = subprocess.run(command, env=env).returncode
        except OSError as error:  # not found, not executable
            print(f"bizon-forge mock-api: cannot run {command[0]}: {error}", file=sys.stderr)
            code = 127
        except KeyboardInterrupt:  # the command had the Ctrl-C too, and subprocess.run waited for it
            print("interrupted: the mock API is stopped", file=sys.stderr)
            code = 130
        report = api.report(args.case)
    print(_served(report), file=sys.stderr)
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    return code


def _served(report: dict) -> str:
    """One line of what the mock served, per stream."""
    parts = []
    for name, stream in report.get("streams", {}).items():
        faults = ", ".join(str(f["status"]) for f in stream.get("faults", []))
        parts.append(
            f"{name}: {stream.get('requests', 0)} requests, {stream.get('records_served', 0)} records answered "
            f"({len(stream.get('ids', []))} held)" + (f", faults: {faults}" if faults else "")
        )
    return "mock API served " + ("; ".join(parts) or "nothing")


def _destination_next(ws, args, name: str, result) -> str | None:
    """A destination's next step once validated, as a command (validate_destination's `next` names its MCP call);
    after full, its own `next`: the example sync's variables, then its command."""
    python = ["--python", args.python] if args.python else []

    def validate(level: str, *more: str) -> str:
        return forge_command("validate", name, "--workspace", str(ws.root), "--level", level, *more, *python)

    if not result.ok:
        fixable = any(f.id.startswith("format.") and f.status == "fail" for f in result.findings)
        return f"Fix the failures, each has a hint, then run: {validate(args.level, *(['--fix'] if fixable else []))}"
    if args.level == "fast":
        return f"validate it fully (its tests, real bizon runs, the data read back): {validate('full')}"
    return result.next


def _source_next(ws, args, name: str, result) -> str | None:
    """A source's next step as a command: after fast, its full validation; after full, validate_source's own `next`
    (the env:// variables to set, then the run of its example config)."""
    if not result.ok or args.level == "live":
        return result.next
    python = ["--python", args.python] if args.python else []
    if args.level == "full":
        live = forge_command("validate", name, "--source", "--workspace", str(ws.root), "--level", "live", *python)
        return validators.after_full(ws, name, f"`{live} --save recorded`")
    full = forge_command("validate", name, "--source", "--workspace", str(ws.root), "--level", "full", *python)
    return f"validate it fully (its tests and a real bizon run against the mock API): {full}"


def _serve(args) -> int:
    from bizon_forge import credentials  # mcp's auth (0.6 s): only serve and token need it

    jwt_options = (args.jwt_issuer, args.jwt_audience, args.jwt_jwks_url)
    try:
        if not args.http:
            if args.tokens or args.no_auth or any(jwt_options):
                raise credentials.CredentialsError(
                    "--tokens, --jwt-* and --no-auth apply to --http; stdio takes no credential."
                )
            verifier = None
        else:
            if any(jwt_options) and not all(jwt_options):
                raise credentials.CredentialsError(
                    "JWTs need all three of --jwt-issuer, --jwt-audience, --jwt-jwks-url."
                )
            issuer = credentials.JwtIssuer(*jwt_options, roots_claim=args.jwt_roots_claim) if all(jwt_options) else None
            verifier = credentials.http_verifier(args.host, args.no_auth, args.tokens, issuer)
    except credentials.CredentialsError as error:
        print(f"bizon-forge serve: {error}", file=sys.stderr)
        return 2
    if args.http and verifier is None:
        print(
            f"serving {args.host}:{args.port} WITHOUT authentication (--no-auth): every local user is in",
            file=sys.stderr,
        )
    from bizon_forge.server.app import serve  # the MCP server (1.2 s of imports): the other commands need none of it

    settings = workspace.Settings.from_paths(args.workspace, python=args.python)
    serve(settings, http=args.http, host=args.host, port=args.port, stateless=args.stateless, verifier=verifier)
    return 0


def _audit(ws, name: str | None, result, tool: str | None = None) -> None:
    """The command's line in the workspace's audit trail, as the server's tools leave theirs (who: "cli"): validate,
    install and generate write or run the tree's code."""
    tools: dict[type, str] = {
        ValidationResult: "validate_destination",  # validate_source's answer is one too: its caller names it
        InstallResult: "install_dependencies",
        GenerateResult: "generate",
    }
    line = audit.entry("cli", tool or tools[type(result)], name if isinstance(name, str) else None, result)
    problem = audit.append(ws, line, echo=False) if line else None
    if problem:
        print(f"WARN {problem.id}: {problem.message}", file=sys.stderr)


def _token(args) -> int:
    from bizon_forge import credentials  # mcp's auth (0.6 s): only serve and token need it

    path = Path(args.file)
    try:
        if args.token_command == "remove":
            credentials.remove_token(path, args.id)
            print(f"token {args.id!r} removed from {path}; restart the servers that read it", file=sys.stderr)
            return 0
        secret = credentials.add_token(path, args.id, args.root, write=not args.read_only)
    except credentials.CredentialsError as error:
        print(f"bizon-forge token: {error}", file=sys.stderr)
        return 2
    may = "read only" if args.read_only else "read and write"
    print(f"token {args.id!r} added to {path} ({may}); its secret, shown this once, is on stdout.", file=sys.stderr)
    print("Clients send it as the header  Authorization: Bearer <secret>", file=sys.stderr)
    print(secret)
    return 0


def _workspace(args) -> int:
    if args.ws_command == "init":
        path = workspace.init(args.dir, args.bizon_version, progress=_progress)
        if args.no_venv:
            ws = workspace.Workspace(root=path, settings=workspace.Settings())
            print(f"bizon {args.bizon_version} workspace ready at {path}")
            print(f"no .venv made: until it has one, its bizon runs with {ws.python()}; make one with:")
            print(f"  {interpreter.fix_command(ws)}")
            _print_serve(path)
            return 0
    else:
        found = workspace.resolve(args.dir, workspace.Settings())
        atomic.roll_back_interrupted(found.state_dir)  # the venv installs the tree: a whole one
        path = found.root
    python = interpreter.make_venv(path, progress=_progress, installer_lines=False)
    ws = workspace.Workspace(root=path, settings=workspace.Settings())
    # Said only now: an init stopped while making the .venv has not made a workspace that is ready.
    print(f"bizon {ws.bizon_version} workspace ready at {path}")
    print(f"its interpreter: {python}")
    print(f"run a sync: {ws.bizon_command('run', 'FILE')}")
    _print_serve(path)
    return 0


def _print_serve(root: Path) -> None:
    """How an agent reaches it: the server over stdio, from this installation."""
    serve = forge_command("serve", "--workspace", str(root))
    print(f"serve it to an agent over stdio: {serve}")
    print(f"  e.g. Claude Code: claude mcp add bizon-forge -- {serve}")


def _load_spec(path: Path) -> dict:
    import yaml  # kept off the server's start-up path (this module starts it)

    try:
        text = path.read_text()
        return yaml.safe_load(text) if path.suffix in (".yml", ".yaml") else json.loads(text)
    except (OSError, ValueError, yaml.YAMLError) as error:  # ValueError covers JSON and decoding errors
        raise Refused(
            failed("generate.unreadable_spec", f"Cannot read {path}: {error}", "Give a JSON or YAML file.")
        ) from None

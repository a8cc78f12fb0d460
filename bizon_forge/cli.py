"""`bizon-forge`: serve the MCP server, make workspaces, and validate or generate without MCP (for pipelines)."""

import argparse
import json
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bizon-forge", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the MCP server (stdio unless --http)")
    serve.add_argument("--workspace", action="append", default=[], help="allowed root; the first is the default")
    serve.add_argument("--python", help="interpreter that runs the workspace's bizon (default: its .venv, else ours)")
    serve.add_argument("--http", action="store_true", help="serve streamable HTTP on /mcp")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--stateless", action="store_true", help="stateless HTTP, for many processes behind a balancer")

    ws = sub.add_parser("workspace", help="workspace commands")
    ws_sub = ws.add_subparsers(dest="ws_command", required=True)
    init = ws_sub.add_parser("init", help="make a workspace from bizon's sdist on PyPI")
    init.add_argument("dir")
    init.add_argument("--bizon-version", default="0.6.4")
    init.add_argument("--no-venv", action="store_true", help="skip DIR/.venv (the checks then use --python or ours)")
    venv = ws_sub.add_parser("venv", help="make DIR/.venv: the tree in editable mode plus its test group")
    venv.add_argument("dir")

    inst = sub.add_parser("install", help="install a destination's client libraries into the workspace's Python")
    inst.add_argument("name")
    inst.add_argument("--workspace", default=".")
    inst.add_argument("--json", action="store_true")
    inst.add_argument("--python")

    val = sub.add_parser("validate", help="run validate_destination and exit non-zero on failure")
    val.add_argument("name")
    val.add_argument("--workspace", default=".")
    val.add_argument("--level", choices=["fast", "full"], default="fast")
    val.add_argument("--fix", action="store_true", help="apply ruff's fixes to the destination's files")
    val.add_argument("--verbose", action="store_true", help="list passing and consequential checks too")
    val.add_argument("--no-cache", action="store_true", help="rerun checks whose inputs are unchanged")
    val.add_argument("--json", action="store_true")
    val.add_argument("--python")

    gen = sub.add_parser("generate", help="describe -> render -> register -> install -> validate from a spec file")
    gen.add_argument("spec", help="JSON or YAML file holding describe_target's arguments")
    gen.add_argument("--workspace", default=".")
    gen.add_argument("--level", choices=["fast", "full"], default="fast")
    gen.add_argument("--json", action="store_true")
    gen.add_argument("--python")
    return p


def _print(result, as_json: bool) -> None:
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


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    from bizon_forge.findings import Refused

    try:
        sys.exit(_run(args))
    except Refused as refused:
        for f in refused.findings:
            print(f"FAIL {f.id}: {f.message}" + (f"\n     hint: {f.hint}" if f.hint else ""), file=sys.stderr)
        sys.exit(2)


def _run(args) -> int:
    from bizon_forge import workspace

    if args.command == "serve":
        from bizon_forge.server.app import serve

        settings = workspace.Settings.from_paths(args.workspace, python=args.python)
        serve(settings, http=args.http, host=args.host, port=args.port, stateless=args.stateless)
        return 0
    if args.command == "workspace":
        return _workspace(args)
    settings = workspace.Settings.from_paths([args.workspace], python=args.python)
    ws = workspace.resolve(None, settings)
    if args.command == "validate":
        from bizon_forge.validators import validate_destination

        result = validate_destination(
            ws, args.name, level=args.level, fix=args.fix, verbose=args.verbose, use_cache=not args.no_cache
        )
        _print(result, args.json)
        return 0 if result.ok else 1
    if args.command == "install":
        from bizon_forge.dependencies import install_dependencies

        result = install_dependencies(ws, args.name, progress=_progress)
        _print(result, args.json)
        return 0 if result.ok else 1
    from bizon_forge.pipeline import generate

    result = generate(ws, _load_spec(Path(args.spec)), level=args.level)
    _print(result, args.json)
    return 0 if result.ok else 1


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _workspace(args) -> int:
    from bizon_forge import interpreter, workspace

    if args.ws_command == "init":
        path = workspace.init(args.dir, args.bizon_version)
        print(f"bizon {args.bizon_version} workspace ready at {path}")
        if args.no_venv:
            ws = workspace.Workspace(root=path, settings=workspace.Settings())
            print(f"no .venv made: until it has one, its bizon runs with {ws.python()}; make one with:")
            print(f"  {interpreter.fix_command(ws)}")
            return 0
    else:
        path = workspace.resolve(args.dir, workspace.Settings()).root
    python = interpreter.make_venv(path, progress=_progress, installer_lines=False)
    ws = workspace.Workspace(root=path, settings=workspace.Settings())
    print(f"its interpreter: {python}")
    print(f"run a sync: {ws.bizon_command('run', 'FILE')}")
    return 0


def _load_spec(path: Path) -> dict:
    import yaml

    from bizon_forge.findings import Refused, fail

    try:
        text = path.read_text()
        return yaml.safe_load(text) if path.suffix in (".yml", ".yaml") else json.loads(text)
    except (OSError, ValueError, yaml.YAMLError) as error:  # ValueError covers JSON and decoding errors
        raise Refused(
            fail("generate.unreadable_spec", f"Cannot read {path}: {error}", "Give a JSON or YAML file.")
        ) from None

"""The `opsportal` command: push a model file, show a model or version, log in for a token."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opsportal_client.client import (
    DEFAULT_URL,
    FORMATS,
    READY,
    TASKS,
    VALIDATING,
    Client,
    OpsPortalError,
    OpsPortalException,
    ValidationFailed,
    format_for_path,
)

# Scripts and CI branch on these, so each outcome keeps its own code.
EXIT_OK = 0
EXIT_VALIDATION_FAILED = 1
EXIT_ERROR = 2  # usage mistakes and HTTP / connection errors, like argparse's own usage exit
EXIT_STILL_VALIDATING = 3
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A mistake in how the command was called, found after argparse accepted it."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and usage errors; return its code so main() always returns
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    handler: Handler = args.handler
    try:
        return handler(args)
    except (OpsPortalException, UsageError, ValueError, OSError) as exc:
        _print_error(exc)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opsportal",
        description="Register and inspect models on an OpsPortal server.",
        parents=[_connection_options(suppress=False)],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Subcommands accept the connection options too (`opsportal push m.skops --url ...`); their
    # defaults are suppressed so they never overwrite a value given before the subcommand.
    shared = [_connection_options(suppress=True)]
    _add_push(commands.add_parser("push", help="upload a model file as a new version", parents=shared))
    _add_status(commands.add_parser("status", help="show a model or one of its versions", parents=shared))
    _add_login(commands.add_parser("login", help="exchange a username and password for an API token", parents=shared))
    return parser


def parse_json_object(value: str) -> dict[str, Any]:
    """A JSON object given inline or as @path/to/file.json (argparse `type=`, so errors are usage errors)."""
    source, text = "the value", value
    if value.startswith("@"):
        source = value[1:]
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {source}: {exc.strerror or exc}") from exc
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f'{source} must be a JSON object such as {{"auc": 0.91}}')
    return parsed


# Parsers


def _connection_options(*, suppress: bool) -> argparse.ArgumentParser:
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--url",
        default=default(os.environ.get("OPSPORTAL_URL", DEFAULT_URL)),
        help=f"server URL (env OPSPORTAL_URL, default {DEFAULT_URL})",
    )
    options.add_argument(
        "--token", default=default(os.environ.get("OPSPORTAL_TOKEN")), help="API token (env OPSPORTAL_TOKEN)"
    )
    options.add_argument("--timeout", type=float, default=default(60.0), help="seconds to wait for each HTTP answer")
    options.add_argument(
        "--no-progress", action="store_true", default=default(False), help="hide the upload progress bar"
    )
    return options


def _add_push(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_file", metavar="MODEL_FILE", type=Path, help="the model artifact to upload")
    parser.add_argument("--name", required=True, help="registered model name")
    parser.add_argument("--task", choices=TASKS, help="model task; needed only when the model does not exist yet")
    parser.add_argument(
        "--format", choices=FORMATS, help="artifact format (default: from the extension, .skops or .onnx)"
    )
    parser.add_argument("--reference", type=Path, help="reference data (CSV or Parquet) for validation and drift")
    parser.add_argument("--target", help="target column in the reference data")
    parser.add_argument("--metrics", type=parse_json_object, help="JSON object, or @file.json")
    parser.add_argument("--params", type=parse_json_object, help="JSON object, or @file.json")
    parser.add_argument("--description", help="what changed in this version")
    parser.add_argument("--intended-use", help="what the model is for, and not for")
    parser.add_argument("--source-code-ref", help="e.g. a git commit or tag")
    parser.add_argument("--training-data", dest="training_data_description", help="how the training data was made")
    parser.add_argument("--no-wait", action="store_true", help="return once uploaded, without waiting for validation")
    parser.add_argument("--wait-timeout", type=float, default=600.0, help="seconds to wait for validation")
    parser.set_defaults(handler=_push)


def _add_status(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="registered model name")
    parser.add_argument("version", metavar="VERSION", type=int, nargs="?", help="version number")
    parser.add_argument("--json", action="store_true", help="print the server's JSON as is")
    parser.set_defaults(handler=_status)


def _add_login(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--username", required=True, help="your OpsPortal username")
    parser.add_argument("--name", default="opsportal-client", help="a label for the token, to recognize it later")
    parser.set_defaults(handler=_login)


# Commands


def _push(args: argparse.Namespace) -> int:
    if not args.model_file.is_file():
        raise UsageError(f"no such model file: {args.model_file}")
    artifact_format = args.format or format_for_path(args.model_file)
    client = _client(args)
    _ensure_model(client, args.name, args.task)
    version = client.upload_version(
        args.name,
        args.model_file,
        format=artifact_format,
        reference_path=args.reference,
        target_column=args.target,
        metrics=args.metrics,
        params=args.params,
        description=args.description,
        intended_use=args.intended_use,
        source_code_ref=args.source_code_ref,
        training_data_description=args.training_data_description,
    )
    if args.no_wait:
        _print_registered(args.name, version)
        return EXIT_OK
    return _wait_and_report(client, args.name, version["number"], args.wait_timeout)


def _wait_and_report(client: Client, name: str, number: int, timeout: float) -> int:
    print(f"Uploaded {name} version {number}; waiting for validation...", file=sys.stderr)
    try:
        version = client.wait_for_validation(name, number, timeout=timeout)
    except ValidationFailed as exc:
        _print_registered(name, exc.version)
        print(f"Reason: {exc.reason}")
        return EXIT_VALIDATION_FAILED
    except TimeoutError as exc:
        _print_registered(name, {"number": number, "status": VALIDATING})
        print(f"{exc}; check later with: opsportal status {shlex.quote(name)} {number}", file=sys.stderr)
        return EXIT_STILL_VALIDATING
    _print_registered(name, version)
    if version.get("status") == READY:
        print(f"Engine: {_describe(version.get('engine'))}")
    return EXIT_OK


def _ensure_model(client: Client, name: str, task: str | None) -> None:
    if task:
        client.ensure_model(name, task)
        return
    try:
        client.get_model(name)
    except OpsPortalError as exc:
        if exc.status == 404:
            raise UsageError(f"model {name!r} does not exist yet: pass --task to create it") from exc
        raise


def _status(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.version is None:
        data = client.get_model(args.name)
        lines = _model_lines(data)
    else:
        data = client.get_version(args.name, args.version)
        lines = _version_lines(args.name, data)
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else "\n".join(lines))
    return EXIT_OK


def _login(args: argparse.Namespace) -> int:
    password = getpass.getpass(f"Password for {args.username} at {args.url}: ")
    if not password:
        raise UsageError("no password given")
    client = Client.login(args.url, args.username, password, name=args.name, timeout=args.timeout)
    print(f"Token (shown only once, keep it secret): {client.token}")
    print("Use it in this shell with:")
    print(f"  export OPSPORTAL_URL={shlex.quote(client.url)}")
    print(f"  export OPSPORTAL_TOKEN={shlex.quote(client.token)}")
    return EXIT_OK


# Output


def _client(args: argparse.Namespace) -> Client:
    if not args.token:
        raise UsageError(
            "no API token: pass --token or set OPSPORTAL_TOKEN (get one with: opsportal login --username YOU)"
        )
    return Client(args.url, args.token, timeout=args.timeout, progress=not args.no_progress)


def _print_registered(name: str, version: dict[str, Any]) -> None:
    print(f"Registered {name} version {version.get('number', '?')}: {version.get('status', '?')}")


def _model_lines(model: dict[str, Any]) -> list[str]:
    title = f" - {model['title']}" if model.get("title") else ""
    lines = [f"{model.get('name', '?')}{title}", f"Task: {model.get('task', '?')}"]
    if model.get("aliases"):
        lines.append(f"Aliases: {_describe_aliases(model['aliases'])}")
    versions = model.get("versions") or []
    lines.append("Versions:" if versions else "Versions: none yet")
    lines.extend(f"  {v.get('number', '?'):>4}  {v.get('status', '?')}" for v in versions if isinstance(v, dict))
    return lines


def _version_lines(name: str, version: dict[str, Any]) -> list[str]:
    lines = [f"{version.get('model', name)} version {version.get('number', '?')}: {version.get('status', '?')}"]
    if version.get("status_reason"):
        lines.append(f"Reason: {version['status_reason']}")
    for label, key in (("Engine", "engine"), ("Signature", "signature"), ("Metrics", "metrics")):
        if version.get(key):
            lines.append(f"{label}: {_describe(version[key])}")
    return lines


def _describe(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("name"), str) and value.get("version"):
        return f"{value['name']} {value['version']}"
    return json.dumps(value, sort_keys=True)


def _describe_aliases(aliases: Any) -> str:
    # The server may list aliases as {"champion": 3} or as [{"name": "champion", "version": 3}].
    if isinstance(aliases, dict):
        return ", ".join(f"{alias} -> v{number}" for alias, number in aliases.items())
    if isinstance(aliases, list):
        return ", ".join(_describe_alias(a) for a in aliases)
    return _describe(aliases)


def _describe_alias(alias: Any) -> str:
    if isinstance(alias, dict):
        label = alias.get("name") or alias.get("alias") or "?"
        return f"{label} -> v{alias.get('version', '?')}"
    return str(alias)


def _print_error(exc: BaseException) -> None:
    print(f"error: {exc}", file=sys.stderr)
    if isinstance(exc, OpsPortalError):
        if exc.code == "duplicate_artifact" and "version" in exc.details:
            print(f"  this exact file is already version {exc.details['version']}", file=sys.stderr)
        # Field-level problems (400s) come in details; show them so the user knows what to fix.
        for key, value in exc.details.items():
            if key not in ("version", "body"):
                print(f"  {key}: {_describe(value)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

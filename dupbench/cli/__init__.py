"""The ``dupbench`` command: one sub-module per command group, each exposing ``add_parser``.

``main`` turns user errors into one line on stderr and an exit status, so a mistake never shows a
traceback (``--debug`` or ``DUPBENCH_DEBUG=1`` shows it):

- 2, a usage error: the command line is wrong (argparse's errors, ``dupbench.errors.UsageError``
  such as an unknown method, parameter or backend, or a value out of range; Hydra's and
  OmegaConf's configuration errors in ``dupbench run``);
- 1, a failure: the request is valid but an input or the install is not (any other
  ``DupbenchError``: ``ImageError``, ``DatasetError``, ``MissingExtraError``; and ``OSError``:
  a missing folder, a file where a folder was expected, a permission denied);
- 130, interrupted (Ctrl-C).

Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

#: command modules, in the order their commands appear in ``dupbench --help``
COMMAND_MODULES = (
    "find",
    "undo",
    "encode",
    "index",
    "serve",
    "methods",
    "datasets",
    "benchmark",
    "report",
)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the usage block is what ``--help`` is for."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from dupbench import __version__

    parser = Parser(
        prog="dupbench",
        description="Find exact and near-duplicate images; benchmark the methods that find them.",
    )
    parser.add_argument("--version", action="version", version=f"dupbench {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an error (also: DUPBENCH_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"dupbench.cli.{name}").add_parser(sub)
    return parser


def exit_status(error: BaseException) -> int | None:
    """The exit status for a user error (see the module doc), or None for a bug."""
    from dupbench.errors import DupbenchError, UsageError

    hydra_errors, omegaconf_errors = (
        sys.modules.get("hydra.errors"),
        sys.modules.get("omegaconf.errors"),
    )
    if isinstance(error, UsageError):
        return 2
    # before OSError: Hydra's MissingConfigException (an unknown config name) is an IOError too
    if hydra_errors and isinstance(error, hydra_errors.HydraException):
        return 2
    if omegaconf_errors and isinstance(error, omegaconf_errors.OmegaConfBaseException):
        return 2
    if isinstance(error, (DupbenchError, OSError)):
        return 1
    return None


def one_line(error: BaseException) -> str:
    """The error's message on one line (Hydra's lists of options become a short suggestion)."""
    options = getattr(error, "options", None)  # hydra's MissingConfigException
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if options:
        from dupbench.errors import did_you_mean

        missing = getattr(error, "missing_cfg_file", "") or ""
        wanted = missing.rsplit("/", 1)[-1]
        return f"{lines[0]}{did_you_mean(wanted, options)} (available: {', '.join(options)})"
    text = lines[0] if lines else type(error).__name__
    for line in lines[1:]:
        text += (" " if text.endswith((":", ".")) else "; ") + line
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "accepts_overrides", False):
        args.overrides = extra
    debug = args.debug or os.environ.get("DUPBENCH_DEBUG", "") not in ("", "0")
    _quiet_library_log(debug)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"dupbench {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `dupbench methods | head`: the reader left, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:
        status = exit_status(e)
        if status is None or debug:
            raise
        print(f"dupbench {args.command}: error: {one_line(e)}", file=sys.stderr)
        return status


def _quiet_library_log(debug: bool) -> None:
    """The commands report skipped files themselves; the library's log lines (``dupbench``
    logger) would repeat them, so they show only with ``--debug``."""
    log = logging.getLogger("dupbench")
    if debug:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    elif not any(isinstance(h, logging.NullHandler) for h in log.handlers):
        log.addHandler(logging.NullHandler())


if __name__ == "__main__":
    raise SystemExit(main())

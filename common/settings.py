"""Settings both processes load the same way: environment first, command-line flags on top.

Every field of a settings model becomes a ``--flag`` whose help names its environment
variable and its default, so ``--help`` always lists every setting.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def shown_default(field: FieldInfo) -> str:
    """A setting's default as ``--help`` and the README show it."""
    default = field.get_default(call_default_factory=True)
    if default is None or default == "":
        return "(none)"
    return str(default).lower() if isinstance(default, bool) else str(default)


def settings_parser(
    model: type[BaseSettings],
    prog: str,
    env_prefix: str,
    description: str = "Every option may also be set by its environment variable.",
) -> argparse.ArgumentParser:
    """An argparse parser with one ``--flag`` per setting, documenting env var and default.
    Flags left out are absent from the namespace, so the environment shows through."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    for name, field in model.model_fields.items():
        env = f"{env_prefix}{name.upper()}"
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            default=argparse.SUPPRESS,
            metavar=env,
            help=f"{field.description} [env {env}; default: {shown_default(field)}]",
        )
    return parser


def load_settings(
    model: type[SettingsT],
    argv: Sequence[str] | None,
    prog: str,
    env_prefix: str,
    description: str = "Every option may also be set by its environment variable.",
) -> SettingsT:
    """Environment first, then command-line flags on top."""
    args = settings_parser(model, prog, env_prefix, description).parse_args(argv)
    overrides: dict[str, Any] = vars(args)
    return model(**overrides)

"""A third-party check package, installed into a temporary directory as a real distribution
(dist-info with an entry point in `datamantri_alerts.checks`), the way pip would leave it."""

from __future__ import annotations

from pathlib import Path

MODULE = "datamantri_thirdparty_checks"

SOURCE = '''
"""Third-party alert types, found only through the datamantri_alerts.checks entry points."""

import time
from pathlib import Path
from typing import ClassVar

from datamantri_alerts.checks.base import CheckConfig, Outcome


class FileExistsConfig(CheckConfig):
    path: str
    timeout_seconds: float = 5


class FileExistsCheck:
    type_name: ClassVar[str] = "file_exists"
    config_model: ClassVar[type] = FileExistsConfig
    default_severity: ClassVar[str] = "info"
    description: ClassVar[str] = "A marker file exists"

    def evaluate(self, config, ctx):
        if Path(config.path).exists():
            return Outcome.firing(f"{config.path} exists", path=config.path)
        return Outcome.ok(f"{config.path} is absent", path=config.path)


class HangConfig(CheckConfig):
    seconds: float = 60
    timeout_seconds: float = 1


class HangCheck:
    type_name: ClassVar[str] = "hang"
    config_model: ClassVar[type] = HangConfig
    default_severity: ClassVar[str] = "warning"
    description: ClassVar[str] = "Sleeps, ignoring its timeout"

    def evaluate(self, config, ctx):
        time.sleep(config.seconds)
        return Outcome.ok("woke up")


class CrashConfig(CheckConfig):
    message: str


class CrashCheck:
    type_name: ClassVar[str] = "crash"
    config_model: ClassVar[type] = CrashConfig
    default_severity: ClassVar[str] = "warning"
    description: ClassVar[str] = "Raises"

    def evaluate(self, config, ctx):
        raise RuntimeError(config.message)


class RefuseCheck:
    """Reports "could not evaluate" with the configured message, unredacted (a careless plugin)."""

    type_name: ClassVar[str] = "refuse"
    config_model: ClassVar[type] = CrashConfig
    default_severity: ClassVar[str] = "warning"
    description: ClassVar[str] = "Cannot evaluate"

    def evaluate(self, config, ctx):
        from datamantri_alerts.checks.base import CannotEvaluate

        raise CannotEvaluate(config.message, endpoint=config.message)
'''

ENTRY_POINTS = f"""[datamantri_alerts.checks]
file_exists = {MODULE}:FileExistsCheck
hang = {MODULE}:HangCheck
crash = {MODULE}:CrashCheck
refuse = {MODULE}:RefuseCheck
"""


def install(directory: Path) -> Path:
    """Write the module and its dist-info into directory (to be put on sys.path)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{MODULE}.py").write_text(SOURCE)
    info = directory / "datamantri_thirdparty_checks-0.1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: datamantri-thirdparty-checks\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    (info / "top_level.txt").write_text(MODULE + "\n")
    return directory

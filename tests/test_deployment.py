"""The shipped deployment files work as written: Dockerfile, Kubernetes CronJob, cron, systemd."""

from __future__ import annotations

import re
import shlex

import yaml

from tests.conftest import REPO_ROOT, Cli


def _alerts_commands(text: str) -> list[list[str]]:
    """Every `.../alerts ...` invocation in text (cron lines, ExecStart=), as argv."""
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for match in re.finditer(r"(\S*/?alerts)(( [^>|&]+)*)", line):
            if match.group(1).endswith("/alerts") or match.group(1) == "alerts":
                program = match.group(1).removeprefix("ExecStart=")
                found.append([program, *shlex.split(match.group(2))])
    return found


def test_dockerfile_is_slim_non_root_with_alerts_entrypoint() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]-slim", text, re.M)
    assert "pip install ." in text
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert 'ENTRYPOINT ["alerts"]' in text
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored and "*.db" in ignored


def test_cronjob_uses_the_image_and_a_stable_hostname(cli: Cli) -> None:
    documents = list(yaml.safe_load_all((REPO_ROOT / "docs/kubernetes/cronjob.yaml").read_text()))
    by_name = {doc["metadata"]["name"]: doc for doc in documents}
    evaluate = by_name["datamantri-alerts-evaluate"]["spec"]
    assert evaluate["concurrencyPolicy"] == "Forbid"
    pod = evaluate["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    [container] = pod["containers"]
    env = {item["name"]: item for item in container["env"]}
    # A fixed value: the next run holds the killed pod's leases under the same name.
    assert env["ALERTS_HOSTNAME"].get("value") and "valueFrom" not in env["ALERTS_HOSTNAME"]
    for doc in documents:
        [c] = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        assert c["image"] == container["image"]
        assert "command" not in c  # the image's ENTRYPOINT ["alerts"] is used
        help_result = cli(
            *[a for a in c["args"] if not a.startswith("--") and a != "90d"], "--help"
        )
        assert help_result.exit_code == 0, (c["args"], help_result.output)


def test_cron_and_systemd_lines_use_absolute_paths(cli: Cli) -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    cron_blocks = re.findall(r"```cron\n(.*?)```", readme, re.S)
    sources = {
        "README cron": "".join(cron_blocks),
        "crontab.example": (REPO_ROOT / "crontab.example").read_text(),
        "systemd": "\n".join(
            p.read_text() for p in sorted((REPO_ROOT / "docs/systemd").glob("*.service"))
        ),
    }
    for where, text in sources.items():
        commands = _alerts_commands(text)
        assert commands, where
        for argv in commands:
            assert argv[0].startswith("/"), (where, argv)  # cron's PATH has no virtualenv
            words = [a for a in argv[1:] if not a.startswith("-") and "/" not in a]
            words = [w for w in words if not re.fullmatch(r"\d+[dhm]", w)]
            assert cli(*words, "--help").exit_code == 0, (where, argv)
    assert "prune" in sources["README cron"] and "prune" in sources["crontab.example"]
    service = (REPO_ROOT / "docs/systemd/datamantri-alerts.service").read_text()
    assert "python3 -m venv /opt/datamantri-alerts/.venv" in service
    assert "useradd --system" in service
    assert (REPO_ROOT / "docs/systemd/datamantri-alerts-prune.timer").exists()

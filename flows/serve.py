"""`vergeet serve`: the deployments of `prefect.yaml` in one process, for one machine.

Prefect's `serve` polls the Prefect server for runs of these deployments (the nightly schedule, or a run started
in the UI or with `prefect deployment run`) and runs each in a subprocess of this one, which inherits its
environment: the config's `env:` secrets are read from there, nothing is typed into another terminal. The
deployments are `prefect.yaml`'s own (names, descriptions, parameters, schedules), so serving and
`prefect deploy` offer the same jobs; here `config_path` defaults to the config given to `vergeet serve`.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import yaml
from prefect import serve as serve_deployments
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

from vergeet.errors import BadInput

PROJECT_FILE = Path(__file__).resolve().parents[1] / "prefect.yaml"


def deployments(config_path: str, spec: Path = PROJECT_FILE) -> list[RunnerDeployment]:
    """The deployments `spec` defines, for this process to serve, each with `config_path` as its config."""
    built = []
    for entry in (yaml.safe_load(spec.read_text(encoding="utf-8")) or {}).get("deployments") or []:
        module, _, name = entry["entrypoint"].partition(":")
        flow = getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), name)
        schedules = [Cron(s["cron"], timezone=s.get("timezone"), active=s.get("active", True))
                     for s in entry.get("schedules") or []]
        built.append(flow.to_deployment(
            name=entry["name"], description=entry.get("description"), schedules=schedules,
            parameters={**(entry.get("parameters") or {}), "config_path": config_path},
            concurrency_limit=entry.get("concurrency_limit"), entrypoint_type=EntrypointType.MODULE_PATH))
    return built


def ui_address() -> str:
    """Where the Prefect UI of the server this process talks to is; a `BadInput` when no server is set."""
    api = PREFECT_API_URL.value()
    if not api:
        raise BadInput("PREFECT_API_URL is not set: start the Prefect server first (`prefect server start`, in "
                       "its own terminal or as a service), then `prefect config set "
                       "PREFECT_API_URL=http://127.0.0.1:4200/api` and run `vergeet serve` again")
    return PREFECT_UI_URL.value() or api.rstrip("/").removesuffix("/api")


def serve(config_path: str, say=print) -> None:
    """Serve the jobs until Ctrl-C (or SIGTERM); `say` tells where the UI is and how to start a run."""
    address = ui_address()
    served = deployments(config_path)
    say(f"Serving {', '.join(f'{d.flow_name}/{d.name}' for d in served)} with the config {config_path}.")
    say(f"Prefect UI: {address} (Deployments, then Run). Or: prefect deployment run "
        f"'{served[0].flow_name}/{served[0].name}'. Ctrl-C stops.")
    # pause_on_shutdown: the nightly schedule pauses while nothing serves it (no pile of runs waiting)
    serve_deployments(*served, print_starting_message=False, pause_on_shutdown=True)
    say("Stopped serving; the nightly schedule is paused until `vergeet serve` runs again.")

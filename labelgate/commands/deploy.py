"""``labelgate deploy``: register the deployments of ``prefect.yaml`` with a running Prefect server.

It wraps the documented path (see the comments at the top of ``prefect.yaml``):

1. check that the Prefect API answers (``--api-url``, else ``PREFECT_API_URL``),
2. create the process work pool when it is missing (``prefect work-pool create NAME --type process``),
3. ``prefect --no-prompt deploy --all`` (or ``--name`` for each chosen deployment) from the project
   folder, with ``LABELGATE_PROJECT_DIR`` set to it (the folder the worker runs the flows in),
4. optionally start a worker on the pool in the foreground (``--worker``).

Everything goes through Prefect's own CLI in subprocesses, so what is tested is what a person types.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from labelgate.clikit import handle_errors, verbose_option
from labelgate.errors import ConfigError, DeployError

DEFAULT_POOL = "labelgate-local"
#: seconds one Prefect CLI call may take
CLI_TIMEOUT_S = 300


def find_project(start: str | Path | None = None) -> Path:
    """The folder holding ``prefect.yaml``: ``start`` (default: the working folder) or the labelgate source tree.

    Raises:
        ConfigError: no ``prefect.yaml`` there.
    """
    candidates = [Path(start)] if start else [Path.cwd(), Path(__file__).resolve().parents[2]]
    for folder in candidates:
        if (folder / "prefect.yaml").is_file():
            return folder.resolve()
    shown = ", ".join(str(c) for c in candidates)
    raise ConfigError(f"no prefect.yaml in {shown}; pass --project FOLDER (the labelgate checkout)")


def check_api(api_url: str, *, timeout_s: float = 5.0) -> None:
    """Raise :class:`ConfigError` unless ``{api_url}/health`` answers 200."""
    import httpx

    url = api_url.rstrip("/") + "/health"
    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as err:
        raise ConfigError(
            f"no Prefect server answers at {api_url} ({type(err).__name__}); start one with "
            "`prefect server start --host 127.0.0.1` and export PREFECT_API_URL=http://127.0.0.1:4200/api"
        ) from None
    if response.status_code != 200:
        raise ConfigError(f"the Prefect API at {api_url} answered HTTP {response.status_code} to /health")


def _prefect(args: list[str], env: dict[str, str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "prefect", *args]
    try:
        done = subprocess.run(
            cmd, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise DeployError(f"`prefect {' '.join(args)}` did not finish within {CLI_TIMEOUT_S} s") from None
    if check and done.returncode != 0:
        lines = [ln.strip(" │╭╮╰╯─") for ln in (done.stderr + done.stdout).splitlines() if ln.strip(" │╭╮╰╯─")]
        last = lines[-1] if lines else f"exit code {done.returncode}"
        raise DeployError(f"`prefect {' '.join(args)}` failed: {last}")
    return done


def deploy(
    *,
    project: Path,
    api_url: str,
    pool: str = DEFAULT_POOL,
    names: tuple[str, ...] = (),
    echo: bool = True,
) -> list[str]:
    """Create the work pool if missing and deploy ``prefect.yaml``; return the deployment names deployed.

    Args:
        project: the folder holding ``prefect.yaml`` (the flows are run from it).
        api_url: the Prefect API, e.g. ``http://127.0.0.1:4200/api``.
        pool: the process work pool (created when missing; passed as ``--pool`` when not the default).
        names: deployment names (``nightly-retrain``, ``manual-curate``, ``curate``); empty: all.

    Raises:
        ConfigError: the API does not answer. DeployError: a Prefect CLI step failed.
    """
    check_api(api_url)
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "LABELGATE_PROJECT_DIR": str(project),
        "PREFECT_CLI_PROMPT": "false",
    }
    if _prefect(["work-pool", "inspect", pool], env, project, check=False).returncode != 0:
        _prefect(["work-pool", "create", pool, "--type", "process"], env, project)
        if echo:
            click.echo(f"created process work pool {pool!r}")
    args = ["--no-prompt", "deploy"]
    args += [a for n in names for a in ("--name", n)] if names else ["--all"]
    if pool != DEFAULT_POOL:
        args += ["--pool", pool]
    done = _prefect(args, env, project)
    deployed = [
        line.split("Deployment '", 1)[1].split("'", 1)[0]
        for line in done.stdout.splitlines()
        if "Deployment '" in line and "successfully" in line
    ]
    return deployed


@click.command("deploy")
@click.option(
    "--project",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Folder holding prefect.yaml.  [default: the working folder, else the labelgate checkout]",
)
@click.option(
    "--api-url",
    envvar="PREFECT_API_URL",
    default=None,
    help="Prefect API of a running server, e.g. http://127.0.0.1:4200/api.  [env: PREFECT_API_URL]",
)
@click.option("--pool", default=DEFAULT_POOL, show_default=True, help="Process work pool (created when missing).")
@click.option(
    "--name",
    "names",
    multiple=True,
    help="Deploy only this deployment (repeatable): nightly-retrain, manual-curate, curate.  [default: all]",
)
@click.option("--worker", is_flag=True, help="Then start a worker on the pool in the foreground (Ctrl-C stops).")
@verbose_option
@handle_errors
def deploy_cmd(
    project: str | None, api_url: str | None, pool: str, names: tuple[str, ...], worker: bool, verbose: bool
) -> None:
    """Register the deployments of prefect.yaml (nightly-retrain, manual-curate, curate) with a Prefect server.

    Needs a running server: `prefect server start --host 127.0.0.1`, then
    `export PREFECT_API_URL=http://127.0.0.1:4200/api`. The flows run in the project folder, started by a
    worker: `prefect worker start --pool labelgate-local` (or pass --worker).
    """
    if not api_url:
        raise ConfigError(
            "no Prefect server given: start one with `prefect server start --host 127.0.0.1`, then pass "
            "--api-url http://127.0.0.1:4200/api or export PREFECT_API_URL"
        )
    folder = find_project(project)
    deployed = deploy(project=folder, api_url=api_url, pool=pool, names=names)
    click.echo(f"deployed from {folder / 'prefect.yaml'} to {api_url}:")
    for name in deployed:
        click.echo(f"  {name}")
    click.echo(
        "next:\n"
        f"  prefect worker start --pool {pool}          # runs the flows (from {folder})\n"
        "  prefect deployment run curate/manual-curate --param input_path=$PWD/data/sample.csv\n"
        "  labelgate serve --db labelgate.duckdb        # review pages and /dashboard"
    )
    if worker:
        env = {**os.environ, "PREFECT_API_URL": api_url, "LABELGATE_PROJECT_DIR": str(folder)}
        click.echo(f"starting a worker on pool {pool!r} (Ctrl-C stops it)")
        raise SystemExit(subprocess.call([sys.executable, "-m", "prefect", "worker", "start", "--pool", pool], env=env))

"""Notifications: post a JSON message to a webhook when the quality gate blocks a run.

The ``curate`` flow carries :func:`on_curate_failure` as a Prefect ``on_failure`` state hook: when a
flow run ends Failed, the hook (running in the flow's own process, e.g. under a worker) looks the run
up in DuckDB and, when the quality gate blocked it, posts :func:`quality_gate_payload` to the webhook.

Settings (environment of the process that runs the flow, e.g. the worker's):

- ``LABELGATE_NOTIFY_URL``: the webhook (``http://`` or ``https://``). Unset: no notification. It is
  read from the environment, never from the flow's parameters: webhook URLs often embed a secret.
- ``LABELGATE_NOTIFY_ON``: ``blocked`` (default: quality-gate failures only) or ``failed`` (every
  failed run, with ``event`` ``run_failed`` for the others).

The body is JSON with a ``text`` line (so Slack, Mattermost and Teams incoming webhooks show it as
it is) plus the details: ``event``, ``run_id``, ``dataset``, ``dataset_version``, ``reasons``, ``checks``,
``baseline_run_id``, ``flow_run_id``, ``flow_run_name``, ``flow_run_url`` (when the Prefect UI is
known), ``state`` and ``message``. A failing webhook is logged, never raised: a notification must not
change the outcome of the run.

The same can be done server-side with a Prefect automation instead of the hook (no webhook URL in the
worker's environment; it fires for every failed ``curate`` flow run, the state message says why)::

    # automation.yaml — create with: prefect automation create --from-file automation.yaml
    name: labelgate quality gate failed
    trigger:
      type: event
      posture: Reactive
      expect: ["prefect.flow-run.Failed"]
      match: {"prefect.resource.id": "prefect.flow-run.*"}
      match_related: {"prefect.resource.role": "flow", "prefect.resource.name": "curate"}
      threshold: 1
      within: 0
    actions:
      - type: call-webhook
        block_document_id: <id of a Webhook block: prefect block create webhook>
        payload: '{"text": "labelgate run {{ flow_run.name }} failed: {{ flow_run.state.message }}"}'
"""

from __future__ import annotations

import functools
import json
import logging
import os
from typing import Any
from urllib.parse import urlsplit

from labelgate.errors import ConfigError, LabelgateError
from labelgate.errors import NotifyError as NotifyError

URL_ENV = "LABELGATE_NOTIFY_URL"
ON_ENV = "LABELGATE_NOTIFY_ON"
#: seconds one webhook request may take
TIMEOUT_S = 10.0
#: attempts per notification (connection errors and 5xx answers are retried once)
ATTEMPTS = 2


def _log() -> logging.Logger | logging.LoggerAdapter:
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # outside a run
        return logging.getLogger("labelgate.notify")


def check_url(url: str) -> str:
    """Return ``url`` when it is an http(s) URL with a host.

    Raises:
        ConfigError: naming the value (its query string is left out: it may hold a secret).
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        shown = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else url.split("?", 1)[0]
        raise ConfigError(f"{URL_ENV} must be an http:// or https:// URL, got {shown!r}")
    return url.strip()


@functools.lru_cache(maxsize=1)
def prefect_ui_url() -> str | None:
    """The Prefect UI's base URL (``PREFECT_UI_URL``, else derived from ``PREFECT_API_URL``; None when unknown)."""
    env = os.environ.get("PREFECT_UI_URL", "").strip()
    if env:
        return env.rstrip("/")
    try:
        from prefect.settings import get_current_settings

        ui = get_current_settings().ui_url
    except Exception:  # pragma: no cover - broken Prefect settings: no link rather than an error
        return None
    return str(ui).rstrip("/") if ui else None


def flow_run_url(flow_run_id: str | None) -> str | None:
    """The Prefect UI page of a flow run, when both are known (Prefect's settings are read only for a flow run)."""
    if not flow_run_id:
        return None
    ui = prefect_ui_url()
    return f"{ui}/runs/flow-run/{flow_run_id}" if ui else None


def quality_gate_payload(
    run: dict[str, Any],
    quality: dict[str, Any] | None,
    *,
    flow_run_id: str | None = None,
    flow_run_name: str | None = None,
    state: str | None = None,
) -> dict[str, Any]:
    """The webhook body for a failed run (``run``: a ``runs`` record; ``quality``: its stored verdict or None)."""
    blocked = bool(quality and quality.get("enforced") and not quality.get("passed"))
    reasons = list(quality.get("reasons") or []) if quality else []
    url = flow_run_url(flow_run_id)
    if blocked:
        text = (
            f"labelgate: quality gate blocked run {run.get('run_id')} of dataset {run.get('dataset')!r}, "
            f"nothing exported: " + "; ".join(reasons)
        )
    else:
        text = f"labelgate: run {run.get('run_id')} of dataset {run.get('dataset')!r} failed: {run.get('message')}"
    if url:
        text += f" ({url})"
    return {
        "text": text,
        "event": "quality_gate_failed" if blocked else "run_failed",
        "run_id": run.get("run_id"),
        "dataset": run.get("dataset"),
        "dataset_version": run.get("dataset_version"),
        "input_path": run.get("input_path"),
        "message": run.get("message"),
        "reasons": reasons,
        "checks": list(quality.get("checks") or []) if quality else [],
        "baseline_run_id": quality.get("baseline_run_id") if quality else None,
        "flow_run_id": flow_run_id,
        "flow_run_name": flow_run_name,
        "flow_run_url": url,
        "state": state,
    }


def post_webhook(url: str, payload: dict[str, Any], *, timeout_s: float = TIMEOUT_S, attempts: int = ATTEMPTS) -> int:
    """POST ``payload`` as JSON to ``url``; return the HTTP status (2xx).

    Raises:
        NotifyError: every attempt failed (connection error, timeout, or a non-2xx answer).
    """
    import httpx

    url = check_url(url)
    body = json.dumps(payload, default=str).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "labelgate-notify"}
    last = ""
    for _ in range(max(1, attempts)):
        try:
            response = httpx.post(url, content=body, headers=headers, timeout=timeout_s)
        except httpx.HTTPError as err:
            last = f"{type(err).__name__}: {err}"
            continue
        if 200 <= response.status_code < 300:
            return response.status_code
        last = f"HTTP {response.status_code}: {response.text[:200]}"
        if response.status_code < 500:
            break
    host = urlsplit(url).netloc
    raise NotifyError(f"webhook at {host} did not take the notification: {last}")


def _find_run(db_path: str, flow_run_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The ``runs`` record and the quality verdict of the run of ``flow_run_id`` (Nones when not found)."""
    from pathlib import Path

    from labelgate import store
    from labelgate.services import reports

    if not Path(db_path).exists():
        return None, None
    with store.connect(db_path, read_only=True, wait_s=30) as con:
        found = store.run_of_flow_run(con, flow_run_id=flow_run_id)
        if found is None:
            return None, None
        run = store.run_record(con, found)
        return run, reports.quality_record(con, found)


def notify_failed_run(
    db_path: str,
    flow_run_id: str,
    *,
    flow_run_name: str | None = None,
    state: str | None = None,
    state_message: str | None = None,
    url: str | None = None,
    on: str | None = None,
) -> dict[str, Any] | None:
    """Post the notification for the failed flow run ``flow_run_id`` when the settings ask for it.

    Args:
        url: the webhook (default ``$LABELGATE_NOTIFY_URL``; None and unset: nothing is sent).
        on: ``blocked`` or ``failed`` (default ``$LABELGATE_NOTIFY_ON``, else ``blocked``).

    Returns:
        The payload sent, or None when nothing was to be sent.

    Raises:
        ConfigError: a bad URL or ``on`` value. NotifyError: the webhook failed.
    """
    url = url if url is not None else os.environ.get(URL_ENV, "").strip() or None
    if not url:
        return None
    on = (on if on is not None else os.environ.get(ON_ENV, "blocked")).strip().lower() or "blocked"
    if on not in ("blocked", "failed"):
        raise ConfigError(f"{ON_ENV} must be 'blocked' or 'failed', got {on!r}")
    run, quality = _find_run(db_path, flow_run_id)
    blocked = bool(quality and quality.get("enforced") and not quality.get("passed"))
    if not blocked and on != "failed":
        return None
    run = run or {"run_id": None, "dataset": None, "message": state_message}
    payload = quality_gate_payload(run, quality, flow_run_id=flow_run_id, flow_run_name=flow_run_name, state=state)
    post_webhook(url, payload)
    return payload


def on_curate_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect ``on_failure`` hook of the ``curate`` flow: notify the webhook (see the module docstring).

    Never raises: a missing setting, an unreachable webhook or a busy database is logged.
    """
    log = _log()
    if not os.environ.get(URL_ENV, "").strip():
        return
    params = dict(getattr(flow_run, "parameters", None) or {})
    db_path = str(params.get("db_path") or "labelgate.duckdb")
    try:
        payload = notify_failed_run(
            db_path,
            str(flow_run.id),
            flow_run_name=getattr(flow_run, "name", None),
            state=getattr(state, "name", None),
            state_message=getattr(state, "message", None),
        )
    except LabelgateError as err:
        log.warning("labelgate notification not sent: %s", err)
        return
    except Exception as err:  # never let a notification fail the hook chain
        log.warning("labelgate notification not sent: %s: %s", type(err).__name__, err)
        return
    if payload:
        log.info("labelgate notification sent: %s", payload["event"])

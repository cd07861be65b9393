"""The service layer: what the CLI, the web app and the Prefect tasks all call.

Each module does one job end to end over the store (:mod:`labelgate.store`) and the pure logic
(:mod:`labelgate.core`): :mod:`~labelgate.services.export` writes a run's fine-tuning files,
:mod:`~labelgate.services.evaluate` scores a run's raw and cleaned rows on a held-out file,
:mod:`~labelgate.services.inputs` reads an input or test file with a run's settings,
:mod:`~labelgate.services.review_gate` serves the review app while a flow waits for a person,
:mod:`~labelgate.services.review` records and undoes a person's decisions (the web app, ``labelgate review``),
:mod:`~labelgate.services.memory` reads and changes the curation memory, :mod:`~labelgate.services.reports`
builds the issue tables, run history and dashboard figures, :mod:`~labelgate.services.notify` tells a webhook
about a failed or blocked run.

A service imports no Prefect task, no flow, no click and no CLI module: ``labelgate/tasks`` wrap services in
thin ``@task`` functions, the CLI (``labelgate/cli.py``, ``labelgate/commands``) and the web app
(``labelgate/web``) call them directly.
"""

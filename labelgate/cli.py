"""labelgate's command line: the click group ``labelgate`` and the registration of its commands.

Each command lives in its own module under ``labelgate/commands/`` (shared options and error handling in
:mod:`labelgate.clikit`). Every error a user can cause is printed as one line (``labelgate: error: …``) with a
non-zero exit code; a traceback is shown only with ``--verbose``.
"""

from __future__ import annotations

import sys

import click

from labelgate.clikit import prepare_environment


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="labelgate")
def main() -> None:
    """labelgate: find label errors in a text dataset and export clean LLM fine-tuning files."""
    prepare_environment(verbose=bool({"-v", "--verbose"} & set(sys.argv[1:])))


def _register_commands() -> None:
    """Attach the commands, one module each (labelgate/commands/)."""
    from labelgate.commands.annotators import annotators_cmd
    from labelgate.commands.demo import demo_cmd
    from labelgate.commands.deploy import deploy_cmd
    from labelgate.commands.evaluate import evaluate_cmd
    from labelgate.commands.export import export_cmd
    from labelgate.commands.issues import issues_cmd
    from labelgate.commands.memory import history_cmd, memory_cmd
    from labelgate.commands.review import review_cmd
    from labelgate.commands.run import run_cmd
    from labelgate.commands.runs import runs_cmd
    from labelgate.commands.serve import serve_cmd

    for command in (
        run_cmd,
        demo_cmd,
        issues_cmd,
        runs_cmd,
        export_cmd,
        evaluate_cmd,
        serve_cmd,
        review_cmd,
        deploy_cmd,
        history_cmd,
        memory_cmd,
        annotators_cmd,
    ):
        main.add_command(command)


_register_commands()


if __name__ == "__main__":  # pragma: no cover
    main()

"""``labelgate review``: review flagged rows in the terminal, one at a time, with the web page's keys.

Keys: W accept suggestion, Q keep, E exclude, 1–9 relabel to class n, J/K next/previous, U undo,
F finish review (resumes a paused flow), X quit (decisions are already saved), ? help.
On a terminal single key presses are read; otherwise stdin is read one character at a time
(whitespace ignored), so ``printf 'wwqx' | labelgate review`` works in scripts.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import Any

import click

from labelgate.clikit import db_option, handle_errors, verbose_option

#: the ``?`` help screen: every key, one per line
HELP = """keys
  W      accept the suggestion
  Q      keep the given label
  E      exclude the row from the export
  1-9    relabel to class n (listed at the bottom)
  J / K  next / previous row (arrow keys too)
  U      undo your last decision
  F      finish the review (resumes a paused run, which then exports)
  X      quit: every decision is already saved
  ?      this help"""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def safe_text(value: Any) -> str:
    """Text for a terminal: control characters and escape sequences (data!) shown as visible ``\\xNN``."""
    text = "" if value is None else str(value)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else "�", text)


class TerminalReview:
    """The review loop, with the key source and the output injected (so tests and pipes can drive it)."""

    def __init__(
        self,
        db_path: str,
        run: str,
        *,
        reviewer: str,
        read_key: Callable[[], str | None],
        write: Callable[[str], None],
        clear: Callable[[], None] | None = None,
        status: str = "all",
        width: int | None = None,
    ) -> None:
        import shutil

        from labelgate import store
        from labelgate.services import review

        self.width = max(40, width or shutil.get_terminal_size((100, 24)).columns)
        self.db_path = db_path
        self.reviewer = review.clean_reviewer(reviewer)
        self.read_key = read_key
        self.write = write
        self.clear = clear
        with store.connect(db_path) as con:
            self.run_id = store.resolve_run(con, run)
            self.run_status = str(store.run_record(con, self.run_id)["status"])
            self.classes = review.run_classes(con, self.run_id)
            items = review.review_items(con, self.run_id, filters=review.ReviewFilters(status=status))
        self.order = list(items["id"])
        self.items = {r["id"]: r for r in review.item_records(items)}
        self.progress: review.ReviewProgress | None = None  # set by _refresh
        self.position = 0
        self.message = ""
        undecided = [i for i, rid in enumerate(self.order) if not self.items[rid]["decided"]]
        self.position = undecided[0] if undecided else 0

    # --- state ------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        from labelgate import store
        from labelgate.services import review

        with store.connect(self.db_path) as con:
            items = review.review_items(con, self.run_id)
            self.progress = review.review_progress(con, self.run_id)
        for rec in review.item_records(items):
            if rec["id"] in self.items:
                self.items[rec["id"]] = rec

    def _decide(self, action: str, label: str | None = None) -> None:
        from labelgate import store
        from labelgate.services import review

        rid = self.order[self.position]
        with store.connect(self.db_path) as con:
            done = review.record_decision(
                con, self.run_id, row_id=rid, action=action, label=label, reviewer=self.reviewer
            )
        self.message = f"{rid}: {_describe(done['action'], done['label'])}"
        self._refresh()
        self.position = min(self.position + 1, len(self.order) - 1)

    def _undo(self) -> None:
        from labelgate import store
        from labelgate.services import review

        with store.connect(self.db_path) as con:
            restored = review.undo_last(con, self.run_id, reviewer=self.reviewer)
        if not restored:
            self.message = "nothing to undo"
            return
        self._refresh()
        first = restored[0]["id"]
        if first in self.order:
            self.position = self.order.index(first)
        self.message = f"undid {len(restored)} decision{'s' if len(restored) != 1 else ''}"

    def _counts(self) -> tuple[int, int]:
        """(flagged rows a person reviewed, flagged rows) of the last refresh; (0, 0) before it."""
        p = self.progress
        return (p.reviewed, p.flagged) if p is not None else (0, 0)

    # --- screen -----------------------------------------------------------------------------------

    def render(self) -> None:
        if self.clear:
            self.clear()
        reviewed, flagged = self._counts()
        head = (
            f"labelgate review · run {self.run_id} · {reviewed} / {flagged} reviewed · "
            f"row {self.position + 1} of {len(self.order)}"
        )
        rule = "─" * min(max(len(head), 40), 100)
        lines = [head, rule]
        if not self.order:
            lines.append("no flagged rows to review in this run")
        else:
            it = self.items[self.order[self.position]]
            where = f" · line {it['source_line']}" if it.get("source_line") else ""
            from labelgate.core.ambiguity import issue_type_names

            kinds = ", ".join(safe_text(t) for t in issue_type_names(it["issue_types"], it.get("label_kind"))) or "-"
            lines.append(f"{safe_text(it['id'])}{where} · severity {it['severity']:.2f} · issues: {kinds}")
            lines.append("")
            lines += self._wrap(safe_text(it["text"]), "")
            lines.append("")
            lines.append(f"  given      {safe_text(it['given_label'])}")
            if it.get("suggested_label") is not None:
                prob = it.get("suggested_prob")
                conf = f" ({100 * prob:.0f}%)" if prob is not None else ""
                lines.append(f"  suggested  {safe_text(it['suggested_label'])}{conf}")
            for i, reason in enumerate(it["reasons"]):
                lines += self._wrap(safe_text(reason), f"  {'reasons' if i == 0 else '':<10} ")
            if it["decided"]:
                who = it["decision_reviewer"] if it["decision_source"] == "human" else "policy"
                decision = f"{_describe(it['decision_action'], it['decision_label'])} ({safe_text(who)})"
            else:
                decision = "not reviewed"
            lines.append(f"  decision   {decision}")
        lines.append(rule)
        classes = "  ".join(f"[{n}] {safe_text(c)}" for n, c in zip(range(1, 10), self.classes))
        lines.append(f"[W] accept suggestion  [Q] keep  [E] exclude  {classes}")
        lines.append("[J/K] next/previous  [U] undo  [F] finish review  [X] quit (decisions are saved)  [?] help")
        if self.message:
            lines.append(f"> {safe_text(self.message)}")
        self.write("\n".join(lines) + "\n")

    def _wrap(self, text: str, first: str) -> list[str]:
        """``text`` wrapped at word boundaries to the terminal width, continuation lines indented under it."""
        import textwrap

        indent = " " * len(first)
        return textwrap.wrap(
            text, self.width - 1, initial_indent=first, subsequent_indent=indent, break_on_hyphens=False
        ) or [first.rstrip()]

    def _quit_message(self) -> str:
        reviewed, _ = self._counts()
        text = f"quit: {reviewed} decisions saved for run {self.run_id}"
        if self.run_status == "completed":
            text += (
                f"\nthe run is completed and its files were written before these decisions: write them again with"
                f"\n  labelgate export --db {self.db_path} --run {self.run_id}"
            )
        elif self.run_status == "running":
            text += "; the run waits for the review: come back, or press F to finish it"
        return text + "\n"

    # --- loop -------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any] | None:
        """Review until quit or finish; return the finish result (None when quit)."""
        from labelgate.services.review import ReviewError

        self._refresh()
        while True:
            self.render()
            key = self.read_key()
            if key is None or key in ("x", "\x03", "\x04", "\x1b"):
                self.write(self._quit_message())
                return None
            self.message = ""
            try:
                if key == "f":
                    result = self._finish()
                    if result is not None:
                        return result
                elif not self.order:
                    self.message = "nothing to review: F finishes, X quits"
                elif key == "j":
                    self.position = min(self.position + 1, len(self.order) - 1)
                elif key == "k":
                    self.position = max(self.position - 1, 0)
                elif key == "w":
                    it = self.items[self.order[self.position]]
                    if it.get("suggested_label") is None:
                        self.message = "this row has no suggestion"
                    else:
                        self._decide("accept")
                elif key == "q":
                    self._decide("keep")
                elif key == "e":
                    self._decide("exclude")
                elif key.isdigit() and key != "0":
                    n = int(key)
                    if n > len(self.classes):
                        self.message = f"no class {n}: the classes are 1–{len(self.classes)}"
                    else:
                        self._decide("relabel", self.classes[n - 1])
                elif key == "u":
                    self._undo()
                elif key == "?":
                    self.message = HELP
                else:
                    self.message = f"unknown key {key!r} (? for help)"
            except ReviewError as err:
                self.message = f"error: {err}"

    def _finish(self) -> dict[str, Any] | None:
        from labelgate.services.review import finish_review

        reviewed, flagged = self._counts()
        self.write(
            f"finish: {reviewed} of {flagged} flagged rows reviewed. "
            "[F] finish (undecided rows keep their label)  [A] the auto policy decides the rest  [C] cancel\n"
        )
        answer = self.read_key()
        if answer not in ("f", "a"):
            self.message = "finish cancelled"
            return None
        result = finish_review(
            self.db_path, self.run_id, reviewer=self.reviewer, action="auto" if answer == "a" else "finish"
        )
        self.write(result["message"] + "\n")
        return result


def _describe(action: str | None, label: str | None) -> str:
    if action == "exclude":
        return "excluded"
    if action == "relabel":
        return f"relabelled to {safe_text(label)}"
    if action == "keep":
        return f"kept {safe_text(label)}"
    return "not reviewed"


def _key_reader() -> tuple[Callable[[], str | None], Callable[[], None]]:
    """(read one key, restore the terminal): single key presses on a tty, characters from a pipe otherwise."""
    stream = sys.stdin
    if stream.isatty():
        import termios
        import tty

        fd = stream.fileno()
        saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)

        def read_tty() -> str | None:
            data = os.read(fd, 1)
            if not data:
                return None
            if data == b"\x1b":  # an escape sequence (arrow keys): read its tail
                import select

                tail = b""
                while select.select([fd], [], [], 0.02)[0]:
                    tail += os.read(fd, 8)
                return {b"[A": "k", b"[B": "j", b"": "\x1b"}.get(tail, "")
            return data.decode("utf-8", "replace").lower()

        return read_tty, lambda: termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    def read_pipe() -> str | None:
        while True:
            ch = stream.read(1)
            if ch == "":
                return None
            if not ch.isspace():
                return ch.lower()

    return read_pipe, lambda: None


@click.command("review")
@db_option
@click.option("--run", "run", default="latest", show_default=True, help="Run id, unique prefix, or 'latest'.")
@click.option("--reviewer", default=None, help="Your name, stored with each decision.  [default: your user name]")
@click.option(
    "--status",
    type=click.Choice(["all", "undecided"]),
    default="all",
    show_default=True,
    help="Which flagged rows to step through.",
)
@verbose_option
@handle_errors
def review_cmd(db_path: str, run: str, reviewer: str | None, status: str, verbose: bool) -> None:
    """Review a run's flagged rows in the terminal, one at a time (keys as on the web page).

    W accept suggestion, Q keep, E exclude, 1–9 relabel to class n, J/K next/previous, U undo,
    F finish review (resumes a paused flow run), X quit. Without a terminal, keys are read from stdin.
    """
    from pathlib import Path

    from labelgate.errors import RunNotFoundError
    from labelgate.services.review import default_reviewer

    if not Path(db_path).exists():
        raise RunNotFoundError(f"database {db_path!r} does not exist; run `labelgate run` first or pass --db")
    read_key, restore = _key_reader()
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    try:
        session = TerminalReview(
            db_path,
            run,
            reviewer=reviewer or default_reviewer(),
            read_key=read_key,
            write=lambda s: click.echo(s, nl=False),
            clear=click.clear if interactive else None,
            status=status,
        )
        session.run()
    finally:
        restore()

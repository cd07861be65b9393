"""Tokenizing for the ONNX backends without torch: the model's fast tokenizer, set up as sentence-transformers
tokenizes, saved beside the export.

An ONNX run needs only the token ids of its texts; loading sentence-transformers just to tokenize imports torch and
transformers (about 12 s on 2 cores, before any text is embedded). When the model's first module has a Hugging Face
*fast* tokenizer, :func:`write_tokenizer` saves its ``tokenizers`` JSON (the same vocabulary, normaliser and special
tokens) with sentence-transformers' truncation (the module's ``max_seq_length``) and padding (to the longest text
of a batch) beside the export (:func:`tokenizer_file`), but only after checking that it gives exactly
the model inputs sentence-transformers gives on the probe texts, all together and each alone; a model it does not
reproduce gets no file and keeps tokenizing through sentence-transformers. :func:`load_tokenizer` reads the file
back with the ``tokenizers`` package alone.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labelgate.embedding.models import PROBE_TEXTS, _features, _first_line, _log

#: the model inputs a :class:`StandaloneTokenizer` gives (BERT-like models need no others)
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def tokenizer_file(export: Path) -> Path:
    """The standalone tokenizer saved beside the ONNX export ``export``: ``<name>.tokenizers-<version>.json``, the
    version of the ``tokenizers`` package that wrote and checked it (another version writes and checks its own)."""
    from importlib import metadata

    try:
        version = metadata.version("tokenizers")
    except metadata.PackageNotFoundError:
        version = "none"
    return export.with_name(f"{export.stem}.tokenizers-{version}.json")


class StandaloneTokenizer:
    """A ``tokenizers.Tokenizer`` with truncation and padding set, giving the model inputs of a batch of texts."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def features(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``input_ids``, ``attention_mask`` and ``token_type_ids`` of ``texts``: int64 arrays ``(n, longest)``."""
        encoded = self.tokenizer.encode_batch(list(texts))
        return {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }


def load_tokenizer(path: Path) -> StandaloneTokenizer | None:
    """The tokenizer saved at ``path``, or None when there is none or it cannot be read (the caller then tokenizes
    through sentence-transformers)."""
    if not path.exists():
        return None
    try:
        from tokenizers import Tokenizer

        return StandaloneTokenizer(Tokenizer.from_file(str(path)))
    except Exception as err:  # a damaged file or another tokenizers version: tokenize the slow way
        _log.info("standalone tokenizer %s unusable (%s): tokenizing through sentence-transformers", path, err)
        return None


def standalone_from(st: Any) -> StandaloneTokenizer:
    """The standalone tokenizer of a loaded sentence-transformers model ``st`` (not yet checked: see
    :func:`tokenizer_problem`).

    Raises:
        ValueError: the first module has no fast tokenizer, or lowercases by a setting of its own.
    """
    from tokenizers import Tokenizer

    first = st[0]
    tok = getattr(first, "tokenizer", None)
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"the first module ({type(first).__name__}) has no fast tokenizer")
    if getattr(first, "do_lower_case", False):
        raise ValueError("the module lowercases texts before its tokenizer")
    max_length = int(getattr(st, "max_seq_length", None) or getattr(first, "max_seq_length", 0) or 0)
    if max_length <= 0:
        raise ValueError("the model has no maximum sequence length")
    out = Tokenizer.from_str(backend.to_str())
    out.enable_truncation(
        max_length=max_length, strategy="longest_first", direction=getattr(tok, "truncation_side", "right")
    )
    out.enable_padding(
        direction=getattr(tok, "padding_side", "right"),
        pad_id=int(tok.pad_token_id),
        pad_type_id=int(getattr(tok, "pad_token_type_id", 0) or 0),
        pad_token=str(tok.pad_token),
    )
    return StandaloneTokenizer(out)


def tokenizer_problem(st: Any, candidate: StandaloneTokenizer) -> str | None:
    """None when ``candidate`` gives exactly ``st``'s model inputs on the probe texts (all in one batch, and each
    alone), else the first difference (one line)."""
    texts = list(PROBE_TEXTS)
    for batch in [texts] + [[t] for t in texts]:
        ref = _features(st, batch)
        got = candidate.features(batch)
        for name, value in ref.items():
            if not hasattr(value, "shape"):  # not a tensor (sentence-transformers' own bookkeeping)
                continue
            if name not in got:
                return f"the model needs input {name!r}, which the standalone tokenizer does not give"
            expected = np.asarray(value.cpu() if hasattr(value, "cpu") else value)
            if expected.shape != got[name].shape or not np.array_equal(expected, got[name]):
                return f"its {name} differ from sentence-transformers' on {batch[0][:40]!r}"
    return None


def write_tokenizer(st: Any, export: Path, *, model: str) -> str | None:
    """Save the standalone tokenizer of ``st`` beside the ONNX export ``export`` when it reproduces
    sentence-transformers' model inputs (atomically: readers see no file or a complete one).

    Returns:
        None when the file was written (or already there), else why not (logged; the backend then tokenizes
        through sentence-transformers, as before). Never raises.
    """
    dest = tokenizer_file(export)
    if dest.exists():
        return None
    try:
        candidate = standalone_from(st)
        problem = tokenizer_problem(st, candidate)
        if problem is None:
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tokenizer-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(candidate.tokenizer.to_str())
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            _log.info("saved the standalone tokenizer of %s to %s", model, dest)
            return None
    except Exception as err:
        problem = _first_line(err)
    _log.info(
        "no standalone tokenizer for %s (%s): the ONNX backend tokenizes through sentence-transformers", model, problem
    )
    return problem

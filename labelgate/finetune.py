"""The ``finetune`` trainer of the before/after evaluation: a small encoder fine-tuned with a classification head.

The TF-IDF proxies (:mod:`labelgate.core.evaluate`) are regularised linear models: they average label noise
away, so they understate what cleaning does for a model that is fine-tuned on the labels. This trainer *is*
such a model: the encoder of a sentence-transformers (or plain Hugging Face) model — by default the bundled
all-MiniLM-L6-v2, resolved as :mod:`labelgate.embedding` resolves it, strictly offline — with a linear head
over the mean-pooled token states (dropout 0.1), all weights trained with AdamW (encoder lr
:data:`LR_ENCODER`, head lr :data:`LR_HEAD`, weight decay 0.01, linear warm-up over the first 10% of the
steps then linear decay), batches of :data:`BATCH_SIZE` texts truncated at :data:`MAX_SEQ_LENGTH` tokens.

Fairness between the sides: each side starts from the same weights and the same seed (head initialisation,
dropout, shuffling), and takes the same number of optimizer steps with the same learning-rate schedule:
``ceil(epochs * ceil(n / batch))`` steps where ``n`` is the larger training set. When a wall-time budget
(``max_seconds``, for the whole trainer) is given, the first side (raw) trains for at most half of it and the
second takes exactly as many steps as the first did; ``details`` records the steps, the epochs they make,
and ``stopped_by`` (``epochs`` or ``time``).

Hardware: CUDA when ``torch.cuda.is_available()`` (bf16 autocast where the GPU supports it); otherwise the
CPU with bf16 autocast where it multiplies bf16 natively (AMX / AVX512-BF16, as probed by
:func:`labelgate.embedding.bf16_supported`), fp32 elsewhere. On the CPU the trainer uses at most two torch
threads while it runs (restored afterwards).

Cost per 1,000 training rows per epoch (one side; an evaluation trains two, raw and cleaned), measured with
MiniLM-L6 on banking77 texts (~15 tokens), batch 32, on the 2-core AMD EPYC (no native bf16, so fp32) these
sessions share: 72-94 s of CPU with one torch thread (2.3-3.0 s per step); 190-260 s of wall time while three
other engineers loaded the machine (load 5-10 on 2 cores); and two threads on that loaded machine were 4-5x
slower than one (11-14 s per step: set ``LABELGATE_EMBED_THREADS=1`` on a shared machine). Scoring the test
file costs ~15 s of CPU per 1,000 test rows per side. So the default 3 epochs cost about
``2 sides x 3 epochs x ~80 s = ~8 min`` of CPU per 1,000 training rows; longer texts cost more (up to ~8x at
the 128-token cap). A GPU, or a CPU with AMX (bf16), makes it many times cheaper; ``--finetune-max-seconds``
bounds it anywhere.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelgate.config import DEFAULT_MODEL
from labelgate.core.evaluate import Fitted, TrainingSets
from labelgate.errors import ConfigError

#: training texts per optimizer step
BATCH_SIZE = 32
#: tokens a text is truncated at
MAX_SEQ_LENGTH = 128
#: AdamW learning rate of the encoder's weights. Chosen on 1,000 rows of banking77-noisy's train.csv (given labels,
#: no truth file) scored on 500 rows of its test.csv, 3 epochs (96 steps), head lr 1e-3: test accuracy 0.448 at
#: 5e-5, 0.506 at 1e-4, 0.600 at 2e-4 (a small encoder on a step budget learns faster with the larger rate)
LR_ENCODER = 2e-4
#: AdamW learning rate of the classification head
LR_HEAD = 1e-3
#: share of the planned steps spent warming the learning rates up linearly from 0
WARMUP_SHARE = 0.1
WEIGHT_DECAY = 0.01
DROPOUT = 0.1
#: default epochs over the larger training set
DEFAULT_EPOCHS = 3.0
#: texts per forward pass when predicting the test set
PREDICT_BATCH = 128
#: environment variable: ``0`` turns the terminal progress bar off (it is on only when stderr is a terminal)
PROGRESS_ENV = "LABELGATE_PROGRESS"


def show_progress() -> bool:
    """True when stderr is a terminal and ``$LABELGATE_PROGRESS`` is not ``0``."""
    if os.environ.get(PROGRESS_ENV, "").strip() == "0":
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def default_threads() -> int:
    """Torch threads of the trainer on the CPU: ``$LABELGATE_EMBED_THREADS`` when set (see
    :func:`labelgate.embedding.compute_threads`), else at most two (the usable CPUs when fewer).

    On a busy shared machine one thread can be several times faster than two (measured on 2 cores at load 5:
    2.3 s vs 11 s per training step); set ``LABELGATE_EMBED_THREADS=1`` there.
    """
    from labelgate.embedding import THREADS_ENV, compute_threads

    if os.environ.get(THREADS_ENV, "").strip():
        return compute_threads()
    return max(1, min(2, compute_threads()))


@dataclass(frozen=True)
class FinetuneTrainer:
    """A :class:`labelgate.core.evaluate.Trainer` that fine-tunes ``model_name`` on each training set.

    Attributes:
        model_name: a sentence-transformers / Hugging Face model folder, an installed model name, or the
            default (the bundled all-MiniLM-L6-v2). Never downloaded.
        epochs: epochs over the larger training set (> 0; fractions allowed: 0.5 = half an epoch).
        max_seconds: wall-time budget of the training of both sides together (None: epochs only); the raw side
            gets half, the cleaned side the raw side's number of steps.
        device: ``cuda`` or ``cpu``; None: ``cuda`` when available.
        progress: a progress bar on stderr; None: :func:`show_progress`.
        on_step: called as ``on_step(variant, steps_done, steps_planned)`` after every step (e.g. a Prefect
            progress artifact).
        threads: torch threads on the CPU while training; None: :func:`default_threads`.
    """

    model_name: str = DEFAULT_MODEL
    epochs: float = DEFAULT_EPOCHS
    max_seconds: float | None = None
    batch_size: int = BATCH_SIZE
    max_seq_length: int = MAX_SEQ_LENGTH
    lr_encoder: float = LR_ENCODER
    lr_head: float = LR_HEAD
    device: str | None = None
    progress: bool | None = None
    on_step: Callable[[str, int, int], None] | None = None
    threads: int | None = None
    name: str = "finetune"

    def __post_init__(self) -> None:
        if not self.epochs > 0:
            raise ConfigError(f"--finetune-epochs must be > 0, got {self.epochs!r}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ConfigError(f"--finetune-max-seconds must be > 0, got {self.max_seconds!r}")
        if self.device not in (None, "cpu", "cuda"):
            raise ConfigError(f"fine-tuning device must be cpu or cuda, got {self.device!r}")

    @property
    def model(self) -> str:
        from labelgate.embedding import model_key

        key = model_key(self.model_name)
        budget = f"{self.epochs:g} epochs" + (f" or {self.max_seconds:g} s" if self.max_seconds else "")
        return (
            f"fine-tuned {key} + linear head on mean pooling (AdamW lr {self.lr_encoder:g}/{self.lr_head:g}, "
            f"batch {self.batch_size}, {self.max_seq_length} tokens, {budget})"
        )

    def fit_predict(
        self, train_sets: TrainingSets, test_texts: Sequence[str], *, seed: int
    ) -> tuple[dict[str, Fitted], dict[str, Any]]:
        """Fine-tune a fresh copy of the model on each training set (same seed, steps and schedule) and predict
        ``test_texts`` with each. See the module docstring for the budget rules.

        Returns:
            ``({variant: Fitted}, details)``; details: steps, planned_steps, epochs (steps over the larger set's
            epoch), stopped_by (``epochs``/``time``), max_seconds, device, bf16, batch_size, max_seq_length,
            train_seconds and train_cpu_seconds (wall and process-CPU seconds of the training, per variant).

        Raises:
            ModelLoadError: the model cannot be loaded offline, or it has no transformer first module.
        """
        from labelgate.embedding import _torch_env

        _torch_env()
        import torch

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        bf16 = _bf16(torch, device)
        classes = sorted({str(lab) for _, labels in train_sets.values() for lab in labels})
        largest = max(len(texts) for texts, _ in train_sets.values())
        per_epoch = max(1, math.ceil(largest / self.batch_size))
        planned = max(1, math.ceil(self.epochs * per_epoch))
        budget = self.max_seconds / max(1, len(train_sets)) if self.max_seconds else None
        progress = show_progress() if self.progress is None else self.progress
        fitted: dict[str, Fitted] = {}
        train_seconds: dict[str, float] = {}
        train_cpu: dict[str, float] = {}
        steps = planned
        stopped_by = "epochs"
        threads = torch.get_num_threads()
        if device == "cpu":
            torch.set_num_threads(self.threads or default_threads())
        try:
            for i, (variant, (texts, labels)) in enumerate(train_sets.items()):
                started = time.perf_counter()
                net, tokenizer = _build(self.model_name, len(classes), seed=seed, device=device)
                index = {c: k for k, c in enumerate(classes)}
                targets = np.array([index[str(lab)] for lab in labels], dtype=np.int64)
                encoded = _tokenize(tokenizer, texts, self.max_seq_length)
                done, seconds, cpu = self._train(
                    torch,
                    net,
                    tokenizer,
                    encoded,
                    targets,
                    variant=variant,
                    steps=steps,
                    planned=planned,
                    max_seconds=budget if i == 0 else None,
                    seed=seed,
                    device=device,
                    bf16=bf16,
                    progress=progress,
                )
                if i == 0 and done < steps:
                    steps, stopped_by = done, "time"
                train_seconds[variant] = round(seconds, 3)
                train_cpu[variant] = round(cpu, 3)
                pred = _predict(torch, net, tokenizer, test_texts, self.max_seq_length, device=device, bf16=bf16)
                fitted[variant] = Fitted([classes[k] for k in pred], time.perf_counter() - started)
                del net
                if device == "cuda":
                    torch.cuda.empty_cache()
        finally:
            torch.set_num_threads(threads)
        details = {
            "steps": steps,
            "planned_steps": planned,
            "epochs": round(steps / per_epoch, 4),
            "stopped_by": stopped_by,
            "max_seconds": self.max_seconds,
            "device": device,
            "bf16": bf16,
            "batch_size": self.batch_size,
            "max_seq_length": self.max_seq_length,
            "train_seconds": train_seconds,
            "train_cpu_seconds": train_cpu,
        }
        return fitted, details

    def _train(
        self,
        torch: Any,
        net: Any,
        tokenizer: Any,
        encoded: list[list[int]],
        targets: np.ndarray,
        *,
        variant: str,
        steps: int,
        planned: int,
        max_seconds: float | None,
        seed: int,
        device: str,
        bf16: bool,
        progress: bool,
    ) -> tuple[int, float, float]:
        """Train ``net`` for ``steps`` steps (fewer when ``max_seconds`` runs out) on a schedule of ``planned``
        steps; return ``(steps done, wall seconds, CPU seconds of the process)``."""
        torch.manual_seed(seed)
        encoder_params = [p for n, p in net.named_parameters() if not n.startswith("head.")]
        optimizer = torch.optim.AdamW(
            [
                {"params": encoder_params, "lr": self.lr_encoder},
                {"params": list(net.head.parameters()), "lr": self.lr_head},
            ],
            weight_decay=WEIGHT_DECAY,
        )
        warmup = max(1, int(WARMUP_SHARE * planned))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (planned - step) / max(1, planned - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        batches = _batch_stream(len(encoded), self.batch_size, seed)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, desc=f"fine-tune {variant}", unit="step", file=sys.stderr, leave=False)
        net.train()
        started, cpu = time.perf_counter(), time.process_time()
        done = 0
        try:
            while done < steps:
                idx = next(batches)
                batch = _pad(tokenizer, [encoded[k] for k in idx], device)
                y = torch.as_tensor(targets[idx], device=device)
                with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
                    logits = net(batch)
                loss = torch.nn.functional.cross_entropy(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                done += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
                if self.on_step is not None:
                    self.on_step(variant, done, steps)
                if max_seconds is not None and time.perf_counter() - started >= max_seconds:
                    break
        finally:
            if bar is not None:
                bar.close()
        return done, time.perf_counter() - started, time.process_time() - cpu


def _bf16(torch: Any, device: str) -> bool:
    """bf16 autocast where the hardware multiplies bf16 natively."""
    if device == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    from labelgate.embedding import bf16_supported

    return bf16_supported()


def _build(model_name: str, n_classes: int, *, seed: int, device: str) -> tuple[Any, Any]:
    """A fresh copy of the model's encoder with a seeded linear head of ``n_classes`` outputs, and its tokenizer.

    Raises:
        ModelLoadError: the model cannot be loaded, or its first module is not a Hugging Face transformer.
    """
    import torch

    from labelgate.embedding import load_model_copy, transformer_parts

    st = load_model_copy(model_name)  # never the cached instance: training changes the weights
    encoder, tokenizer = transformer_parts(
        st, model=model_name, needed_by="--finetune-model needs a sentence-transformers or Hugging Face encoder"
    )

    class Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.dropout = torch.nn.Dropout(DROPOUT)
            self.head = torch.nn.Linear(int(encoder.config.hidden_size), n_classes)

        def forward(self, batch: dict[str, Any]) -> Any:
            states = self.encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            return self.head(self.dropout(pooled))

    torch.manual_seed(seed)
    net = Classifier().float().to(device)
    return net, tokenizer


def _tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text, truncated at ``max_length`` tokens (special tokens included)."""
    ids = tokenizer([str(t) for t in texts], truncation=True, max_length=max_length, padding=False)["input_ids"]
    return [list(x) for x in ids]


def _pad(tokenizer: Any, ids: list[list[int]], device: str) -> dict[str, Any]:
    """A padded batch (input_ids, attention_mask) on ``device``."""
    import torch

    width = max(len(x) for x in ids)
    pad = tokenizer.pad_token_id or 0
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = torch.as_tensor(x, dtype=torch.long)
        mask[row, : len(x)] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}


def _batch_stream(n: int, size: int, seed: int):  # -> Iterator[np.ndarray]
    """Endless batches of row indices: a fresh seeded permutation of the ``n`` rows per epoch."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        for start in range(0, n, size):
            yield order[start : start + size]


def _predict(
    torch: Any, net: Any, tokenizer: Any, texts: Sequence[str], max_length: int, *, device: str, bf16: bool
) -> list[int]:
    """The class index ``net`` predicts for each text (batches of similar length, input order)."""
    encoded = _tokenize(tokenizer, texts, max_length)
    order = np.argsort([-len(x) for x in encoded], kind="stable")
    out = np.empty(len(encoded), dtype=np.int64)
    net.eval()
    with torch.inference_mode():
        for start in range(0, len(order), PREDICT_BATCH):
            idx = order[start : start + PREDICT_BATCH]
            batch = _pad(tokenizer, [encoded[k] for k in idx], device)
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
                logits = net(batch)
            out[idx] = logits.float().argmax(dim=1).cpu().numpy()
    return out.tolist()

"""Defaults that scale with the table: batch size, learning rate, step budget, validation cadence.

`train.batch_size`, `train.max_steps` and `train.val_every` may be "auto"; they are resolved
here, once, from the number of training rows, and printed in the start lines. The rules:

- batch: the power of two nearest √rows, between 64 and 1024 (≈ √rows steps per pass). Small
  tables keep batch 64 (2,000 rows: 64; 10,000: 128; 40,000: 256; 200,000: 512; 1M: 1024), big
  ones stop being dispatch-bound: at batch 64 every step costs ~1 ms of overhead per member.
  train.auto_batch_min raises the smallest batch (on tables with at least that many rows), and a
  pass of more than LONG_PASS (32) steps at a raised minimum doubles it once (the tabular preset:
  128 up to 4,096 rows, 256 from there until √rows asks for more).
- learning rate: with an auto batch, optim.lr is read as the rate for batch 64 and scaled by
  √(batch / 64), the square-root rule for Adam-type optimizers (Malladi et al., 2022, "On the
  SDEs and scaling rules for adaptive gradient algorithms"); an explicit batch size keeps optim.lr.
- step budget: a table validated within a pass (below) stops after 4,000 optimizer steps if early
  stopping has not stopped it (≈ 10 passes of 200,000 rows at batch 512; a bigger table, with its
  bigger batch, gets fewer passes). A smaller table stops after 60 passes or 1,200 steps, whichever
  is more (and train.max_epochs still bounds it): on the 17-table benchmark at full size only two
  tables ran longer, and their epochs past 60 bought little for much of their time (signal: 98
  epochs, 1 − AUC 0.170 → 0.175× LightGBM's at 60 for 0.6× the CPU; hpc_data: 81 epochs, the same
  AUC at 60). The floor in steps keeps small tables' many short passes (a 1,000-row table at batch
  64 takes 13 steps a pass: 93 passes).
- validation cadence: a pass longer than 50,000 rows is validated every 1/k of it
  (k = ⌈rows / 50,000⌉), so early stopping and plateau schedules act within the first pass; their
  patience then counts validations, and so do `epoch` in the history and train.max_epochs.
- numeric embedding: model.numeric_embedding "auto" is periodic on tables validated within a pass
  and on tables with at most MAX_EMBEDDED_COLUMNS columns to embed (numeric columns and date parts
  holding more than two values); none on wider small tables. On the 17-table benchmark (3,000
  training rows) the embedding closed most of boosting's lead where single columns' thresholds
  matter (churn 1.28 → 1.03× LightGBM's error, hpc_data 1.35 → 1.11×, deliveries 0.96 → 0.90×)
  but hurt the two wide tables of like columns, a signal's 48 samples and digits' 64 pixels
  (0.28 → 0.89×, 0.17 → 0.25×), whose classes lie in patterns across columns; its cost grows
  with the columns embedded (README, "How good the default is").
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .sections import AUTO

REFERENCE_BATCH = 64  # optim.lr is tuned at this batch (the tabular lesson's)
MAX_AUTO_BATCH = 1024
# a pass of more than this many steps at the smallest auto batch doubles it once. The tabular preset (at least 128)
# trains tables of 4,096-46,000 rows at 256 instead of 128: at the benchmark's full size the six tables above 4,096
# training rows went 40% faster for about 1% more error together (signal 0.39 → 0.33-0.35× RealMLP-TD's CPU), while
# at 2,400 training rows (19 steps a pass at 128) batch 256 lost (digits, signal: README, "How good the default is")
LONG_PASS = 32
STEP_BUDGET = 4_000  # optimizer steps per member, on tables validated within a pass
# smaller tables (one validation per pass): at most this many passes, or SMALL_TABLE_STEPS steps where that is more
SMALL_TABLE_PASSES = 60
SMALL_TABLE_STEPS = 1_200
ROWS_PER_VALIDATION = 50_000  # longer passes are validated every 1/k pass
# auto numeric embedding on smaller tables: at most this many columns to embed. The benchmark places the edge between
# chicago's 42 columns (1.12 → 1.04× LightGBM's error at 3,000 rows, 1.24 → 1.13× at the full 4,558 rows over 3
# seeds) and the signal table's 48 (0.28 → 0.89×); 32 before, which left chicago out
MAX_EMBEDDED_COLUMNS = 44


@dataclass(frozen=True)
class Scaled:
    """What "auto" resolved to for one run."""

    batch_size: int
    lr_factor: float  # × optim.lr (and schedule.max_lr): 1 unless the batch was chosen here
    max_steps: int | None  # optimizer steps per member (None: train.max_epochs alone)
    validations_per_pass: int  # 1: validate at the end of each pass
    batch_auto: bool
    chosen: bool  # something was "auto": the start lines show what it became
    numeric_embedding: str | None = None  # what model.numeric_embedding "auto" became (None: it was not auto)
    embedding_why: str = ""  # the rule that chose it, for the start line
    batch_why: str = ""  # the rule that chose an auto batch, for the start line

    def steps_per_validation(self, train_rows: int, drop_last: bool = False) -> int:
        per_pass = steps_per_pass(train_rows, self.batch_size, drop_last)
        return max(1, math.ceil(per_pass / self.validations_per_pass))

    def describe(self, train_rows: int, lr: float | str) -> str:
        """The start line: each choice with its reason, so it can be overridden knowingly.
        `lr`: the rate training uses (already scaled)."""
        how = f"auto: {self.batch_why}" if self.batch_auto else "train.batch_size"
        parts = [f"batch {self.batch_size} ({how})"]
        if self.lr_factor != 1.0 and not isinstance(lr, str):
            parts.append(f"lr {lr:.3g} (optim.lr {lr / self.lr_factor:g} × √({self.batch_size}/{REFERENCE_BATCH}))")
        if not self.max_steps:
            parts.append("no step budget")
        elif self.validations_per_pass == 1:  # the small tables' budget is read in passes
            passes = self.max_steps / self.steps_per_validation(train_rows)
            parts.append(f"at most {self.max_steps:,} steps ({passes:.0f} passes)")
        else:
            parts.append(f"at most {self.max_steps:,} steps")
        if self.validations_per_pass > 1:
            steps = self.steps_per_validation(train_rows)
            parts.append(
                f"validation every 1/{self.validations_per_pass} pass ({steps} steps): epochs, patience and "
                "max_epochs count validations"
            )
        if self.numeric_embedding is not None:
            parts.append(f"numeric embedding {self.numeric_embedding} (auto: {self.embedding_why})")
        return "scale: " + ", ".join(parts) + " (train.batch_size, train.max_steps, train.val_every)"


def steps_per_pass(train_rows: int, batch: int, drop_last: bool = False) -> int:
    """Optimizer steps in one pass over the training rows (a short last batch counts unless dropped)."""
    return train_rows // batch if drop_last else math.ceil(train_rows / batch)


def auto_batch_size(train_rows: int, minimum: int = REFERENCE_BATCH) -> int:
    """`minimum`: train.auto_batch_min, the smallest batch auto picks (the tabular preset's is larger than 64),
    applied only to tables holding at least that many rows (smaller ones keep 64, as before)."""
    return batch_choice(train_rows, minimum)[0]


def batch_choice(train_rows: int, minimum: int = REFERENCE_BATCH) -> tuple[int, str]:
    """The auto batch and the rule that chose it, for the start line."""
    nearest = 2 ** round(math.log2(max(1.0, math.sqrt(train_rows))))
    floor = minimum if train_rows >= minimum else REFERENCE_BATCH
    why = f"power of two nearest √{train_rows:,} rows"
    raised = floor > REFERENCE_BATCH  # 64 is the rule's own lower bound, not a raise
    if raised and nearest < floor:
        why += ", raised to train.auto_batch_min"
    # only a raised minimum doubles (the default 64 is the lessons' batch, kept up to ~8,000 rows)
    if raised and train_rows > LONG_PASS * floor and nearest < 2 * floor <= MAX_AUTO_BATCH:
        floor = 2 * floor
        why += f", doubled: over {LONG_PASS} steps a pass at {floor // 2}"
    return int(min(max(MAX_AUTO_BATCH, floor), max(floor, nearest))), why


def validations_per_pass(train_rows: int, val_every: float | str) -> int:
    """val_every: a fraction of a pass (1: once per pass, 0.25: four times) or "auto"."""
    if val_every == AUTO:
        return max(1, math.ceil(train_rows / ROWS_PER_VALIDATION))
    return max(1, round(1.0 / float(val_every)))


def auto_numeric_embedding(value: str, train_rows: int, embeddable: int | None = None) -> str:
    """model.numeric_embedding: "auto" → periodic on tables validated within a pass, and on smaller
    ones with 1 to MAX_EMBEDDED_COLUMNS columns to embed (`embeddable`; None: not known, the rows alone
    decide); none otherwise. Other values stand."""
    if value != AUTO:
        return value
    narrow = embeddable is not None and 0 < embeddable <= MAX_EMBEDDED_COLUMNS
    return "periodic" if validations_per_pass(train_rows, AUTO) > 1 or narrow else "none"


def step_budget(train_rows: int, batch: int, validations: int) -> int:
    """train.max_steps "auto": STEP_BUDGET on tables validated within a pass; otherwise SMALL_TABLE_PASSES
    passes or SMALL_TABLE_STEPS steps, whichever is more."""
    if validations > 1:
        return STEP_BUDGET
    return max(SMALL_TABLE_STEPS, SMALL_TABLE_PASSES * steps_per_pass(train_rows, batch))


def resolve(
    batch_size: int | str,
    max_steps: int | str | None,
    val_every: float | str,
    train_rows: int,
    scale_lr: bool = True,
    min_batch: int = REFERENCE_BATCH,
) -> Scaled:
    """The run's scaled choices. `scale_lr`: False where the learning rate is not the user's to
    rescale (an LR finder's suggestion is measured at the batch it ran with); `min_batch`: train.auto_batch_min."""
    batch_auto = batch_size == AUTO
    batch, why = batch_choice(train_rows, min_batch) if batch_auto else (int(batch_size), "")
    factor = math.sqrt(batch / REFERENCE_BATCH) if batch_auto and scale_lr else 1.0
    validations = validations_per_pass(train_rows, val_every)
    steps = step_budget(train_rows, batch, validations) if max_steps == AUTO else max_steps
    chosen = AUTO in (batch_size, max_steps, val_every)
    return Scaled(batch, factor, steps, validations, batch_auto, chosen, batch_why=why)


def scale_configs(cfgs: list[Any], train_rows: int, embeddable: int | None = None) -> Scaled:
    """Resolve "auto" in the configs of one stack (they share batch and cadence) in place, so
    config.yaml holds what ran and a second build (the LR finder's, a resume) rescales nothing.
    `embeddable`: the table's columns a numeric embedding would read (None: not a table, or not known)."""
    t = cfgs[0].train
    scaled = resolve(t.batch_size, t.max_steps, t.val_every, train_rows, min_batch=t.auto_batch_min)
    if cfgs[0].model.numeric_embedding == AUTO:
        chosen = auto_numeric_embedding(AUTO, train_rows, embeddable)
        why = _embedding_why(chosen, scaled.validations_per_pass > 1, embeddable)
        scaled = dataclasses.replace(scaled, numeric_embedding=chosen, chosen=True, embedding_why=why)
    for cfg in cfgs:
        cfg.model.numeric_embedding = auto_numeric_embedding(cfg.model.numeric_embedding, train_rows, embeddable)
        cfg.train.batch_size, cfg.train.max_steps = scaled.batch_size, scaled.max_steps
        cfg.train.val_every = 1.0 / scaled.validations_per_pass
        if scaled.lr_factor != 1.0:  # an LR finder's "auto" is measured at this batch already
            if not isinstance(cfg.optim.lr, str):
                cfg.optim.lr *= scaled.lr_factor
            if cfg.schedule.max_lr is not None and not isinstance(cfg.schedule.max_lr, str):
                cfg.schedule.max_lr *= scaled.lr_factor
    return scaled


def _embedding_why(chosen: str, big: bool, embeddable: int | None) -> str:
    rows, narrow = f"periodic above {ROWS_PER_VALIDATION:,} rows", f"at most {MAX_EMBEDDED_COLUMNS} columns to embed"
    if chosen == "none":
        return f"{rows} or with {narrow}" + (f"; {embeddable} here" if embeddable else "")
    return rows if big else f"periodic with {narrow}, {embeddable} here"

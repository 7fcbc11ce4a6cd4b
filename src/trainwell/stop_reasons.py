"""Why a member (and its run) ended: the one vocabulary for stop reasons.

Plain strings in metrics.json, results.csv and last.pt. This module imports nothing, so the
light modules (advice, loggers, the compare pool) use the same names as the loop without
importing torch; trainwell.loop re-exports them.
"""

EARLY_STOP, MAX_EPOCHS, NOT_FINITE, INTERRUPTED = "early_stop", "max_epochs", "not_finite", "interrupted"
HALVED = "halved"  # a search stopped the member: it ranked outside the best third at a halving point (tune/halving.py)
STOP_REASONS = (EARLY_STOP, MAX_EPOCHS, NOT_FINITE, INTERRUPTED, HALVED)

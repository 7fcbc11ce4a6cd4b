"""The fork server's own set-up: executors.PRELOAD imports this module there, and nothing else
imports it. At the server's exit the objects it holds are moved out of the cyclic garbage
collector's reach (gc.freeze), as the `trainwell` command does for itself (cli.run): the final
collections of an interpreter holding torch took ~0.5 s after a compare had finished (27 Nov,
2 cores), time a compare measured to its last process (bench_experiments.py) waited for. The
workers forked from the server leave through os._exit and never run it."""

import atexit
import gc

atexit.register(gc.freeze)

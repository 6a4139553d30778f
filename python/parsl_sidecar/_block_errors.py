"""How an executor of a pool judges failed blocks (docs/executors.md, "Blocks that fail").

Parsl's default, ``simple_error_handler``, takes ``max(1, init_blocks)`` as its threshold: with
the usual one block, the first block that fails (workers killed, a node preempted or lost) marks
the executor bad for good and fails every task sent to it, retries included. The chaos soak
(bench/soak) met exactly that. On a pool a block is lost far more often than it is wrong, so the
sidecar's executors use Parsl's windowed handler: bad only when the last three blocks all failed
(a launch that can never work still stops the run, after three tries).
"""

from __future__ import annotations

from parsl.executors.status_handling import BlockProviderExecutor
from parsl.jobs.error_handlers import windowed_error_handler
from parsl.jobs.states import JobStatus

#: failed blocks in a row that make an executor bad
FAILED_BLOCKS_IN_A_ROW = 3


def tolerate_single_failures(executor: BlockProviderExecutor, status: dict[str, JobStatus]) -> None:
    """Parsl's windowed block error handler over the last FAILED_BLOCKS_IN_A_ROW blocks."""
    windowed_error_handler(executor, status, threshold=FAILED_BLOCKS_IN_A_ROW)

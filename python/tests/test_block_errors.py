"""parsl_sidecar._block_errors: a pool's executor survives one lost block, not three in a row.

Run against real (unstarted) HighThroughputExecutors and Parsl's own job states; the
end-to-end case (a block's workers SIGTERMed mid-run, Parsl replacing them, every task done) is
the soak's CI variant, test_soak.py, which runs with this default.
"""

from __future__ import annotations

from parsl.executors import HighThroughputExecutor
from parsl.executors.status_handling import BlockProviderExecutor
from parsl.jobs.error_handlers import simple_error_handler
from parsl.jobs.states import JobState, JobStatus
from parsl.providers import LocalProvider

from parsl_sidecar._block_errors import tolerate_single_failures


def _htex() -> HighThroughputExecutor:
    return HighThroughputExecutor(label="pool", provider=LocalProvider(init_blocks=1))


def _status(*states: JobState) -> dict[str, JobStatus]:
    return {str(i): JobStatus(s, message=f"block {i}") for i, s in enumerate(states)}


def test_parsl_default_gives_up_on_the_first_lost_block() -> None:
    # why the sidecar does not keep Parsl's default: with init_blocks 1, one failed block is fatal
    ex: BlockProviderExecutor = _htex()
    simple_error_handler(ex, _status(JobState.FAILED))
    assert ex.bad_state_is_set


def test_one_lost_block_is_replaced_not_fatal() -> None:
    ex: BlockProviderExecutor = _htex()
    tolerate_single_failures(ex, _status(JobState.FAILED))
    tolerate_single_failures(ex, _status(JobState.FAILED, JobState.RUNNING))
    tolerate_single_failures(ex, _status(JobState.FAILED, JobState.FAILED, JobState.RUNNING))
    assert not ex.bad_state_is_set


def test_three_failed_blocks_in_a_row_stop_the_executor_with_their_messages() -> None:
    ex: BlockProviderExecutor = _htex()
    states = (JobState.RUNNING, JobState.FAILED, JobState.FAILED, JobState.FAILED)
    tolerate_single_failures(ex, _status(*states))
    assert ex.bad_state_is_set
    assert "block 3" in str(ex.executor_exception)

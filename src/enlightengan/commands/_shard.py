"""``--shard auto``: which share of a bulk job this process takes, read from the scheduler's environment.

Bulk jobs run on the schedulers people already have; each sets variables that say which task this is:

* **Slurm job arrays** (``sbatch --array=1-8``): ``SLURM_ARRAY_TASK_ID`` with ``SLURM_ARRAY_TASK_COUNT``,
  ``SLURM_ARRAY_TASK_MIN`` and ``SLURM_ARRAY_TASK_STEP`` (ids may start anywhere and skip by a step);
* **Kubernetes Indexed Jobs** (``completionMode: Indexed``): ``JOB_COMPLETION_INDEX`` (0-based); the
  number of completions is not passed to the pods, so the Job sets ``ENLIGHTENGAN_SHARD_COUNT`` to it;
* **torchrun** (or any launcher of the PyTorch convention): ``RANK`` with ``WORLD_SIZE`` (0-based).

They are looked for in that order. Shares are numbered ``K/N`` with ``1 <= K <= N``, as ``--shard K/N``.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ShardError", "shard_from_environment"]


class ShardError(ValueError):
    """The environment does not say which share to take (or says it inconsistently)."""


def _int(environ: Mapping[str, str], name: str) -> int:
    value = environ[name]
    try:
        return int(value)
    except ValueError:
        raise ShardError(f"${name} must be a whole number, got {value!r}") from None


def _checked(k: int, n: int, source: str) -> tuple[int, int]:
    if n < 1 or not 1 <= k <= n:
        raise ShardError(f"{source} gives share {k} of {n}, which is not a share (1 <= K <= N)")
    return k, n


def shard_from_environment(environ: Mapping[str, str]) -> tuple[int, int]:
    """``(K, N)``: this process takes the K-th of N shares, from Slurm, Kubernetes or torchrun variables.

    Raises:
        ShardError: none of the schedulers' variables is set, or they are inconsistent.

    Example:
        >>> shard_from_environment({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4",
        ...                         "SLURM_ARRAY_TASK_MIN": "1"})
        (3, 4)
    """
    if "SLURM_ARRAY_TASK_ID" in environ:
        if "SLURM_ARRAY_TASK_COUNT" not in environ:
            raise ShardError("$SLURM_ARRAY_TASK_ID is set but $SLURM_ARRAY_TASK_COUNT is not")
        task = _int(environ, "SLURM_ARRAY_TASK_ID")
        first = _int(environ, "SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in environ else 0
        step = _int(environ, "SLURM_ARRAY_TASK_STEP") if "SLURM_ARRAY_TASK_STEP" in environ else 1
        if step < 1 or (task - first) % step:
            raise ShardError(f"Slurm task id {task} is not on the array's grid (min {first}, step {step})")
        return _checked((task - first) // step + 1, _int(environ, "SLURM_ARRAY_TASK_COUNT"), "Slurm")
    if "JOB_COMPLETION_INDEX" in environ:
        if "ENLIGHTENGAN_SHARD_COUNT" not in environ:
            raise ShardError(
                "a Kubernetes Indexed Job gives $JOB_COMPLETION_INDEX but not the number of completions: "
                "set $ENLIGHTENGAN_SHARD_COUNT to the Job's completions in its pod template"
            )
        index = _int(environ, "JOB_COMPLETION_INDEX")
        return _checked(index + 1, _int(environ, "ENLIGHTENGAN_SHARD_COUNT"), "Kubernetes")
    if "RANK" in environ and "WORLD_SIZE" in environ:
        return _checked(_int(environ, "RANK") + 1, _int(environ, "WORLD_SIZE"), "torchrun")
    raise ShardError(
        "--shard auto found no scheduler's variables: a Slurm job array ($SLURM_ARRAY_TASK_ID, "
        "$SLURM_ARRAY_TASK_COUNT), a Kubernetes Indexed Job ($JOB_COMPLETION_INDEX with "
        "$ENLIGHTENGAN_SHARD_COUNT) or torchrun ($RANK, $WORLD_SIZE); give --shard K/N instead"
    )

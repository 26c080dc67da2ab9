"""Starting the Ray backend's local cluster on a loaded machine: Ray waits a fixed 30 s for
its raylet, and a start that passes it is tried once more after the processes it left are
ended; a second one is an ``EvalError``. Ray's start is stood in for here (the real one
cannot be made slow on purpose without waiting those 30 s); ``test_ray.py`` runs the real
one."""

from __future__ import annotations

from typing import Any

import pytest

from agentkit.evals import EvalError
from agentkit.evals._ray import start_local

TIMED_OUT = (
    "The current node timed out during startup. This could happen because some of the "
    "raylet failed to startup or the GCS has become overloaded."
)


class Node:
    """Stands in for ``ray._private.node.Node``: its constructor started processes, then
    raised."""

    killed: list[Node]

    def __init__(self, killed: list[Node]) -> None:
        self.killed = killed
        raise Exception(TIMED_OUT)  # what Ray raises: a bare Exception

    def kill_all_processes(self, **options: Any) -> None:
        self.killed.append(self)


class Ray:
    """Stands in for the ``ray`` module: the first ``fails`` starts time out."""

    def __init__(self, fails: int, error: str = TIMED_OUT) -> None:
        self.fails = fails
        self.error = error
        self.inits: list[dict[str, Any]] = []
        self.shutdowns = 0
        self.killed: list[Node] = []

    def init(self, **options: Any) -> None:
        self.inits.append(options)
        if len(self.inits) <= self.fails:
            if self.error != TIMED_OUT:
                raise ConnectionError(self.error)
            Node(self.killed)

    def shutdown(self) -> None:
        self.shutdowns += 1


def test_a_start_that_timed_out_is_tried_again_after_its_processes_are_ended() -> None:
    ray = Ray(fails=1)
    start_local(ray, {"address": "local", "num_cpus": 2})
    assert ray.inits == [{"address": "local", "num_cpus": 2}] * 2
    assert len(ray.killed) == 1  # the slow start's GCS and raylet do not linger
    assert ray.shutdowns == 1


def test_two_starts_that_time_out_are_an_eval_error() -> None:
    ray = Ray(fails=2)
    with pytest.raises(EvalError, match="did not start, 2 times") as caught:
        start_local(ray, {"address": "local"})
    assert "timed out during startup" in str(caught.value)
    assert len(ray.inits) == 2 and len(ray.killed) == 2


def test_another_failure_to_start_is_not_tried_again() -> None:
    ray = Ray(fails=1, error="no such address")
    with pytest.raises(ConnectionError, match="no such address"):
        start_local(ray, {"address": "local"})
    assert len(ray.inits) == 1

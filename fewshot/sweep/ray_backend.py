"""The distributed backend: each job a Ray task, scheduled by Ray on the cluster's nodes.

Ray (an optional extra: ``pip install 'fewshot[ray]'``) places each task where
the resources its tier asks for (CPUs, GPUs) are free, and runs it again when
the worker process running it dies (``max_retries``). A task returns the same
plain outcome a local worker does, the checkpoint's bytes included when asked,
so the nodes share nothing but the raw datasets (``FEWSHOT_DATA``) and only the
driver writes the store.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator
from typing import Any

from fewshot.core.errors import FewshotError
from fewshot.run.job import Job
from fewshot.sweep.worker import Outcome, run_job

RETRIES = 3  # how many times Ray reruns a task whose worker process died
CONNECT_TIMEOUT_S = 10


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise FewshotError("--backend ray needs Ray: pip install 'fewshot[ray]'") from None
    return ray


class RayBackend:
    name = "ray"

    def __init__(
        self,
        address: str | None,
        cpus: float,
        gpus: float,
        data_root: str | None = None,
        with_checkpoint: bool = False,
    ):
        ray = _ray()
        self.cpus, self.gpus, self.data_root, self.with_checkpoint = cpus, gpus, data_root, with_checkpoint
        if address and address != "auto":
            _reachable(address)  # Ray itself retries an unreachable address for minutes
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level="ERROR")
        except Exception as err:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError by version
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            where = f"at {address}" if address else "on this machine"
            raise FewshotError(
                f"cannot reach a Ray cluster {where} ({first[:200]}); start one with `ray start --head` "
                "or give its address with --address HOST:PORT"
            ) from None
        self.ray = ray
        available = ray.cluster_resources()
        if gpus and available.get("GPU", 0) < gpus:
            raise FewshotError(
                f"the tier asks {gpus:g} GPU per job but the Ray cluster has {available.get('GPU', 0):g}; "
                "choose a CPU tier or add a GPU node"
            )

    def run(self, jobs: Iterable[Job]) -> Iterator[Outcome]:
        ray = self.ray
        task = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=RETRIES, retry_exceptions=False)(run_job)
        refs = {task.remote(job, self.data_root, self.with_checkpoint): job for job in jobs}
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                for ref in ready:
                    job = refs.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayError as err:  # the task's workers died past its retries
                        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                        yield Outcome(job, error=f"Ray could not run the job: {first[:200]}")
        finally:
            for ref in refs:
                ray.cancel(ref, force=True)


def _reachable(address: str) -> None:
    """Refuse, in one line and within seconds, an address where nothing listens."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise FewshotError(f"--address {address!r}: write HOST:PORT (the head node's, as `ray start --head` printed)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        raise FewshotError(
            f"cannot reach a Ray cluster at {address} ({err.strerror or err}); start one with `ray start --head` "
            "or check --address"
        ) from None

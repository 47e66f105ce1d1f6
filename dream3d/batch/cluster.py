"""Connecting to Ray without hanging: the address is proven to answer before Ray is asked, and the
cluster is checked to hold the CPUs/GPUs a job asks for (Ray would otherwise wait forever)."""
from __future__ import annotations

import contextlib
import logging
import os
import socket
from types import ModuleType
from typing import Iterator

from dream3d.errors import Dream3DError, UsageError


def resolve_address(address: str, timeout_s: float) -> str:
    """Check that something listens at `address` ('auto' or HOST:PORT) with a TCP
    connect, because ray.init on a silent address hangs for minutes; returns `address` for ray.init
    ('auto' stays 'auto': only then does Ray send this machine's auth token by itself)."""
    resolved = address
    if address == "auto":
        resolved = _find_local_cluster()
        if resolved is None:
            raise Dream3DError("--address auto: no running Ray cluster found on this machine (nor in RAY_ADDRESS); "
                               "start one with `ray start --head`, give --address HOST:PORT, or leave --address out "
                               "to run on this machine")
    host, _, port = resolved.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address}: expected HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        reason = "timed out" if isinstance(error, TimeoutError) else (error.strerror or str(error))
        raise Dream3DError(f"nothing answers at {host}:{port} (--address {address}): {reason}; start the cluster "
                           "there with `ray start --head`, or leave --address out to run on this machine") from None
    return address


def _find_local_cluster() -> str | None:
    """The address `ray start --head` left for `auto` (RAY_ADDRESS first), or None."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address("auto")
    except Exception:  # noqa: BLE001 - ConnectionError when none; a changed private API counts as none
        return os.environ.get("RAY_ADDRESS") or None


@contextlib.contextmanager
def ray_session(ray: ModuleType, address: str | None, num_cpus: int) -> Iterator[bool]:
    """Connect to `address`, or start a local Ray with `num_cpus` CPUs; yields whether this call
    started the connection. A process that already runs Ray keeps its connection (and it stays open)."""
    if ray.is_initialized():
        yield False
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports leave the machine
    # Worker output stays in Ray's session logs: the progress bar and the manifest report the jobs.
    options = dict(log_to_driver=False, logging_level=logging.ERROR)
    try:
        if address is None:
            ray.init(num_cpus=num_cpus, include_dashboard=False, **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        if address is None:
            raise Dream3DError(f"Ray could not start: {' '.join(str(error).split())[:300]}") from None
        raise Dream3DError(
            f"Ray could not connect to {address}: {' '.join(str(error).split())[:200]}; if the cluster uses token "
            "authentication (Ray's default), set RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN, from "
            "`ray get-auth-token` on the head node), or run with --address auto on the head node") from None
    try:
        yield True
    finally:
        ray.shutdown()


def job_slots(ray: ModuleType, threads: int, gpus: float) -> int:
    """How many jobs the alive nodes can run at once, each holding `threads` CPUs and `gpus` GPUs.
    Raises one line when no node can run even one (a task that no node fits waits forever)."""
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    slots = 0
    for resources in nodes:
        fit = int(resources.get("CPU", 0) // threads)
        if gpus > 0:
            fit = min(fit, int(resources.get("GPU", 0) // gpus))
        slots += fit
    if slots > 0:
        return slots
    total_gpus = sum(r.get("GPU", 0) for r in nodes)
    if gpus > 0 and total_gpus == 0:
        raise Dream3DError(f"--gpus-per-job {gpus:g} asks for GPUs but the Ray cluster has none; use --gpus-per-job 0 "
                           "to run on CPUs, or add GPU nodes")
    if gpus > 0 and not any(r.get("GPU", 0) >= gpus for r in nodes):
        raise Dream3DError(f"--gpus-per-job {gpus:g}: no node of the Ray cluster has that many GPUs; ask for fewer")
    raise Dream3DError(f"--threads-per-job {threads}: no node of the Ray cluster has {threads} CPUs"
                       f"{' beside its GPUs' if gpus > 0 else ''}; ask for fewer threads per job")


def cluster_gpus(ray: ModuleType) -> float:
    return float(ray.cluster_resources().get("GPU", 0))

"""One Ray cluster per test session: two nodes on loopback, each with its own
custom resource standing in for a lab host.

Registered as a plugin in conftest.py, so every module shares the same
cluster. Ray is a test dependency (the ``test`` extra): without it the
fixture fails, it does not skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

# Keep every Ray process of the tests on loopback. Ray otherwise replaces
# 127.0.0.1 with the machine's network address when a driver connects; this
# switch (read when ray is imported, inherited by subprocesses) stops that.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

HOST_A = "hwloop:hostA"  # offered by the head node
HOST_B = "hwloop:hostB"  # offered by the second node


@dataclass
class RayCluster:
    """The session's cluster: its address and the node id offering each host resource."""

    address: str
    node_of: dict[str, str]


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    import ray
    from ray.cluster_utils import Cluster

    common = {"node_ip_address": "127.0.0.1", "object_store_memory": 100 * 1024 * 1024}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={**common, "num_cpus": 2, "resources": {HOST_A: 8}, "include_dashboard": False},
    )
    try:
        second = cluster.add_node(**common, num_cpus=1, resources={HOST_B: 8})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        yield RayCluster(cluster.address, {HOST_A: cluster.head_node.node_id, HOST_B: second.node_id})
    finally:
        ray.shutdown()
        cluster.shutdown()

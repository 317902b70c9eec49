"""Traffic simulator: stands in for Istio's Envoy data plane in the test bed.

See docs/simulator.md. In-process use::

    async with Simulator(kubeconfig=path, namespace="demo", seed=1) as sim:
        testbed.add_scrape_target("simulator", sim.address)
"""

from .core import Simulator
from .model import Behaviour, ClusterState, PlanBuilder, RoutePlan

__all__ = ["Behaviour", "ClusterState", "PlanBuilder", "RoutePlan", "Simulator"]

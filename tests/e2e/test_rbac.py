"""The controller's shipped RBAC (deploy/10-rbac.yaml) covers what the controller does."""

from __future__ import annotations

from kubernetes_asyncio import client, config

from rollouts.kube.client import Kube

SSAR = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


async def _allowed(kube: Kube, namespace: str, **attrs: str) -> bool:
    review = await kube.create(SSAR, {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": namespace, **attrs}}})
    return bool(review["status"].get("allowed"))


async def test_controller_may_set_block_owner_deletion(controller_kubeconfig: str,
                                                       namespace: str) -> None:
    """ReplicaSets and AnalysisRuns name their Rollout as owner with blockOwnerDeletion:
    with the OwnerReferencesPermissionEnforcement admission plugin (on in many managed
    clusters, off on the test bed) the API server refuses them unless the creator may
    update the owner's finalizers. Asked with the controller's own token."""
    cfg = client.Configuration()
    await config.load_kube_config(config_file=controller_kubeconfig, client_configuration=cfg)
    async with client.ApiClient(cfg) as api:
        kube = Kube(api)
        assert await _allowed(kube, namespace, group="rollouts.dev", resource="rollouts",
                              subresource="finalizers", verb="update")
        # the token really is the least-privileged controller, not an admin
        assert not await _allowed(kube, namespace, group="rollouts.dev", resource="rollouts",
                                  verb="delete")
        assert not await _allowed(kube, namespace, group="rollouts.dev", resource="rollouts",
                                  subresource="finalizers", verb="delete")

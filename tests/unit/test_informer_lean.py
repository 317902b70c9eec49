"""What an informer keeps of an object: lean (no managedFields), and sharing its keys and
short strings with every other stored object (issue 14: memory at 5,000 rollouts)."""

from __future__ import annotations

import json

from rollouts.kube.client import JSON
from rollouts.kube.informer import lean


def _decoded(name: str) -> JSON:
    # each call decodes its own document, as each watch event is
    decoded: JSON = json.loads(json.dumps({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "ns-1", "resourceVersion": "12",
                     "labels": {"app": "web", "rollouts-pod-template-hash": "7d9f"},
                     "managedFields": [{"manager": "kubectl"}],
                     "ownerReferences": [{"kind": "Rollout", "name": "web", "uid": "u-1"}]},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"image": "x" * 100}]}}},
        "status": {"conditions": [{"type": "Available", "status": "True"}]},
    }))
    return decoded


def test_a_stored_object_equals_the_decoded_one_without_managed_fields() -> None:
    raw = _decoded("web-7d9f")
    kept = lean(raw)
    expected = json.loads(json.dumps(raw))
    del expected["metadata"]["managedFields"]
    assert kept == expected
    assert "managedFields" in raw["metadata"]  # the event's own object is left as it was


def test_stored_objects_share_keys_and_short_strings_instead_of_a_copy_each() -> None:
    a, b = lean(_decoded("web-a")), lean(_decoded("web-b"))
    key_a = next(k for k in a["metadata"] if k == "ownerReferences")
    key_b = next(k for k in b["metadata"] if k == "ownerReferences")
    assert key_a is key_b
    cond_a, cond_b = a["status"]["conditions"][0], b["status"]["conditions"][0]
    assert cond_a["type"] is cond_b["type"] and cond_a["status"] is cond_b["status"]
    assert a["metadata"]["labels"]["app"] is b["metadata"]["labels"]["app"]
    assert a["metadata"]["name"] == "web-a" and b["metadata"]["name"] == "web-b"
    # long values are kept as decoded (rarely repeated; not worth hashing)
    long_a = a["spec"]["template"]["spec"]["containers"][0]["image"]
    long_b = b["spec"]["template"]["spec"]["containers"][0]["image"]
    assert long_a == long_b and long_a is not long_b


def test_non_string_values_and_keys_pass_through() -> None:
    obj: JSON = {"metadata": {"name": "x"}, "n": 3, "f": 1.5, "b": True, "z": None, "l": [1, "a"]}
    assert lean(obj) == obj

"""The daemonless image build (deploy/image/oci_build.py): what it reads from the
Dockerfile, what it refuses, and the OCI archive it writes (issue 15).

What a user relies on: `make image` produces the image the Dockerfile describes (the same
layers' contents, user, entrypoint, environment), and refuses a Dockerfile it cannot
reproduce instead of building something else.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import re
import shutil
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("oci_build", REPO / "deploy/image/oci_build.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["oci_build"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


oci = _load()


def test_the_dockerfiles_last_stage_is_read_as_a_container_engine_would() -> None:
    stage = oci.last_stage((REPO / "Dockerfile").read_text())
    assert [(c.sources, c.dest) for c in stage.copies] == [
        (["/etc/passwd", "/etc/group"], "/etc/"),
        (["/opt/rollouts"], "/opt/rollouts"),
        (["/app/"], "/"),
    ]
    assert stage.user == "65532:65532"
    assert stage.entrypoint == ["rollouts"]
    assert stage.cmd == ["controller", "--listen=0.0.0.0:8443"]
    assert sorted(stage.exposed) == ["8090/tcp", "8443/tcp"]
    env = dict(stage.env)
    assert env["PATH"].startswith("/opt/rollouts/bin:")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["HOME"] == "/tmp"
    assert stage.labels["org.opencontainers.image.title"] == "rollouts-controller"


def test_both_builds_run_the_same_builder_steps_in_the_same_order() -> None:
    # the Dockerfile's RUN lines and build.sh's chroot call deploy/image/steps.sh alike
    steps = re.compile(r"rollouts-image-steps (\w+)")
    dockerfile = steps.findall((REPO / "Dockerfile").read_text())
    build_sh = steps.findall((REPO / "deploy/image/build.sh").read_text())
    assert dockerfile == ["tools", "deps", "user", "app"]
    assert build_sh == dockerfile


@pytest.mark.parametrize("last, message", [
    ("RUN echo hi", "RUN in the last stage"),
    ("ADD x.tar /", "ADD in the last stage"),
    ("COPY rollouts /opt/", "only COPY --from=builder"),
    ("COPY --from=builder --chown=1:1 /a /b", "only COPY --from=builder"),
    ("COPY --from=builder /a /b /c", "DEST/ for several"),
    ("COPY --from=builder a /b", "absolute paths"),
    ("ENTRYPOINT rollouts controller", "JSON (exec) form"),
    ("ENV PATH=/x:$PATH", "variables are not expanded"),
    ("ENV PATH /x", "KEY=VALUE"),
])
def test_what_the_daemonless_build_cannot_reproduce_is_refused(last: str, message: str) -> None:
    text = "FROM base AS builder\nRUN make\nFROM base\nCOPY --from=builder /x /x\n" + last + "\n"
    with pytest.raises(oci.DockerfileError, match=re.escape(message)):
        oci.last_stage(text)


def test_continued_lines_and_comments_are_read_like_docker() -> None:
    text = ("FROM base AS builder\nFROM base\n# a comment\nENV A=1 \\\n    B=\"two words\"\n"
            "LABEL x=y\nENTRYPOINT [\"a\"]\nCMD [\"b\", \"c\"]\nENV A=3\n")
    stage = oci.last_stage(text)
    assert stage.env == [("B", "two words"), ("A", "3")]
    assert stage.labels == {"x": "y"} and stage.entrypoint == ["a"] and stage.cmd == ["b", "c"]


def _builder(root: Path) -> Path:
    b = root / "builder"
    (b / "etc").mkdir(parents=True)
    (b / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nrollouts:x:65532:65532::/:/x\n")
    (b / "etc/group").write_text("root:x:0:\nrollouts:x:65532:\n")
    (b / "opt/rollouts/bin").mkdir(parents=True)
    (b / "opt/rollouts/bin/python").symlink_to("/usr/bin/python3")
    (b / "opt/rollouts/lib").mkdir()
    (b / "opt/rollouts/lib/dep.py").write_text("X = 1\n")
    (b / "app/opt/rollouts/lib").mkdir(parents=True)
    (b / "app/opt/rollouts/lib/ours.py").write_text("Y = 2\n")
    return b


def _rootfs(root: Path) -> Path:
    tar_path = root / "rootfs.tar"
    src = root / "rootfs"
    (src / "usr/bin").mkdir(parents=True)
    (src / "usr/bin/python3").write_text("#!/bin/true\n")
    with tarfile.open(tar_path, "w") as t:
        t.add(str(src), arcname=".")
    return tar_path


def _archive(path: Path) -> tuple[dict[str, object], list[dict[str, tarfile.TarInfo]], list[bytes]]:
    """(config, the layers' entries by name, the layers' gzip bytes) of an OCI archive,
    checked as podman checks it: every digest and diff_id matches its bytes."""
    with tarfile.open(path) as t:
        def blob(digest: str) -> bytes:
            f = t.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
            assert f is not None
            data = f.read()
            assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
            return data
        index = json.loads(t.extractfile("index.json").read())  # type: ignore[union-attr]
        assert json.loads(t.extractfile("oci-layout").read()) == {  # type: ignore[union-attr]
            "imageLayoutVersion": "1.0.0"}
        ref = index["manifests"][0]
        manifest = json.loads(blob(ref["digest"]))
        config = json.loads(blob(manifest["config"]["digest"]))
        layers, raw = [], []
        for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
            data = blob(layer["digest"])
            assert layer["size"] == len(data)
            plain = gzip.decompress(data)
            assert "sha256:" + hashlib.sha256(plain).hexdigest() == diff_id
            with tarfile.open(fileobj=io.BytesIO(plain)) as lt:
                layers.append({m.name: m for m in lt.getmembers()})
            raw.append(data)
        config["_name"] = ref["annotations"]["org.opencontainers.image.ref.name"]
    return config, layers, raw


def test_the_archive_holds_the_base_and_one_layer_per_copy_with_the_dockerfiles_config(
        tmp_path: Path) -> None:
    builder, rootfs = _builder(tmp_path), _rootfs(tmp_path)
    out = tmp_path / "out" / "image.oci.tar"
    out.parent.mkdir()
    kw = dict(dockerfile=REPO / "Dockerfile", builder=builder, rootfs=rootfs,
              layer_cache=tmp_path / "cache", fresh="/app", name="localhost/x:1",
              base_env=[("PATH", "/usr/bin"), ("LANG", "C.UTF-8")],
              labels={"org.opencontainers.image.version": "1"}, out=out)
    oci.build(**kw)
    config, layers, raw = _archive(out)
    assert config["_name"] == "localhost/x:1"
    c = config["config"]
    assert isinstance(c, dict)
    assert c["User"] == "65532:65532" and c["Entrypoint"] == ["rollouts"]
    assert c["Env"][0] == "LANG=C.UTF-8"  # the base's, kept; PATH replaced by the Dockerfile's
    assert c["Env"][1].startswith("PATH=/opt/rollouts/bin:")
    assert c["Labels"]["org.opencontainers.image.version"] == "1"
    assert "./usr/bin/python3" in layers[0]
    assert set(layers[1]) == {"etc/passwd", "etc/group"}
    # a directory's contents into DEST, symlinks kept, everything owned by root
    assert set(layers[2]) == {"opt/rollouts", "opt/rollouts/bin", "opt/rollouts/bin/python",
                              "opt/rollouts/lib", "opt/rollouts/lib/dep.py"}
    assert layers[2]["opt/rollouts/bin/python"].issym()
    assert layers[2]["opt/rollouts/bin/python"].linkname == "/usr/bin/python3"
    assert all(m.uid == 0 and m.gid == 0 for layer in layers for m in layer.values())
    assert "opt/rollouts/lib/ours.py" in layers[3]  # COPY /app/ / : our package at /opt/rollouts

    # a second build: the base and dependency layers come from the cache unchanged (podman
    # skips them), and only our package's layer is new
    (builder / "opt/rollouts/lib/dep.py").write_text("X = 'not read again: cached'\n")
    (builder / "app/opt/rollouts/lib/ours.py").write_text("Y = 3\n")
    oci.build(**kw)
    _, _, raw2 = _archive(out)
    assert raw2[:3] == raw[:3]
    assert raw2[3] != raw[3]


def test_a_layer_is_the_same_bytes_when_built_twice(tmp_path: Path) -> None:
    builder = _builder(tmp_path)
    copy = oci.Copy(["/opt/rollouts"], "/opt/rollouts", "--from=builder /opt/rollouts /opt/rollouts")
    a = oci.copy_layer(copy, builder, tmp_path / "a.tar.gz")
    b = oci.copy_layer(copy, builder, tmp_path / "b.tar.gz")
    assert (a.digest, a.diff_id) == (b.digest, b.diff_id)


def test_a_copy_source_missing_from_the_builder_fails_naming_it(tmp_path: Path) -> None:
    builder = _builder(tmp_path)
    shutil.rmtree(builder / "app")
    out = tmp_path / "x.oci.tar"
    rc = oci.main(["--dockerfile", str(REPO / "Dockerfile"), "--builder", str(builder),
                   "--rootfs", str(_rootfs(tmp_path)), "--layer-cache", str(tmp_path / "c"),
                   "--name", "x:1", "--out", str(out)])
    assert rc == 1 and not out.exists()

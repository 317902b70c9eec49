"""Writes the Dockerfile's last stage as an OCI image archive, without a container engine.

`make image` (deploy/image/build.sh) runs the builder stage's steps (deploy/image/steps.sh)
in a chroot of a Debian root filesystem; this script then does what a container engine
does with the last stage: the base's root filesystem is the first layer, each
``COPY --from=builder SRC... DEST`` becomes one layer taken from the builder's directory,
and ENV, USER, EXPOSE, LABEL, ENTRYPOINT, CMD and WORKDIR become the image config. An
instruction it cannot reproduce (RUN, ADD, shell-form ENTRYPOINT, ...) is refused, so the
two builds cannot drift apart silently.

Layers whose sources are not under ``--fresh`` (our own package, /app) are kept in
``--layer-cache`` and reused: the base and our dependencies are compressed once, and a warm
build writes only the thin layer of our package. The layers are reproducible (sorted
entries, owner root, gzip without a timestamp), so a registry or podman store that has
them already skips them.

    python3 oci_build.py --dockerfile Dockerfile --builder DIR --rootfs rootfs.tar \\
        --layer-cache DIR --name localhost/rollouts-controller:0.1.0 \\
        --env LANG=C.UTF-8 --label org.opencontainers.image.version=0.1.0 --out x.oci.tar
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import platform
import shlex
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
METADATA = {"ENV", "USER", "EXPOSE", "LABEL", "ENTRYPOINT", "CMD", "WORKDIR"}


class DockerfileError(ValueError):
    """The Dockerfile's last stage holds something this build cannot reproduce."""


@dataclass
class Copy:
    sources: list[str]
    dest: str
    text: str


@dataclass
class Stage:
    """The last stage: its layers (COPY) and its config, in Dockerfile order."""
    copies: list[Copy] = field(default_factory=list)
    env: list[tuple[str, str]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    workdir: str | None = None
    exposed: list[str] = field(default_factory=list)
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    history: list[tuple[str, bool]] = field(default_factory=list)  # (created_by, empty_layer)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    if pending.strip():
        raise DockerfileError("the Dockerfile ends inside a continued line")
    return out


def _pairs(kind: str, args: str) -> list[tuple[str, str]]:
    pairs = []
    for token in shlex.split(args):
        key, eq, value = token.partition("=")
        if not eq or not key:
            raise DockerfileError(f"{kind} {args!r}: only the KEY=VALUE form is supported")
        if "$" in value:
            raise DockerfileError(f"{kind} {args!r}: variables are not expanded by this build")
        pairs.append((key, value))
    return pairs


def _exec_form(kind: str, args: str) -> list[str]:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        value = None
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise DockerfileError(f"{kind} {args!r}: only the JSON (exec) form is supported")
    return value


def last_stage(text: str, builder: str = "builder") -> Stage:
    """The last stage of the Dockerfile ``text``, which may COPY only from ``builder``."""
    steps = instructions(text)
    froms = [i for i, (kind, _) in enumerate(steps) if kind == "FROM"]
    if not froms:
        raise DockerfileError("no FROM in the Dockerfile")
    stage = Stage()
    for kind, args in steps[froms[-1] + 1:]:
        created_by = f"/bin/sh -c #(nop) {kind} {args}"
        if kind == "COPY":
            words = shlex.split(args)
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            if flags != [f"--from={builder}"]:
                raise DockerfileError(f"COPY {args}: only COPY --from={builder} is supported")
            if len(paths) < 2 or (len(paths) > 2 and not paths[-1].endswith("/")):
                raise DockerfileError(f"COPY {args}: expected SRC... DEST (DEST/ for several)")
            if any(not p.startswith("/") or ".." in p.split("/") for p in paths):
                raise DockerfileError(f"COPY {args}: absolute paths without .. expected")
            stage.copies.append(Copy(paths[:-1], paths[-1], args))
            stage.history.append((created_by, False))
            continue
        if kind not in METADATA:
            raise DockerfileError(
                f"{kind} in the last stage: the daemonless build (deploy/image/oci_build.py) "
                "reproduces only COPY --from and metadata; do the work in the builder stage")
        if kind == "ENV":
            for key, value in _pairs(kind, args):
                stage.env = [(k, v) for k, v in stage.env if k != key] + [(key, value)]
        elif kind == "LABEL":
            stage.labels.update(_pairs(kind, args))
        elif kind == "USER":
            stage.user = args
        elif kind == "WORKDIR":
            stage.workdir = args
        elif kind == "EXPOSE":
            stage.exposed += [p if "/" in p else f"{p}/tcp" for p in args.split()]
        elif kind == "ENTRYPOINT":
            stage.entrypoint = _exec_form(kind, args)
            stage.cmd = None  # as Docker: a new entrypoint drops the base's CMD
        elif kind == "CMD":
            stage.cmd = _exec_form(kind, args)
        stage.history.append((created_by, True))
    return stage


class _Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _Hashing:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, inner: _Writer) -> None:
        self.inner = inner
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:  # tarfile and gzip call only write()
        self.sha.update(data)
        self.size += len(data)
        self.inner.write(data)
        return len(data)

    def flush(self) -> None:  # gzip's file protocol; the outer file is flushed on close
        pass


@dataclass
class Blob:
    digest: str      # sha256 of the gzip stream
    size: int
    diff_id: str     # sha256 of the tar inside
    path: Path


def _root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _layer_entries(copy: Copy, builder: Path, tar: tarfile.TarFile) -> None:
    """One COPY as Docker does it: a directory's contents, or a file, into DEST."""
    for src in copy.sources:
        path = builder / src.lstrip("/")
        if not path.exists() and not path.is_symlink():
            raise FileNotFoundError(f"COPY {copy.text}: {src} is not in the builder ({path})")
        if path.is_dir() and not path.is_symlink():
            dest = copy.dest.strip("/")
            if dest:
                top = tar.gettarinfo(str(path), arcname=dest)
                tar.addfile(_root(top))
            for child in sorted(path.iterdir()):
                arc = f"{dest}/{child.name}" if dest else child.name
                tar.add(str(child), arcname=arc, filter=_root)
        else:
            dest = copy.dest + path.name if copy.dest.endswith("/") else copy.dest
            tar.add(str(path), arcname=dest.strip("/"), filter=_root)


def write_layer(out: Path, fill: Callable[[_Hashing], None]) -> Blob:
    """A gzip'd tar layer at ``out``; ``fill(stream)`` writes the tar bytes into ``stream``."""
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as f:
        outer = _Hashing(f)
        with gzip.GzipFile(fileobj=outer, mode="wb", mtime=0, compresslevel=6) as gz:
            inner = _Hashing(gz)
            fill(inner)
    tmp.replace(out)
    return Blob(f"sha256:{outer.sha.hexdigest()}", outer.size,
                f"sha256:{inner.sha.hexdigest()}", out)


def copy_layer(copy: Copy, builder: Path, out: Path) -> Blob:
    def fill(stream: _Hashing) -> None:
        with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            _layer_entries(copy, builder, tar)
    return write_layer(out, fill)


def rootfs_layer(rootfs: Path, out: Path) -> Blob:
    def fill(stream: _Hashing) -> None:
        with open(rootfs, "rb") as f:
            while chunk := f.read(1 << 20):
                stream.write(chunk)
    return write_layer(out, fill)


def _cached(cache: Path, key: str, make: Callable[[Path], Blob]) -> Blob:
    """The blob made by ``make(path)``, kept in ``cache`` under ``key``."""
    meta = cache / f"{key}.json"
    if meta.is_file():
        m = json.loads(meta.read_text())
        blob = Blob(m["digest"], m["size"], m["diff_id"], cache / m["file"])
        if blob.path.is_file() and blob.path.stat().st_size == blob.size:
            return blob
    cache.mkdir(parents=True, exist_ok=True)
    blob = make(cache / f"{key}.tar.gz")
    meta.write_text(json.dumps({"digest": blob.digest, "size": blob.size,
                                "diff_id": blob.diff_id, "file": blob.path.name}))
    return blob


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def image_config(stage: Stage, diff_ids: list[str], *, base_env: list[tuple[str, str]],
                 labels: dict[str, str], created: str) -> dict[str, Any]:
    env = list(base_env)
    for key, value in stage.env:
        env = [(k, v) for k, v in env if k != key] + [(key, value)]
    config: dict[str, Any] = {"Env": [f"{k}={v}" for k, v in env]}
    if stage.user:
        config["User"] = stage.user
    if stage.workdir:
        config["WorkingDir"] = stage.workdir
    if stage.exposed:
        config["ExposedPorts"] = {p: {} for p in sorted(set(stage.exposed))}
    if stage.entrypoint is not None:
        config["Entrypoint"] = stage.entrypoint
    if stage.cmd is not None:
        config["Cmd"] = stage.cmd
    all_labels = {**stage.labels, **labels}
    if all_labels:
        config["Labels"] = dict(sorted(all_labels.items()))
    history: list[dict[str, Any]] = [
        {"created": created, "created_by": "debian root filesystem (mmdebstrap)"}]
    history += [{"created": created, "created_by": by, **({"empty_layer": True} if empty else {})}
                for by, empty in stage.history]
    return {"created": created, "architecture": _arch(), "os": "linux", "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history}


def build(*, dockerfile: Path, builder: Path, rootfs: Path, layer_cache: Path,
          fresh: str, name: str, base_env: list[tuple[str, str]], labels: dict[str, str],
          out: Path) -> dict[str, Any]:
    stage = last_stage(dockerfile.read_text())
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with tempfile.TemporaryDirectory(dir=out.parent) as tmpdir:
        tmp = Path(tmpdir)
        blobs = [_cached(layer_cache, "rootfs", lambda p: rootfs_layer(rootfs, p))]
        for i, copy in enumerate(stage.copies):
            def make(p: Path, copy: Copy = copy) -> Blob:
                return copy_layer(copy, builder, p)
            if any(s.rstrip("/") == fresh or s.startswith(fresh + "/") for s in copy.sources):
                blobs.append(make(tmp / f"layer-{i}.tar.gz"))
            else:
                key = hashlib.sha256(copy.text.encode()).hexdigest()[:16]
                blobs.append(_cached(layer_cache, f"copy-{key}", make))
        config = json.dumps(image_config(stage, [b.diff_id for b in blobs], base_env=base_env,
                                         labels=labels, created=created)).encode()
        config_digest = f"sha256:{hashlib.sha256(config).hexdigest()}"
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": LAYER, "digest": b.digest, "size": b.size} for b in blobs],
        }).encode()
        manifest_digest = f"sha256:{hashlib.sha256(manifest).hexdigest()}"
        index = json.dumps({"schemaVersion": 2, "manifests": [{
            "mediaType": MANIFEST, "digest": manifest_digest, "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": name}}]}).encode()
        part = out.with_name(out.name + ".part")
        with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar:
            def put(arcname: str, data: bytes) -> None:
                info = _root(tarfile.TarInfo(arcname))
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, fileobj=_Reader(data))
            put("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            put("index.json", index)
            put(f"blobs/sha256/{manifest_digest[7:]}", manifest)
            put(f"blobs/sha256/{config_digest[7:]}", config)
            for b in blobs:
                tar.add(str(b.path), arcname=f"blobs/sha256/{b.digest[7:]}", filter=_root)
        part.replace(out)
    return {"archive": str(out), "name": name, "manifest": manifest_digest,
            "layers": [{"digest": b.digest, "size": b.size} for b in blobs]}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        chunk, self.pos = self.data[self.pos:end], min(end, len(self.data))
        return chunk


def _kv(value: str) -> tuple[str, str]:
    key, eq, val = value.partition("=")
    if not eq:
        raise argparse.ArgumentTypeError(f"{value!r}: expected KEY=VALUE")
    return key, val


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dockerfile", type=Path, required=True)
    ap.add_argument("--builder", type=Path, required=True, help="the builder stage's root")
    ap.add_argument("--rootfs", type=Path, required=True, help="the base's root filesystem tar")
    ap.add_argument("--layer-cache", type=Path, required=True)
    ap.add_argument("--fresh", default="/app", help="COPY sources never cached (our package)")
    ap.add_argument("--name", required=True)
    ap.add_argument("--env", type=_kv, action="append", default=[], help="the base's ENV")
    ap.add_argument("--label", type=_kv, action="append", default=[])
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    try:
        result = build(dockerfile=a.dockerfile, builder=a.builder, rootfs=a.rootfs,
                       layer_cache=a.layer_cache, fresh=a.fresh.rstrip("/"), name=a.name,
                       base_env=a.env, labels=dict(a.label), out=a.out)
    except (DockerfileError, FileNotFoundError) as e:
        print(f"oci_build: {e}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

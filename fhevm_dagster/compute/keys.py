"""Key sets on disk: generation for a new deployment, loading, and the server-key cache.

A key directory holds `client_key.bin` (only where decryption is allowed: tests, the devnet),
`server_key.bin`, `public_key.bin`, `crs.bin` and `keys.json`; a key set for GPUs also holds
`compressed_server_key.bin`, the compressed form of the same server key, which a GPU engine expands
(a CPU `ServerKey` keeps its bootstrapping keys in the Fourier domain and cannot be moved).
Server keys are about 1.6 GB and take minutes to derive on a small machine, so a server key
derived from a client key is cached under the cache directory, keyed by the client key's digest
and the derivation seed, and the decompression of a compressed server key is cached keyed by the
compressed key's digest (one file, hard-linked under both names when they are the same key).

Coprocessors agree on ciphertext bytes only when they compute with the same server key. A
directory without a server key therefore names a `server_key_seed` in `keys.json`: every machine
derives the same server key from the same client key and seed (the committed devnet test keys work
this way). A production key set ships its `server_key.bin`, or only its
`compressed_server_key.bin`, which a CPU engine decompresses.

The seed derives the compressed server key; a GPU engine expands it and a CPU engine computes with
its decompression, so the CPU and GPU coprocessors of a devnet share one key, as a key set made by
`generate_key_dir` holds both forms of one key.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import tfhe_py

from ..settings import load_settings

CLIENT_KEY = "client_key.bin"
SERVER_KEY = "server_key.bin"
COMPRESSED_SERVER_KEY = "compressed_server_key.bin"
PUBLIC_KEY = "public_key.bin"
CRS = "crs.bin"
METADATA = "keys.json"


class KeySetError(RuntimeError):
    """A key directory that is missing, incomplete or of another parameter set."""


def cache_dir() -> Path:
    """Where derived keys and other caches live: outside the clone, shared by runs."""
    return load_settings().cache


@dataclass(frozen=True)
class KeySet:
    """The keys of one deployment; `client_key` is None on a production coprocessor."""

    server_key: tfhe_py.ServerKey
    public_key: tfhe_py.CompactPublicKey
    crs: tfhe_py.Crs
    client_key: tfhe_py.ClientKey | None = None

    def engine(self) -> tfhe_py.Engine:
        return tfhe_py.Engine(self.server_key, self.public_key, self.crs)


def _digest(path: Path, length: int = 16) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def _derived_key_path(client_key_path: Path, seed: int, form: str) -> Path:
    name = f"{_digest(client_key_path)}-{seed:032x}-{tfhe_py.TFHE_RS_VERSION}-{form}.bin"
    return cache_dir() / "server-keys" / name


def derived_server_key_path(client_key_path: Path, seed: int) -> Path:
    """Where the server key derived from a client key and `seed` is cached."""
    return _derived_key_path(client_key_path, seed, "decompressed")


def decompression_path(compressed_path: Path) -> Path:
    """Where the decompression of a compressed server key file is cached: named by the SHA-256 of
    its bytes, so another key (a rotation, a re-generated devnet) is never served from here."""
    name = f"{_digest(compressed_path, 64)}-{tfhe_py.TFHE_RS_VERSION}-decompressed.bin"
    return cache_dir() / "server-keys" / "by-compressed-digest" / name


def decompressed_server_key(compressed_path: Path) -> tfhe_py.ServerKey:
    """The decompression of a compressed server key file (a bootstrap of every key block:
    a minute or more here), once per key; then loaded from the cache."""
    return _cached_decompression(compressed_path, decompression_path(compressed_path))


def _cached_decompression(compressed_path: Path, target: Path) -> tfhe_py.ServerKey:
    if target.exists():
        return tfhe_py.ServerKey.load(target)
    server_key = tfhe_py.CompressedServerKey.load(compressed_path).decompress()
    _save_atomically(server_key, target)
    return server_key


def cached_server_key(client_key_path: Path, seed: int) -> tfhe_py.ServerKey:
    """The server key derived from a client key and `seed` (the decompression of the compressed
    key a GPU engine expands), once; then loaded from the cache. The decompression cache holds
    the same file, so a key set that ships this compressed key loads it without decompressing."""
    target = derived_server_key_path(client_key_path, seed)
    if target.exists():
        return tfhe_py.ServerKey.load(target)
    compressed_path = _derived_key_path(client_key_path, seed, "compressed")
    if not compressed_path.exists():
        cached_compressed_server_key(client_key_path, seed)
    decompressed = decompression_path(compressed_path)
    server_key = _cached_decompression(compressed_path, decompressed)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    os.link(decompressed, partial)
    partial.replace(target)
    return server_key


def cached_compressed_server_key(client_key_path: Path, seed: int) -> tfhe_py.CompressedServerKey:
    """The compressed server key derived from a client key and `seed` (GPU engines), cached."""
    target = _derived_key_path(client_key_path, seed, "compressed")
    if target.exists():
        return tfhe_py.CompressedServerKey.load(target)
    key = tfhe_py.ClientKey.load(client_key_path).compressed_server_key(seed)
    _save_atomically(key, target)
    return key


def _save_atomically(key: tfhe_py.ServerKey | tfhe_py.CompressedServerKey, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    key.save(partial)
    partial.replace(target)


def generate_key_dir(directory: Path, seed: int | None = None) -> Path:
    """Writes a new key set (files 0600) for a deployment; refuses to overwrite one."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / SERVER_KEY).exists() or (directory / CLIENT_KEY).exists():
        raise KeySetError(f"{directory} already holds keys; choose an empty directory")
    started = time.monotonic()
    client_key = tfhe_py.ClientKey.generate(seed)
    client_key.save(directory / CLIENT_KEY)
    client_key.public_key().save(directory / PUBLIC_KEY)
    tfhe_py.Crs.generate(tfhe_py.CRS_MAX_BITS).save(directory / CRS)
    compressed = client_key.compressed_server_key()
    compressed.save(directory / COMPRESSED_SERVER_KEY)
    compressed.decompress().save(directory / SERVER_KEY)
    write_metadata(directory, seconds=time.monotonic() - started)
    return directory


def write_metadata(
    directory: Path, seconds: float | None = None, server_key_seed: int | None = None
) -> None:
    """`keys.json`; with `server_key_seed`, machines derive the server key rather than ship it."""
    meta: dict[str, object] = {
        "parameter_set": tfhe_py.PARAMETER_SET,
        "tfhe_rs": tfhe_py.TFHE_RS_VERSION,
        "crs_max_bits": tfhe_py.CRS_MAX_BITS,
    }
    if server_key_seed is not None:
        meta["server_key_seed"] = str(server_key_seed)
    if seconds is not None:
        meta["generation_seconds"] = round(seconds, 1)
    (directory / METADATA).write_text(json.dumps(meta, indent=2) + "\n")


def _metadata(directory: Path) -> dict[str, str]:
    """`keys.json` (empty when absent) of a directory holding the public parts of a key set;
    refused when it names another parameter set."""
    for name in (PUBLIC_KEY, CRS):
        if not (directory / name).exists():
            raise KeySetError(f"{directory / name} is missing (run `fhevm-dagster keys generate`)")
    meta_path = directory / METADATA
    meta: dict[str, str] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta and meta.get("parameter_set") != tfhe_py.PARAMETER_SET:
        raise KeySetError(
            f"{directory} holds keys of {meta.get('parameter_set')}, "
            f"this build uses {tfhe_py.PARAMETER_SET}"
        )
    return meta


def load_key_dir(directory: Path, with_client_key: bool = False) -> KeySet:
    """Loads a key set. Without `server_key.bin`, the server key is the decompression of
    `compressed_server_key.bin` (a key set shipped compressed: 444 MB rather than 1.6 GB, as the
    reference's CPU workers decompress theirs; cached by its digest), or is derived (cached) from
    the client key."""
    meta = _metadata(directory)
    if (directory / SERVER_KEY).exists():
        server_key = tfhe_py.ServerKey.load(directory / SERVER_KEY)
    elif (directory / COMPRESSED_SERVER_KEY).exists():
        server_key = decompressed_server_key(directory / COMPRESSED_SERVER_KEY)
    elif (directory / CLIENT_KEY).exists() and "server_key_seed" in meta:
        server_key = cached_server_key(directory / CLIENT_KEY, int(meta["server_key_seed"]))
    elif (directory / CLIENT_KEY).exists():
        raise KeySetError(
            f"{directory} has no {SERVER_KEY} and {METADATA} names no server_key_seed: a server "
            "key derived at random would differ from every other coprocessor's"
        )
    else:
        raise KeySetError(
            f"{directory} has neither {SERVER_KEY}, {COMPRESSED_SERVER_KEY} nor {CLIENT_KEY}"
        )
    client_key = None
    if with_client_key:
        if not (directory / CLIENT_KEY).exists():
            raise KeySetError(f"{directory / CLIENT_KEY} is missing: decryption is not possible")
        client_key = tfhe_py.ClientKey.load(directory / CLIENT_KEY)
    return KeySet(
        server_key=server_key,
        public_key=tfhe_py.CompactPublicKey.load(directory / PUBLIC_KEY),
        crs=tfhe_py.Crs.load(directory / CRS),
        client_key=client_key,
    )


def load_cuda_engine(directory: Path) -> tfhe_py.Engine:
    """An engine on every GPU the process sees (CUDA_VISIBLE_DEVICES chooses): the key set's
    compressed server key expanded onto each, or the one its `server_key_seed` derives;
    `tfhe_py.TfheError` without a GPU."""
    meta = _metadata(directory)
    if (directory / COMPRESSED_SERVER_KEY).exists():
        compressed = tfhe_py.CompressedServerKey.load(directory / COMPRESSED_SERVER_KEY)
    elif (directory / CLIENT_KEY).exists() and "server_key_seed" in meta:
        compressed = cached_compressed_server_key(
            directory / CLIENT_KEY, int(meta["server_key_seed"])
        )
    else:
        raise KeySetError(
            f"{directory} has no {COMPRESSED_SERVER_KEY}: a GPU engine expands the compressed "
            "server key (make key sets with `fhevm-dagster keys generate`)"
        )
    return tfhe_py.Engine.cuda(
        compressed,
        tfhe_py.CompactPublicKey.load(directory / PUBLIC_KEY),
        tfhe_py.Crs.load(directory / CRS),
    )

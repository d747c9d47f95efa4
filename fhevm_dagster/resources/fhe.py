"""The FHE engine as a Dagster resource: keys loaded once per process, shared by threads.

Settings: `key_dir`, `device`, `fhe_threads` (`fhevm_dagster.settings`); an empty field of the
resource takes the setting. The test keys are public: a real deployment sets the key directory to
keys made with `fhevm-dagster keys generate`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import tfhe_py
from dagster import ConfigurableResource

from ..compute.keys import KeySet, load_cuda_engine, load_key_dir
from ..settings import Settings, default, variable

DEVNET_TEST_KEYS = Path(__file__).resolve().parents[2] / "tfhe-py" / "tests" / "fixtures" / "keys"
DEVICES = ("cpu", "cuda")
#: The concurrency pool of the steps that compute on a GPU: dagster.yaml's default gives it one
#: slot; a machine with N GPUs sets `dagster instance concurrency set gpu N`.
GPU_POOL = "gpu"


class DeviceError(RuntimeError):
    """A device this build of tfhe_py or this machine cannot use."""


def default_key_dir(settings: Settings) -> str:
    return str(settings.key_dir or DEVNET_TEST_KEYS)


class PublicKeysRefused(RuntimeError):
    """The committed test keys (public: anyone can decrypt) configured for a real chain."""


def check_test_keys(settings: Settings, key_dir: str, chain_ids: Sequence[int]) -> None:
    """The public test keys serve only the running devnet's chains, unless explicitly allowed
    (`Settings.allow_test_keys`): on any other chain every ciphertext would be readable."""
    if Path(key_dir).resolve() != DEVNET_TEST_KEYS.resolve():
        return
    if settings.allow_test_keys:
        return
    foreign = sorted(set(chain_ids) - settings.devnet_host_chain_ids())
    if foreign:
        raise PublicKeysRefused(
            f"the committed test keys (public, {DEVNET_TEST_KEYS}) would serve host chain(s) "
            f"{foreign}, which are not the running devnet's: set {variable('key_dir')} to this "
            f"network's keys (or {variable('allow_test_keys')}=1 for a throwaway chain)"
        )


def check_device(device: str) -> None:
    """CUDA needs tfhe_py built with TFHE-rs's `gpu` feature and a GPU the process can see."""
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r} (one of: {', '.join(DEVICES)})")
    if device == "cuda" and not tfhe_py.CUDA:
        raise DeviceError(
            "device 'cuda' is not available in this build of tfhe_py: the CUDA backend needs "
            "tfhe-py built with TFHE-rs's `gpu` feature (`make tfhe-py-gpu` builds its wheel)"
        )
    if device == "cuda" and tfhe_py.cuda_device_count() == 0:
        raise DeviceError(
            "device 'cuda': this tfhe_py has the CUDA backend but sees no GPU (no NVIDIA driver, "
            "no device, or CUDA_VISIBLE_DEVICES hides them)"
        )


def fhe_pool(settings: Settings) -> str | None:
    """The pool of the FHE steps in this deployment: `gpu` when its device is CUDA (`defs()`
    passes it to the asset factories)."""
    return GPU_POOL if settings.device == "cuda" else None


@cache
def _key_set(key_dir: str, with_client_key: bool) -> KeySet:
    return load_key_dir(Path(key_dir), with_client_key=with_client_key)


@cache
def _engine(key_dir: str, device: str) -> tfhe_py.Engine:
    if device == "cuda":
        return load_cuda_engine(Path(key_dir))
    return _key_set(key_dir, False).engine()


class FheResource(ConfigurableResource):  # type: ignore[type-arg]
    """Where the keys are (empty: the committed devnet test keys), which device computes, and
    how many operations run at once (0: one per CPU); `of` fills them from the `Settings`."""

    key_dir: str = ""
    device: str = default("device")
    threads: int = 0
    #: Squash each allowed result as soon as `ciphertexts` stores it, on the same threads (off:
    #: `sns_ciphertexts` squashes the whole range afterwards, as the reference's sns-worker).
    squash_during_evaluation: bool = True

    @classmethod
    def of(cls, settings: Settings) -> FheResource:
        """The resource of the settings (`definitions.defs`); empty fields mean "the setting"."""
        return cls(
            key_dir=default_key_dir(settings),
            device=settings.device,
            threads=settings.fhe_threads or 0,
        )

    @property
    def resolved_key_dir(self) -> str:
        return self.key_dir or str(DEVNET_TEST_KEYS)

    @property
    def pool_size(self) -> int:
        return self.threads or os.cpu_count() or 1

    def engine(self) -> tfhe_py.Engine:
        """The process-wide engine of this key directory and device (loaded on first use)."""
        check_device(self.device)
        return _engine(self.resolved_key_dir, self.device)

    def key_set(self, with_client_key: bool = False) -> KeySet:
        return _key_set(self.resolved_key_dir, with_client_key)

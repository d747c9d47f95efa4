"""The device of the FHE engine: CUDA is chosen per deployment, refused with a clear reason where
it cannot run, and the steps that compute on it share the `gpu` pool (one slot per GPU).

This machine's tfhe_py is the CPU build: the CUDA engine itself runs in `benchmarks/gpu_check.sh`
on a GPU machine, not here.
"""

from __future__ import annotations

import pytest
import tfhe_py

from fhevm_dagster.assets.gateway import gateway_assets
from fhevm_dagster.host_chains import host_chain_defs
from fhevm_dagster.resources.fhe import GPU_POOL, DeviceError, FheResource, check_device, fhe_pool
from fhevm_dagster.settings import load_settings

FHE_STEPS = {"ciphertexts", "sns_ciphertexts", "verified_inputs"}


@pytest.fixture(autouse=True)
def no_device_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FHEVM_DAGSTER_DEVICE", raising=False)


def test_an_unknown_device_is_refused_by_name() -> None:
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        check_device("tpu")


def test_cuda_where_it_cannot_run_is_a_clear_error() -> None:
    """A CPU build names the missing feature; a CUDA build on a machine without a GPU says so."""
    if not tfhe_py.CUDA:
        assert tfhe_py.cuda_device_count() == 0
        with pytest.raises(DeviceError, match="`gpu` feature"):
            FheResource(device="cuda").engine()
    elif tfhe_py.cuda_device_count() == 0:
        with pytest.raises(DeviceError, match="sees no GPU"):
            FheResource(device="cuda").engine()
    else:
        check_device("cuda")


def test_cpu_is_the_default_device() -> None:
    assert load_settings().device == "cpu"
    check_device(FheResource().device)


def _pools() -> dict[str, str | None]:
    """Each asset's pool, in the definitions of the settings now (`defs()` passes the pool)."""
    pool = fhe_pool(load_settings())
    host = host_chain_defs("host_31337", pool=pool).assets
    gateway = gateway_assets(["host_31337"], pool)
    return {k.path[-1]: a.op.pool for a in [*host, *gateway] for k in a.keys}


def test_fhe_steps_hold_the_gpu_pool_on_a_cuda_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fhe_pool(load_settings()) is None
    assert not {name for name, pool in _pools().items() if pool == GPU_POOL}
    monkeypatch.setenv("FHEVM_DAGSTER_DEVICE", "cuda")
    assert fhe_pool(load_settings()) == GPU_POOL
    pools = _pools()
    assert {name for name, pool in pools.items() if pool == GPU_POOL} == FHE_STEPS
    assert pools["digest_commits"] is None  # the sender's lease orders gateway sends

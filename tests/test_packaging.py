"""Packaging: every module imports, every import is declared in pyproject.toml, the lock matches.

The fast tests need no chain and no FHE (the modules that import tfhe_py need it installed). The
`install` tests build a throwaway venv from pyproject.toml alone (PyPI and the tfhe-py wheel of
`make tfhe-py`), import every module there and materialise one host range of the demo on a devnet;
they are deselected by default (`pytest -m install tests/test_packaging.py`), CI runs them.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import fhevm_dagster

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "fhevm_dagster"
WHEELS_DIR = Path.home() / ".cache" / "fhevm-dagster" / "wheels"

#: Distributions declared although no module imports them: what uses them instead.
RUNTIME_ONLY = {
    "dagster-webserver": "the Dagster UI of `dagster dev` (make demo)",
    "dagster-postgres": "the Dagster instance of deploy/dagster-postgres.yaml",
    "psycopg2-binary": "postgresql+psycopg2 store URLs (store/engine.py)",
    "pyarrow": "DataFrame.to_parquet / pd.read_parquet (resources/io.py)",
}
#: Modules of our own wheels, mapped even while they are not installed (tfhe-py during its build).
LOCAL_MODULES = {"tfhe_py": "tfhe-py"}


def _pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        project: dict[str, object] = tomllib.load(f)["project"]
    return project


def _requirements(extra: str | None = None) -> list[Requirement]:
    project = _pyproject()
    if extra is None:
        specs = project["dependencies"]
    else:
        optional = project["optional-dependencies"]
        assert isinstance(optional, dict)
        specs = optional[extra]
    assert isinstance(specs, list)
    return [Requirement(s) for s in specs]


def _declared() -> set[str]:
    return {canonicalize_name(r.name) for r in _requirements()}


def _expected_modules() -> set[str]:
    """Dotted names of every .py file of the package, as walk_packages should reach them."""
    names = set()
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1:
            names.add(".".join(parts))
    return names


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module → files importing it, for every non-stdlib, non-relative import."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.partition(".")[0]
                if top in sys.stdlib_module_names or top == "fhevm_dagster":
                    continue
                found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"requirements.txt: {line!r} is not a name==version pin"
        pins[canonicalize_name(name)] = version
    return pins


def test_every_module_imports() -> None:
    failures: dict[str, str] = {}

    def onerror(name: str) -> None:
        failures[name] = repr(sys.exc_info()[1])

    walked = set()
    for info in pkgutil.walk_packages(fhevm_dagster.__path__, "fhevm_dagster.", onerror=onerror):
        walked.add(info.name)
        try:
            importlib.import_module(info.name)
        except Exception as e:
            failures[info.name] = f"{type(e).__name__}: {e}"
    assert not failures, "modules that do not import:\n" + "\n".join(
        f"  {name}: {error}" for name, error in sorted(failures.items())
    )
    assert walked == _expected_modules(), "modules walk_packages misses (no __init__.py?)"


def test_every_import_is_declared() -> None:
    mapping = importlib.metadata.packages_distributions()
    declared = _declared()
    undeclared, unknown = [], []
    imported: set[str] = set()
    for module, files in sorted(_third_party_imports().items()):
        dists = mapping.get(module) or [LOCAL_MODULES.get(module, "")]
        names = {canonicalize_name(d) for d in dists if d}
        where = ", ".join(sorted(files))
        if not names:
            unknown.append(f"  {module} (in {where}): not installed, distribution unknown")
        elif not names & declared:
            undeclared.append(f"  {module} → {'/'.join(sorted(names))} (in {where})")
        imported |= names & declared
    assert not unknown, "imports of modules no installed distribution provides:\n" + "\n".join(
        unknown
    )
    assert not undeclared, "imports missing from pyproject.toml dependencies:\n" + "\n".join(
        undeclared
    )
    # The other direction: nothing declared that is neither imported nor used at run time.
    assert declared - imported == set(RUNTIME_ONLY), "update RUNTIME_ONLY or pyproject.toml"


def test_lock_pins_every_declared_distribution_in_range() -> None:
    pins = _lock()
    assert "tfhe-py" not in pins and "fhevm-dagster" not in pins
    problems = []
    for req in _requirements() + _requirements("dev"):
        name = canonicalize_name(req.name)
        if name == "tfhe-py":
            continue
        if name not in pins:
            problems.append(f"  {req}: not pinned")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"  {req}: pinned {pins[name]}")
    assert not problems, "requirements.txt vs pyproject.toml (run `make lock`):\n" + "\n".join(
        problems
    )
    header = [
        line for line in (ROOT / "requirements.txt").read_text().splitlines() if line[:1] == "#"
    ]
    assert any("make lock" in line for line in header), "requirements.txt names its command"


# --- a throwaway venv from pyproject.toml alone -------------------------------------------------

SMOKE = """
import importlib, pathlib, pkgutil, sys
import pandas as pd
import fhevm_dagster
assert fhevm_dagster.__file__.startswith(sys.prefix), fhevm_dagster.__file__
names = [m.name for m in pkgutil.walk_packages(fhevm_dagster.__path__, "fhevm_dagster.")]
for name in names:
    importlib.import_module(name)
from fhevm_dagster.assets.metadata import table_metadata
from fhevm_dagster.store import create_store_engine, migrate
out = pathlib.Path(sys.argv[1])
df = pd.DataFrame({"handle": ["0x01", "0x02"], "n": [1, 2]})
assert table_metadata(df)["dagster/row_count"] == 2
df.to_parquet(out / "t.parquet", index=False)  # pyarrow
assert pd.read_parquet(out / "t.parquet").to_dict("list") == df.to_dict("list")
create_store_engine("postgresql://u@h/db").dispose()  # psycopg2 (the DBAPI loads on create)
migrate(create_store_engine(f"sqlite:///{out / 'store.sqlite'}"))
print(len(names), "modules")
"""


#: One range of the demo, materialised in the fresh venv: a devnet with the real host contracts,
#: a mint and a confidential transfer, the host range's events, computations and ciphertexts.
DEMO_RANGE = """
import os, pathlib, sys
from dagster import DagsterInstance, materialize
from fhevm_dagster.devnet import devnet_down, devnet_up, free_port, run_token_traffic
from fhevm_dagster.host_chains import host_chain_defs
from fhevm_dagster.pipeline.block_ranges import BlockRange
from fhevm_dagster.resources.chain import HostChainResource
from fhevm_dagster.resources.fhe import FheResource
from fhevm_dagster.resources.io import ParquetIOManager
from fhevm_dagster.resources.store import StoreResource
out = pathlib.Path(sys.argv[1])
info = devnet_up(out / "devnet", host_port=free_port(), gateway_port=free_port())
try:
    blocks = [r.block_number for r in run_token_traffic(info, transfers=1)]
    rng = BlockRange(min(blocks), max(blocks))
    host = host_chain_defs(f"host_{info.host_chain_id}")
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(str(host.partitions.name), [rng.key])
    result = materialize(
        host.assets[:2],  # host_ingest, ciphertexts
        partition_key=rng.key,
        instance=instance,
        resources={
            host.name: HostChainResource(rpc_url=info.host_rpc_url, acl_address=info.acl_address,
                                         executor_address=info.executor_address),
            "store": StoreResource(database_url=f"sqlite:///{out / 'demo.sqlite'}"),
            "fhe": FheResource(key_dir=os.environ["FHEVM_DAGSTER_KEY_DIR"], threads=2),
            "parquet_io_manager": ParquetIOManager(base_dir=str(out / "parquet")),
        },
    )
    assert result.success
    mats = result.asset_materializations_for_node(f"{host.name}__ciphertexts")
    (meta,) = [m.metadata for m in mats]
    print("stored", meta["stored"].value, "errors", meta["errors"].value)
finally:
    devnet_down(out / "devnet")
"""


def _floors() -> list[str]:
    """`name==floor` for every dependency with a `>=` floor."""
    pins = []
    for req in _requirements():
        floors = [s.version for s in req.specifier if s.operator == ">="]
        if floors:
            pins.append(f"{req.name}=={floors[0]}")
    return pins


@dataclass(frozen=True)
class FreshVenv:
    """A throwaway venv from pyproject.toml alone, or why its install failed."""

    root: Path
    env: dict[str, str]
    freeze: str = ""
    failure: str = ""

    @property
    def python(self) -> Path:
        return self.root / "venv" / "bin" / "python"


def _make_venv(root: Path, versions: str) -> FreshVenv:
    src = root / "src"  # a copy: the build writes build/ and *.egg-info next to the sources
    src.mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copytree(
        PACKAGE_DIR, src / "fhevm_dagster", ignore=shutil.ignore_patterns("__pycache__")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    venv = FreshVenv(root, env)

    def run(*cmd: str | Path) -> str:
        done = subprocess.run(
            [str(c) for c in cmd], cwd=root, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"{cmd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    try:
        run(sys.executable, "-m", "venv", root / "venv")
        pip = [venv.python, "-m", "pip"]
        extra = _floors() if versions == "floors" else []
        binary = "numpy,pandas,pyarrow,psycopg2-binary,grpcio"  # never compile these
        run(*pip, "install", "-q", "--only-binary", binary, "--find-links", WHEELS_DIR, src, *extra)
        run(*pip, "check")
        return replace(venv, freeze=run(*pip, "freeze"))
    except RuntimeError as exc:
        return replace(venv, failure=str(exc))


VERSIONS = ("newest", "floors")


@pytest.fixture(scope="module")
def fresh_venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FreshVenv]:
    """Both venvs, installed at once (mostly downloads and unpacking: half the wall time of one
    after the other); a failed install fails its own test."""
    if not sorted(WHEELS_DIR.glob("tfhe_py-*.whl")):
        pytest.skip(f"no tfhe-py wheel in {WHEELS_DIR}: run `make tfhe-py`")
    roots = {v: tmp_path_factory.mktemp(f"venv-{v}") for v in VERSIONS}
    with ThreadPoolExecutor(len(VERSIONS)) as pool:
        made = {v: pool.submit(_make_venv, roots[v], v) for v in VERSIONS}
        return {v: f.result() for v, f in made.items()}


@pytest.mark.install
@pytest.mark.devnet  # in the fresh venv: a devnet and a range computed on the test keys
@pytest.mark.fhe
@pytest.mark.parametrize("versions", VERSIONS)
def test_fresh_venv_from_pyproject(versions: str, fresh_venvs: dict[str, FreshVenv]) -> None:
    venv = fresh_venvs[versions]
    assert not venv.failure, venv.failure
    root, env, freeze = venv.root, venv.env, venv.freeze
    smoke = subprocess.run(
        [venv.python, "-c", SMOKE, root],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert smoke.returncode == 0, f"{smoke.stderr[-3000:]}\nwith ({versions}):\n{freeze}"
    assert smoke.stdout == f"{len(_expected_modules())} modules\n", smoke.stdout
    # The repository provides only what the package does not ship: node tools and the test keys.
    demo_env = env | {
        "FHEVM_DAGSTER_ROOT": str(ROOT),
        "FHEVM_DAGSTER_KEY_DIR": str(ROOT / "tfhe-py" / "tests" / "fixtures" / "keys"),
    }
    demo = subprocess.run(
        [venv.python, "-c", DEMO_RANGE, root],
        cwd=root,
        env=demo_env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert demo.returncode == 0, f"{demo.stderr[-3000:]}\nwith ({versions}):\n{freeze}"
    stored, errors = demo.stdout.split()[1::2]
    assert int(stored) >= 2 and int(errors) == 0, demo.stdout

"""FHE calls release the GIL, install the server key per thread, and stay correct in parallel."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import tfhe_py
from support import FheType as T
from support import KeySet, Operator


def test_python_keeps_running_during_an_fhe_call(
    engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey
) -> None:
    a, b = client_key.encrypt(12345, T.Uint32), client_key.encrypt(678, T.Uint32)
    done = threading.Event()
    ticks_during_call = 0

    def fhe() -> None:
        engine.execute(Operator.Mul, [a, b])
        done.set()

    worker = threading.Thread(target=fhe)
    worker.start()
    while not done.is_set():
        ticks_during_call += 1
    worker.join()
    # A call holding the GIL would let this loop run only at the interpreter's switch
    # interval; released, it spins freely for the whole multiplication (hundreds of ms).
    assert ticks_during_call > 100_000


def test_fresh_threads_get_the_server_key_and_correct_results(
    engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey
) -> None:
    pairs = [(i * 17 % 256, (i * 29 + 3) % 256) for i in range(8)]
    cts = [(client_key.encrypt(x, T.Uint8), client_key.encrypt(y, T.Uint8)) for x, y in pairs]

    def work(i: int) -> tuple[int, int]:
        a, b = cts[i]
        return (
            client_key.decrypt(engine.execute(Operator.Add, [a, b])),
            client_key.decrypt(engine.execute(Operator.Mul, [a, b])),
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(len(pairs))))
    assert results == [((x + y) % 256, (x * y) % 256) for x, y in pairs]


def test_two_engines_in_one_thread(keyset: KeySet, client_key: tfhe_py.ClientKey) -> None:
    """Switching engines re-installs the right key in the thread."""
    first, second = keyset.engine(), keyset.engine()
    a = client_key.encrypt(9, T.Uint8)
    for engine in (first, second, first):
        assert client_key.decrypt(engine.execute(Operator.Add, [a, a])) == 18

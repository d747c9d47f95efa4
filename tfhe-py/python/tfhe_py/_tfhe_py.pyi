"""Type stubs of the native module."""

from collections.abc import Sequence
from os import PathLike

PARAMETER_SET: str
TFHE_RS_VERSION: str
CRS_MAX_BITS: int
MAX_INPUT_ENTRIES: int
MAX_SUM_VALUES: int
MAX_WIDE_VALUES: int
CUDA: bool

class TfheError(Exception):
    """Any failure inside TFHE-rs or the bindings: bad input, wrong type, missing key material."""

class TfhePanic(TfheError):
    """TFHE-rs panicked: an internal failure, not a verdict on the input (retry, never reject)."""

_Path = str | PathLike[str]

class _KeyIO:
    def to_bytes(self) -> bytes:
        """Safe-serialized bytes (TFHE-rs `safe_serialize`, 2 GiB limit)."""
    def save(self, path: _Path) -> None:
        """Writes the key to `path` with 0600 permissions."""

class ClientKey(_KeyIO):
    """The secret key: encrypts and decrypts (tests, demo, debugging) and derives the others."""
    @staticmethod
    def generate(seed: int | None = None) -> ClientKey:
        """A new client key of the fhEVM parameter set; with a `seed` (u128), the same key."""
    @staticmethod
    def from_bytes(data: bytes) -> ClientKey: ...
    @staticmethod
    def load(path: _Path) -> ClientKey: ...
    def compressed_server_key(self, seed: int | None = None) -> CompressedServerKey:
        """The server key, compressed: a GPU engine expands it, a CPU engine decompresses it.

        With `seed` (u128) the derivation is deterministic: the same client key and seed give the
        same key on every machine (how test and devnet deployments share one key).
        """
    def public_key(self) -> CompactPublicKey: ...
    def encrypt(self, value: int, fhe_type: int) -> Ciphertext:
        """Encrypts `value` as `fhe_type`; a value wider than the type raises `TfheError`."""
    def decrypt(self, ct: Ciphertext) -> int:
        """The plaintext (Bool as 0 or 1)."""
    def decrypt_squashed(self, data: bytes, fhe_type: int) -> int:
        """Decrypts a ct128 (noise-squashed, compressed list) of type `fhe_type`."""

class ServerKey(_KeyIO):
    """The evaluation key."""
    @staticmethod
    def from_bytes(data: bytes) -> ServerKey: ...
    @staticmethod
    def load(path: _Path) -> ServerKey: ...
    @property
    def supports_noise_squashing(self) -> bool: ...
    @property
    def supports_compression(self) -> bool: ...

class CompressedServerKey(_KeyIO):
    """The seeded server key: smaller to store, decompressed once per process."""
    @staticmethod
    def from_bytes(data: bytes) -> CompressedServerKey: ...
    @staticmethod
    def load(path: _Path) -> CompressedServerKey: ...
    def decompress(self) -> ServerKey: ...

class CompactPublicKey(_KeyIO):
    """The key users encrypt inputs with."""
    @staticmethod
    def from_bytes(data: bytes) -> CompactPublicKey: ...
    @staticmethod
    def load(path: _Path) -> CompactPublicKey: ...

class Crs(_KeyIO):
    """The common reference string of input proofs."""
    @staticmethod
    def generate(max_bits: int = 2048) -> Crs: ...
    @staticmethod
    def from_bytes(data: bytes) -> Crs: ...
    @staticmethod
    def load(path: _Path) -> Crs: ...

class Ciphertext:
    """An immutable ciphertext of one fhEVM type."""
    @property
    def fhe_type(self) -> int:
        """The fhEVM type number (byte 30 of a handle)."""
    def to_bytes(self) -> bytes:
        """Raw safe-serialized bytes (not the stored, compressed format)."""
    @staticmethod
    def from_bytes(data: bytes, fhe_type: int) -> Ciphertext: ...

class Engine:
    """Computes with one key set; share one per process across threads."""
    def __init__(
        self,
        server_key: ServerKey,
        public_key: CompactPublicKey | None = None,
        crs: Crs | None = None,
    ) -> None: ...
    @staticmethod
    def cuda(
        compressed_server_key: CompressedServerKey,
        public_key: CompactPublicKey | None = None,
        crs: Crs | None = None,
        gpus: Sequence[int] | None = None,
    ) -> Engine:
        """An engine on CUDA GPUs (`gpus`, or all); TfheError on a CPU build or without a GPU."""
    @property
    def device(self) -> str:
        """`cpu`, or `cuda:` and the GPU indexes."""
    def execute(
        self,
        opcode: int,
        operands: Sequence[Ciphertext | bytes],
        result_type: int | None = None,
        rerandomize: bool = False,
    ) -> Ciphertext:
        """Evaluates FHEVMExecutor operator `opcode`.

        Operands are Ciphertexts or big-endian plaintexts of at most 32 bytes, in the order of the
        event's dependencies. `result_type` (byte 30 of the result handle) is required for Cast,
        TrivialEncrypt, Rand, RandBounded and an empty Sum, and checked everywhere else.
        """
    def trivial_encrypt(self, value: int, fhe_type: int) -> Ciphertext: ...
    def compress(self, ct: Ciphertext) -> bytes:
        """The stored format (ct64): a single-element CompressedCiphertextList."""
    def decompress(self, data: bytes) -> Ciphertext: ...
    def squash(self, ct: Ciphertext) -> bytes:
        """Switch-and-squash to the ct128 format."""
    def rerandomize(
        self, cts: Sequence[Ciphertext], fn_description: Sequence[bytes]
    ) -> list[Ciphertext]:
        """Re-randomizes as before an operation (context `TFHE_Rrd`, one seed per ciphertext)."""
    def verify_and_expand(self, data: bytes, metadata: bytes) -> list[Ciphertext]:
        """Verifies and expands an untrusted ProvenCompactCiphertextList (SPEC §6 steps 1-3).

        An empty list verifies to no entries. The entries are not re-randomized yet.
        """
    def rerandomize_inputs(
        self, cts: Sequence[Ciphertext], blob_hash: bytes, handle_hashes: Sequence[bytes]
    ) -> list[Ciphertext]:
        """SPEC §6 step 4: metadata `h_i` on entry i, one `ZKw_Rrnd` context over `blob_hash`."""

def build_proven_list(
    public_key: CompactPublicKey,
    crs: Crs,
    values: Sequence[tuple[int, int]],
    metadata: bytes,
    seed: bytes | None = None,
    compute_load: str = "verify",
) -> bytes:
    """Client side: encrypts and proves `values` (pairs of int and FHE type)."""

def fhe_type_names() -> dict[int, str]: ...
def opcode_names() -> dict[int, str]: ...
def cuda_device_count() -> int: ...

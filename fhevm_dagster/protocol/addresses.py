"""The host contracts' canonical addresses (SPEC §9).

Baked into the @fhevm/host-contracts 0.10.0 bytecode (each contract names its siblings), so the
devnet installs the contracts there on every host chain and a host chain's settings default to
them.
"""

ACL_ADDRESS = "0x50157CFfD6bBFA2DECe204a89ec419c23ef5755D"
EXECUTOR_ADDRESS = "0xe3a9105a3a932253A70F126eb1E3b589C643dD24"
KMS_VERIFIER_ADDRESS = "0x901F8942346f7AB3a01F6D7613119Bca447Bb030"
INPUT_VERIFIER_ADDRESS = "0x36772142b74871f255CbD7A3e89B401d3e45825f"

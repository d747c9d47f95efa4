"""The chain client: the one web3 user besides the devnet (which shares it).

`config` says where each chain is (plain data), `calls` what is sent and what became of it (plain
records), `client` reads (one retry layer: web3's), `logs` asks eth_getLogs in spans the provider
accepts, `sender` sends contract calls, `reverts` decodes reverts with `fhevm_dagster.abi`,
`ciphertext_commits` knows the gateway's commit events and implements the steps' web3-free
`commit_port`. Import the submodules: this package imports nothing, so its plain-data modules
stay web3-free.
"""

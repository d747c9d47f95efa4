#!/usr/bin/env node
// Compiles contracts/src/*.sol offline with the pinned solcjs (npm `solc`) and writes the committed
// artifacts contracts/build/<Name>.json (abi, bytecode, deployedBytecode), then copies the ABIs the
// Python coprocessor needs into fhevm_dagster/abi/ (ours and the real @fhevm/host-contracts ones).
//
// Usage: node contracts/build.mjs          (run `npm ci` first)
//        node contracts/build.mjs --check  (exit 1 if committed artifacts differ from a fresh build)

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const nodeModules = path.join(root, "node_modules");
const srcDir = path.join(here, "src");
const buildDir = path.join(here, "build");
const abiDir = path.join(root, "fhevm_dagster", "abi");
const check = process.argv.includes("--check");

if (!fs.existsSync(path.join(nodeModules, "solc"))) {
  console.error("node_modules/solc is missing: run `npm ci` in the repository root first");
  process.exit(2);
}
const require = createRequire(import.meta.url);
const solc = require(path.join(nodeModules, "solc"));

const EVM_VERSION = "cancun";
const OPTIMIZER = { enabled: true, runs: 200 };

// Our contracts, with the ABIs the coprocessor needs copied to the Python package.
const OUR_ABIS = ["InputVerification", "CiphertextCommits", "ConfidentialToken", "OpsExerciser"];
// Real host contracts shipped by @fhevm/host-contracts (ABI only; bytecode is read from node_modules).
const HOST_ARTIFACTS = {
  FHEVMExecutor: "artifacts/contracts/FHEVMExecutor.sol/FHEVMExecutor.json",
  ACL: "artifacts/contracts/ACL.sol/ACL.json",
  InputVerifier: "artifacts/contracts/InputVerifier.sol/InputVerifier.json",
  KMSVerifier: "artifacts/contracts/KMSVerifier.sol/KMSVerifier.json",
  HCULimit: "artifacts/contracts/HCULimit.sol/HCULimit.json",
};

function findImport(importPath) {
  const candidates = [path.join(srcDir, importPath), path.join(nodeModules, importPath)];
  for (const candidate of candidates) {
    if (fs.existsSync(candidate)) {
      return { contents: fs.readFileSync(candidate, "utf8") };
    }
  }
  return { error: `import not found: ${importPath} (run \`npm ci\`)` };
}

const sources = {};
for (const file of fs.readdirSync(srcDir).sort()) {
  if (file.endsWith(".sol")) {
    sources[file] = { content: fs.readFileSync(path.join(srcDir, file), "utf8") };
  }
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    evmVersion: EVM_VERSION,
    optimizer: OPTIMIZER,
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
let failed = false;
for (const err of output.errors ?? []) {
  if (err.severity === "error") failed = true;
  // Warnings from node_modules are noise; ours are shown.
  if (err.severity === "error" || !String(err.sourceLocation?.file ?? "").startsWith("@")) {
    console.error(err.formattedMessage);
  }
}
if (failed) process.exit(1);

const written = new Map();
for (const [sourceName, contracts] of Object.entries(output.contracts)) {
  if (!sources[sourceName]) continue; // libraries from node_modules
  for (const [name, c] of Object.entries(contracts)) {
    if (!c.evm.bytecode.object) continue; // interfaces, abstract contracts
    const artifact = {
      contractName: name,
      sourceName: `contracts/src/${sourceName}`,
      compiler: { solc: solc.version(), evmVersion: EVM_VERSION, optimizer: OPTIMIZER },
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    };
    const size = c.evm.deployedBytecode.object.length / 2;
    if (size > 24576) {
      console.error(`${name}: deployed code is ${size} bytes, above the EIP-170 limit of 24576`);
      process.exit(1);
    }
    written.set(path.join(buildDir, `${name}.json`), artifact);
    console.log(`${name}: ${size} bytes deployed`);
  }
}

for (const name of OUR_ABIS) {
  const artifact = written.get(path.join(buildDir, `${name}.json`));
  if (!artifact) {
    console.error(`expected contract ${name} was not produced`);
    process.exit(1);
  }
  written.set(path.join(abiDir, `${name}.json`), {
    contractName: name,
    source: artifact.sourceName,
    abi: artifact.abi,
  });
}
const hostPkg = path.join(nodeModules, "@fhevm", "host-contracts");
const hostVersion = JSON.parse(fs.readFileSync(path.join(hostPkg, "package.json"), "utf8")).version;
for (const [name, rel] of Object.entries(HOST_ARTIFACTS)) {
  const artifact = JSON.parse(fs.readFileSync(path.join(hostPkg, rel), "utf8"));
  written.set(path.join(abiDir, `${name}.json`), {
    contractName: name,
    source: `@fhevm/host-contracts@${hostVersion}`,
    abi: artifact.abi,
  });
}

let stale = 0;
for (const [file, value] of written) {
  const text = JSON.stringify(value, null, 2) + "\n";
  if (check) {
    if (!fs.existsSync(file) || fs.readFileSync(file, "utf8") !== text) {
      console.error(`stale: ${path.relative(root, file)}`);
      stale += 1;
    }
  } else {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
  }
}
if (check && stale) process.exit(1);
console.log(check ? "artifacts are up to date" : `wrote ${written.size} files`);

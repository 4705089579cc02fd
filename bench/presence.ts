/**
 * What presence costs the person (issue: "only the person can say yes"): the unlock's KDF (scrypt
 * with the vault's real parameters, VAULT_KDF) and the extra time an approval spends checking the
 * PIN, both on the real vault (core/vault/vault.ts) over a memory keychain. The unlock target is a
 * band, 250 ms to 1 s: faster would make offline guessing of a stolen record cheaper, slower would
 * make unlocking a chore. The PIN check is one scrypt at PIN_KDF, well under what a person notices.
 */
import { performance } from "node:perf_hooks";
import { createVault } from "../dist/main/core/vault/vault.js";
import { silentLogger } from "../dist/main/core/runtime/logger.js";
import { memoryKeychain, tempProfilePaths, BENCH_PASSPHRASE, BENCH_PIN } from "./bench-helpers.js";
import type { Figure } from "./capacity.js";

function p50(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

export async function presenceFigures(full: boolean): Promise<Figure[]> {
  const paths = tempProfilePaths("bench-presence");
  const vault = createVault({
    keychain: memoryKeychain("bench-presence"),
    dataDir: paths.dataDir,
    log: silentLogger(),
    now: Date.now,
  });
  await vault.probe();
  await vault.create(BENCH_PASSPHRASE, { pin: BENCH_PIN });
  const unlocks: number[] = [];
  for (let i = 0; i < (full ? 9 : 5); i++) {
    vault.lock("by_request");
    const t0 = performance.now();
    await vault.unlock(BENCH_PASSPHRASE);
    unlocks.push(performance.now() - t0);
  }
  const pins: number[] = [];
  for (let i = 0; i < (full ? 50 : 20); i++) {
    const t0 = performance.now();
    await vault.checkPin(BENCH_PIN);
    pins.push(performance.now() - t0);
  }
  const unlock = p50(unlocks);
  const pin = p50(pins);
  return [
    {
      name: "unlock (scrypt N=2^17 r=8 p=1 + open) p50",
      value: unlock,
      unit: "ms",
      target: 1000,
      pass: unlock >= 250 && unlock <= 1000,
    },
    {
      name: "PIN check per approval p50 (the extra time a proof adds)",
      value: pin,
      unit: "ms",
      target: 100,
      pass: pin < 100,
    },
  ];
}

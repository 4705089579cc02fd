/**
 * Reads a sealed keychain item the way only the person can: with the passphrase. Tests that check
 * what the keychain holds (the refresh token rotates, the instance ID is kept) use it, so they read
 * the values through the vault, not as plaintext, which the keychain no longer holds.
 */
import os from "node:os";
import { createVault } from "../src/main/core/vault/vault.js";
import type { KeychainItem, KeychainStore } from "../src/main/core/runtime/keychain.js";
import { silentLogger } from "../src/main/core/runtime/logger.js";
import { TEST_PASSPHRASE } from "./helpers.js";

/** The value of `item` in `raw` opened with `passphrase` (default the test person's); null when absent. */
export async function readSealed(
  raw: KeychainStore,
  item: KeychainItem,
  passphrase: string = TEST_PASSPHRASE,
): Promise<string | null> {
  const stored = await raw.get(item);
  if (stored === null) return null;
  // Unattended: opening it here must not touch the Link's own wrong-PIN count.
  const vault = createVault({ keychain: raw, dataDir: os.tmpdir(), log: silentLogger(), now: Date.now });
  await vault.probe();
  await vault.unlock(passphrase, { unattended: true });
  try {
    const value = vault.openItem(item, stored);
    if (value === null)
      throw new Error(`${item} is in the keychain but not sealed by this vault: ${stored.slice(0, 12)}…`);
    return value;
  } finally {
    vault.lock("by_request");
  }
}

/**
 * Small pieces the benchmarks share: a profile in a temporary home, an in-memory keychain (the
 * Link reads the keychain once at start, never on the measured paths, so the benchmarks run
 * without a Secret Service) and an approval given through the control channel, as the person
 * would give it. The Link's parts come from the compiled dist/ (`npm run bench` builds it first).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import WebSocket from "ws";
import { z } from "zod";
import { resolveLinkPaths, type LinkPaths } from "../dist/main/core/runtime/paths.js";
import type { KeychainItem, KeychainStore } from "../src/main/core/runtime/keychain.js";
import { CONTROL_SUBPROTOCOL } from "../src/shared/version.js";

/** The Linux paths of profile `profile` in a new temporary home (runtime, data and state all in it). */
export function tempProfilePaths(profile: string): LinkPaths {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), `piper-${profile}-`));
  return resolveLinkPaths(profile, {
    platform: "linux",
    env: { XDG_RUNTIME_DIR: home, XDG_DATA_HOME: home, XDG_STATE_HOME: home },
    homedir: home,
  });
}

/** A keychain in memory under `service`, holding `initial` items. */
export function memoryKeychain(service: string, initial: ReadonlyArray<[KeychainItem, string]> = []): KeychainStore {
  const items = new Map<KeychainItem, string>(initial);
  return {
    service,
    get: (k) => Promise.resolve(items.get(k) ?? null),
    set: (k, v) => Promise.resolve(void items.set(k, v)),
    delete: (k) => Promise.resolve(items.delete(k)),
  };
}

/** The bench person's passphrase and PIN: every bench Link is unlocked with them, and approves with the PIN. */
export const BENCH_PASSPHRASE = "bench passphrase of several words";
export const BENCH_PIN = "246813";
export const BENCH_UNLOCK = { passphrase: BENCH_PASSPHRASE, pin: BENCH_PIN } as const;

const ControlReplySchema = z.object({
  type: z.string(),
  id: z.union([z.number(), z.string()]).nullish(),
  message: z.string().optional(),
});

/** Approves pending request `requestId` until revoked through the Link's control channel on `port`. */
export async function approveOverControl(port: number, controlToken: string, requestId: string): Promise<void> {
  const control = new WebSocket(`ws://127.0.0.1:${port}/v1/control`, CONTROL_SUBPROTOCOL);
  await new Promise((r) => control.once("open", r));
  control.send(JSON.stringify({ type: "auth", token: controlToken }));
  control.send(
    JSON.stringify({
      type: "call",
      id: 1,
      method: "approveRequest",
      params: { requestId, scope: { kind: "until_revoked" }, presence: { method: "pin", pin: BENCH_PIN } },
    }),
  );
  await new Promise<void>((resolve, reject) =>
    control.on("message", (d: Buffer) => {
      const m = ControlReplySchema.parse(JSON.parse(d.toString()));
      if (m.type === "result" && m.id === 1) resolve();
      if (m.type === "error") reject(new Error(m.message));
    }),
  );
  control.close();
}

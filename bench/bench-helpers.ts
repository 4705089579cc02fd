/**
 * Small pieces the benchmarks share: an in-memory keychain (the Link reads the keychain once at
 * start, never on the measured paths, so the benchmarks run without a Secret Service) and an
 * approval given through the control channel, as the person would give it.
 */
import WebSocket from "ws";
import { z } from "zod";
import type { KeychainItem, KeychainStore } from "../src/main/core/runtime/keychain.js";
import { CONTROL_SUBPROTOCOL } from "../src/shared/version.js";

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

const ControlReplySchema = z.object({ type: z.string(), id: z.union([z.number(), z.string()]).nullish(), message: z.string().optional() });

/** Approves pending request `requestId` until revoked through the Link's control channel on `port`. */
export async function approveOverControl(port: number, controlToken: string, requestId: string): Promise<void> {
  const control = new WebSocket(`ws://127.0.0.1:${port}/v1/control`, CONTROL_SUBPROTOCOL);
  await new Promise((r) => control.once("open", r));
  control.send(JSON.stringify({ type: "auth", token: controlToken }));
  control.send(JSON.stringify({ type: "call", id: 1, method: "approveRequest", params: { requestId, scope: { kind: "until_revoked" } } }));
  await new Promise<void>((resolve, reject) =>
    control.on("message", (d: Buffer) => {
      const m = ControlReplySchema.parse(JSON.parse(d.toString()));
      if (m.type === "result" && m.id === 1) resolve();
      if (m.type === "error") reject(new Error(m.message));
    }),
  );
  control.close();
}

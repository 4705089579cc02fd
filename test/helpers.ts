/**
 * Test helpers: a real Link on port 0 with its own temporary directories and keychain profile, and
 * a real WebSocket agent client that queues what it receives so tests can wait for frames.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import WebSocket from "ws";
import { LinkMessageSchema, type LinkMessage } from "../src/shared/protocol.js";
import { AGENT_SUBPROTOCOL } from "../src/shared/version.js";
import { readLinkEnv, type LinkEnv } from "../src/main/core/runtime/env.js";
import { createKeychainStore, type KeychainStore } from "../src/main/core/runtime/keychain.js";
import { createLink, type Link, type LinkOptions } from "../src/main/core/link.js";
import type { LinkLimits } from "../src/main/core/loopback/limits.js";
import { createFileLogger } from "../src/main/core/runtime/logger.js";
import { resolveLinkPaths, type LinkPaths } from "../src/main/core/runtime/paths.js";

/**
 * The test person's passphrase and approval PIN. Every test Link is created and unlocked with them
 * the way the daemon does it (LinkOptions.unlock), and approvals carry the PIN as the window sends it
 * (`presence`): the real proof path, never a bypass.
 */
export const TEST_PASSPHRASE = "correct horse battery staple";
export const TEST_PIN = "482916";
export const TEST_PROOF = { method: "pin", pin: TEST_PIN } as const;
/** The test person's account password at a team authority (which checks approvals itself). */
export const TEST_ACCOUNT_PASSWORD = "team account password 1";
/** scrypt at its floor (N=2^14) for test vaults: the same code path, a quarter of a second less per Link. */
export const TEST_VAULT_KDF = { N: 2 ** 14, r: 8, p: 1 } as const;

/** The Link environment of this test process (a test is a composition root: it reads its own environment). */
export function testLinkEnv(): LinkEnv {
  return readLinkEnv(process.env);
}

export function uniqueProfile(): string {
  return `test-${randomBytes(6).toString("hex")}`;
}

export async function tempDir(prefix = "piper-link-"): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** Paths of a profile under a private temporary home, so tests never touch real files. */
export async function tempPaths(profile: string): Promise<{ home: string; paths: LinkPaths }> {
  const home = await tempDir();
  const env = {
    XDG_RUNTIME_DIR: path.join(home, "run"),
    XDG_DATA_HOME: path.join(home, "data"),
    XDG_STATE_HOME: path.join(home, "state"),
  };
  return { home, paths: resolveLinkPaths(profile, { platform: "linux", env, homedir: home }) };
}

export interface TestLink {
  link: Link;
  port: number;
  url: string;
  paths: LinkPaths;
  profile: string;
  keychain: KeychainStore;
  stop(): Promise<void>;
}

export async function startTestLink(
  options: { limits?: Partial<LinkLimits>; instanceId?: string } & Partial<LinkOptions> = {},
): Promise<TestLink> {
  const profile = options.profile ?? uniqueProfile();
  // A restart of an earlier test Link passes its paths (and keychain) back in.
  const { home, paths } = options.paths !== undefined ? { home: null, paths: options.paths } : await tempPaths(profile);
  const keychain = options.keychain ?? createKeychainStore({ profile, env: testLinkEnv() });
  if (options.instanceId !== undefined) await keychain.set("instance-id", options.instanceId);
  const logger = await createFileLogger(paths.logDir, "debug");
  const link = createLink({
    port: 0,
    unlock: { passphrase: TEST_PASSPHRASE, pin: TEST_PIN },
    vaultKdf: TEST_VAULT_KDF,
    env: testLinkEnv(),
    ...options,
    profile,
    paths,
    keychain,
    log: logger.log,
  });
  const status = await link.start();
  return {
    link,
    port: status.port,
    url: status.url,
    paths,
    profile,
    keychain,
    async stop() {
      await link.stop();
      await keychain.delete("instance-id").catch(() => false);
      if (home !== null) await fs.rm(home, { recursive: true, force: true });
    },
  };
}

/** A raw agent connection that records every frame it receives. */
export class TestAgent {
  readonly received: LinkMessage[] = [];
  private waiters: Array<() => void> = [];
  closeCode: number | null = null;
  closeReason = "";
  readonly closed: Promise<number>;

  constructor(readonly ws: WebSocket) {
    ws.on("message", (data: Buffer) => {
      this.received.push(LinkMessageSchema.parse(JSON.parse(data.toString("utf8"))));
      this.wake();
    });
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        this.wake();
        resolve(code);
      });
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** Waits for the first not-yet-taken frame that matches `pred`, and takes it. */
  async next(pred: (m: LinkMessage) => boolean = () => true, timeoutMs = 5000): Promise<LinkMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.received.findIndex(pred);
      if (i >= 0) return this.received.splice(i, 1)[0] as LinkMessage;
      if (this.closeCode !== null)
        throw new Error(`connection closed (${this.closeCode} ${this.closeReason}) before the expected frame`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.received)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async hello(id: string | number = 1, clientId = "agent_test"): Promise<LinkMessage> {
    this.send({
      type: "hello",
      id,
      protocol: 1,
      agent: { clientId, name: "Test Agent" },
      sdk: { name: "test", version: "0" },
    });
    return this.next((m) => "id" in m && m.id === id);
  }

  close(): void {
    this.ws.close(1000);
  }
}

export function connectAgent(url: string, options: WebSocket.ClientOptions = {}): Promise<TestAgent> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, AGENT_SUBPROTOCOL, options);
    const agent = new TestAgent(ws);
    ws.once("open", () => resolve(agent));
    ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once("error", reject);
  });
}

/** Resolves with the HTTP status of a refused upgrade (or rejects if it was accepted). */
export function upgradeStatus(
  url: string,
  options: WebSocket.ClientOptions = {},
  protocol = AGENT_SUBPROTOCOL,
): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocol, options);
    ws.once("open", () => {
      ws.close();
      reject(new Error("upgrade was accepted"));
    });
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    ws.once("error", (err) => reject(err));
  });
}

/** Waits until `check` returns true, polling; for state that changes outside our control (files, processes). */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The request ID of a `pending` agent frame or authority result; fails the test on anything else. */
export function pendingRequestId(m: LinkMessage | { status: string; requestId?: string }): string {
  const id =
    "type" in m ? (m.type === "pending" ? m.requestId : undefined) : m.status === "pending" ? m.requestId : undefined;
  if (id === undefined) throw new Error(`expected a pending answer, got ${JSON.stringify(m)}`);
  return id;
}

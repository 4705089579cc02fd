// Authority processes starting together on one fresh database: the schema migrations and the first
// start's row sealing run under a lock, so both processes come up, every round.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { describe, it } from "node:test";
import { newDataKey } from "../src/server/crypto.js";
import { AuthorityReadyLineSchema, parseAuthorityLine } from "../src/shared/authority-process.js";
import { BIN } from "./cli-helpers.js";
import { PG_SKIP, postgresDatabase, sqliteDatabase, type TestDatabase } from "./db-helpers.js";
import { tempDir } from "./helpers.js";

interface Started {
  /** The ready line, or null when the process ended first. */
  ready: string | null;
  stderr: string;
  stop(): Promise<void>;
}

/** One real `authority serve` on `db`; resolves at its ready line or its exit. */
function serve(db: string, tlsDir: string, keys: string): Promise<Started> {
  const child = spawn(
    process.execPath,
    [BIN, "authority", "serve", "--db", db, "--listen", "127.0.0.1:0", "--tls-dir", tlsDir],
    {
      env: { ...process.env, PIPER_AUTHORITY_DATA_KEYS: keys },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stdout = "";
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
  };
  return new Promise((resolve) => {
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      stdout += c;
      const at = stdout.indexOf("\n");
      if (at >= 0) resolve({ ready: stdout.slice(0, at), stderr, stop });
    });
    void exited.then(() =>
      resolve({
        ready: null,
        get stderr() {
          return stderr;
        },
        stop,
      }),
    );
  });
}

async function twoStarts(make: () => Promise<TestDatabase>, rounds: number): Promise<void> {
  const keys = `k1:${newDataKey()}`;
  const failures: string[] = [];
  for (let round = 0; round < rounds; round++) {
    const db = await make();
    const dir = await tempDir("piper-authority-tls-");
    try {
      const both = await Promise.all([
        serve(db.location, path.join(dir, "a"), keys),
        serve(db.location, path.join(dir, "b"), keys),
      ]);
      for (const s of both) {
        if (s.ready === null) failures.push(`round ${round}: ${s.stderr.trim()}`);
        else parseAuthorityLine(AuthorityReadyLineSchema, s.ready, "ready");
      }
      await Promise.all(both.map((s) => s.stop()));
    } finally {
      await db.drop();
    }
  }
  assert.deepEqual(failures, []);
}

describe("two authority processes start on one fresh database", () => {
  it("SQLite: both come up in each of 10 rounds", { timeout: 180_000 }, async () => {
    await twoStarts(sqliteDatabase, 10);
  });
  it("PostgreSQL: both come up in each of 5 rounds", { timeout: 180_000, skip: PG_SKIP }, async () => {
    await twoStarts(postgresDatabase, 5);
  });
});

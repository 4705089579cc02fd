/**
 * Database fixtures for authority tests: a fresh SQLite file, or a fresh PostgreSQL database on the
 * server named by PIPER_TEST_PG_URL. `npm test` always sets it (scripts/test-setup.mjs starts a
 * throwaway server when none is given), so under `npm test` the PostgreSQL cases never skip; run
 * directly (`node --test`) without the variable they are reported as skipped with the reason.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import fs from "node:fs/promises";
import pg from "pg";
import { tempDir } from "./helpers.js";

export const PG_URL = process.env["PIPER_TEST_PG_URL"] ?? null;
export const PG_SKIP =
  PG_URL === null ? "PIPER_TEST_PG_URL is not set (npm test starts a PostgreSQL and sets it)" : false;

export interface TestDatabase {
  location: string;
  drop(): Promise<void>;
}

export async function sqliteDatabase(): Promise<TestDatabase> {
  const dir = await tempDir("piper-authority-");
  return { location: path.join(dir, "authority.sqlite"), drop: () => fs.rm(dir, { recursive: true, force: true }) };
}

export async function postgresDatabase(): Promise<TestDatabase> {
  if (PG_URL === null) throw new Error(String(PG_SKIP));
  const name = `piper_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  return {
    location: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export const ENGINES: Array<{ name: string; make: () => Promise<TestDatabase>; skip: string | false }> = [
  { name: "sqlite", make: sqliteDatabase, skip: false },
  { name: "postgres", make: postgresDatabase, skip: PG_SKIP },
];

/**
 * The test runner itself (scripts/run-tests.mjs, scripts/test-setup.mjs): the throwaway PostgreSQL
 * writes its log to pipes the runner's outer process holds. That process once waited for the tests
 * with spawnSync, which stops it reading them: after about 64 KiB of log every PostgreSQL process
 * that wrote a line blocked, and a test hung 360 s in DROP DATABASE (its checkpoint never started).
 * This test makes the server log far more than a pipe holds and checks it still answers.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pg from "pg";
import { PG_SKIP, PG_URL } from "./db-helpers.js";

describe("the test run's PostgreSQL", { skip: PG_SKIP }, () => {
  it("keeps answering after writing far more log than a pipe holds (its log is read while the tests run)", async () => {
    const client = new pg.Client({ connectionString: PG_URL ?? "", statement_timeout: 30_000 });
    // A blocked server would leave the query waiting: fail in 30 s, not at the 6-minute test timeout.
    client.on("error", () => undefined);
    await client.connect();
    try {
      // 2,000 warnings of 200 bytes: about 500 KiB in the server log (WARNING is logged by default).
      await client.query(
        "DO $$ BEGIN FOR i IN 1..2000 LOOP RAISE WARNING 'piper test-runner log volume %', repeat('x', 200); END LOOP; END $$",
      );
      const { rows } = await client.query<{ ok: number }>("SELECT 1 AS ok");
      assert.equal(rows[0]?.ok, 1);
    } finally {
      await client.end();
    }
  });
});

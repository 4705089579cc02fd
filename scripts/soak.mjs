// `npm run test:soak`: the load and fault suite (soak/*.soak.ts), one file at a time so the
// figures are not disturbed by other tests, inside the same keyring session as the tests.
// SOAK_SECONDS sets the load duration (default 60).
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const files = readdirSync(path.join(root, "soak"))
  .filter((f) => f.endsWith(".soak.ts"))
  .sort()
  .map((f) => path.join("soak", f));
const r = spawnSync(
  process.execPath,
  [path.join(root, "scripts", "run-tests.mjs"), ...(process.argv.length > 2 ? process.argv.slice(2) : files)],
  {
    cwd: root,
    stdio: "inherit",
    env: { ...process.env, PIPER_TEST_CONCURRENCY: "1", PIPER_TEST_TIMEOUT_MS: "900000" },
  },
);
process.exit(r.status ?? 1);

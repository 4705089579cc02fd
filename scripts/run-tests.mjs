// Runs the unit and integration tests (node:test via tsx) inside a private D-Bus session with an
// unlocked gnome-keyring and a temporary HOME, so keychain tests use a real keyring and never the
// developer's own. Pass test files to run a subset: `npm run test:unit -- test/keychain.test.ts`.
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { ensurePostgres, ensureSystemParts } from "./test-setup.mjs";
import { mkdtempSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const args = process.argv.slice(2);

if (!process.env.PIPER_TEST_KEYRING) {
  ensureSystemParts();
  const postgres = await ensurePostgres();
  const home = mkdtempSync(path.join(os.tmpdir(), "piper-link-test-home-"));
  const runtime = path.join(home, "run");
  mkdirSync(runtime, { mode: 0o700 });
  const inner = `echo -n test-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null && exec "$0" "$@"`;
  // Not spawnSync: this process holds the throwaway PostgreSQL's stdout and stderr pipes, and a
  // blocked event loop stops reading them. Once a pipe's buffer is full, every PostgreSQL process
  // that logs blocks on its write: the checkpointer first, and with it each CREATE and DROP
  // DATABASE waiting for a checkpoint (seen on CI: a test hung 360 s in DROP DATABASE).
  const child = spawn("dbus-run-session", ["--", "sh", "-c", inner, process.execPath, import.meta.filename, ...args], {
    stdio: "inherit",
    env: {
      ...process.env,
      HOME: home,
      XDG_RUNTIME_DIR: runtime,
      XDG_DATA_HOME: path.join(home, "data"),
      XDG_STATE_HOME: path.join(home, "state"),
      PIPER_TEST_KEYRING: "1",
      PIPER_TEST_PG_URL: postgres.url,
    },
  });
  const [code] = await once(child, "exit");
  await postgres.stop();
  rmSync(home, { recursive: true, force: true });
  process.exit(code ?? 1);
}

function findTests(dir) {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return findTests(full);
    return name.endsWith(".test.ts") ? [full] : [];
  });
}

const files =
  args.length > 0 ? args : [...findTests(path.join(root, "test")), ...findTests(path.join(root, "e2e"))].sort();
// The soak suite measures the Link, so its files run one at a time and may take longer.
const concurrency = process.env.PIPER_TEST_CONCURRENCY ?? "2";
// Applies to each test and to each file as a whole (node --test runs a file as one test): the e2e
// file drives a real browser through every screen at two sizes, which takes minutes on 2 cores.
const timeout = process.env.PIPER_TEST_TIMEOUT_MS ?? "360000";
const r = spawnSync(
  process.execPath,
  [
    "--import",
    "tsx",
    "--test",
    "--test-reporter=spec",
    `--test-concurrency=${concurrency}`,
    `--test-timeout=${timeout}`,
    ...files,
  ],
  {
    cwd: root,
    stdio: "inherit",
  },
);
process.exit(r.status ?? 1);

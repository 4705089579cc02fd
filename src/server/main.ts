#!/usr/bin/env node
/**
 * The authority as its own process: `serve` (standalone, or the Link's embedded authority, which
 * prints one JSON line `{"url","fingerprint256"}` on stdout when it listens) and `create-user`
 * (prints a Link token, for scripts and tests that skip the browser sign-in). An operator's
 * authority takes its data keys from the environment (`PIPER_AUTHORITY_DATA_KEYS`,
 * `id:base64[,id:base64]`, first is current), never argv. The Link's embedded authority gets
 * `--keys-on-stdin` and reads its keys (`AuthorityKeysSchema`: data keys and the approval key) as one
 * JSON line from stdin, or from its parent port in an Electron utility process, so they are in
 * neither its argv nor its environment (both readable by every process of the user).
 * The heavy parts (HTTP framework, database drivers) are imported only when a command runs, so
 * `piper-link`'s other commands and the Link daemon do not load them.
 */
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import { Command, InvalidArgumentError, Option } from "commander";
import {
  AuthorityKeysSchema,
  parseAuthorityLine,
  type AuthorityReadyLine,
  type CreatedUserLine,
} from "../shared/authority-process.js";
import { LinkError } from "../shared/errors.js";
import { hardenProcess } from "../platform/harden.js";
import { parseDataKeys, type DataKeys } from "./crypto.js";
import { readAuthorityEnv, type AuthorityEnv } from "./env.js";

function parseListen(value: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(value);
  if (!m?.[1] || !m[2]) throw new InvalidArgumentError("use HOST:PORT, e.g. 127.0.0.1:8443");
  return { host: m[1].replace(/^\[|\]$/g, ""), port: Number(m[2]) };
}

/** How to give the data keys, for the errors below (one line each). */
const DATA_KEYS_HOW =
  "Set it to id:key pairs, each key 32 random bytes in base64 (the first encrypts new writes), e.g. `export PIPER_AUTHORITY_DATA_KEYS=k1:$(openssl rand -base64 32)`, and keep that key safe: without it the stored secrets cannot be read.";

/**
 * The data keys from `PIPER_AUTHORITY_DATA_KEYS`. Throws a `bad_request` LinkError (one line: what
 * to set and how to make a key) when it is missing or malformed, before anything is created.
 */
function dataKeysFromEnv(spec: string | null): ReturnType<typeof parseDataKeys> {
  if (!spec)
    throw new LinkError(
      "bad_request",
      `PIPER_AUTHORITY_DATA_KEYS is not set; the authority encrypts secrets with it. ${DATA_KEYS_HOW}`,
    );
  try {
    return parseDataKeys(spec);
  } catch (err) {
    throw new LinkError(
      "bad_request",
      `PIPER_AUTHORITY_DATA_KEYS is not valid: ${err instanceof Error ? err.message : String(err)} ${DATA_KEYS_HOW}`,
      { cause: err },
    );
  }
}

/**
 * Where `--keys-on-stdin` reads its one JSON line: stdin for a Node child (the default), the first
 * message on the parent port in an Electron utility process (`utility-entry.ts`).
 */
export type KeySource = () => Promise<string>;

/** The first line on stdin (up to a newline or the end of input); then stdin is let go. Rejects when stdin ends empty. */
export function stdinLine(): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = "";
    const done = (err: Error | null, line: string): void => {
      process.stdin.off("data", onData);
      process.stdin.off("end", onEnd);
      process.stdin.off("error", onError);
      process.stdin.destroy();
      if (err === null) resolve(line);
      else reject(err);
    };
    const onData = (chunk: string): void => {
      buffer += chunk;
      const at = buffer.indexOf("\n");
      if (at >= 0) done(null, buffer.slice(0, at));
    };
    const onEnd = (): void =>
      buffer.length > 0
        ? done(null, buffer)
        : done(new LinkError("bad_request", "--keys-on-stdin was given but stdin ended without the keys line."), "");
    const onError = (err: Error): void => done(err, "");
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", onData);
    process.stdin.once("end", onEnd);
    process.stdin.once("error", onError);
  });
}

/** The keys a command runs with: from the key source (`--keys-on-stdin`), else the environment (no approval key). */
interface CommandKeys {
  dataKeys: DataKeys;
  /** The `link-mac` presence key; null for an operator's authority, which takes account passwords instead. */
  approvalKey: Buffer | null;
  rotate: boolean;
  adoptUnsealed: boolean;
}

async function commandKeys(onStdin: boolean, source: KeySource, env: AuthorityEnv): Promise<CommandKeys> {
  if (!onStdin)
    return { dataKeys: dataKeysFromEnv(env.dataKeys), approvalKey: null, rotate: false, adoptUnsealed: true };
  const keys = parseAuthorityLine(AuthorityKeysSchema, await source(), "keys");
  return {
    dataKeys: parseDataKeys(keys.dataKeys),
    approvalKey: Buffer.from(keys.approvalKey, "base64url"),
    rotate: keys.rotate === true,
    adoptUnsealed: keys.adoptUnsealed !== false,
  };
}

export function authorityCommand(source: KeySource = stdinLine): Command {
  const cmd = new Command("authority").description(
    "run or administer a Piper authority (secrets, grants, requests, audit)",
  );
  cmd
    .command("serve")
    .description("serve the authority API")
    .requiredOption("--db <location>", "SQLite file path or postgres:// URL")
    .addOption(
      new Option("--listen <host:port>", "address to listen on")
        .argParser(parseListen)
        .default({ host: "127.0.0.1", port: 8443 }, "127.0.0.1:8443"),
    )
    .option("--tls-dir <dir>", "directory with tls.key/tls.crt (a self-signed pair is created there if missing)")
    .option("--tls-key <file>", "TLS private key (PEM)")
    .option("--tls-cert <file>", "TLS certificate (PEM)")
    .option(
      "--insecure-http-behind-proxy",
      "serve plain HTTP; only behind a TLS-terminating proxy (trusts X-Forwarded-For from a proxy on this machine unless --trust-proxy says otherwise)",
    )
    .option(
      "--trust-proxy <proxies>",
      "proxies whose X-Forwarded-For names the client: comma-separated addresses or CIDRs, or loopback (failed sign-ins are counted per client address)",
    )
    .option("--request-ttl <ms>", "how long pending requests wait for a decision", (v) => Number(v), 600_000)
    .option(
      "--agent-rate <perSecond>",
      "requests per second one agent may make (burst: twice that)",
      (v) => Number(v),
      30,
    )
    .option(
      "--keys-on-stdin",
      "read the keys as one JSON line on stdin instead of PIPER_AUTHORITY_DATA_KEYS (the Link's embedded authority; also turns on link-mac proofs of presence)",
    )
    .option(
      "--local-user-only",
      "serve only the user who runs this process, refusing other users' loopback connections (Linux; the Link's embedded authority uses it)",
    )
    .option(
      "--pyper-endpoints",
      "also serve pyper-sdk's endpoints (/pyper/...) directly. RISK: they take no account credential and see no program, so anyone who can reach this address and knows an instance ID and a client ID gets the value of every readable grant approved for any program of that client ID on that instance; grants bound to a program, a terminal session or a process, and use-only grants, are never served there. Prefer pointing pyper-sdk at the Link's loopback endpoints",
    )
    .action(
      async (o: {
        db: string;
        listen: { host: string; port: number };
        tlsDir?: string;
        tlsKey?: string;
        tlsCert?: string;
        insecureHttpBehindProxy?: boolean;
        trustProxy?: string;
        requestTtl: number;
        agentRate: number;
        pyperEndpoints?: boolean;
        localUserOnly?: boolean;
        keysOnStdin?: boolean;
      }) => {
        const env = readAuthorityEnv(process.env);
        // Before the data keys are read: no debugger, SIGUSR1 caught, memory closed to other processes.
        const hardening = await hardenProcess("authority", { env: process.env });
        if (hardening.notDumpable === false)
          process.stderr.write(
            `${JSON.stringify({ msg: "the process could not be made non-dumpable", reason: hardening.dumpableFailure })}\n`,
          );
        // Checked first: a missing key must not leave a TLS identity or a database behind.
        const keys = await commandKeys(o.keysOnStdin === true, source, env);
        if (!(o.tlsKey && o.tlsCert) && !o.tlsDir && !o.insecureHttpBehindProxy) {
          throw new LinkError(
            "bad_request",
            "Give --tls-dir or --tls-key/--tls-cert, or --insecure-http-behind-proxy when a TLS proxy is in front.",
          );
        }
        const { startAuthority } = await import("./authority.js");
        const { loadOrCreateTlsIdentity, fingerprintOf } = await import("./tls.js");
        let tls = null;
        if (o.tlsKey && o.tlsCert) {
          const cert = fs.readFileSync(o.tlsCert, "utf8");
          tls = { key: fs.readFileSync(o.tlsKey, "utf8"), cert, fingerprint256: fingerprintOf(cert) };
        } else if (o.tlsDir) tls = await loadOrCreateTlsIdentity(o.tlsDir);
        const authority = await startAuthority({
          db: o.db,
          sqliteBinding: env.sqliteBinding,
          dataKeys: keys.dataKeys,
          approvalKey: keys.approvalKey,
          rotate: keys.rotate,
          adoptUnsealed: keys.adoptUnsealed,
          host: o.listen.host,
          port: o.listen.port,
          tls,
          requestTtlMs: o.requestTtl,
          agentRate: { perSecond: o.agentRate, burst: o.agentRate * 2 },
          pyperEndpoints: o.pyperEndpoints === true,
          localUserOnly: o.localUserOnly === true,
          trustProxy: o.trustProxy ?? (o.insecureHttpBehindProxy === true ? "loopback" : null),
          log: (msg, fields) => process.stderr.write(`${JSON.stringify({ msg, ...fields })}\n`),
        });
        const ready: AuthorityReadyLine = {
          url: authority.url,
          fingerprint256: authority.fingerprint256,
          engine: authority.engine,
          ...(authority.rotated !== null ? { rotated: authority.rotated } : {}),
        };
        process.stdout.write(`${JSON.stringify(ready)}\n`);
        const stop = (): void => void authority.close().then(() => process.exit(0));
        process.once("SIGTERM", stop);
        process.once("SIGINT", stop);
        // The embedded authority ends with the Link that started it.
        const parent = env.parentPid;
        if (parent !== null) {
          setInterval(() => {
            try {
              process.kill(parent, 0);
            } catch {
              stop();
            }
          }, 1000).unref();
        }
      },
    );
  cmd
    .command("create-user")
    .description("create a user and print a Link token for it (JSON)")
    .requiredOption("--db <location>", "SQLite file path or postgres:// URL")
    .option("--name <name>", "display name", "Local user")
    .option("--keys-on-stdin", "read the keys as one JSON line on stdin instead of PIPER_AUTHORITY_DATA_KEYS")
    .option(
      "--email <email>",
      "the user's email, to sign in with and to prove presence: a team authority checks this account's password on every approval",
    )
    .option("--password-file <file>", "a file holding the user's password (with --email; never on the command line)")
    .action(async (o: { db: string; name: string; keysOnStdin?: boolean; email?: string; passwordFile?: string }) => {
      // As `serve`: hardened before the keys (and the password) are read; the Link writes the keys
      // to stdin only once this process's memory is closed.
      const env = readAuthorityEnv(process.env);
      const hardening = await hardenProcess("authority", { env: process.env });
      if (hardening.notDumpable === false)
        process.stderr.write(
          `${JSON.stringify({ msg: "the process could not be made non-dumpable", reason: hardening.dumpableFailure })}\n`,
        );
      if ((o.email === undefined) !== (o.passwordFile === undefined))
        throw new LinkError("bad_request", "Give --email and --password-file together.");
      const password =
        o.passwordFile === undefined ? null : fs.readFileSync(o.passwordFile, "utf8").replace(/\r?\n$/, "");
      if (password !== null && password.length < 8)
        throw new LinkError("bad_request", "The password must have at least 8 characters.");
      const given = await commandKeys(o.keysOnStdin === true, source, env);
      const keys = given.dataKeys;
      const [{ openDatabase }, { createLocalBus }, { createService }] = await Promise.all([
        import("./db.js"),
        import("./events.js"),
        import("./service/index.js"),
      ]);
      const opened = await openDatabase(o.db, undefined, env.sqliteBinding);
      try {
        const service = createService({ db: opened.db, keys, bus: createLocalBus() });
        await service.seal(given.adoptUnsealed);
        const created: CreatedUserLine = await service.createUser(o.name);
        if (o.email !== undefined && password !== null) {
          const { hashPassword } = await import("./oauth.js");
          await opened.db
            .updateTable("users")
            .set({ email: o.email.toLowerCase(), password_hash: await hashPassword(password) })
            .where("id", "=", created.userId)
            .execute();
        }
        process.stdout.write(`${JSON.stringify(created)}\n`);
      } finally {
        await opened.close();
      }
    });
  return cmd;
}

/** Runs `piper-authority <command> ...args` (the Link's embedded authority, as a child or utility process). */
export function runAuthority(args: string[], source: KeySource = stdinLine): void {
  const program = new Command("piper-authority").addCommand(authorityCommand(source));
  program.parseAsync(["node", "piper-authority", "authority", ...args]).catch((err: unknown) => {
    process.stderr.write(`piper-authority: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}

if (process.argv[1] !== undefined && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  runAuthority(process.argv.slice(2));
}

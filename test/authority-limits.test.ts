// Throttling on the authority (issue 16 items 13, 14, 16), against real databases and sockets:
// sign-in failures counted in the shared database (two authority services on one database stand
// for two processes), the address limit never refusing a correct password, device user-code entry
// limited per session, and guessing instance IDs or device codes from one source answered 429.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { z } from "zod";
import { startAuthority, type RunningAuthority } from "../src/server/authority.js";
import { newDataKey, parseDataKeys } from "../src/server/crypto.js";
import { openDatabase } from "../src/server/db.js";
import { clientSource } from "../src/server/client-source.js";
import { createOAuthService, DEVICE_LIMITS, SIGN_IN_LIMITS } from "../src/server/oauth.js";
import { ServiceError } from "../src/server/service/index.js";
import { Browser, csrfOf } from "./browser-helpers.js";
import { ENGINES, sqliteDatabase, type TestDatabase } from "./db-helpers.js";

async function rejectsWith(p: Promise<unknown>, status: number, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ServiceError, String(err));
    assert.deepEqual([err.status, err.code], [status, code]);
    return true;
  });
}

for (const engine of ENGINES) {
  describe(`sign-in throttling on ${engine.name} (shared by every authority process)`, { skip: engine.skip }, () => {
    it("slows one address's guessing at an account after 5 failures on any process, never the person elsewhere; the address limit never refuses a correct password", async () => {
      const db = await engine.make();
      // Two services with their own connections: what two authority processes on one database are.
      const one = await openDatabase(db.location);
      const two = await openDatabase(db.location);
      let clock = Date.now();
      const now = (): number => clock;
      const keys = parseDataKeys(`k1:${newDataKey()}`);
      try {
        const a = createOAuthService({ db: one.db, keys, now });
        const b = createOAuthService({ db: two.db, keys, now });
        const victimId = await a.signUp("victim@example.com", "correct horse battery", "Victim");
        const okId = await a.signUp("ok@example.com", "correct horse battery", "Ok");

        const guesser = "203.0.113.5";
        for (let i = 0; i < SIGN_IN_LIMITS.perAccountAddress; i++) {
          await rejectsWith(
            (i % 2 === 0 ? a : b).signIn("victim@example.com", `wrong-${i}`, guesser),
            401,
            "invalid_credentials",
          );
          clock += 1000;
        }
        // The other process refuses that address too, even the right password: refused before the
        // check, so the answer says nothing about the password (no oracle).
        await rejectsWith(b.signIn("Victim@Example.com", "correct horse battery", guesser), 429, "too_many_attempts");
        await rejectsWith(a.signIn("victim@example.com", "wrong-again", guesser), 429, "too_many_attempts");
        // The person, elsewhere, is not locked out by a stranger's guesses.
        assert.equal(await b.signIn("victim@example.com", "correct horse battery", "192.0.2.99"), victimId);
        // A minute after its last failure the guessing address gets one checked attempt, then waits again.
        clock += SIGN_IN_LIMITS.slowedIntervalMs;
        await rejectsWith(a.signIn("victim@example.com", "wrong-6", guesser), 401, "invalid_credentials");
        await rejectsWith(b.signIn("victim@example.com", "wrong-7", guesser), 429, "too_many_attempts");
        // Someone who mistyped 5 times from their own address waits a minute, not 15, for the right one.
        clock += SIGN_IN_LIMITS.slowedIntervalMs;
        assert.equal(await b.signIn("victim@example.com", "correct horse battery", guesser), victimId);
        // ...which clears that address's count for the account.
        await rejectsWith(a.signIn("victim@example.com", "wrong-8", guesser), 401, "invalid_credentials");
        await rejectsWith(a.signIn("victim@example.com", "wrong-9", guesser), 401, "invalid_credentials");

        // One address spraying other accounts (4 each, under the account limit) reaches the address limit...
        const spray = "198.51.100.7";
        let answered429 = 0;
        for (let i = 0; i < SIGN_IN_LIMITS.perAddress; i++) {
          await assert.rejects(
            (i % 2 === 0 ? a : b).signIn(`user${i % 5}@example.com`, "wrong", spray),
            (err: unknown) => {
              assert.ok(err instanceof ServiceError);
              if (err.status === 429) answered429 += 1;
              return true;
            },
          );
        }
        assert.equal(answered429, 1, "the failure that reaches the limit is answered 429");
        await rejectsWith(a.signIn("fresh@example.com", "wrong", spray), 429, "too_many_attempts");
        // ...but a correct password from that address still signs in, on either process.
        assert.equal(await b.signIn("ok@example.com", "correct horse battery", spray), okId);
        assert.equal(await a.signIn("ok@example.com", "correct horse battery", spray), okId);
      } finally {
        await one.close();
        await two.close();
        await db.drop();
      }
    });

    it("parallel attempts see each other: a burst after the wait gets at most one checked attempt", async () => {
      const db = await engine.make();
      const opened = await openDatabase(db.location);
      let clock = Date.now();
      try {
        const a = createOAuthService({ db: opened.db, keys: parseDataKeys(`k1:${newDataKey()}`), now: () => clock });
        await a.signUp("burst@example.com", "correct horse battery", "Burst");
        for (let i = 0; i < SIGN_IN_LIMITS.perAccountAddress; i++)
          await rejectsWith(a.signIn("burst@example.com", `wrong-${i}`, "203.0.113.9"), 401, "invalid_credentials");
        clock += SIGN_IN_LIMITS.slowedIntervalMs + 1000;
        // 40 at once, the right password among them: whichever are checked, at most one may be.
        const outcomes = await Promise.allSettled(
          Array.from({ length: 40 }, (_, i) =>
            a.signIn("burst@example.com", i === 20 ? "correct horse battery" : `guess-${i}`, "203.0.113.9"),
          ),
        );
        const checked = outcomes.filter(
          (o) => o.status === "fulfilled" || (o.reason instanceof ServiceError && o.reason.status === 401),
        ).length;
        assert.ok(checked <= 1, `${checked} of 40 parallel attempts were checked`);
        const refused = outcomes.filter(
          (o) => o.status === "rejected" && o.reason instanceof ServiceError && o.reason.code === "too_many_attempts",
        ).length;
        assert.equal(refused, 40 - checked);
      } finally {
        await opened.close();
        await db.drop();
      }
    });

    it("guessing spread over many addresses slows each address after its first failure, while a clean address is still checked; IPv6 counts per /64", async () => {
      const db = await engine.make();
      const opened = await openDatabase(db.location);
      const clock = Date.now();
      try {
        const a = createOAuthService({ db: opened.db, keys: parseDataKeys(`k1:${newDataKey()}`), now: () => clock });
        const id = await a.signUp("team@example.com", "correct horse battery", "Team");
        // 30 failures from 11 addresses, 3 each at most (under the per-address allowance of 5).
        for (let i = 0; i < SIGN_IN_LIMITS.perAccount; i++)
          await rejectsWith(
            a.signIn("team@example.com", `wrong-${i}`, `198.51.100.${i % 11}`),
            401,
            "invalid_credentials",
          );
        // Now an address that failed once waits a minute, even with the right password (no oracle)...
        await rejectsWith(
          a.signIn("team@example.com", "correct horse battery", "198.51.100.3"),
          429,
          "too_many_attempts",
        );
        // ...a fresh address is checked once, then waits too...
        await rejectsWith(a.signIn("team@example.com", "wrong-fresh", "198.51.100.200"), 401, "invalid_credentials");
        await rejectsWith(a.signIn("team@example.com", "wrong-fresh-2", "198.51.100.200"), 429, "too_many_attempts");
        // ...and the person, from their own clean address, signs in.
        assert.equal(await a.signIn("team@example.com", "correct horse battery", "192.0.2.50"), id);

        // IPv6: every address of one /64 is one source.
        await a.signUp("six@example.com", "correct horse battery", "Six");
        for (let i = 1; i <= SIGN_IN_LIMITS.perAccountAddress; i++)
          await rejectsWith(
            a.signIn("six@example.com", "wrong", `2001:db8:0:7::${i.toString(16)}`),
            401,
            "invalid_credentials",
          );
        await rejectsWith(a.signIn("six@example.com", "wrong", "2001:db8:0:7:ffff:1:2:3"), 429, "too_many_attempts");
        await rejectsWith(a.signIn("six@example.com", "wrong", "2001:db8:0:8::1"), 401, "invalid_credentials");
      } finally {
        await opened.close();
        await db.drop();
      }
    });
  });
}

for (const engine of ENGINES) {
  describe(`device code entry throttling on ${engine.name}`, { skip: engine.skip }, () => {
    it("20 wrong codes from one address slow the accounts that entered them, never the person sharing the address (RFC 8628 section 5.1)", async () => {
      const db = await engine.make();
      const one = await openDatabase(db.location);
      const two = await openDatabase(db.location);
      let clock = Date.now();
      const now = (): number => clock;
      const keys = parseDataKeys(`k1:${newDataKey()}`);
      try {
        const a = createOAuthService({ db: one.db, keys, now });
        const b = createOAuthService({ db: two.db, keys, now });
        const nat = "203.0.113.9";
        const guessers = [
          await a.signUp("g1@example.com", "correct horse battery", "G1"),
          await a.signUp("g2@example.com", "correct horse battery", "G2"),
        ];
        const person = await a.signUp("person@example.com", "correct horse battery", "Person");
        const wrongCode = (i: number): string => `ZZZZ-${"BCDFGHJKLMNPQRSTVWXZ"[i % 20] ?? "B"}ZZZ`;
        let entered = 0;
        for (const [g, guesser] of guessers.entries()) {
          for (let n = 0; n < DEVICE_LIMITS.perAccount; n++) {
            const session = `pws_guesser_${g}_${Math.floor(n / DEVICE_LIMITS.perSession)}`;
            await rejectsWith(
              (n % 2 === 0 ? a : b).approveDevice(guesser, wrongCode(entered++), { session, address: nat }),
              400,
              "invalid_user_code",
            );
            clock += 1000;
          }
        }
        assert.equal(entered, DEVICE_LIMITS.perAddress);
        const [first] = guessers;
        assert.ok(first !== undefined);
        // The guessers are slowed: refused before the code is looked at (no oracle), on either process.
        await rejectsWith(
          b.approveDevice(first, wrongCode(0), { session: "pws_guesser_new", address: nat }),
          429,
          "too_many_attempts",
        );
        // The person behind the same address enters the code their terminal shows, and it connects.
        const d = await a.deviceAuthorization("piper-link");
        await b.approveDevice(person, d.user_code, { session: "pws_person", address: nat });
        // A person who mistypes from that address is slowed to one code a minute, not locked out.
        const d2 = await a.deviceAuthorization("piper-link");
        await rejectsWith(
          a.approveDevice(person, wrongCode(3), { session: "pws_person", address: nat }),
          400,
          "invalid_user_code",
        );
        await rejectsWith(
          a.approveDevice(person, d2.user_code, { session: "pws_person", address: nat }),
          429,
          "too_many_attempts",
        );
        clock += DEVICE_LIMITS.slowedIntervalMs;
        await b.approveDevice(person, d2.user_code, { session: "pws_person", address: nat });
        // A guesser gets one checked entry a minute, then waits again.
        await rejectsWith(
          a.approveDevice(first, wrongCode(5), { session: "pws_guesser_new", address: nat }),
          400,
          "invalid_user_code",
        );
        await rejectsWith(
          b.approveDevice(first, wrongCode(6), { session: "pws_guesser_new", address: nat }),
          429,
          "too_many_attempts",
        );
      } finally {
        await one.close();
        await two.close();
        await db.drop();
      }
    });
  });
}

describe("client sources for throttling", () => {
  it("an IPv4 address as it is, an IPv6 address as its /64, an IPv4-mapped one as IPv4", () => {
    assert.equal(clientSource("192.0.2.7"), "192.0.2.7");
    assert.equal(clientSource("2001:db8:0:7:ffff:1:2:3"), "2001:db8:0:7::/64");
    assert.equal(clientSource("2001:db8::1"), "2001:db8:0:0::/64");
    assert.equal(clientSource("::ffff:192.0.2.7"), "192.0.2.7");
    assert.equal(clientSource("::1"), "0:0:0:0::/64");
    assert.equal(clientSource("not-an-address"), "not-an-address");
  });
});

describe("limits on a running authority (HTTP)", () => {
  let db: TestDatabase;
  let authority: RunningAuthority;
  before(async () => {
    db = await sqliteDatabase();
    authority = await startAuthority({
      db: db.location,
      dataKeys: parseDataKeys(`k1:${newDataKey()}`),
      host: "127.0.0.1",
      port: 0,
      tls: null,
    });
  });
  after(async () => {
    await authority.close();
    await db.drop();
  });

  it("device code entry: 5 wrong codes in a session, then 429 with a clear page, even for the right code (RFC 8628 section 5.1)", async () => {
    const link = new Browser(authority.url);
    const d = await link.post("/oauth/device_authorization", { client_id: "piper-link" });
    const userCode = String(d.json["user_code"]);
    const person = new Browser(authority.url);
    const signup = await person.get("/signup");
    assert.equal(
      (
        await person.post("/signup", {
          csrf: csrfOf(signup.text),
          next: "/device",
          name: "Pat",
          email: "device-limit@example.com",
          password: "correct horse battery",
        })
      ).status,
      303,
    );
    const page = await person.get("/device");
    const csrf = csrfOf(page.text);
    for (let i = 0; i < 5; i++) {
      const wrong = await person.post("/device", { csrf, user_code: `ZZZZ-ZZZ${"BCDFG"[i] ?? "B"}` });
      assert.equal(wrong.status, 400, wrong.text);
    }
    const limited = await person.post("/device", { csrf, user_code: userCode });
    assert.equal(limited.status, 429);
    assert.match(limited.text, /Too many wrong codes were entered from this account\. One code a minute is allowed/);
    // The Link is still waiting: the guessed-at session connected nothing.
    const poll = await link.post("/oauth/token", {
      client_id: "piper-link",
      grant_type: "urn:ietf:params:oauth:grant-type:device_code",
      device_code: String(d.json["device_code"]),
    });
    assert.equal(poll.json["error"], "authorization_pending");
  });

  it("behind a trusted proxy, failed sign-ins count per forwarded client: a guesser's failures do not slow the person", async () => {
    const proxiedDb = await sqliteDatabase();
    const proxied = await startAuthority({
      db: proxiedDb.location,
      dataKeys: parseDataKeys(`k1:${newDataKey()}`),
      host: "127.0.0.1",
      port: 0,
      tls: null,
      trustProxy: "loopback",
    });
    try {
      const via = (client: string): Browser => {
        const b = new Browser(proxied.url);
        b.headers["X-Forwarded-For"] = client;
        return b;
      };
      const person = via("192.0.2.10");
      const signup = await person.get("/signup");
      assert.equal(
        (
          await person.post("/signup", {
            csrf: csrfOf(signup.text),
            next: "/device",
            name: "Pro",
            email: "proxied@example.com",
            password: "correct horse battery",
          })
        ).status,
        303,
      );
      const guesser = via("198.51.100.66");
      const csrf = csrfOf((await guesser.get("/login")).text);
      for (let i = 0; i < SIGN_IN_LIMITS.perAccountAddress; i++)
        assert.equal(
          (
            await guesser.post("/login", {
              csrf,
              next: "/device",
              email: "proxied@example.com",
              password: `wrong-${i}`,
            })
          ).status,
          401,
        );
      assert.equal(
        (
          await guesser.post("/login", {
            csrf,
            next: "/device",
            email: "proxied@example.com",
            password: "correct horse battery",
          })
        ).status,
        429,
      );
      // The person comes through the same proxy (the same socket address) from another client address.
      const again = via("192.0.2.10");
      const page = await again.get("/login");
      assert.equal(
        (
          await again.post("/login", {
            csrf: csrfOf(page.text),
            next: "/device",
            email: "proxied@example.com",
            password: "correct horse battery",
          })
        ).status,
        303,
      );
    } finally {
      await proxied.close();
      await proxiedDb.drop();
    }
  });

  /** Sends `n` POSTs with 50 in flight from `localAddress` (a loopback alias); returns the status counts. */
  async function guess(
    n: number,
    localAddress: string,
    path: string,
    body: () => { type: "json" | "form"; text: string },
  ): Promise<Map<number, number>> {
    const dispatcher = new Agent({ localAddress, connections: 50 });
    const counts = new Map<number, number>();
    let next = 0;
    try {
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          while (next < n) {
            next += 1;
            const b = body();
            const r = await request(new URL(path, authority.url), {
              method: "POST",
              dispatcher,
              headers: { "content-type": b.type === "json" ? "application/json" : "application/x-www-form-urlencoded" },
              body: b.text,
            });
            await r.body.dump();
            counts.set(r.statusCode, (counts.get(r.statusCode) ?? 0) + 1);
          }
        }),
      );
    } finally {
      await dispatcher.close();
    }
    return counts;
  }

  it("3,000 guesses of instance IDs and device codes from one source hit 429; other sources are not affected", async () => {
    const instances = await guess(1500, "127.0.0.2", "/v1/agent/resolve", () => ({
      type: "json",
      text: JSON.stringify({
        instanceId: `inst_${randomBytes(16).toString("base64url")}`,
        agentClientId: `agent_${randomBytes(4).toString("hex")}`,
        variable: "OPENAI_API_KEY",
      }),
    }));
    const codes = await guess(1500, "127.0.0.3", "/oauth/token", () => ({
      type: "form",
      text: new URLSearchParams({
        client_id: "piper-link",
        grant_type: "urn:ietf:params:oauth:grant-type:device_code",
        device_code: `pdc_${randomBytes(32).toString("base64url")}`,
      }).toString(),
    }));
    console.log(
      "instance-ID guesses by status:",
      Object.fromEntries(instances),
      "device-code guesses by status:",
      Object.fromEntries(codes),
    );
    // Without the source limit every guess got a fresh per-agent bucket: all 1,500 were 401.
    assert.ok((instances.get(429) ?? 0) > 1000, "most instance-ID guesses are refused with 429");
    assert.ok((codes.get(429) ?? 0) > 1000, "most device-code guesses are refused with 429");
    // Another source still gets real answers.
    const other = await request(new URL("/v1/agent/resolve", authority.url), {
      method: "POST",
      dispatcher: new Agent({ localAddress: "127.0.0.4" }),
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ instanceId: "inst_unknown", agentClientId: "a", variable: "X" }),
    });
    assert.equal(other.statusCode, 401);
    // The agent API needs the Link's credential (issue 13 item 3): without one the real answer is invalid_token.
    assert.equal(z.object({ error: z.string() }).parse(await other.body.json()).error, "invalid_token");
  });
});

// Passkeys as a proof of presence: the Link's passkey module against real Chromium, whose virtual
// authenticator (CDP `WebAuthn` domain) answers `navigator.credentials.create/get` on a real page
// served over HTTP on localhost. The page hands the browser's answer back to the test (Playwright's
// evaluate), which gives it to the module as the control API would.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import type { Browser, CDPSession, Page } from "playwright-core";
import WebSocket from "ws";
import { LinkError } from "../src/shared/errors.js";
import {
  PASSKEY_CHALLENGE_TTL_MS,
  passkeyOrigin,
  StoredPasskeysSchema,
  type StoredPasskey,
} from "../src/shared/passkeys.js";
import { presenceAction } from "../src/shared/presence.js";
import { CONTROL_SUBPROTOCOL } from "../src/shared/version.js";
import { uiContentSecurityPolicy } from "../src/main/core/loopback/ui-assets.js";
import { openPasskeyStepInBrowser, passkeyStepAddress } from "../src/main/app/shell-policy.js";
import { ControlServerMessageSchema, type ControlServerMessage } from "../src/shared/control.js";
import {
  createPasskeys,
  PASSKEY_CHALLENGES_MAX_OUTSTANDING,
  type Passkeys,
} from "../src/main/core/presence/passkeys.js";
import { CHROMIUM_SKIP, launchChromium } from "./chromium.js";
import { startTestLink, type TestLink } from "./helpers.js";

/** A real page for the browser to stand on: any path answers a tiny HTML document. */
async function pageServer(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res
      .writeHead(200, { "Content-Type": "text/html; charset=utf-8" })
      .end("<!doctype html><title>Piper Link passkey test</title><p>passkey test page</p>");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** `navigator.credentials.create` with the module's options JSON, in the page; the answer's `toJSON()`. */
async function browserCreate(page: Page, options: unknown, downgradeUv = false): Promise<unknown> {
  const json = await page.evaluate(
    async ([o, downgrade]) => {
      const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(o as PublicKeyCredentialCreationOptionsJSON);
      if (downgrade)
        publicKey.authenticatorSelection = {
          ...publicKey.authenticatorSelection,
          userVerification: "discouraged",
          residentKey: "discouraged",
        };
      const credential = await navigator.credentials.create({ publicKey });
      if (!(credential instanceof PublicKeyCredential)) throw new Error("no public key credential");
      return JSON.stringify(credential.toJSON());
    },
    [options, downgradeUv] as const,
  );
  return JSON.parse(json) as unknown;
}

/** `navigator.credentials.get` with the module's options JSON, in the page; the answer's `toJSON()`. */
async function browserGet(page: Page, options: unknown, downgradeUv = false): Promise<unknown> {
  const json = await page.evaluate(
    async ([o, downgrade]) => {
      const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(o as PublicKeyCredentialRequestOptionsJSON);
      // What a hostile or broken page could do: ask the authenticator not to verify the person.
      if (downgrade) publicKey.userVerification = "discouraged";
      const credential = await navigator.credentials.get({ publicKey });
      if (!(credential instanceof PublicKeyCredential)) throw new Error("no public key credential");
      return JSON.stringify(credential.toJSON());
    },
    [options, downgradeUv] as const,
  );
  return JSON.parse(json) as unknown;
}

async function refusedWith(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof LinkError, String(err));
    assert.equal(err.code, "presence_failed");
    assert.match(err.message, pattern);
    return true;
  });
}

const APPROVE_A = presenceAction("approveRequest", { requestId: "req_a", binding: "program", lifetime: "12h" });
const APPROVE_B = presenceAction("approveRequest", { requestId: "req_b", binding: "program", lifetime: "12h" });

describe("passkeys as a proof of presence (real Chromium, virtual authenticator)", { skip: CHROMIUM_SKIP }, () => {
  let browser: Browser;
  let page: Page;
  let cdp: CDPSession;
  let authenticatorId: string;
  let link: Awaited<ReturnType<typeof pageServer>>;
  let elsewhere: Awaited<ReturnType<typeof pageServer>>;
  let clock = Date.parse("2030-01-01T00:00:00Z");
  let stored: StoredPasskey[] = [];
  let saves = 0;
  let passkeys: Passkeys;
  let registered: StoredPasskey;

  before(async () => {
    link = await pageServer();
    elsewhere = await pageServer();
    passkeys = createPasskeys({
      origin: () => passkeyOrigin(link.port),
      now: () => clock,
      load: () => Promise.resolve(StoredPasskeysSchema.parse(JSON.parse(JSON.stringify(stored)))),
      save: (list) => {
        // Round-trips through JSON as the vault keeps it.
        stored = StoredPasskeysSchema.parse(JSON.parse(JSON.stringify(list)));
        saves++;
        return Promise.resolve();
      },
    });
    browser = await launchChromium();
    page = await (await browser.newContext()).newPage();
    cdp = await page.context().newCDPSession(page);
    await cdp.send("WebAuthn.enable", { enableUI: false });
    ({ authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: {
        protocol: "ctap2",
        transport: "internal",
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    }));
    await page.goto(`${passkeyOrigin(link.port)}/ui/`);
    const { challengeId, options } = await passkeys.registrationOptions();
    registered = await passkeys.register(challengeId, await browserCreate(page, options), "Test laptop");
  });

  after(async () => {
    await browser.close();
    await link.close();
    await elsewhere.close();
  });

  it("registers a user-verified passkey for RP localhost and keeps it as the vault's JSON", async () => {
    assert.equal(registered.name, "Test laptop");
    assert.equal(registered.createdAt, new Date(clock).toISOString());
    assert.deepEqual(stored, [registered]);
    assert.ok(registered.transports.includes("internal"), JSON.stringify(registered.transports));
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
    assert.equal(credentials.length, 1);
    const [credential] = credentials;
    assert.ok(credential);
    assert.equal(credential.rpId, "localhost");
    assert.equal(Buffer.from(credential.credentialId, "base64").toString("base64url"), registered.id);

    // The next registration's options exclude it, so the same authenticator is not registered twice.
    const again = await passkeys.registrationOptions();
    assert.equal(again.options.rp.id, "localhost");
    assert.equal(again.options.authenticatorSelection?.userVerification, "required");
    assert.deepEqual(
      again.options.excludeCredentials?.map((c) => c.id),
      [registered.id],
    );
    await assert.rejects(browserCreate(page, again.options), /InvalidStateError|excluded|already/i);
  });

  it("verifies an assertion for the action it was asked for, and saves the counter", async () => {
    const before = stored[0]?.counter ?? -1;
    const { challengeId, expiresAt, options } = await passkeys.challenge(APPROVE_A);
    assert.equal(Date.parse(expiresAt), clock + PASSKEY_CHALLENGE_TTL_MS);
    assert.equal(options.userVerification, "required");
    assert.deepEqual(
      options.allowCredentials?.map((c) => c.id),
      [registered.id],
    );
    const used = await passkeys.verify(challengeId, APPROVE_A, await browserGet(page, options));
    assert.equal(used.id, registered.id);
    assert.ok(used.counter > before, `counter ${before} -> ${used.counter}`);
    assert.equal(stored[0]?.counter, used.counter, "the new counter was saved");
  });

  it("refuses an assertion for action A given for action B, in either way it could be tried", async () => {
    const forA = await passkeys.challenge(APPROVE_A);
    const answerA = await browserGet(page, forA.options);
    // A's challenge, presented as B's proof.
    await refusedWith(passkeys.verify(forA.challengeId, APPROVE_B, answerA), /another action/);
    // …and the attempt spent A's challenge.
    await refusedWith(passkeys.verify(forA.challengeId, APPROVE_A, answerA), /unknown or was already used/);
    // A captured answer for A, replayed under a fresh challenge for B: the signature covers A's challenge.
    const forB = await passkeys.challenge(APPROVE_B);
    await refusedWith(passkeys.verify(forB.challengeId, APPROVE_B, answerA), /another challenge/);
  });

  it("binds each challenge to its action: two challenges for one action differ, and none repeats", async () => {
    const one = await passkeys.challenge(APPROVE_A);
    const two = await passkeys.challenge(APPROVE_A);
    assert.notEqual(one.options.challenge, two.options.challenge);
    assert.notEqual(one.challengeId, two.challengeId);
    assert.match(one.options.challenge, /^[A-Za-z0-9_-]{43}$/, "a SHA-256 digest, base64url");
  });

  it("accepts a challenge once: the same good answer a second time is refused", async () => {
    const { challengeId, options } = await passkeys.challenge(APPROVE_A);
    const answer = await browserGet(page, options);
    await passkeys.verify(challengeId, APPROVE_A, answer);
    await refusedWith(passkeys.verify(challengeId, APPROVE_A, answer), /unknown or was already used/);
  });

  it("refuses an authenticator that did not verify the person", async () => {
    await cdp.send("WebAuthn.setUserVerified", { authenticatorId, isUserVerified: false });
    try {
      // Asked as the Link asks (userVerification "required"), Chromium itself gives no answer…
      const asked = await passkeys.challenge(APPROVE_A);
      await assert.rejects(browserGet(page, asked.options), /NotAllowedError|not allowed/i);
      // …and when a page asks the authenticator not to verify, the answer (UV flag clear) is refused.
      const downgraded = await passkeys.challenge(APPROVE_A);
      const answer = await browserGet(page, downgraded.options, true);
      await refusedWith(passkeys.verify(downgraded.challengeId, APPROVE_A, answer), /did not verify you/);
    } finally {
      await cdp.send("WebAuthn.setUserVerified", { authenticatorId, isUserVerified: true });
    }

    // A registration from a security key that cannot verify anyone is refused the same way (its own tab, its own authenticator).
    const keyContext = await browser.newContext();
    const keyPage = await keyContext.newPage();
    const keyCdp = await keyContext.newCDPSession(keyPage);
    await keyCdp.send("WebAuthn.enable", { enableUI: false });
    await keyCdp.send("WebAuthn.addVirtualAuthenticator", {
      options: {
        protocol: "ctap2",
        transport: "usb",
        hasResidentKey: true,
        hasUserVerification: false,
        automaticPresenceSimulation: true,
      },
    });
    await keyPage.goto(`${passkeyOrigin(link.port)}/ui/`);
    const reg = await passkeys.registrationOptions();
    const unverified = await browserCreate(keyPage, reg.options, true);
    await refusedWith(passkeys.register(reg.challengeId, unverified, "No UV key"), /did not verify you/);
    assert.deepEqual(
      stored.map((p) => p.id),
      [registered.id],
      "nothing was registered",
    );
    await keyContext.close();
  });

  it("refuses an answer made on another page: another localhost port, or 127.0.0.1 where Chromium refuses the RP ID", async () => {
    // Any page on localhost may use RP ID localhost, so the browser answers; the origin gives it away.
    await page.goto(`http://localhost:${elsewhere.port}/`);
    const other = await passkeys.challenge(APPROVE_A);
    const answer = await browserGet(page, other.options);
    await refusedWith(passkeys.verify(other.challengeId, APPROVE_A, answer), /another page.*http:\/\/localhost:\d+/);

    // On 127.0.0.1 Chromium refuses "localhost" as the RP ID: why the passkey step runs on localhost.
    await page.goto(`http://127.0.0.1:${link.port}/ui/`);
    const ip = await passkeys.challenge(APPROVE_A);
    await assert.rejects(browserGet(page, ip.options), /SecurityError|invalid domain|not a valid|relying party/i);

    // Back on the Link's own page the same passkey works.
    await page.goto(`${passkeyOrigin(link.port)}/ui/`);
    const own = await passkeys.challenge(APPROVE_A);
    await passkeys.verify(own.challengeId, APPROVE_A, await browserGet(page, own.options));
  });

  it("refuses a challenge answered after it expired (2 minutes)", async () => {
    const { challengeId, options } = await passkeys.challenge(APPROVE_A);
    const answer = await browserGet(page, options);
    clock += PASSKEY_CHALLENGE_TTL_MS;
    await refusedWith(passkeys.verify(challengeId, APPROVE_A, answer), /expired/);
    // One millisecond short of it is still in time.
    const fresh = await passkeys.challenge(APPROVE_A);
    const inTime = await browserGet(page, fresh.options);
    clock += PASSKEY_CHALLENGE_TTL_MS - 1;
    await passkeys.verify(fresh.challengeId, APPROVE_A, inTime);
  });

  it("refuses garbage, unknown challenges and a passkey it does not know; keeps only so many challenges", async () => {
    const { challengeId, options } = await passkeys.challenge(APPROVE_A);
    await refusedWith(passkeys.verify(challengeId, APPROVE_A, { id: "x" }), /not a browser's answer/);
    await refusedWith(passkeys.verify("no-such-challenge", APPROVE_A, {}), /unknown or was already used/);
    // A registration challenge is no proof challenge.
    const reg = await passkeys.registrationOptions();
    const answer = await browserGet(page, options);
    await refusedWith(passkeys.verify(reg.challengeId, APPROVE_A, answer), /unknown or was already used/);

    const savesBefore = saves;
    await passkeys.remove(registered.id);
    assert.equal(saves, savesBefore + 1);
    await refusedWith(passkeys.challenge(APPROVE_A), /No passkey is registered/);
    stored = [registered];
    const fresh = await passkeys.challenge(APPROVE_A);
    const good = await browserGet(page, fresh.options);
    stored = [];
    await refusedWith(passkeys.verify(fresh.challengeId, APPROVE_A, good), /not registered/);
    stored = [registered];

    const first = await passkeys.challenge(APPROVE_A);
    for (let i = 0; i < PASSKEY_CHALLENGES_MAX_OUTSTANDING; i++) await passkeys.challenge(APPROVE_A);
    await refusedWith(passkeys.verify(first.challengeId, APPROVE_A, good), /unknown or was already used/);
  });
});

/** Trades a UI code on the control channel as the Link's page at `origin` would; the first answer. */
async function redeemAsPage(port: number, origin: string, code: string): Promise<ControlServerMessage> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/control`, CONTROL_SUBPROTOCOL, {
    headers: { Host: new URL(origin).host, Origin: origin },
  });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  const reply = new Promise<ControlServerMessage>((resolve) =>
    ws.once("message", (data) =>
      resolve(ControlServerMessageSchema.parse(JSON.parse(Buffer.isBuffer(data) ? data.toString("utf8") : "null"))),
    ),
  );
  ws.send(JSON.stringify({ type: "auth", code }));
  const first = await reply;
  ws.close(1000);
  return first;
}

/** Opens the control channel with these headers; "open" when the Link accepted the upgrade, else the HTTP status. */
function controlUpgrade(port: number, headers: Record<string, string>): Promise<"open" | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/control`, CONTROL_SUBPROTOCOL, { headers });
    ws.once("open", () => {
      ws.close();
      resolve("open");
    });
    ws.once("unexpected-response", (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    ws.once("error", reject);
  });
}

describe("the Link's own page at http://localhost:PORT (where passkeys work)", () => {
  let t: TestLink;
  before(async () => {
    t = await startTestLink();
  });
  after(async () => {
    await t.stop();
  });

  it("accepts the control channel from its page at localhost as from 127.0.0.1, and no other port's", async () => {
    for (const host of ["127.0.0.1", "localhost"]) {
      assert.equal(
        await controlUpgrade(t.port, { Host: `${host}:${t.port}`, Origin: `http://${host}:${t.port}` }),
        "open",
        host,
      );
    }
    assert.equal(
      await controlUpgrade(t.port, { Host: `localhost:${t.port}`, Origin: `http://localhost:${t.port + 1}` }),
      403,
    );
    assert.equal(
      await controlUpgrade(t.port, { Host: `localhost:${t.port}`, Origin: `https://localhost:${t.port}` }),
      403,
    );
    assert.match(uiContentSecurityPolicy(t.port), new RegExp(`connect-src [^;]*ws://localhost:${t.port}`));
  });

  it("the Electron shell hands the passkey step to the system browser at localhost with a single-use code (shell.openExternal is a double: no Electron binary here)", async () => {
    const opened: string[] = [];
    const url = await openPasskeyStepInBrowser({
      port: t.port,
      api: t.link.api,
      openExternal: (u) => (opened.push(u), Promise.resolve()),
    });
    assert.deepEqual(opened, [url]);
    const code = /^http:\/\/localhost:(\d+)\/ui\/#code=([A-Za-z0-9_-]+)$/.exec(url);
    assert.ok(code?.[2] !== undefined, url);
    assert.equal(Number(code[1]), t.port);
    assert.equal(url, passkeyStepAddress(t.port, code[2]));
    // The page the browser opens trades the code once, from the localhost origin.
    const first = await redeemAsPage(t.port, `http://localhost:${t.port}`, code[2]);
    assert.ok(first.type === "authenticated", JSON.stringify(first));
    assert.ok(first.token !== undefined && first.token.length > 0, "the page got the control token");
    const again = await redeemAsPage(t.port, `http://localhost:${t.port}`, code[2]);
    assert.equal(again.type, "error");

    // When the browser cannot be opened, the caller hears it.
    await assert.rejects(
      openPasskeyStepInBrowser({
        port: t.port,
        api: t.link.api,
        openExternal: () => Promise.reject(new Error("no browser")),
      }),
      /no browser/,
    );
  });
});

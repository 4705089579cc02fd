// The environment readers: what each variable becomes, and what a child of the Link never inherits.
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { childEnv, platformEnv, readLinkEnv } from "../src/main/core/runtime/env.js";
import { KEYCHAIN_TIMEOUT_MS } from "../src/main/core/runtime/keychain.js";
import { resolveLinkPaths } from "../src/main/core/runtime/paths.js";
import { readAuthorityEnv } from "../src/server/env.js";

describe("readLinkEnv", () => {
  it("reads the Link's variables from the environment it is given, not from the process's", () => {
    const e = readLinkEnv(
      {
        PIPER_LINK_PROFILE: "work",
        PIPER_LINK_LOG_LEVEL: "debug",
        PIPER_LINK_EXTRA_CA: "/ca.pem",
        PIPER_LINK_AUTHORITY_TOKEN: "tok",
        PIPER_LINK_AUTHORITY_CA: "/auth.pem",
        PIPER_LINK_KEYCHAIN_PASSPHRASE_FILE: "/pass",
        PIPER_LINK_KEYCHAIN_TIMEOUT_MS: "250",
        XDG_CONFIG_HOME: "/cfg",
        DISPLAY: ":0",
        npm_lifecycle_event: "start",
      },
      "linux",
      "/home/p",
    );
    assert.deepEqual(
      {
        profile: e.profile,
        logLevel: e.logLevel,
        extraCaFile: e.extraCaFile,
        authorityToken: e.authorityToken,
        authorityCaFile: e.authorityCaFile,
        passphraseFile: e.passphraseFile,
        keychainTimeoutMs: e.keychainTimeoutMs,
        configHome: e.configHome,
        display: e.display,
        underNpmStart: e.underNpmStart,
      },
      {
        profile: "work",
        logLevel: "debug",
        extraCaFile: "/ca.pem",
        authorityToken: "tok",
        authorityCaFile: "/auth.pem",
        passphraseFile: "/pass",
        keychainTimeoutMs: 250,
        configHome: "/cfg",
        display: true,
        underNpmStart: true,
      },
    );
  });

  it("an empty environment gives the defaults: no display on a bare Linux, the full keychain bound, ~/.config", () => {
    const e = readLinkEnv({}, "linux", "/home/p");
    assert.deepEqual(
      {
        profile: e.profile,
        logLevel: e.logLevel,
        extraCaFile: e.extraCaFile,
        authorityToken: e.authorityToken,
        passphraseFile: e.passphraseFile,
        keychainTimeoutMs: e.keychainTimeoutMs,
        configHome: e.configHome,
        display: e.display,
        underNpmStart: e.underNpmStart,
      },
      {
        profile: undefined,
        logLevel: "info",
        extraCaFile: null,
        authorityToken: null,
        passphraseFile: null,
        keychainTimeoutMs: KEYCHAIN_TIMEOUT_MS,
        configHome: "/home/p/.config",
        display: false,
        underNpmStart: false,
      },
    );
    assert.equal(
      readLinkEnv({ DISPLAY: ":0", SSH_CONNECTION: "1.2.3.4 5 6.7.8.9 22" }, "linux", "/h").display,
      false,
      "over SSH a browser opened here is not seen",
    );
  });

  it("keeps a copy: a later change to the given object does not change what the Link read", () => {
    const given: NodeJS.ProcessEnv = { XDG_DATA_HOME: "/data" };
    const e = readLinkEnv(given, "linux", "/h");
    given["XDG_DATA_HOME"] = "/elsewhere";
    assert.equal(resolveLinkPaths("default", platformEnv(e)).dataDir, "/data/piper-link");
  });

  it("a child's environment has neither NODE_OPTIONS nor the names dropped, and has what is added", () => {
    const e = readLinkEnv(
      { PATH: "/bin", NODE_OPTIONS: "--require /tmp/evil.js", PIPER_AUTHORITY_DATA_KEYS: "k1:abc" },
      "linux",
      "/h",
    );
    assert.deepEqual(childEnv(e, { PIPER_AUTHORITY_PARENT_PID: "42" }, ["PIPER_AUTHORITY_DATA_KEYS"]), {
      PATH: "/bin",
      PIPER_AUTHORITY_PARENT_PID: "42",
    });
  });
});

describe("readAuthorityEnv", () => {
  it("reads the authority's variables; an unset, empty or malformed one is null", () => {
    assert.deepEqual(
      readAuthorityEnv({
        PIPER_AUTHORITY_DATA_KEYS: "k1:abc",
        PIPER_AUTHORITY_PARENT_PID: "4242",
        PIPER_AUTHORITY_SQLITE_BINDING: "/b.node",
      }),
      { dataKeys: "k1:abc", parentPid: 4242, sqliteBinding: "/b.node" },
    );
    assert.deepEqual(readAuthorityEnv({ PIPER_AUTHORITY_DATA_KEYS: "", PIPER_AUTHORITY_PARENT_PID: "x1" }), {
      dataKeys: null,
      parentPid: null,
      sqliteBinding: null,
    });
  });
});

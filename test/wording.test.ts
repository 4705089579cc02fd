// The words the window and the CLI use (src/shared/wording.ts): pure functions, checked with the
// inputs that reached people as codes in issue 15 item 8.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ControlMethods } from "../src/shared/control.js";
import {
  describeAction,
  describeOutcome,
  describeValidation,
  durationText,
  methodWords,
  relativeTime,
  requestStatusLabel,
  type GrantForWords,
} from "../src/shared/wording.js";

describe("wording", () => {
  it("a 1-hour approval reads 'approved for 1 hour', not its stored scope 'until'", () => {
    const grants = new Map([["gr_1", { createdAt: 1_000, expiresAt: 1_000 + 3_600_000 }]]);
    assert.equal(
      describeOutcome({ action: "request.approved", outcome: "until", grantId: "gr_1" }, grants),
      "approved for 1 hour",
    );
    assert.equal(
      describeOutcome({ action: "request.approved", outcome: "until", grantId: "gr_unknown" }, grants),
      "approved for a limited time",
    );
    assert.equal(
      describeOutcome({ action: "request.approved", outcome: "until_revoked", grantId: null }),
      "approved until revoked",
    );
    assert.equal(
      describeOutcome({ action: "grant.ended", outcome: "process_exited", grantId: null }),
      "the process exited",
    );
    assert.equal(
      describeOutcome({ action: "call.made", outcome: "upstream_unavailable", grantId: null }),
      "upstream unavailable",
    );
    assert.equal(durationText(5_400_000), "1 hour 30 minutes");
    assert.equal(durationText(2 * 86_400_000), "2 days");
  });

  it("a use-only delivery and a call say they were used in a call to the host, not 'value given to the agent'", () => {
    const call = {
      secretNames: ["API_KEY"],
      method: "POST",
      host: "api.example.com",
      path: "/v1/x",
      status: 200,
      bytes: 2,
      durationMs: 3,
      redacted: false,
      error: null,
      program: null,
    };
    const useOnly = {
      createdAt: 1,
      expiresAt: null,
      mode: { kind: "use" as const, destinations: [{ host: "api.example.com", method: "POST", path: "/v1/x" }] },
    };
    const wide = {
      createdAt: 1,
      expiresAt: null,
      mode: { kind: "use" as const, destinations: ["a.com", "b.com", "c.com", "d.com"].map((host) => ({ host })) },
    };
    const read = { createdAt: 1, expiresAt: null, mode: { kind: "read" as const } };
    const grants = new Map<string, GrantForWords>([
      ["gr_use", useOnly],
      ["gr_wide", wide],
      ["gr_read", read],
    ]);
    const delivered = (grantId: string) => ({ action: "secret.delivered", outcome: "ok", grantId });
    assert.equal(describeAction("secret.delivered", useOnly), "Used in a call");
    assert.equal(
      describeOutcome(delivered("gr_use"), grants),
      "used in a call to api.example.com; not given to the agent",
    );
    assert.equal(
      describeOutcome(delivered("gr_wide"), grants),
      "used in a call to a.com, b.com or 2 more; not given to the agent",
    );
    assert.equal(describeAction("call.made"), "Used in a call");
    assert.equal(
      describeOutcome({ action: "call.made", outcome: "ok", grantId: "gr_use", call }, grants),
      "used in a call to api.example.com",
    );
    // A read grant's delivery did give the value away; an unknown grant keeps the old words.
    assert.equal(describeAction("secret.delivered", read), "Delivered");
    assert.equal(describeOutcome(delivered("gr_read"), grants), "value given to the agent");
    assert.equal(describeOutcome(delivered("gr_unknown"), grants), "value given to the agent");
  });

  it("the window's null limit becomes a sentence naming the field, not zod's words", () => {
    const parsed = ControlMethods.listActivity.params.safeParse({ limit: null });
    assert.ok(!parsed.success);
    const text = describeValidation(methodWords("listActivity"), parsed.error.issues);
    assert.equal(text, "Piper Link could not list activity: the number of events is missing or not a number.");
    assert.doesNotMatch(text, /Invalid|received|params/);
    const cursor = ControlMethods.listActivity.params.safeParse({ before: "garbage" });
    assert.ok(!cursor.success);
    assert.equal(
      describeValidation("list activity", cursor.error.issues),
      "Piper Link could not list activity: the page cursor: not an activity cursor.",
    );
    // A schema's own predicate continues the field's name: one sentence, no "the name: secret names…".
    const name = ControlMethods.setSecret.params.safeParse({ name: "bad name", value: "v" });
    assert.ok(!name.success);
    assert.equal(
      describeValidation("set secret", name.error.issues),
      "Piper Link could not set secret: the name may contain only letters, digits, _ . and -.",
    );
    const value = ControlMethods.setSecret.params.safeParse({ name: "OK", value: "x".repeat(40_000) });
    assert.ok(!value.success);
    assert.equal(
      describeValidation("set secret", value.error.issues),
      "Piper Link could not set secret: the value can be at most 32,768 characters.",
    );
  });

  it("recent times are relative; from a day on, the local date-time", () => {
    const now = Date.UTC(2026, 10, 29, 12, 0, 0);
    assert.equal(relativeTime(now - 2_000, now), "just now");
    assert.equal(relativeTime(now - 3 * 60_000, now), "3 min ago");
    assert.equal(relativeTime(now - 5 * 3_600_000, now), "5 h ago");
    const old = now - 3 * 86_400_000;
    assert.equal(
      relativeTime(old, now, "en-US"),
      new Date(old).toLocaleString("en-US", { dateStyle: "medium", timeStyle: "short" }),
    );
  });

  it("a pending request whose process exited reads 'requester gone'", () => {
    assert.equal(requestStatusLabel({ status: "pending" }, false), "requester gone");
    assert.equal(requestStatusLabel({ status: "pending" }, null), "pending");
    assert.equal(requestStatusLabel({ status: "denied" }, false), "denied");
  });
});

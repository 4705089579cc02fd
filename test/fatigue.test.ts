// The approval-fatigue figure's counting (bench/fatigue.ts, issue 13 item 10): the real authority
// service on SQLite with a fake clock, counted per binding. Counts, not timings.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { countApprovals, fatigueLines, WORKING_DAY, type FatigueCount, type FatigueDay } from "../bench/fatigue.js";
import { DEFAULT_GRANT_TERMS } from "../src/shared/grant-terms.js";

const ALL_SERVED = WORKING_DAY.runs * WORKING_DAY.secrets.length;

describe("approval fatigue (bench/fatigue.ts)", () => {
  it("the dialog's default binding: one approval per secret for the day, one with the batch prompt; every run served", async () => {
    assert.equal(DEFAULT_GRANT_TERMS.binding, "program");
    const one = await countApprovals(WORKING_DAY);
    assert.deepEqual(one, {
      approvals: 3,
      served: ALL_SERVED,
      secondProgramPrompts: 3,
      impostorPrompts: 3,
      impostorServed: 0,
      changedPrompts: 0,
    });
    const batch = await countApprovals({ ...WORKING_DAY, batch: true });
    assert.deepEqual(batch, {
      approvals: 1,
      served: ALL_SERVED,
      secondProgramPrompts: 1,
      impostorPrompts: 1,
      impostorServed: 0,
      changedPrompts: 0,
    });
  });

  it("a program whose script changed mid-day is asked again, once per secret, and every such card says it changed", async () => {
    const one = await countApprovals({ ...WORKING_DAY, changedAtRun: 10 });
    assert.deepEqual(one, {
      approvals: 6,
      served: ALL_SERVED,
      secondProgramPrompts: 3,
      impostorPrompts: 3,
      impostorServed: 0,
      changedPrompts: 3,
    });
    const batch = await countApprovals({ ...WORKING_DAY, changedAtRun: 10, batch: true });
    assert.equal(batch.approvals, 2);
  });

  it("narrower bindings ask on every run: a process per run, a session grant idles out between runs 25 minutes apart", async () => {
    assert.equal((await countApprovals({ ...WORKING_DAY, binding: "process" })).approvals, 60);
    assert.equal((await countApprovals({ ...WORKING_DAY, binding: "process", batch: true })).approvals, 20);
    assert.equal((await countApprovals({ ...WORKING_DAY, binding: "session" })).approvals, 60);
    // Runs 5 minutes apart stay inside the session's 10-minute idle limit: one approval per secret.
    assert.equal((await countApprovals({ ...WORKING_DAY, binding: "session", minutesApart: 5 })).approvals, 3);
  });

  it("the printed lines pass only when the counts meet the targets", async () => {
    const lines = await fatigueLines();
    assert.deepEqual(
      lines.map((l) => [l.name, l.oneByOne, l.batch, l.pass]),
      [
        ["approvals, default (program)", 3, 1, true],
        ["approvals, program changed once (re-asks counted)", 6, 2, true],
        ["approvals, narrower (session)", 60, 20, null],
        ["approvals, narrower (process)", 60, 20, null],
        ["second program, other directory: prompts", 3, 1, true],
        ["program claiming the client ID: prompts", 3, 1, true],
      ],
    );
    // A default that asked on every run (as `process` does) misses the target.
    const asProcess = (day: FatigueDay): Promise<FatigueCount> =>
      countApprovals({ ...day, binding: day.binding === DEFAULT_GRANT_TERMS.binding ? "process" : day.binding });
    const missed = await fatigueLines(asProcess);
    assert.equal(missed[0]?.pass, false);
  });
});

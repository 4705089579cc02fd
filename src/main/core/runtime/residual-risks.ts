/**
 * The risks the Link can see on this machine and cannot remove itself (DESIGN.md section 9):
 * `status` and Settings list them so the person knows what an agent running as them could still do,
 * and what would close it. Each risk is a code and one sentence: what it means, then what to do.
 *
 * Two kinds of input: facts read from the machine (session type, Yama's ptrace scope, who may write
 * the install and the service unit), read at most once per `MACHINE_FACTS_TTL_MS` since `status` is
 * asked often; and the Link's own state (port fallback, unattended unlock, the hardening's result),
 * passed in on every call. Every reader is injected, so tests use real temporary files.
 */
import fs from "node:fs";
import path from "node:path";
import type { ResidualRisk } from "../../../shared/presence.js";
import type { LinkEnv } from "./env.js";
import { serviceName, userUnitDir } from "./service-unit.js";

/** How long facts read from the machine are reused, in ms: a fix (chmod, a new session) shows within a minute. */
export const MACHINE_FACTS_TTL_MS = 60_000;

/** Who may write a file, as the risk check needs it: the process's uid and groups. */
export interface Writer {
  uid: number;
  gids: readonly number[];
}

export interface MachineInputs {
  platform: NodeJS.Platform;
  /** The environment the Link was started with (DISPLAY, WAYLAND_DISPLAY, XDG_SESSION_TYPE, XDG_CONFIG_HOME). */
  env: NodeJS.ProcessEnv;
  /** Reads a file under /proc (`sys/kernel/yama/ptrace_scope`); null when it does not exist or cannot be read. */
  readProc(relative: string): string | null;
  /**
   * The package root of the running code (a folder), or the app's archive (Electron's app.asar), or
   * null when unknown.
   */
  installRoot: string | null;
  /** The systemd user unit that starts this profile's Link (it may not exist). */
  unitFile: string | null;
  /** Whose write access counts: by default this process's uid and groups. */
  writer: Writer;
}

/** The Link's own state at the time of `status`. */
export interface LinkRiskState {
  /** The preferred port, and the one the Link listens on (they differ after a fallback). */
  preferredPort: number;
  port: number | null;
  fallback: boolean;
  /** The vault was unlocked from PIPER_LINK_PASSPHRASE_FILE. */
  unattended: boolean;
  /** Why the process is still dumpable (hardenProcess's `dumpableFailure`), or null. */
  dumpableFailure: string | null;
}

/**
 * Whether `writer` may change the file or folder at `p`, from its owner, group and mode bits (root
 * may write anything). A path that does not exist is not a risk. Access control lists and read-only
 * mounts are not considered: the answer errs towards reporting a risk.
 */
export function writableBy(p: string, writer: Writer): boolean {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    return false;
  }
  if (writer.uid === 0) return true;
  if (st.uid === writer.uid) return (st.mode & 0o200) !== 0;
  if (writer.gids.includes(st.gid)) return (st.mode & 0o020) !== 0;
  return (st.mode & 0o002) !== 0;
}

/**
 * Whether the install can be changed by `writer`: the root itself, or — for an archive such as
 * app.asar, a file that can be replaced by whoever may write its folder — the folder holding it.
 */
function installWritable(root: string, writer: Writer): boolean {
  if (writableBy(root, writer)) return true;
  try {
    return fs.statSync(root).isFile() && writableBy(path.dirname(root), writer);
  } catch {
    return false;
  }
}

/** The risks read from the machine (no I/O beyond `inputs`' readers and stat). */
export function machineRisks(inputs: MachineInputs): ResidualRisk[] {
  const risks: ResidualRisk[] = [];
  const { env } = inputs;
  if (inputs.platform === "linux") {
    const session = env["XDG_SESSION_TYPE"];
    const x11 = session === "x11" || (session !== "wayland" && !!env["DISPLAY"] && !env["WAYLAND_DISPLAY"]);
    if (x11) {
      risks.push({
        code: "x11_session",
        message:
          "This desktop session uses X11, where any program you run can read what you type (your PIN as you type it) and click Approve for you. Log in to a Wayland session instead (chosen at the login screen), where programs cannot see or drive each other's windows.",
      });
    }
    const scope = inputs.readProc("sys/kernel/yama/ptrace_scope")?.trim() ?? null;
    if (scope === null || scope === "0") {
      risks.push({
        code: "ptrace_scope_0",
        message: `${scope === null ? "This kernel has no Yama ptrace protection" : "kernel.yama.ptrace_scope is 0"}, so any program you run may attach a debugger to your other programs. Piper Link closes its own memory and checks it is still closed before it takes your PIN or passphrase, but a program that attaches in the moment a process starts, before it closes itself, can change it, and the terminal or window you type into is not protected at all. Set kernel.yama.ptrace_scope to 1 (e.g. \`echo kernel.yama.ptrace_scope=1 | sudo tee /etc/sysctl.d/10-ptrace.conf && sudo sysctl --system\`).`,
      });
    }
  }
  if (inputs.installRoot !== null && installWritable(inputs.installRoot, inputs.writer)) {
    risks.push({
      code: "install_writable",
      message: `Piper Link's own files (${inputs.installRoot}) can be changed by your user account, so a program running as you could replace the code that asks for your approval: from the next start on, and in a running Link for the parts it loads on first use (passkeys, certificates). Install Piper Link where only an administrator can write (a system package, or a copy of this folder owned by root) so that its files belong to root.`,
    });
  }
  if (inputs.unitFile !== null && writableBy(inputs.unitFile, inputs.writer)) {
    risks.push({
      code: "unit_writable",
      message: `The service file that starts Piper Link (${inputs.unitFile}) can be changed by your user account, so a program running as you could make the next start run other code. Make it read-only for your account: \`sudo chown root:root ${inputs.unitFile} && sudo chmod 644 ${inputs.unitFile}\`.`,
    });
  }
  return risks;
}

/** The risks from the Link's own state, in the order `status` lists them after the machine's. */
export function stateRisks(state: LinkRiskState): ResidualRisk[] {
  const risks: ResidualRisk[] = [];
  if (state.fallback) {
    risks.push({
      code: "port_taken",
      message: `Another program holds port ${state.preferredPort}, so Piper Link listens on ${state.port ?? "another port"}. Agents that only try ${state.preferredPort} reach that program instead and may give it what they send (the SDKs find the right port in the discovery file). Find it with \`ss -ltnp 'sport = :${state.preferredPort}'\` and stop it, then restart Piper Link.`,
    });
  }
  if (state.unattended) {
    risks.push({
      code: "unattended_unlock",
      message:
        "Piper Link was unlocked from a passphrase file (PIPER_LINK_PASSPHRASE_FILE): whatever can read that file can unlock everything Piper Link keeps at rest, without you. Approvals still need your PIN (in the window or at a terminal) or a passkey. Use this only on a server or CI machine where no agent runs as this user.",
    });
  }
  if (state.dumpableFailure !== null) {
    risks.push({
      code: "not_dumpable_failed",
      message: `Piper Link could not close its memory to your other programs (${state.dumpableFailure}), so a program running as you may read the keys it holds while it is unlocked. Lock Piper Link (\`piper-link lock\`) when you are not using it, and report this with the reason in brackets.`,
    });
  }
  return risks;
}

export interface ResidualRiskOptions {
  /** This Link's profile, for its unit file's name. */
  profile: string;
  /** The environment the Link was started with: its platform, session variables and config folder. */
  env: LinkEnv;
  /** See `MachineInputs.installRoot`. */
  installRoot: string | null;
  /** Overrides of the machine readers (tests). */
  machine?: Partial<MachineInputs>;
  /** ms since the epoch; default Date.now. */
  now?: () => number;
}

/** The residual risks of one Link: machine facts cached, state read on each call. */
export interface ResidualRisks {
  current(state: LinkRiskState): ResidualRisk[];
}

function readProc(relative: string): string | null {
  try {
    return fs.readFileSync(path.join("/proc", relative), "utf8");
  } catch {
    return null;
  }
}

/**
 * The residual risks of a Link, for `status`: the machine's facts are read on the first call and
 * again at most every `MACHINE_FACTS_TTL_MS`, the Link's state on every call.
 */
export function createResidualRisks(options: ResidualRiskOptions): ResidualRisks {
  const env = options.machine?.env ?? options.env.vars;
  const platform = options.machine?.platform ?? options.env.platform;
  const inputs: MachineInputs = {
    platform,
    env,
    readProc,
    installRoot: options.installRoot,
    unitFile:
      platform === "linux" ? path.join(userUnitDir(options.env.configHome), serviceName(options.profile)) : null,
    writer: { uid: process.getuid?.() ?? -1, gids: process.getgroups?.() ?? [] },
    ...options.machine,
  };
  const now = options.now ?? Date.now;
  let cached: { at: number; risks: ResidualRisk[] } | null = null;
  return {
    current(state) {
      const t = now();
      if (cached === null || t - cached.at >= MACHINE_FACTS_TTL_MS) cached = { at: t, risks: machineRisks(inputs) };
      return [...cached.risks, ...stateRisks(state)];
    },
  };
}

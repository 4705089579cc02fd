/**
 * The parts of an approval that speak grant terms (issue 13 item 5, issue 14 items 3 and 4), kept
 * apart from the Requests screen so a request card for one variable and a batch card for several
 * use the same pieces: the verified program (what the Link read from the OS) next to what the agent
 * says it is, the binding and lifetime choice, "what may it do" (read, or use only to destinations),
 * and the policy limits (also used by Grants' "Edit limits").
 */
import { AlertTriangle } from "lucide-react";
import { useEffect, useRef, useState } from "react";
import type { ApproveBody, RequestView } from "../../../shared/authority.js";
import { displayOptional, displayText } from "../../../shared/display.js";
import { LinkError } from "../../../shared/errors.js";
import { endOfDay } from "../../../shared/grant-terms-text.js";
import {
  DestinationRuleSchema,
  GrantModeSchema,
  GrantPolicySchema,
  SESSION_MAX_MS,
  type DestinationRule,
  type GrantMode,
  type GrantPolicy,
} from "../../../shared/grant-terms.js";
import { inlineCode, sessionKey, type PeerProcess } from "../../../shared/process.js";
import { programNotes } from "../../../shared/wording.js";
import { Banner, Field, ui } from "../components/ui.js";
import { baseName } from "../format.js";
import s from "./screens.module.css";

/** What the agent says it is: its own words, escaped ("says it is Claude Code (claude-code)"). */
export function AgentClaim({ name, clientId }: { name: string | null; clientId: string }) {
  return (
    <span className={ui.muted}>
      says it is {name !== null ? <>{displayText(name, 80)} </> : null}
      <span className={s.clientId}>{displayText(clientId, 80)}</span>
    </span>
  );
}

/**
 * The program the Link identified from the OS (executable, script, folder, terminal session, parent
 * program), or a plain "not identified". Paths are chosen by whoever started the agent: escaped.
 */
export function VerifiedProgram({ process: p }: { process: PeerProcess | null }) {
  if (p === null) {
    return (
      <dl className={s.facts} aria-label="Verified program">
        <dt>Program</dt>
        <dd>Not identified: Piper Link could not tell which program on this machine asked. Approve it once at most.</dd>
      </dl>
    );
  }
  const parent = p.parents?.[0] ?? null;
  const code = inlineCode(p);
  const notes = programNotes(p);
  return (
    <dl className={s.facts} aria-label="Verified program">
      {notes.length > 0 ? (
        <>
          <dt>Note</dt>
          {/* The role sits inside: a <dd> with a role of its own is no longer a definition (axe: definition-list). */}
          <dd>
            <div role="note">
              {notes.map((n) => (
                <p key={n}>{displayText(n, 600)}</p>
              ))}
            </div>
          </dd>
        </>
      ) : null}
      <dt>Program</dt>
      <dd title={displayOptional(p.executable, 300) ?? undefined}>
        <strong>{displayText(baseName(p.executable))}</strong>{" "}
        <span className={ui.muted}>{displayOptional(p.executable, 300) ?? "path unknown"}</span>
      </dd>
      {p.script ? (
        <>
          <dt>Script</dt>
          <dd>{displayText(p.script, 300)}</dd>
        </>
      ) : null}
      {code !== null ? (
        <>
          <dt>Code</dt>
          <dd>{displayText(code, 300)}</dd>
        </>
      ) : null}
      <dt>Folder</dt>
      <dd>{displayOptional(p.cwd, 300) ?? "unknown"}</dd>
      <dt>Terminal session</dt>
      <dd>{p.sessionId !== null && p.sessionId !== undefined ? `session ${p.sessionId}` : "none"}</dd>
      <dt>Parent program</dt>
      <dd>{parent === null ? "unknown" : `${displayText(baseName(parent.executable))} (pid ${parent.pid})`}</dd>
      <dt>Process</dt>
      <dd>pid {p.pid}</dd>
    </dl>
  );
}

/** The binding choices of the dialog, narrowest first. */
export type BindingChoice = "once" | "process" | "session" | "program" | "client";
type LifetimeChoice = "12h" | "duration" | "until_revoked";

/** A host (with port when not the default) of a URL in the request's reason ("GET https://… "), or "". */
export function hostFromReason(reason: string | null): string {
  const url = /\bhttps?:\/\/[^\s"'<>]+/i.exec(reason ?? "")?.[0];
  if (url === undefined) return "";
  try {
    return new URL(url).host;
  } catch {
    return "";
  }
}

/** The words the Link's call handler starts a call's request reason with (core/calls/call-handler.ts). */
const CALL_REASON = "Use without reading, in a call: ";

/** The call a request was made for: its method, host (with a non-default port) and path (no query). */
export interface RequestedCall {
  method: string;
  host: string;
  path: string;
}

/**
 * The call a request came from, read from its reason ("Use without reading, in a call: POST
 * https://api.example.com/v1/x?q — why"), or null when it did not come from a call. The reason is
 * the agent's to word for a plain request, so a forged one only makes the proposed terms narrower
 * (use-only, to the host it names), never wider.
 */
export function callFromReason(reason: string | null): RequestedCall | null {
  if (reason === null || !reason.startsWith(CALL_REASON)) return null;
  const m = /^([A-Z]{1,16}) (https?:\/\/\S+)/.exec(reason.slice(CALL_REASON.length));
  if (m?.[1] === undefined || m[2] === undefined) return null;
  try {
    const url = new URL(m[2]);
    return { method: m[1], host: url.host.toLowerCase(), path: url.pathname };
  } catch {
    return null;
  }
}

/** The method and path rule that covers exactly `call` ("POST /v1/chat/completions"); a path too long for a rule is cut and ends in `*`. */
export function ruleForCall(call: RequestedCall): string {
  const path = call.path.length > 512 ? `${call.path.slice(0, 511)}*` : call.path;
  return `${call.method} ${path}`;
}

/**
 * The state of the terms part of an Approve dialog for `request`, with its defaults: the least that
 * covers the request. A request that came from a call proposes use-only, to that call's host,
 * method and path; any other request proposes reading. Both bind to the verified program (once, when
 * the program could not be identified) for 12 hours. Anything wider is the person's visible choice.
 */
export function useTermsChoice(request: RequestView) {
  const p = request.process;
  const identified = p !== null && p.executable !== null;
  const call = callFromReason(request.reason);
  const [binding, setBinding] = useState<BindingChoice>(identified ? "program" : "once");
  const [lifetime, setLifetime] = useState<LifetimeChoice>("12h");
  const [hours, setHours] = useState("12");
  const [useOnly, setUseOnly] = useState(call !== null);
  const [hosts, setHosts] = useState(call?.host ?? hostFromReason(request.reason));
  const [rules, setRules] = useState(call === null ? "" : ruleForCall(call));
  const [policy, setPolicy] = useState<PolicyDraft>(emptyPolicyDraft());
  return {
    request,
    /** The call the request came from; null for a request to read the value. */
    call,
    identified,
    // A requester that never waits has ended by the time anyone answers: no process to bind to.
    canProcess: p !== null && p.startTime !== null && request.requesterWaits !== false,
    // The same test the authority applies when it stores a session binding.
    canSession: identified && sessionKey(p) !== null,
    binding,
    setBinding,
    lifetime,
    setLifetime,
    hours,
    setHours,
    useOnly,
    setUseOnly,
    hosts,
    setHosts,
    rules,
    setRules,
    policy,
    setPolicy,
  };
}
export type TermsChoice = ReturnType<typeof useTermsChoice>;

/**
 * The approve body's terms from the dialog's choices. Throws LinkError `bad_request` with a
 * sentence for input the shared schemas refuse (no host for use-only, a bad rule, bad limits).
 */
export function termsBody(t: TermsChoice): Omit<ApproveBody, "secretName"> {
  const mode = modeOf(t);
  const policy = policyOf(t.policy);
  const extra = { ...(mode.kind === "use" ? { mode } : {}), ...(policy !== null ? { policy } : {}) };
  switch (t.binding) {
    case "once":
      return { scope: { kind: "once" }, ...extra };
    case "process":
      return { scope: { kind: "process" }, binding: "process", ...extra };
    case "session":
      return { scope: { kind: "duration", durationMs: SESSION_MAX_MS }, binding: "session", ...extra };
    case "program":
    case "client": {
      const scope: ApproveBody["scope"] =
        t.lifetime === "until_revoked"
          ? { kind: "until_revoked" }
          : { kind: "duration", durationMs: t.lifetime === "12h" ? SESSION_MAX_MS : durationOf(t.hours) };
      return { scope, binding: t.binding, ...extra };
    }
  }
}

function durationOf(hours: string): number {
  const n = Number(hours);
  if (!/^\d{1,4}$/.test(hours.trim()) || n < 1 || n > 366 * 24)
    throw new LinkError("bad_request", "Enter a duration from 1 to 8784 hours.");
  return n * 3600_000;
}

function modeOf(t: TermsChoice): GrantMode {
  if (!t.useOnly) return { kind: "read" };
  const hosts = t.hosts
    .split(/[\s,]+/)
    .filter((h) => h.length > 0)
    .map((h) => h.toLowerCase());
  if (hosts.length === 0)
    throw new LinkError("bad_request", "Name at least one host the secret may be sent to, e.g. api.example.com.");
  const rules: Array<Omit<DestinationRule, "host">> = [];
  for (const line of t.rules
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0)) {
    const m = /^(?:([A-Za-z]{1,16})\s+)?(\/\S*)$/.exec(line);
    if (m?.[2] === undefined)
      throw new LinkError(
        "bad_request",
        `The rule “${displayText(line, 80)}” is not METHOD /path (e.g. GET /v1/charges*).`,
      );
    rules.push(m[1] ? { method: m[1].toUpperCase(), path: m[2] } : { path: m[2] });
  }
  const destinations =
    rules.length === 0 ? hosts.map((host) => ({ host })) : hosts.flatMap((host) => rules.map((r) => ({ host, ...r })));
  for (const d of destinations) {
    if (!DestinationRuleSchema.safeParse(d).success)
      throw new LinkError(
        "bad_request",
        `“${displayText(d.host, 80)}” is not a host name (e.g. api.example.com or *.example.com).`,
      );
  }
  const mode = GrantModeSchema.safeParse({ kind: "use", destinations });
  if (!mode.success) throw new LinkError("bad_request", "At most 32 destinations (hosts times rules).");
  return mode.data;
}

/** The policy form's state: strings as typed; `on` false means no limits. */
export interface PolicyDraft {
  on: boolean;
  fromHour: string;
  toHour: string;
  weekdays: boolean[];
  timeZone: string;
  maxPerHour: string;
  maxPerDay: string;
  ends: string;
}

/** No limits; when switched on, 9–17 on weekdays in the browser's time zone. */
export function emptyPolicyDraft(): PolicyDraft {
  return {
    on: false,
    fromHour: "",
    toHour: "",
    weekdays: [false, false, false, false, false, false, false],
    timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    maxPerHour: "",
    maxPerDay: "",
    ends: "",
  };
}

/** The form state for an existing policy (Grants' "Edit limits"). */
export function policyDraftOf(p: GrantPolicy | null | undefined): PolicyDraft {
  const d = emptyPolicyDraft();
  if (p === null || p === undefined) return d;
  const ends =
    p.endsAt === undefined ? "" : new Date(p.endsAt - 1).toLocaleDateString("en-CA", { timeZone: p.timeZone });
  return {
    on: true,
    fromHour: p.hours ? String(p.hours.fromHour) : "",
    toHour: p.hours ? String(p.hours.toHour) : "",
    weekdays: d.weekdays.map((_, i) => p.weekdays?.includes(i) ?? false),
    timeZone: p.timeZone ?? d.timeZone,
    maxPerHour: p.maxUsesPerHour === undefined ? "" : String(p.maxUsesPerHour),
    maxPerDay: p.maxUsesPerDay === undefined ? "" : String(p.maxUsesPerDay),
    ends,
  };
}

/**
 * The policy a draft describes (null when off or empty). Throws LinkError `bad_request` with a
 * sentence when the shared schema refuses it or the hours end before they start.
 */
export function policyOf(d: PolicyDraft): GrantPolicy | null {
  if (!d.on) return null;
  const num = (v: string): number | undefined => (v.trim() === "" ? undefined : Number(v));
  const from = num(d.fromHour);
  const to = num(d.toHour);
  if ((from === undefined) !== (to === undefined))
    throw new LinkError("bad_request", "Give both hours (from and to), or neither.");
  const weekdays = d.weekdays.flatMap((on, i) => (on ? [i] : []));
  const timeZone = d.timeZone.trim();
  try {
    new Intl.DateTimeFormat("en-US", { timeZone });
  } catch {
    throw new LinkError(
      "bad_request",
      `Unknown time zone “${displayText(timeZone, 64)}”; use a name such as Europe/Berlin.`,
    );
  }
  const endDate = /^(\d{4})-(\d{2})-(\d{2})$/.exec(d.ends.trim());
  if (d.ends.trim() !== "" && endDate === null)
    throw new LinkError("bad_request", "Give the end date as a date (YYYY-MM-DD).");
  const maxHour = num(d.maxPerHour);
  const maxDay = num(d.maxPerDay);
  const draft = {
    timeZone,
    ...(weekdays.length > 0 ? { weekdays } : {}),
    ...(from !== undefined && to !== undefined ? { hours: { fromHour: from, toHour: to } } : {}),
    ...(maxHour !== undefined ? { maxUsesPerHour: maxHour } : {}),
    ...(maxDay !== undefined ? { maxUsesPerDay: maxDay } : {}),
    ...(endDate !== null
      ? { endsAt: endOfDay({ year: Number(endDate[1]), month: Number(endDate[2]), day: Number(endDate[3]) }, timeZone) }
      : {}),
  };
  const parsed = GrantPolicySchema.safeParse(draft);
  if (!parsed.success)
    throw new LinkError(
      "bad_request",
      "Limits: hours are whole numbers 0–24, uses per hour or day whole numbers of at least 1.",
    );
  if (parsed.data.hours !== undefined && parsed.data.hours.toHour <= parsed.data.hours.fromHour)
    throw new LinkError("bad_request", "The allowed hours must end after they start.");
  if (Object.keys(parsed.data).length === 1) return null;
  return parsed.data;
}

const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/** The policy limits form: hours and weekdays in a time zone, uses per hour and day, an end date. */
export function PolicyFields({
  id,
  draft,
  onChange,
}: {
  id: string;
  draft: PolicyDraft;
  onChange: (d: PolicyDraft) => void;
}) {
  const set = (change: Partial<PolicyDraft>): void => onChange({ ...draft, ...change });
  return (
    <fieldset className={s.scopes}>
      <legend>Limits</legend>
      <label className={s.checkbox}>
        <input type="checkbox" checked={draft.on} onChange={(e) => set({ on: e.target.checked })} /> Limit when and how
        often it may be used
      </label>
      {draft.on ? (
        <div className={s.termsGrid}>
          <Field label="From hour (0–23)" id={`${id}-from`}>
            <input
              id={`${id}-from`}
              className={ui.input}
              inputMode="numeric"
              value={draft.fromHour}
              onChange={(e) => set({ fromHour: e.target.value })}
              placeholder="9"
            />
          </Field>
          <Field label="To hour (1–24)" id={`${id}-to`}>
            <input
              id={`${id}-to`}
              className={ui.input}
              inputMode="numeric"
              value={draft.toHour}
              onChange={(e) => set({ toHour: e.target.value })}
              placeholder="17"
            />
          </Field>
          <Field label="Time zone" id={`${id}-tz`}>
            <input
              id={`${id}-tz`}
              className={ui.input}
              value={draft.timeZone}
              onChange={(e) => set({ timeZone: e.target.value })}
              spellCheck={false}
            />
          </Field>
          <div className={s.weekdays} role="group" aria-label="Allowed weekdays (none checked: every day)">
            {WEEKDAYS.map((name, i) => (
              <label key={name} className={s.checkbox}>
                <input
                  type="checkbox"
                  checked={draft.weekdays[i] ?? false}
                  onChange={(e) => set({ weekdays: draft.weekdays.map((v, j) => (j === i ? e.target.checked : v)) })}
                />{" "}
                {name}
              </label>
            ))}
          </div>
          <Field label="At most uses per hour" id={`${id}-per-hour`}>
            <input
              id={`${id}-per-hour`}
              className={ui.input}
              inputMode="numeric"
              value={draft.maxPerHour}
              onChange={(e) => set({ maxPerHour: e.target.value })}
            />
          </Field>
          <Field label="At most uses per day" id={`${id}-per-day`}>
            <input
              id={`${id}-per-day`}
              className={ui.input}
              inputMode="numeric"
              value={draft.maxPerDay}
              onChange={(e) => set({ maxPerDay: e.target.value })}
            />
          </Field>
          <Field label="Ends after (date)" id={`${id}-ends`}>
            <input
              id={`${id}-ends`}
              className={ui.input}
              type="date"
              value={draft.ends}
              onChange={(e) => set({ ends: e.target.value })}
            />
          </Field>
        </div>
      ) : null}
    </fieldset>
  );
}

const BINDINGS: Array<{ value: Exclude<BindingChoice, "client">; label: string; hint: string }> = [
  { value: "once", label: "Once", hint: "This one delivery; the next call asks again." },
  { value: "process", label: "While this process runs", hint: "Ends when this process exits." },
  {
    value: "session",
    label: "For this terminal session",
    hint: "This program in this terminal; ends when the terminal closes, after 10 idle minutes or 12 hours.",
  },
  { value: "program", label: "For this program", hint: "This executable, script and folder, in any terminal." },
];

/** Binding and lifetime, "what may it do", and limits: the terms part of the Approve dialog. */
export function TermsFields({ id, t }: { id: string; t: TermsChoice }) {
  // The default choice gets the focus, so Enter approves what the dialog proposes. The dialog's
  // showModal() runs in its own effect after this one and focuses its first control: focusing on
  // the next frame lands after it.
  const initial = useRef(t.binding);
  const focusTarget = useRef<HTMLInputElement>(null);
  useEffect(() => {
    const frame = requestAnimationFrame(() => focusTarget.current?.focus());
    return () => cancelAnimationFrame(frame);
  }, []);
  const who = displayText(t.request.agentName ?? t.request.agentClientId, 80);
  const unavailable = (v: BindingChoice): string | null => {
    if (v === "process" && !t.canProcess)
      return t.request.requesterWaits === false
        ? "It does not wait for your answer, so its process will have ended."
        : "The requesting process could not be identified.";
    if (v === "session" && !t.canSession)
      return t.identified
        ? "It does not run in a terminal session."
        : "The requesting program could not be identified.";
    if (v === "program" && !t.identified) return "The requesting program could not be identified.";
    return null;
  };
  const timed = t.binding === "program" || t.binding === "client";
  return (
    <>
      <fieldset className={s.scopes}>
        <legend>Who may use it, and how long</legend>
        {BINDINGS.map((option) => {
          const why = unavailable(option.value);
          return (
            <label key={option.value} className={s.scope}>
              <input
                type="radio"
                name={`${id}-binding`}
                value={option.value}
                checked={t.binding === option.value}
                disabled={why !== null}
                onChange={() => t.setBinding(option.value)}
                ref={option.value === initial.current ? focusTarget : undefined}
              />
              <span>
                {option.label}
                <small>{why ?? option.hint}</small>
              </span>
            </label>
          );
        })}
        <label className={s.scope}>
          <input
            type="radio"
            name={`${id}-binding`}
            value="client"
            checked={t.binding === "client"}
            onChange={() => t.setBinding("client")}
          />
          <span>
            Any program that says it is {who}
            <small>Weakest: not checked against the program you see above.</small>
          </span>
        </label>
      </fieldset>
      {t.binding === "client" ? (
        <Banner tone="warning" icon={AlertTriangle}>
          Any program on this machine that calls itself {who} ({displayText(t.request.agentClientId, 80)}) will get this
          secret, not just the program shown above.
        </Banner>
      ) : null}
      {timed ? (
        <fieldset className={s.scopes}>
          <legend>For how long</legend>
          <div className={s.inlineChoices}>
            {(
              [
                ["12h", "For 12 hours"],
                ["duration", "For a duration"],
                ["until_revoked", "Until I revoke it"],
              ] as const
            ).map(([value, label]) => (
              <label key={value} className={s.checkbox}>
                <input
                  type="radio"
                  name={`${id}-lifetime`}
                  value={value}
                  checked={t.lifetime === value}
                  onChange={() => t.setLifetime(value)}
                />{" "}
                {label}
              </label>
            ))}
          </div>
          {t.lifetime === "duration" ? (
            <Field label="Number of hours" id={`${id}-hours`}>
              <input
                id={`${id}-hours`}
                className={ui.input}
                inputMode="numeric"
                value={t.hours}
                onChange={(e) => t.setHours(e.target.value)}
              />
            </Field>
          ) : null}
        </fieldset>
      ) : null}
      <fieldset className={s.scopes}>
        <legend>What may it do</legend>
        <div className={s.inlineChoices}>
          <label className={s.checkbox}>
            <input type="radio" name={`${id}-mode`} checked={t.useOnly} onChange={() => t.setUseOnly(true)} /> Use it
            through Piper Link only
          </label>
          <label className={s.checkbox}>
            <input type="radio" name={`${id}-mode`} checked={!t.useOnly} onChange={() => t.setUseOnly(false)} /> Read
            the value
          </label>
        </div>
        {t.call !== null && !t.useOnly ? (
          <Banner tone="warning" icon={AlertTriangle}>
            It asked only to use the secret in a call to {displayText(t.call.host, 253)}. Reading gives it the value
            itself, to keep or send anywhere.
          </Banner>
        ) : null}
        {t.useOnly ? (
          <>
            <Field
              label="Destination hosts"
              id={`${id}-hosts`}
              hint="Separated by spaces or commas; *.example.com for subdomains."
            >
              <input
                id={`${id}-hosts`}
                className={ui.input}
                value={t.hosts}
                onChange={(e) => t.setHosts(e.target.value)}
                spellCheck={false}
                placeholder="api.example.com"
              />
            </Field>
            <Field
              label="Method and path rules (optional, one per line)"
              id={`${id}-rules`}
              hint={
                t.call !== null
                  ? "Proposed: only the call it asked for. Empty: any call to these hosts; * matches anything."
                  : "e.g. GET /v1/charges* — * matches anything."
              }
            >
              <textarea
                id={`${id}-rules`}
                className={ui.input}
                rows={2}
                value={t.rules}
                onChange={(e) => t.setRules(e.target.value)}
                spellCheck={false}
              />
            </Field>
          </>
        ) : null}
      </fieldset>
      <PolicyFields id={`${id}-policy`} draft={t.policy} onChange={t.setPolicy} />
    </>
  );
}

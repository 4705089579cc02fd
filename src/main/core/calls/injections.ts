/**
 * Building the outgoing request of a `call` (issue 14 item 1): the agent's method, URL, headers and
 * body, plus each named secret injected in the style it asked for. Pure: no I/O, so every rule here
 * is checked by unit tests. Errors are LinkErrors with `bad_request` and a sentence for the agent.
 */
import type { Call, CallAuth } from "../../../shared/calls.js";
import { CALL_LIMITS, FORBIDDEN_PATH_SEGMENTS } from "../../../shared/calls.js";
import { LinkError } from "../../../shared/errors.js";
import { needlesFor } from "./redactor.js";

/**
 * Request headers an agent may not set: they frame the message (the Link computes them) or would
 * let it reach another host than the URL says.
 */
const FORBIDDEN_HEADERS = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "upgrade",
  "te",
  "trailer",
  "expect",
  "proxy-authorization",
  "proxy-connection",
]);

/** The secret names a call uses, once each, in the order they appear. */
export function secretNamesOf(auth: CallAuth): string[] {
  const names = [
    auth.bearer,
    auth.basic,
    ...Object.values(auth.header ?? {}),
    ...Object.values(auth.query ?? {}),
    ...Object.values(auth.jsonField ?? {}),
    ...Object.values(auth.formField ?? {}),
  ];
  return [...new Set(names.filter((n): n is string => n !== undefined))];
}

/**
 * Parses and checks a call's URL: absolute, `https:`, no user info (credentials travel only as
 * injections). Throws `bad_request`.
 */
export function parseCallUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new LinkError("bad_request", `${JSON.stringify(text.slice(0, 200))} is not an absolute URL.`);
  }
  if (url.protocol !== "https:")
    throw new LinkError("bad_request", `Piper Link sends secrets over HTTPS only; ${url.protocol} is refused.`);
  if (url.username !== "" || url.password !== "")
    throw new LinkError("bad_request", "Put credentials in `auth` (they are injected by name), not in the URL.");
  url.hash = "";
  return url;
}

/** The request the Link sends, and the needles to redact from its answer. */
export interface PreparedRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body: Buffer | null;
  /** Every form of every injected value, for the redactor. */
  needles: string[];
  /** Re-applies the query injections to a redirect target (same origin only). */
  injectQuery(url: URL): URL;
}

/**
 * Path segments a `jsonField` may not name: walking or setting them reaches an object's prototype
 * chain, so `__proto__.x` would write the secret into every object of the Link (prototype
 * pollution) instead of into the body.
 */
const FORBIDDEN_JSON_SEGMENTS: ReadonlySet<string> = new Set(FORBIDDEN_PATH_SEGMENTS);

/** A JSON object whose keys are only its own: no prototype, so no key reaches Object.prototype. */
type BareObject = Record<string, unknown>;

function bareObject(): BareObject {
  return Object.create(null) as BareObject;
}

function isJsonObject(v: unknown): v is BareObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Parses a JSON body into null-prototype objects, so a body's own `__proto__` key stays a plain key
 * (kept as the agent wrote it) and nothing set later walks into a prototype.
 */
function parseBareJson(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown) => (isJsonObject(value) ? Object.assign(bareObject(), value) : value));
}

/** Sets `value` at the dot `path` of `target`, creating objects on the way; throws `bad_request`. */
function setJsonPath(target: BareObject, path: string, value: string): void {
  const keys = path.split(".");
  const refused = keys.find((k) => FORBIDDEN_JSON_SEGMENTS.has(k));
  if (refused !== undefined)
    throw new LinkError(
      "bad_request",
      `jsonField ${JSON.stringify(path)}: the segment ${JSON.stringify(refused)} is refused (it names an object's prototype, not a field).`,
    );
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = Object.hasOwn(node, key) ? node[key] : undefined;
    if (next === undefined) {
      const created = bareObject();
      node[key] = created;
      node = created;
    } else if (isJsonObject(next)) {
      node = next;
    } else {
      throw new LinkError(
        "bad_request",
        `jsonField ${JSON.stringify(path)}: ${JSON.stringify(key)} is not an object in the body.`,
      );
    }
  }
  node[keys[keys.length - 1] ?? path] = value;
}

/** The names of `url`'s query parameters, decoded as a form (`+` is a space). */
function queryNames(url: URL): Set<string> {
  return new Set(new URLSearchParams(url.search).keys());
}

/**
 * `target` with `pairs` appended to its query, its own query bytes left as they are: a signed URL's
 * signature covers exactly those bytes, and re-encoding them (URLSearchParams turns `%20` into `+`,
 * `~` into `%7E`) would break it. A parameter of the same name already there (a redirect's target
 * may carry one) is dropped first, so the injected value is the only one.
 */
function appendQuery(target: URL, pairs: ReadonlyArray<readonly [string, string]>): URL {
  if (pairs.length === 0) return new URL(target);
  const out = new URL(target);
  const injected = new Set(pairs.map(([name]) => name));
  const kept = (out.search === "" ? [] : out.search.slice(1).split("&")).filter((part) => {
    const name = part === "" ? undefined : new URLSearchParams(part).keys().next().value;
    return name === undefined || !injected.has(name);
  });
  const added = pairs.map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`);
  out.search = `?${[...kept, ...added].join("&")}`;
  return out;
}

function headerIndex(headers: Record<string, string>): Map<string, string> {
  return new Map(Object.keys(headers).map((k) => [k.toLowerCase(), k]));
}

/**
 * Builds the outgoing request: checks the agent's headers, decodes the body, and injects each
 * secret. `values` maps each name of `secretNamesOf(call.auth)` to its value. Throws `bad_request`
 * for a forbidden or conflicting header, a body too large, a `jsonField` on a body that is not a
 * JSON object, or `bearer` with `basic` (both are the Authorization header).
 */
export function prepareRequest(call: Call, url: URL, values: ReadonlyMap<string, string>): PreparedRequest {
  const auth = call.auth;
  const valueOf = (name: string): string => {
    const v = values.get(name);
    if (v === undefined) throw new LinkError("internal_error", `No value was resolved for ${name}.`);
    return v;
  };
  // Header names come from the agent: no prototype, so a name such as __proto__ is just a key.
  const headers = Object.create(null) as Record<string, string>;
  for (const [name, value] of Object.entries(call.headers ?? {})) {
    if (FORBIDDEN_HEADERS.has(name.toLowerCase()))
      throw new LinkError("bad_request", `The ${name} header is set by Piper Link, not by the agent.`);
    headers[name] = value;
  }
  const lower = headerIndex(headers);
  const needles: string[] = [];
  const inject = (name: string, value: string): void => {
    if (lower.has(name.toLowerCase()))
      throw new LinkError("bad_request", `The ${name} header is both sent by the agent and injected; keep one.`);
    if (/[\r\n\0]/.test(value))
      throw new LinkError("bad_request", `The secret for ${name} contains a line break and cannot go in a header.`);
    headers[name] = value;
    lower.set(name.toLowerCase(), name);
  };
  if (auth.bearer !== undefined && auth.basic !== undefined)
    throw new LinkError("bad_request", "`bearer` and `basic` both set the Authorization header; use one.");
  if (auth.bearer !== undefined) {
    const v = valueOf(auth.bearer);
    inject("Authorization", `Bearer ${v}`);
    needles.push(...needlesFor(v));
  }
  if (auth.basic !== undefined) {
    const v = valueOf(auth.basic);
    if (!v.includes(":"))
      throw new LinkError(
        "bad_request",
        `${auth.basic} is used for basic auth, so it must be stored as user:password.`,
      );
    inject("Authorization", `Basic ${Buffer.from(v, "utf8").toString("base64")}`);
    needles.push(...needlesFor(v, "basic"));
  }
  for (const [name, secret] of Object.entries(auth.header ?? {})) {
    if (FORBIDDEN_HEADERS.has(name.toLowerCase()))
      throw new LinkError("bad_request", `A secret cannot be injected as the ${name} header.`);
    const v = valueOf(secret);
    inject(name, v);
    needles.push(...needlesFor(v));
  }
  const queryValues = Object.entries(auth.query ?? {}).map(([param, secret]) => [param, valueOf(secret)] as const);
  for (const [, v] of queryValues) needles.push(...needlesFor(v));
  const injectQuery = (target: URL): URL => appendQuery(target, queryValues);
  for (const [param] of queryValues) {
    if (queryNames(url).has(param))
      throw new LinkError(
        "bad_request",
        `The URL already has the query parameter ${JSON.stringify(param)}, which is also injected; keep one.`,
      );
  }

  let body: Buffer | null =
    call.body === undefined
      ? null
      : "text" in call.body
        ? Buffer.from(call.body.text, "utf8")
        : Buffer.from(call.body.base64, "base64");
  const jsonFields = Object.entries(auth.jsonField ?? {});
  if (jsonFields.length > 0) {
    let doc: unknown = bareObject();
    if (body !== null && body.length > 0) {
      try {
        doc = parseBareJson(body.toString("utf8"));
      } catch {
        throw new LinkError("bad_request", "jsonField needs a JSON body; this body is not JSON.");
      }
    }
    if (!isJsonObject(doc)) throw new LinkError("bad_request", "jsonField needs a JSON object body.");
    const record = doc;
    for (const [path, secret] of jsonFields) {
      const v = valueOf(secret);
      setJsonPath(record, path, v);
      needles.push(...needlesFor(v));
    }
    body = Buffer.from(JSON.stringify(record), "utf8");
    if (!lower.has("content-type")) headers["Content-Type"] = "application/json";
  }
  const formFields = Object.entries(auth.formField ?? {});
  if (formFields.length > 0) {
    if (jsonFields.length > 0)
      throw new LinkError("bad_request", "A body is either JSON (jsonField) or a form (formField), not both.");
    const form = new URLSearchParams(body === null ? "" : body.toString("utf8"));
    for (const [field, secret] of formFields) {
      const v = valueOf(secret);
      form.set(field, v);
      needles.push(...needlesFor(v));
    }
    body = Buffer.from(form.toString(), "utf8");
    if (!lower.has("content-type")) headers["Content-Type"] = "application/x-www-form-urlencoded";
  }
  if (body !== null && body.length > CALL_LIMITS.requestBodyBytes) {
    throw new LinkError(
      "bad_request",
      `The request body is ${body.length} bytes; calls carry at most ${CALL_LIMITS.requestBodyBytes}.`,
    );
  }
  return { method: call.method, url: injectQuery(url), headers, body, needles: [...new Set(needles)], injectQuery };
}

/** The URL as the audit log and the answer show it: origin and path, no query values. */
export function describeUrl(url: URL): { host: string; path: string; display: string } {
  return { host: url.host, path: url.pathname, display: `${url.origin}${url.pathname}` };
}

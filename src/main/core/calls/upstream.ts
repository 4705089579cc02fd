/**
 * The Link's outgoing HTTPS for calls made for agents: one undici Agent (keep-alive pools per
 * origin) that trusts the system CAs plus an optional extra CA (a corporate proxy's, or a test's),
 * and one request function that follows redirects only within the same origin and destinations,
 * bounds the time to the headers and the whole exchange, and maps transport failures to stable
 * codes (`upstream_unavailable`, retryable; `timeout`).
 */
import dns from "node:dns";
import { readFileSync } from "node:fs";
import net, { type LookupFunction } from "node:net";
import { pipeline, Transform as NodeTransform, type Readable, type Transform } from "node:stream";
import zlib from "node:zlib";
import tls from "node:tls";
import { Agent, request, errors as undiciErrors } from "undici";
import { LinkError } from "../../../shared/errors.js";

/** Where Linux distributions keep the system's CA bundle (Debian/Ubuntu, Fedora/RHEL, Alpine/openSUSE). */
const SYSTEM_BUNDLES = [
  "/etc/ssl/certs/ca-certificates.crt",
  "/etc/pki/tls/certs/ca-bundle.crt",
  "/etc/ssl/ca-bundle.pem",
  "/etc/ssl/cert.pem",
];

/**
 * The CA certificates outgoing calls trust: Node's bundled roots, the system bundle when one of
 * the usual files exists (Node 20 has no API for the OS store), and `extraCaPem` (PEM, may hold
 * several certificates).
 */
export function trustedCas(extraCaPem: string | null): string[] {
  const cas = [...tls.rootCertificates];
  for (const file of SYSTEM_BUNDLES) {
    try {
      cas.push(readFileSync(file, "utf8"));
      break;
    } catch {
      // not this distribution's path
    }
  }
  if (extraCaPem !== null) cas.push(extraCaPem);
  return cas;
}

/** One address a host name resolved to (`family` 4 or 6), as `dns.lookup` with `all` gives them. */
export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Resolves a host name to every address it has (the system resolver by default). */
export type Resolve = (hostname: string) => Promise<ResolvedAddress[]>;

export interface UpstreamOptions {
  /** Extra CA certificates (PEM) to trust besides the system ones. */
  extraCaPem: string | null;
  /** How host names are resolved (default: the system resolver, `dns.lookup`). Tests name hosts that resolve to loopback. */
  resolve?: Resolve;
}

/**
 * Addresses a call reaches only when its URL names them literally (an IP literal, or `localhost`):
 * this machine (loopback, 0.0.0.0 and ::, where the Link and a local authority listen), link-local
 * (169.254/16 holds cloud metadata services; fe80::/10), the private ranges (10/8, 172.16/12,
 * 192.168/16, fc00::/7), CGNAT (100.64/10), and the rest of the special-purpose registry that is not
 * the public internet (RFC 6890: 0/8, 192.0.0/24, the benchmark 198.18/15, multicast, reserved,
 * broadcast). IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) count as their IPv4 address
 * (net.BlockList maps them).
 */
const NOT_PUBLIC: net.BlockList = (() => {
  const list = new net.BlockList();
  for (const [network, prefix] of [
    ["0.0.0.0", 8],
    ["10.0.0.0", 8],
    ["100.64.0.0", 10],
    ["127.0.0.0", 8],
    ["169.254.0.0", 16],
    ["172.16.0.0", 12],
    ["192.0.0.0", 24],
    ["192.168.0.0", 16],
    ["198.18.0.0", 15],
    ["224.0.0.0", 4],
    ["240.0.0.0", 4],
  ] as const) {
    list.addSubnet(network, prefix, "ipv4");
  }
  for (const [network, prefix] of [
    ["::", 128],
    ["::1", 128],
    ["fc00::", 7],
    ["fe80::", 10],
    ["ff00::", 8],
  ] as const) {
    list.addSubnet(network, prefix, "ipv6");
  }
  return list;
})();

/** Is `address` (an IPv4 or IPv6 literal, no brackets) outside the public internet (see NOT_PUBLIC)? A string that is no address counts as not public. */
export function isNonPublicAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 0) return true;
  return NOT_PUBLIC.check(address, family === 4 ? "ipv4" : "ipv6");
}

/** Host names that name this machine literally, as an IP literal does. */
const LITERAL_LOCAL_NAMES: ReadonlySet<string> = new Set(["localhost"]);

const systemResolve: Resolve = (hostname) => dns.promises.lookup(hostname, { all: true, verbatim: true });

/**
 * The `lookup` the connector's sockets use: it resolves the name and refuses (LinkError
 * `destination_not_allowed`) when any address is not public (see NOT_PUBLIC) and the name is not
 * `localhost`. It runs inside the socket's connect, and the socket connects to exactly the addresses
 * it returns, so the address checked is the address used (no second resolution to race). IP
 * literals never reach it (Node connects to them directly): naming an address is naming it literally.
 */
export function guardedLookup(resolve: Resolve): LookupFunction {
  return (hostname, options, callback) => {
    const name = hostname.toLowerCase();
    resolve(hostname).then(
      (found) => {
        const wanted =
          options.family === 4 || options.family === 6 ? found.filter((a) => a.family === options.family) : found;
        if (wanted.length === 0) {
          callback(Object.assign(new Error(`${hostname} has no address`), { code: "ENOTFOUND" }), "", 0);
          return;
        }
        const inside = wanted.find((a) => isNonPublicAddress(a.address));
        if (inside !== undefined && !LITERAL_LOCAL_NAMES.has(name)) {
          const err = new LinkError(
            "destination_not_allowed",
            `${hostname} resolves to ${inside.address}, an address on this machine or a private network; Piper Link sends secrets there only when the URL (and the grant) names the address itself, e.g. https://${inside.family === 6 ? `[${inside.address}]` : inside.address}:PORT/.`,
          );
          callback(err, "", 0);
          return;
        }
        if (options.all === true) callback(null, wanted);
        else callback(null, wanted[0]?.address ?? "", wanted[0]?.family ?? 4);
      },
      (err: unknown) => callback(err instanceof Error ? err : new Error(String(err)), "", 0),
    );
  };
}

export interface UpstreamAnswer {
  status: number;
  statusText: string;
  headers: Array<[string, string]>;
  body: Readable;
  /** The URL that answered. */
  url: URL;
}

export interface UpstreamRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body: Buffer | null;
}

export interface Upstream {
  /**
   * Sends the request; returns at the status line and headers. `mayFollow(next)` decides whether a
   * redirect to `next` (already the same origin) is followed, and returns the request to send
   * there (or null to hand the 3xx to the agent). `archives: "refuse"` (the default) refuses a
   * compressed or archived answer that has no Content-Encoding (refuseArchives); "pass" lets it
   * through, for calls whose every secret the agent may read anyway. Throws LinkError
   * `upstream_unavailable` or `timeout`.
   */
  send(
    req: UpstreamRequest,
    opts: {
      signal: AbortSignal;
      headersMs: number;
      maxRedirects: number;
      mayFollow: (next: URL, status: number, prev: UpstreamRequest) => UpstreamRequest | null;
      archives?: "refuse" | "pass";
    },
  ): Promise<UpstreamAnswer>;
  close(): Promise<void>;
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: "OK",
  201: "Created",
  204: "No Content",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
};

function headerPairs(raw: Record<string, string | string[] | undefined>): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) pairs.push([name, v]);
  }
  return pairs;
}

/** Turns an undici failure into the code the agent gets. */
function transportError(err: unknown, url: URL): LinkError {
  if (err instanceof LinkError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof undiciErrors.HeadersTimeoutError)
    return new LinkError("timeout", `${url.host} sent no answer in time.`, { cause: err });
  if (
    err instanceof Error &&
    /certificate|self[- ]signed|CERT_|unable to verify/i.test(`${message} ${"code" in err ? String(err.code) : ""}`)
  ) {
    return new LinkError("upstream_unavailable", `${url.host}'s TLS certificate is not trusted (${message}).`, {
      cause: err,
      retryable: false,
    });
  }
  return new LinkError("upstream_unavailable", `${url.host} could not be reached (${message}).`, {
    cause: err,
    retryable: true,
  });
}

/** `headers` with the agent's Accept-Encoding (any case) replaced by `identity`. */
function withIdentityEncoding(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (name.toLowerCase() !== "accept-encoding") out[name] = value;
  out["accept-encoding"] = "identity";
  return out;
}

/** Decoders for the content codings of RFC 9110 section 8.4.1 that Node can undo. */
const DECODERS: Readonly<Record<string, () => Transform>> = {
  gzip: () => zlib.createGunzip(),
  "x-gzip": () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
};

/**
 * The answer with its body decoded, as the agent will get it: an upstream that compresses although
 * asked for `identity` is decoded here (gzip, deflate, br, also stacked), so the redactor sees the
 * plain bytes, and Content-Encoding and Content-Length (which described the encoded body) are
 * dropped. An encoding Node cannot undo fails closed: `upstream_unavailable`, since the answer
 * could carry a secret nobody could check for.
 */
function decodedAnswer(answer: UpstreamAnswer): UpstreamAnswer {
  const codings = answer.headers
    .filter(([name]) => name.toLowerCase() === "content-encoding")
    .flatMap(([, value]) => value.split(","))
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== "" && c !== "identity");
  if (codings.length === 0) return answer;
  const unknown = codings.find((c) => DECODERS[c] === undefined);
  if (unknown !== undefined) {
    // Nobody reads it: end it, and keep its abort error from being an uncaught one.
    answer.body.on("error", () => undefined);
    answer.body.destroy();
    throw new LinkError(
      "upstream_unavailable",
      `${answer.url.host} answered in the ${unknown} encoding, which Piper Link cannot decode to check it for your secrets; the answer was not passed on.`,
      { retryable: false },
    );
  }
  // Codings are listed in the order they were applied; undo them last first.
  // pipeline: an error on either side (a broken connection, a corrupt stream) ends both, and the
  // reader sees it; the answer's size limit then counts decoded bytes (no decompression bomb).
  let body: Readable = answer.body;
  for (const c of [...codings].reverse()) {
    const decoder = DECODERS[c]?.();
    if (decoder === undefined) continue;
    body = pipeline(body, decoder, () => undefined);
  }
  const headers = answer.headers.filter(
    ([name]) => !["content-encoding", "content-length"].includes(name.toLowerCase()),
  );
  return { ...answer, headers, body };
}

/**
 * Content types whose bytes are compressed or archived (gzip, zip and the formats built on it such
 * as docx/xlsx/odt/epub/jar, bzip2, xz, zstd, 7z, rar, lzip, lz4, compress): a value inside them is
 * not visible to the redactor, and the agent can unpack it.
 */
const ARCHIVE_TYPE =
  /^\s*(application\/(gzip|x-gzip|zip|x-zip|x-zip-compressed|x-bzip|x-bzip2|x-xz|zstd|x-zstd|x-7z-compressed|x-rar-compressed|vnd\.rar|x-compress|x-compressed|x-lzip|x-lzma|x-lz4|x-tgz|x-gtar|java-archive|epub\+zip|vnd\.openxmlformats-[\w.+-]*|vnd\.oasis\.opendocument\.[\w.+-]*|vnd\.android\.package-archive)|[\w.+-]+\/[\w.+-]*\+(zip|gzip))\s*(;|$)/i;

/** The leading bytes of the same formats, for answers that do not say what they are. */
const ARCHIVE_MAGIC: ReadonlyArray<{ name: string; bytes: Buffer }> = [
  { name: "gzip", bytes: Buffer.from([0x1f, 0x8b]) },
  { name: "compress", bytes: Buffer.from([0x1f, 0x9d]) },
  { name: "zip", bytes: Buffer.from("PK\x03\x04", "latin1") },
  { name: "zip", bytes: Buffer.from("PK\x05\x06", "latin1") },
  { name: "zip", bytes: Buffer.from("PK\x07\x08", "latin1") },
  { name: "xz", bytes: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) },
  { name: "zstd", bytes: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]) },
  { name: "7z", bytes: Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]) },
  { name: "rar", bytes: Buffer.from("Rar!\x1a\x07", "latin1") },
  { name: "lz4", bytes: Buffer.from([0x04, 0x22, 0x4d, 0x18]) },
  { name: "lzip", bytes: Buffer.from("LZIP", "latin1") },
  // bzip2: "BZh", the block size, then the first block's magic (the digits of pi).
  { name: "bzip2", bytes: Buffer.from([0x31, 0x41, 0x59, 0x26, 0x53, 0x59]) },
];
const MAGIC_BYTES = 10;

function archiveMagic(head: Buffer): string | null {
  if (
    head.length >= 10 &&
    head.subarray(0, 3).toString("latin1") === "BZh" &&
    head.subarray(4, 10).equals(ARCHIVE_MAGIC.find((m) => m.name === "bzip2")?.bytes ?? Buffer.alloc(0))
  )
    return "bzip2";
  return (
    ARCHIVE_MAGIC.find(
      (m) => m.name !== "bzip2" && head.length >= m.bytes.length && head.subarray(0, m.bytes.length).equals(m.bytes),
    )?.name ?? null
  );
}

function archiveRefused(host: string, what: string): LinkError {
  return new LinkError(
    "upstream_unavailable",
    `${host} answered with ${what} content, whose bytes Piper Link cannot check for your secrets; under a use-only grant such an answer is not passed on.`,
    { retryable: false },
  );
}

/**
 * Refuses compressed or archived answers that arrive without a Content-Encoding (which decodedAnswer
 * would have undone): by content type at once, before anything is sent to the agent, and by the
 * body's first bytes as it streams (the body then fails with LinkError `upstream_unavailable`).
 */
function refuseArchives(answer: UpstreamAnswer): UpstreamAnswer {
  const type = answer.headers.find(([name]) => name.toLowerCase() === "content-type")?.[1] ?? "";
  if (ARCHIVE_TYPE.test(type)) {
    answer.body.on("error", () => undefined);
    answer.body.destroy();
    throw archiveRefused(answer.url.host, type.split(";")[0]?.trim() ?? type);
  }
  // The first MAGIC_BYTES bytes are held until they are checked; the rest passes as it comes.
  let head: Buffer | null = Buffer.alloc(0);
  const release = (sniff: Transform): Error | null => {
    const seen = head ?? Buffer.alloc(0);
    head = null;
    const found = archiveMagic(seen);
    if (found !== null) return archiveRefused(answer.url.host, found);
    if (seen.length > 0) sniff.push(seen);
    return null;
  };
  const sniff: Transform = new NodeTransform({
    transform(chunk: Buffer, _encoding, callback) {
      if (head === null) {
        callback(null, chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      callback(head.length >= MAGIC_BYTES ? release(sniff) : null);
    },
    flush(callback) {
      callback(head === null ? null : release(sniff));
    },
  });
  return { ...answer, body: pipeline(answer.body, sniff, () => undefined) };
}

/** Creates the outgoing HTTPS client. Nothing is connected until the first call. */
export function createUpstream(options: UpstreamOptions): Upstream {
  const agent = new Agent({
    // Every connection resolves its host through the guard: a name that leads to this machine or a
    // private network is refused before a byte (or the secret) is sent.
    connect: { ca: trustedCas(options.extraCaPem), lookup: guardedLookup(options.resolve ?? systemResolve) },
    keepAliveTimeout: 10_000,
    // The total time is bounded by the caller's signal; a stream may be quiet between events.
    bodyTimeout: 0,
  });
  return {
    async send(first, opts) {
      let current = first;
      for (let hops = 0; ; hops++) {
        let answer;
        try {
          answer = await request(current.url, {
            dispatcher: agent,
            method: current.method as "GET",
            // Asked for uncompressed, whatever the agent sent: the answer is checked for echoes of
            // the secrets (redactor.ts), which a compressed body would hide (decodedAnswer below).
            headers: withIdentityEncoding(current.headers),
            body: current.body,
            signal: opts.signal,
            headersTimeout: opts.headersMs,
          });
        } catch (err) {
          if (opts.signal.aborted)
            throw new LinkError("timeout", `The call to ${current.url.host} took too long.`, { cause: err });
          throw transportError(err, current.url);
        }
        const location = answer.headers["location"];
        const isRedirect = answer.statusCode >= 300 && answer.statusCode < 400 && typeof location === "string";
        if (isRedirect && hops < opts.maxRedirects) {
          const next = URL.canParse(location, current.url.href) ? new URL(location, current.url) : null;
          const follow =
            next !== null && next.origin === current.url.origin
              ? opts.mayFollow(next, answer.statusCode, current)
              : null;
          if (follow !== null) {
            answer.body.resume();
            current = follow;
            continue;
          }
        }
        const decoded = decodedAnswer({
          status: answer.statusCode,
          statusText: STATUS_TEXT[answer.statusCode] ?? "",
          headers: headerPairs(answer.headers),
          body: answer.body,
          url: current.url,
        });
        return opts.archives === "pass" ? decoded : refuseArchives(decoded);
      }
    },
    close: () => agent.close(),
  };
}

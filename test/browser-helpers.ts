/**
 * A tiny HTTP "browser" for protocol tests: keeps cookies, never follows redirects (so each hop can
 * be checked), and trusts a given CA (the embedded authority's self-signed certificate). Tests that
 * need a real browser engine use Playwright; these check what the server sends.
 */
import assert from "node:assert/strict";
import http from "node:http";
import https from "node:https";

export interface Response {
  status: number;
  location: string | null;
  text: string;
  json: Record<string, unknown>;
}

export class Browser {
  private readonly jar = new Map<string, string>();
  /** Headers sent with every request (e.g. the X-Forwarded-For a proxy would add). */
  readonly headers: Record<string, string> = {};
  constructor(
    private readonly base: string,
    private readonly ca: string | null = null,
  ) {}

  request(method: string, target: string, form?: Record<string, string>): Promise<Response> {
    const url = new URL(target, this.base);
    const headers: Record<string, string> = {
      ...this.headers,
      Cookie: [...this.jar].map(([k, v]) => `${k}=${v}`).join("; "),
    };
    const body = form ? new URLSearchParams(form).toString() : undefined;
    if (body !== undefined) headers["Content-Type"] = "application/x-www-form-urlencoded";
    const lib = url.protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request(url, { method, headers, ...(this.ca ? { ca: this.ca } : {}) }, (res) => {
        for (const c of res.headers["set-cookie"] ?? []) {
          const [pair] = c.split(";");
          const at = pair?.indexOf("=") ?? -1;
          if (pair && at > 0) this.jar.set(pair.slice(0, at), pair.slice(at + 1));
        }
        let text = "";
        res.on("data", (chunk: Buffer) => (text += chunk.toString()));
        res.on("end", () => {
          let json: Record<string, unknown>;
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {
            json = {};
          }
          const location = res.headers.location ?? null;
          resolve({
            status: res.statusCode ?? 0,
            location: location === null ? null : new URL(location, url).toString(),
            text,
            json,
          });
        });
      });
      req.on("error", reject);
      req.end(body);
    });
  }

  get = (target: string): Promise<Response> => this.request("GET", target);
  post = (target: string, form: Record<string, string>): Promise<Response> => this.request("POST", target, form);

  /** Follows redirects (GET) up to `max` hops; returns the last response. */
  async follow(target: string, max = 10): Promise<Response> {
    let r = await this.get(target);
    for (let i = 0; i < max && r.status >= 300 && r.status < 400 && r.location; i++) r = await this.get(r.location);
    return r;
  }
}

export function csrfOf(html: string): string {
  const m = /name="csrf" value="([^"]+)"/.exec(html);
  assert.ok(m?.[1], "the form carries a CSRF token");
  return m[1];
}

/**
 * A local HTTPS upstream for call tests and the bench: its own CA (made with `selfsigned`), a
 * server certificate for 127.0.0.1, localhost and *.calls.test signed by it, loopback only. Every request it
 * receives is recorded (method, URL, headers, body) so tests check injections on the upstream side.
 */
import fs from "node:fs/promises";
import type { ServerResponse } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { generate } from "selfsigned";

export interface Received {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface TestUpstream {
  port: number;
  origin: string;
  caFile: string;
  caPem: string;
  received: Received[];
  /** Routes answer from here: path -> handler. */
  routes: Map<string, (req: Received, res: ServerResponse) => unknown>;
  close(): Promise<void>;
}

/** Makes a CA and a server certificate for 127.0.0.1/localhost signed by it. */
export async function makeTestCa(): Promise<{ caPem: string; key: string; cert: string }> {
  const ca = await generate([{ name: "commonName", value: "Piper Link test CA" }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const leaf = await generate([{ name: "commonName", value: "127.0.0.1" }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", serverAuth: true },
      // *.calls.test: names a test resolves to 127.0.0.1, to check that a name is not the address it leads to.
      {
        name: "subjectAltName",
        altNames: [
          { type: 2, value: "localhost" },
          { type: 2, value: "*.calls.test" },
          { type: 7, ip: "127.0.0.1" },
        ],
      },
    ],
  });
  return { caPem: ca.cert, key: leaf.private, cert: leaf.cert };
}

/** Starts the upstream on 127.0.0.1, port 0; writes the CA to `dir`/ca.pem. */
export async function startUpstream(dir: string): Promise<TestUpstream> {
  const { caPem, key, cert } = await makeTestCa();
  const caFile = path.join(dir, "ca.pem");
  await fs.writeFile(caFile, caPem);
  const received: Received[] = [];
  const routes: TestUpstream["routes"] = new Map();
  const server = https.createServer({ key, cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const r: Received = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      received.push(r);
      const route = routes.get(new URL(r.url, "https://x").pathname);
      if (route === undefined) {
        res.writeHead(404).end("no route");
        return;
      }
      void Promise.resolve(route(r, res)).catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    origin: `https://127.0.0.1:${port}`,
    caFile,
    caPem,
    received,
    routes,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

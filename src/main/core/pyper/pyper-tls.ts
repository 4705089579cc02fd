/**
 * The TLS identity of the Link's pyper-sdk endpoints: pyper-sdk 0.7 refuses URLs that are not
 * `https://`, so the Link serves them over HTTPS with a self-signed certificate for 127.0.0.1 /
 * localhost / ::1, created once in `<data dir>/pyper/` (key mode 0600) and renewed a week before it
 * expires. Agents trust this one certificate for the Link's pyper origin only (`piper-link pyper`
 * prints how), never as a CA for anything else: it is not a CA (basicConstraints cA=false).
 */
import { X509Certificate } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { generateLoopbackCertificate } from "../../../platform/loopback-certificate.js";

export interface PyperTlsIdentity {
  key: string;
  cert: string;
  /** Absolute path of the certificate (PEM) the agents trust. */
  certFile: string;
}

/** A certificate that expires within this time is replaced at start (ms). */
const RENEW_BEFORE_MS = 7 * 24 * 3600 * 1000;
const LIFETIME_MS = 5 * 365 * 24 * 3600 * 1000;

/** Where the certificate of a Link with data directory `dataDir` lives. */
export function pyperCertFile(dataDir: string): string {
  return path.join(dataDir, "pyper", "tls.crt");
}

/**
 * Loads the certificate and key from `<dataDir>/pyper/`, or creates them (EC P-256, SHA-256, five
 * years) when missing, unreadable or about to expire. Throws only when the directory cannot be
 * written.
 */
export async function loadOrCreatePyperTls(dataDir: string, now: () => number = Date.now): Promise<PyperTlsIdentity> {
  const dir = path.join(dataDir, "pyper");
  const keyFile = path.join(dir, "tls.key");
  const certFile = pyperCertFile(dataDir);
  try {
    const [key, cert] = await Promise.all([fs.readFile(keyFile, "utf8"), fs.readFile(certFile, "utf8")]);
    if (new Date(new X509Certificate(cert).validTo).getTime() > now() + RENEW_BEFORE_MS) return { key, cert, certFile };
  } catch {
    // Missing or unreadable: make a new pair below.
  }
  const pems = await generateLoopbackCertificate("Piper Link pyper-sdk endpoints", new Date(now() + LIFETIME_MS));
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  await fs.writeFile(keyFile, pems.private, { mode: 0o600 });
  // Readable by the user's agents; it is public material.
  await fs.writeFile(certFile, pems.cert, { mode: 0o644 });
  return { key: pems.private, cert: pems.cert, certFile };
}

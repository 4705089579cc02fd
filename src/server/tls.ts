/**
 * The embedded authority's TLS identity: a self-signed certificate for 127.0.0.1 / localhost / ::1,
 * created once and kept in the data directory (key mode 0600). The Link pins its SHA-256
 * fingerprint instead of trusting any CA.
 */
import { X509Certificate } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { generateLoopbackCertificate } from "../platform/loopback-certificate.js";

export interface TlsIdentity {
  key: string;
  cert: string;
  /** SHA-256 fingerprint as Node prints it (`AA:BB:...`). */
  fingerprint256: string;
}

export function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

export async function loadOrCreateTlsIdentity(dir: string): Promise<TlsIdentity> {
  const keyFile = path.join(dir, "tls.key");
  const certFile = path.join(dir, "tls.crt");
  try {
    const [key, cert] = await Promise.all([fs.readFile(keyFile, "utf8"), fs.readFile(certFile, "utf8")]);
    const x509 = new X509Certificate(cert);
    if (new Date(x509.validTo).getTime() > Date.now() + 7 * 24 * 3600 * 1000)
      return { key, cert, fingerprint256: x509.fingerprint256 };
  } catch {
    // Missing or unreadable: make a new one below.
  }
  const notAfter = new Date(Date.now() + 5 * 365 * 24 * 3600 * 1000);
  const pems = await generateLoopbackCertificate("Piper Link embedded authority", notAfter);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  await fs.writeFile(keyFile, pems.private, { mode: 0o600 });
  await fs.writeFile(certFile, pems.cert, { mode: 0o644 });
  return { key: pems.private, cert: pems.cert, fingerprint256: fingerprintOf(pems.cert) };
}

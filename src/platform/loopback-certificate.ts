/**
 * The self-signed certificate of a loopback HTTPS listener (the embedded authority's, the Link's
 * pyper-sdk endpoints'): EC P-256, not a CA, server authentication only, valid for localhost,
 * 127.0.0.1 and ::1. One definition, so both listeners present the same kind of certificate.
 * Pure generation (the `selfsigned` package); callers store the PEMs. The package (with its X.509
 * and ASN.1 libraries, several MB of a daemon's memory) loads on first use: a Link or authority
 * that finds its stored certificate never loads it.
 */

/** A new key pair and certificate for `commonName`, valid until `notAfter`; PEM strings. */
export async function generateLoopbackCertificate(
  commonName: string,
  notAfter: Date,
): Promise<{ private: string; cert: string }> {
  const { generate } = await import("selfsigned");
  const pems = await generate([{ name: "commonName", value: commonName }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notAfterDate: notAfter,
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", serverAuth: true },
      {
        name: "subjectAltName",
        altNames: [
          { type: 2, value: "localhost" },
          { type: 7, ip: "127.0.0.1" },
          { type: 7, ip: "::1" },
        ],
      },
    ],
  });
  return { private: pems.private, cert: pems.cert };
}

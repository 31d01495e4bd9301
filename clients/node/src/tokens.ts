// User tokens: the JWT a tenant's backend gives a user's page, signed with one of the
// tenant's signing keys (on `jose`).

import { type CryptoKey, type KeyObject, SignJWT, importPKCS8 } from "jose";

export type Algorithm = "HS256" | "ES256" | "EdDSA" | "RS256";

export interface TokenRequest {
  /** The signing key's id, as Herald gave it. */
  kid: string;
  /** The user. */
  sub: string;
  /** HS256: the key's secret, exactly as Herald showed it. */
  secret?: string;
  /** ES256, EdDSA, RS256: the private key (PKCS#8 PEM, or a key object). */
  privateKey?: string | CryptoKey | KeyObject;
  alg?: Algorithm;
  /** Topic names or `prefix:*` patterns the user may stream. */
  topics?: string[];
  /** Seconds the token lives (default 3600). */
  ttl?: number;
  audience?: string;
  /** The issue time, in seconds (default now). */
  now?: number;
}

/** A user token for `sub`, valid `ttl` seconds. */
export async function mintUserToken(request: TokenRequest): Promise<string> {
  const alg = request.alg ?? "HS256";
  let key: Uint8Array | CryptoKey | KeyObject;
  if (alg === "HS256") {
    if (request.secret === undefined) throw new TypeError("HS256 signs with the key's `secret`");
    key = new TextEncoder().encode(request.secret);
  } else {
    if (request.privateKey === undefined) throw new TypeError(`${alg} signs with a \`privateKey\``);
    key = typeof request.privateKey === "string" ? await importPKCS8(request.privateKey, alg) : request.privateKey;
  }
  const issued = request.now ?? Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = {};
  if (request.topics) claims.topics = request.topics;
  return new SignJWT(claims)
    .setProtectedHeader({ alg, kid: request.kid, typ: "JWT" })
    .setSubject(request.sub)
    .setAudience(request.audience ?? "herald")
    .setIssuedAt(issued)
    .setExpirationTime(issued + (request.ttl ?? 3600))
    .sign(key);
}

// Makes DPoP proofs with the RFC 9449 reference client (npm "dpop", by panva)
// for Tether's interop tests. One JSON request per stdin line:
//   {"key": name, "alg": "ES256"|"Ed25519", "htm", "htu", "token"?, "nonce"?}
// one JSON answer per stdout line: {"proof", "jkt"}. A key is generated the
// first time its name is used and kept for the process's life.
import { createInterface } from 'node:readline';
import { calculateThumbprint, generateKeyPair, generateProof } from 'dpop';

const keys = new Map();
for await (const line of createInterface({ input: process.stdin })) {
  const req = JSON.parse(line);
  let kp = keys.get(req.key);
  if (!kp) {
    kp = await generateKeyPair(req.alg);
    keys.set(req.key, kp);
  }
  const proof = await generateProof(kp, req.htu, req.htm, req.nonce || undefined, req.token || undefined);
  const jkt = await calculateThumbprint(kp.publicKey);
  process.stdout.write(JSON.stringify({ proof, jkt }) + '\n');
}

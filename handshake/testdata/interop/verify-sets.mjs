// Verifies Security Event Tokens with only the transmitter's published JWKS,
// using the independent jose implementation: reads {jwks_url, issuer,
// audience, sets: [...]} on stdin and writes {verified, failures, events} on
// stdout. Used by go test ./cmd/tether -run SSF.
import * as jose from 'jose'

const req = JSON.parse(await new Promise((resolve) => {
  let data = ''
  process.stdin.on('data', (c) => (data += c))
  process.stdin.on('end', () => resolve(data))
}))
const jwks = jose.createRemoteJWKSet(new URL(req.jwks_url))
const out = { verified: 0, failures: [], events: [] }
for (const set of req.sets) {
  try {
    const { payload, protectedHeader } = await jose.jwtVerify(set, jwks, {
      algorithms: ['EdDSA', 'ES256'], typ: 'secevent+jwt', issuer: req.issuer, audience: req.audience,
    })
    const types = Object.keys(payload.events ?? {})
    if (types.length !== 1 || typeof payload.jti !== 'string' || typeof payload.iat !== 'number' ||
        typeof payload.sub_id?.format !== 'string' || !protectedHeader.kid) {
      throw new Error('not a SET of one event with jti, iat, sub_id and a kid')
    }
    out.verified++
    out.events.push({ type: types[0], sub_id: payload.sub_id, event: payload.events[types[0]] })
  } catch (e) {
    out.failures.push(String(e))
  }
}
process.stdout.write(JSON.stringify(out))

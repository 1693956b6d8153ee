// Reads a JSON request on stdin, verifies the tokens Tether minted with
// independent implementations (jose for JWT, paseto for v4.public,
// paseto-ts for v4.local, which paseto leaves to an extension), mints tokens
// for Tether to verify, and writes a JSON report on stdout.
import * as jose from 'jose'
import { PublicProtocol } from 'paseto'
import * as v4public from 'paseto/v4/public'
import { encrypt as localEncrypt, decrypt as localDecrypt } from 'paseto-ts/v4'

const req = JSON.parse(await new Promise((resolve) => {
  let data = ''
  process.stdin.on('data', (c) => (data += c))
  process.stdin.on('end', () => resolve(data))
}))
const typ = 'handshake+jwt'
const assertion = 'tether-handshake'
const v4 = new PublicProtocol(
  v4public.ImportPublicKeyFactory, v4public.ImportSecretKeyFactory, v4public.SignFactory, v4public.VerifyFactory)
const hsKey = new Uint8Array(Buffer.from(req.keys.hs256, 'base64url'))

const verify = {
  HS256: (t) => jose.jwtVerify(t, hsKey, { algorithms: ['HS256'], typ, issuer: req.issuer, audience: req.audience }).then((r) => r.payload),
  EdDSA: async (t) => (await jose.jwtVerify(t, await jose.importJWK(req.keys.ed_public_jwk, 'EdDSA'),
    { algorithms: ['EdDSA'], typ, issuer: req.issuer, audience: req.audience })).payload,
  ES256: async (t) => (await jose.jwtVerify(t, await jose.importJWK(req.keys.es_public_jwk, 'ES256'),
    { algorithms: ['ES256'], typ, issuer: req.issuer, audience: req.audience })).payload,
  'v4.public': async (t) => (await v4.Verify(await v4.ImportPublicKey(req.keys.v4_public), t,
    { implicitAssertion: new TextEncoder().encode(assertion), issuer: req.issuer, audience: req.audience })).claims,
  'v4.local': async (t) => {
    const { payload } = localDecrypt(req.keys.v4_local, t, { assertion })
    if (payload.iss !== req.issuer || payload.aud !== req.audience) throw new Error('iss or aud mismatch')
    return payload
  },
}

const report = { verified: {}, rejected_wrong_assertion: {}, minted: {} }
for (const [alg, token] of Object.entries(req.tether)) {
  try {
    const claims = await verify[alg](token)
    report.verified[alg] = { ok: true, sub: claims.sub, jti: claims.jti }
  } catch (e) {
    report.verified[alg] = { ok: false, error: String(e.code || e.message) }
  }
}
// Negative control: the PASETO implicit assertion really is checked.
for (const alg of ['v4.public', 'v4.local']) {
  try {
    if (alg === 'v4.public') {
      await v4.Verify(await v4.ImportPublicKey(req.keys.v4_public), req.tether[alg], { implicitAssertion: new TextEncoder().encode('other') })
    } else {
      localDecrypt(req.keys.v4_local, req.tether[alg], { assertion: 'other' })
    }
    report.rejected_wrong_assertion[alg] = false
  } catch {
    report.rejected_wrong_assertion[alg] = true
  }
}

const now = Math.floor(Date.now() / 1000)
const claims = (alg) => ({ iss: req.node_issuer, sub: 'bob', aud: req.node_audience, jti: `node-${alg}-${now}` })
const jwt = async (alg, key, kid) => new jose.SignJWT(claims(alg))
  .setProtectedHeader(kid ? { alg, typ, kid } : { alg, typ })
  .setIssuedAt(now).setExpirationTime(now + 60).sign(key)
report.minted.HS256 = await jwt('HS256', hsKey)
report.minted.EdDSA = await jwt('EdDSA', await jose.importJWK(req.keys.node_ed_private_jwk, 'EdDSA'), 'node-ed')
report.minted.ES256 = await jwt('ES256', await jose.importJWK(req.keys.node_es_private_jwk, 'ES256'), 'node-es')
const iso = (s) => new Date(s * 1000).toISOString()
report.minted['v4.public'] = await v4.Sign(await v4.ImportSecretKey(req.keys.node_v4_secret),
  { ...claims('v4.public'), iat: iso(now), exp: iso(now + 60) },
  { implicitAssertion: new TextEncoder().encode(assertion) })
report.minted['v4.local'] = localEncrypt(req.keys.v4_local,
  { ...claims('v4.local'), iat: iso(now), exp: iso(now + 60) }, { assertion })

process.stdout.write(JSON.stringify(report))

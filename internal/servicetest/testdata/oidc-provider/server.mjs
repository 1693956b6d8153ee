// A real OpenID provider on loopback for Tether's sign-in tests.
//
// Environment: PORT (listen on 127.0.0.1:PORT; the issuer is
// http://127.0.0.1:PORT), CLIENTS (JSON array of oidc-provider client
// metadata), ACCOUNTS (JSON object: account id -> extra claims, e.g.
// {"alice": {"groups": ["admin"]}}).
//
// Sign-in uses oidc-provider's development interactions: any password is
// accepted for the login typed in, which becomes the account id.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const clients = JSON.parse(process.env.CLIENTS);
const accounts = JSON.parse(process.env.ACCOUNTS || '{}');

const provider = new Provider(issuer, {
  clients,
  pkce: { required: () => true },
  // Claims in the ID token itself, as Tether reads them: it never calls
  // userinfo.
  conformIdTokenClaims: false,
  claims: {
    openid: ['sub'],
    email: ['email'],
    profile: ['name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
  },
  // Back-channel logout posts to the relying party on loopback, which the
  // provider's SSRF guard (its dispatcher) refuses: a test provider only
  // ever talks to this machine.
  fetch: (url, options) => globalThis.fetch(url, { ...options, dispatcher: undefined }),
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.test`, name: id, ...(accounts[id] || {}) };
      },
    };
  },
});
provider.proxy = false;

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider ready at ${issuer}`);
});

// The test identity provider: the OpenID Certified `oidc-provider` (npm), on loopback.
// Started by tests/oidc/provider.py. Listens on 127.0.0.1:$OIDC_PORT (the worker's slice,
// gateway/testing/ports.py; 0: any free port) and prints one JSON line
// {"issuer": ...} on stdout once ready. Configuration from the environment:
//   OIDC_KEYS_FILE    JSON array of private JWKs (with kid and alg); the first signs. Re-read on
//                     SIGHUP (key rotation without restart: a new Provider behind the same socket).
//   OIDC_AUDIENCE     the gateway's resource indicator (the default resource, the `aud` of tokens)
//   OIDC_FORMAT       "jwt" (default) or "opaque" access tokens (the latter checked by introspection)
//   OIDC_CLIENTS      JSON object {client_id: {secret, subject}}: clients allowed the
//                     client_credentials grant; `subject` becomes the token's SubjectNameID claim.
//   OIDC_INTROSPECTOR JSON {client_id, secret}: the gateway's own client (introspection only).
// Any resource indicator is accepted (the "other audience" test asks for another one).
import { readFileSync } from 'node:fs';
import http from 'node:http';
import Provider from 'oidc-provider';

const env = process.env;
const audience = env.OIDC_AUDIENCE;
const format = env.OIDC_FORMAT || 'jwt';
const clientsSpec = JSON.parse(env.OIDC_CLIENTS || '{}');
const introspector = JSON.parse(env.OIDC_INTROSPECTOR || 'null');
const SCOPES = ['openid', 'mail', 'other'];

function build(issuer) {
  const keys = JSON.parse(readFileSync(env.OIDC_KEYS_FILE, 'utf8'));
  const clients = Object.entries(clientsSpec).map(([id, spec]) => ({
    client_id: id,
    client_secret: spec.secret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: SCOPES.join(' '),
  }));
  if (introspector) {
    clients.push({
      client_id: introspector.client_id,
      client_secret: introspector.secret,
      grant_types: [],
      redirect_uris: [],
      response_types: [],
    });
  }
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys },
    scopes: SCOPES,
    ttl: { ClientCredentials: 300 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => audience,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resourceIndicator) => ({
          scope: SCOPES.join(' '),
          audience: resourceIndicator,
          accessTokenTTL: 300,
          accessTokenFormat: format,
          jwt: { sign: { alg: keys[0].alg } },
        }),
      },
    },
    extraTokenClaims: async (_ctx, token) => {
      const spec = clientsSpec[token.clientId];
      return spec && spec.subject ? { SubjectNameID: spec.subject } : undefined;
    },
  });
  provider.on('server_error', (_ctx, err) => console.error('provider server_error', err));
  return provider;
}

let handler = null;
const server = http.createServer((req, res) => handler(req, res));
server.listen(Number(env.OIDC_PORT || 0), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  handler = build(issuer).callback();
  process.on('SIGHUP', () => {
    // The in-memory token store goes with the old Provider: fine for JWT access tokens.
    handler = build(issuer).callback();
    console.log(JSON.stringify({ reloaded: true }));
  });
  console.log(JSON.stringify({ issuer }));
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));

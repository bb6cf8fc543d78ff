#!/usr/bin/env node
// mcp-oauth-client.mjs: an MCP client (TypeScript SDK) that runs the full MCP
// authorization flow without a human, against an MCP server that is its own
// authorization server: 401 -> protected resource metadata -> AS metadata ->
// dynamic client registration -> PKCE -> authorize -> token. Its "browser"
// follows the redirect chain itself, approves vmcp's consent page, and accepts
// Ory Hydra's login and consent requests through Hydra's admin API.
//
//   node mcp-oauth-client.mjs --url URL --hydra-admin URL [options] tools
//   node mcp-oauth-client.mjs ... call NAME '{"arg":1}'
//   node mcp-oauth-client.mjs ... script '[{"op":"tools"},{"op":"call","name":"echo","arguments":{}}]'
//   node mcp-oauth-client.mjs ... --token-only          print the tokens obtained, no MCP session
//   node mcp-oauth-client.mjs --hydra-admin URL --redirect-uri URI --authorize-url URL
//                                                      debug: follow URL, print {url, code, state}
//   node mcp-oauth-client.mjs ... --state FILE [--no-login] [--invalidate-access-token] script '[...]'
//       a client that lives on: its registration and tokens are read from FILE (if it exists) and
//       written back, with counts of registrations, logins and refreshes. --no-login fails instead
//       of registering or logging in again; --invalidate-access-token makes it refresh first.
//   Script steps besides tools, call, resources, read, prompts (for tests that act while the client
//   runs): {"op":"loop","name":N,"until":FILE} calls tool N until FILE exists (at most 2000 calls),
//   recording each outcome ({ok, text} or {ok:false, error}) instead of failing on an error;
//   {"op":"signal","file":F} creates F; {"op":"await","file":F} waits (at most 120 s) until F exists;
//   {"op":"session","file":F?} records the transport's Mcp-Session-Id (and writes it to F).
//   node mcp-oauth-client.mjs --url URL --browser ...  a person's browser does the login: the client
//        listens on a loopback redirect URI of its own (http://127.0.0.1:<free port>/callback), prints
//        "OPEN <authorization URL>" on stderr for the browser to open, and takes the code (or the
//        error) from the browser's visit to that URI, as desktop MCP clients do
// Options: --subject S (user-123), --claims JSON (ID token claims), --access-claims JSON,
// --reject-login, --redirect-uri URI (http://127.0.0.1:<random>/callback), --scope S,
// --auth-method none|client_secret_basic|client_secret_post (none). Flags fall back to
// env MCP_URL, HYDRA_ADMIN_URL, HYDRA_SUBJECT, HYDRA_CLAIMS.
// stdout: one JSON document (on failure {"error", "oauth_error"?}); stderr: diagnostics.
// In MCP mode the server must ask for authorization (401 first): one that
// does not is reported as a failure ("the server did not ask for authorization").
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { createServer } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string', default: process.env.MCP_URL },
    'hydra-admin': { type: 'string', default: process.env.HYDRA_ADMIN_URL },
    subject: { type: 'string', default: process.env.HYDRA_SUBJECT ?? 'user-123' },
    claims: { type: 'string', default: process.env.HYDRA_CLAIMS ??
      '{"email":"alice@example.com","email_verified":true,"name":"Alice Example","groups":["engineering","admins"]}' },
    'access-claims': { type: 'string' },
    'reject-login': { type: 'boolean', default: false },
    'redirect-uri': { type: 'string', default: `http://127.0.0.1:${20000 + Math.floor(Math.random() * 40000)}/callback` },
    scope: { type: 'string' },
    'auth-method': { type: 'string', default: 'none' },
    'token-only': { type: 'boolean', default: false },
    'authorize-url': { type: 'string' },
    state: { type: 'string' },
    'no-login': { type: 'boolean', default: false },
    'invalidate-access-token': { type: 'boolean', default: false },
    browser: { type: 'boolean', default: false },
  },
});

const log = (...a) => console.error('[mcp-oauth-client]', ...a);

class OAuthFailure extends Error {
  constructor(message, oauthError) { super(message); this.oauthError = oauthError; }
}

// ---- headless browser: redirects, cookies per host name, Hydra login/consent ----
const jar = new Map(); // hostname -> Map(cookie name -> value)

function storeCookies(u, res) {
  const cookies = jar.get(u.hostname) ?? new Map();
  jar.set(u.hostname, cookies);
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(';');
    const i = pair.indexOf('=');
    const name = pair.slice(0, i).trim(), value = pair.slice(i + 1).trim();
    const expired = attrs.some((a) => /^\s*max-age\s*=\s*(0|-)/i.test(a)) ||
      attrs.some((a) => /^\s*expires\s*=/i.test(a) && Date.parse(a.split('=')[1]) < Date.now());
    if (expired) cookies.delete(name); else cookies.set(name, value);
  }
}

async function hydraAdmin(method, path, challengeParam, challenge, body) {
  const u = new URL(path, opt['hydra-admin']);
  u.searchParams.set(challengeParam, challenge);
  const res = await fetch(u, {
    method, headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`hydra admin ${method} ${u.pathname}: ${res.status} ${text}`);
  return JSON.parse(text);
}

async function answerLogin(challenge) {
  const p = '/admin/oauth2/auth/requests/login';
  const req = await hydraAdmin('GET', p, 'login_challenge', challenge);
  if (opt['reject-login']) {
    log('rejecting Hydra login');
    return (await hydraAdmin('PUT', `${p}/reject`, 'login_challenge', challenge,
      { error: 'access_denied', error_description: 'The test harness rejected the login.' })).redirect_to;
  }
  const subject = req.skip ? req.subject : opt.subject;
  log(`accepting Hydra login as ${subject}`);
  return (await hydraAdmin('PUT', `${p}/accept`, 'login_challenge', challenge, { subject })).redirect_to;
}

async function answerConsent(challenge) {
  const p = '/admin/oauth2/auth/requests/consent';
  const req = await hydraAdmin('GET', p, 'consent_challenge', challenge);
  const session = { id_token: JSON.parse(opt.claims) };
  if (opt['access-claims']) session.access_token = JSON.parse(opt['access-claims']);
  log(`granting consent for scopes ${JSON.stringify(req.requested_scope)}`);
  return (await hydraAdmin('PUT', `${p}/accept`, 'consent_challenge', challenge, {
    grant_scope: req.requested_scope,
    grant_access_token_audience: req.requested_access_token_audience,
    session,
  })).redirect_to;
}

// follow walks redirects from start until one targets redirectUri, and returns that URL.
async function follow(start, redirectUri) {
  let url = String(start);
  for (let hop = 0; hop < 40; hop++) {
    if (url.startsWith(redirectUri)) { log(`reached ${redirectUri}`); return new URL(url); }
    const u = new URL(url);
    const login = u.searchParams.get('login_challenge'), consent = u.searchParams.get('consent_challenge');
    if (login && opt['hydra-admin']) { url = await answerLogin(login); continue; }
    if (consent && opt['hydra-admin']) { url = await answerConsent(consent); continue; }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`redirect to ${url}, not http(s)`);
    const cookies = jar.get(u.hostname);
    const headers = cookies?.size ? { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') } : {};
    log(`GET ${u.origin}${u.pathname}`);
    const res = await fetch(u, { redirect: 'manual', headers });
    storeCookies(u, res);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      url = new URL(location, u).href;
      continue;
    }
    if (res.status === 200) {
      const next = await approveConsent(u, await res.text());
      if (next) { url = next; continue; }
    }
    throw new Error(`GET ${u} answered ${res.status} without a redirect: ${(await res.text()).slice(0, 500)}`);
  }
  throw new Error(`more than 40 redirects, last to ${url}`);
}

// approveConsent submits vmcp's consent page (approve, first provider) as a
// user would, with this browser's cookies, and returns where it redirects.
async function approveConsent(page, html) {
  const action = html.match(/<form method="post" action="([^"]*\/oauth\/consent)">/);
  if (!action) return undefined;
  const unescape = (v) => v.replace(/&#43;/g, '+').replace(/&#34;/g, '"').replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  const form = new URLSearchParams({ decision: 'approve' });
  for (const m of html.matchAll(/name="(request|csrf)" value="([^"]*)"/g)) form.set(m[1], unescape(m[2]));
  const provider = html.match(/name="provider" value="([^"]*)"/);
  if (provider) form.set('provider', unescape(provider[1]));
  const target = new URL(unescape(action[1]), page);
  const cookies = jar.get(target.hostname);
  log(`approving consent at ${target.origin}${target.pathname}`);
  const res = await fetch(target, {
    method: 'POST', redirect: 'manual', body: form,
    headers: { 'content-type': 'application/x-www-form-urlencoded',
      ...(cookies?.size ? { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') } : {}) },
  });
  storeCookies(target, res);
  const location = res.headers.get('location');
  if (!location) throw new Error(`consent POST answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
  return new URL(location, target).href;
}

// callbackCode checks the redirect URI's query and returns the authorization code.
function callbackCode(cb, wantState) {
  const q = cb.searchParams;
  if (q.get('error')) throw new OAuthFailure(`authorization failed: ${q.get('error')}: ${q.get('error_description') ?? ''}`, q.get('error'));
  if (wantState !== undefined && q.get('state') !== wantState) throw new Error(`state mismatch: got ${q.get('state')}, want ${wantState}`);
  if (!q.get('code')) throw new Error(`no code in ${cb}`);
  return q.get('code');
}

// ---- a person's browser: a loopback redirect URI that receives the browser ----
// listenForCallback binds 127.0.0.1:0, sets the redirect URI to it, and
// returns a function that waits for the browser's visit and yields its URL.
async function listenForCallback() {
  let deliver;
  const visited = new Promise((resolve) => { deliver = resolve; });
  const server = createServer((req, res) => {
    const u = new URL(req.url, opt['redirect-uri']);
    if (u.pathname !== '/callback') { res.writeHead(404).end(); return; }
    const failed = u.searchParams.get('error');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>mcp-oauth-client</title></head><body>` +
      `<h1 id="client-done">${failed ? 'Authorization failed' : 'Signed in'}</h1><p>You can close this tab.</p></body></html>`);
    deliver(u);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.unref();
  opt['redirect-uri'] = `http://127.0.0.1:${server.address().port}/callback`;
  return () => {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('the browser did not reach the redirect URI within 180 s')), 180_000);
    });
    return Promise.race([visited, timeout]).finally(() => { clearTimeout(timer); server.close(); });
  };
}
const waitForBrowser = opt.browser ? await listenForCallback() : undefined;

// ---- OAuthClientProvider: everything in memory, one session ----

// ---- OAuthClientProvider: in memory, or kept in --state FILE ----
class Provider {
  constructor() {
    this.client = undefined; this.saved = undefined; this.verifier = undefined; this.code = undefined;
    this.counts = { registrations: 0, logins: 0, refreshes: 0 };
    this.redirect = opt['redirect-uri'];
    if (opt.state && existsSync(opt.state)) {
      const st = JSON.parse(readFileSync(opt.state, 'utf8'));
      Object.assign(this, { client: st.client, saved: st.tokens, counts: st.counts, redirect: st.redirect });
      if (opt['invalidate-access-token'] && this.saved) this.saved = { ...this.saved, access_token: 'invalidated-by-the-test' };
      this.resumed = true;
      log(`resumed client ${this.client?.client_id} from ${opt.state}`);
    }
  }
  persist() {
    if (!opt.state) return;
    const tmp = `${opt.state}.tmp`;
    writeFileSync(tmp, JSON.stringify({ client: this.client, tokens: this.saved, counts: this.counts, redirect: this.redirect }, null, 2));
    renameSync(tmp, opt.state);
  }
  get redirectUrl() { return this.redirect; }
  get clientMetadata() {
    return {
      client_name: 'vmcp e2e mcp-oauth-client.mjs',
      redirect_uris: [this.redirect],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: opt['auth-method'],
      ...(opt.scope ? { scope: opt.scope } : {}),
    };
  }
  state() { this.expectedState = randomBytes(16).toString('hex'); return this.expectedState; }
  clientInformation() { return this.client; }
  saveClientInformation(info) {
    if (opt['no-login']) throw new Error('the client had to register again (--no-login)');
    log(`registered client ${info.client_id}`); this.client = info; this.counts.registrations++; this.persist();
  }
  tokens() { return this.saved; }
  saveTokens(tokens) {
    if (this.code === undefined) this.counts.refreshes++; // no code in hand: a refresh
    log('received tokens'); this.saved = tokens; this.persist();
  }
  saveCodeVerifier(v) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
  async redirectToAuthorization(authorizationUrl) {
    if (opt['no-login']) throw new Error('the user had to log in again (--no-login)');
    log(`authorizing at ${authorizationUrl.origin}${authorizationUrl.pathname}`);
    if (waitForBrowser) {
      console.error(`OPEN ${authorizationUrl.href}`);
      this.code = callbackCode(await waitForBrowser(), this.expectedState);
      this.counts.logins++;
      return;
    }
    this.code = callbackCode(await follow(authorizationUrl, this.redirect), this.expectedState);
    this.counts.logins++;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function awaitFile(file) {
  for (let i = 0; i < 2400; i++) {
    if (existsSync(file)) return;
    await sleep(50);
  }
  throw new Error(`${file} did not appear within 120 s`);
}

async function loop(client, s) {
  const outcomes = [];
  while (!existsSync(s.until) && outcomes.length < 2000) {
    try {
      const r = await client.callTool({ name: s.name, arguments: s.arguments ?? {} });
      outcomes.push({ ok: !r.isError, text: r.content?.[0]?.text });
    } catch (err) {
      outcomes.push({ ok: false, error: String(err?.message ?? err) });
    }
  }
  return outcomes;
}

async function runSteps(client, steps, transport) {
  const out = [];
  for (const s of steps) {
    switch (s.op) {
      case 'loop': out.push(await loop(client, s)); break;
      case 'signal': writeFileSync(s.file, ''); out.push(null); break;
      case 'await': await awaitFile(s.file); out.push(null); break;
      case 'session':
        if (s.file) writeFileSync(s.file, transport?.sessionId ?? '');
        out.push(transport?.sessionId ?? null);
        break;
      case 'tools': out.push(await client.listTools()); break;
      case 'call': out.push(await client.callTool({ name: s.name, arguments: s.arguments ?? {} })); break;
      case 'resources': out.push(await client.listResources()); break;
      case 'read': out.push(await client.readResource({ uri: s.uri })); break;
      case 'prompts': out.push(await client.listPrompts()); break;
      default: throw new Error(`unknown step ${JSON.stringify(s)}`);
    }
  }
  return out;
}

function parseCommand() {
  const [cmd, ...rest] = positionals;
  if (cmd === 'tools') return { steps: [{ op: 'tools' }], single: true };
  if (cmd === 'call') return { steps: [{ op: 'call', name: rest[0], arguments: JSON.parse(rest[1] ?? '{}') }], single: true };
  if (cmd === 'script') return { steps: JSON.parse(rest[0]), single: false };
  throw new Error(`unknown command ${JSON.stringify(cmd)}; want tools, call NAME JSON or script JSON`);
}

async function main() {
  if (opt['authorize-url']) {
    const cb = await follow(opt['authorize-url'], opt['redirect-uri']);
    const state = cb.searchParams.get('state') ?? undefined;
    return { url: cb.href, code: callbackCode(cb, state), state };
  }
  if (!opt.url) throw new Error('--url (or MCP_URL) is required');
  const command = opt['token-only'] ? undefined : parseCommand();
  const provider = new Provider();
  let live; // the transport of the connected client
  const connect = async () => {
    const transport = new StreamableHTTPClientTransport(new URL(opt.url), { authProvider: provider });
    const client = new Client({ name: 'vmcp-e2e-js', version: '1.0.0' });
    try {
      await client.connect(transport);
      live = transport;
      return { client };
    } catch (err) {
      if (err instanceof UnauthorizedError && provider.code) return { transport };
      throw err;
    }
  };
  let { client, transport } = await connect();
  if (client && provider.resumed) {
    // A client that kept its tokens: it may be let in at once.
  } else if (transport) {
    await transport.finishAuth(provider.code); // code -> tokens, at the token endpoint
    provider.code = undefined; // tokens saved from now on come from refreshes
    log('authorized; reconnecting');
    if (opt['token-only']) return { ...provider.saved, client_id: provider.client?.client_id };
    ({ client } = await connect());
    if (!client) throw new Error('server still asks for authorization after the flow succeeded');
  } else {
    // This client exists to test the authorization flow: a server that lets
    // it in without one is a failure, not a success (in every mode).
    await client.close();
    throw new Error('the server did not ask for authorization');
  }
  try {
    const results = await runSteps(client, command.steps, live);
    return command.single ? results[0] : results;
  } finally {
    await client.close();
  }
}

try {
  process.stdout.write(JSON.stringify(await main(), null, 2) + '\n');
  process.exit(0);
} catch (err) {
  log(err?.stack ?? String(err));
  process.stdout.write(JSON.stringify({ error: String(err?.message ?? err), oauth_error: err?.oauthError }) + '\n');
  process.exit(1);
}

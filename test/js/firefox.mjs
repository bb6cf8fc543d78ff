#!/usr/bin/env node
// firefox.mjs: drives a system Firefox (Debian's firefox-esr) for the browser
// tests, with puppeteer-core over WebDriver BiDi. It never downloads a
// browser: the executable is given. The Go side
// (internal/testsupport/firefox) sends it commands, one JSON object a line on
// stdin, and reads one JSON answer a line on stdout:
//
//   node firefox.mjs --firefox /usr/bin/firefox-esr --profile DIR [--accept-insecure-certs] [--timeout MS]
//   stdout, first: {"ready": true, "version": "firefox/140.0"} or {"ready": false, "error": "..."}
//   stdin:  {"id": 1, "op": "newPage", "context": "default"|"new"}   -> {"id": 1, "value": "p1"}
//           {"id": 2, "op": "goto", "page": "p1", "url": "..."}     -> {"id": 2}
//           {"id": 3, "op": "click", "page": "p1", "sel": "css"}    -> {"id": 3}
//           ... (see the ops table below); a failure is {"id": N, "error": "..."}
//
// Every page records what it logs: console errors and warnings, page errors
// (Firefox reports a Content-Security-Policy violation as one) and
// securitypolicyviolation events (caught by a preload script, which the
// page's CSP does not govern), and the address of every document it
// requested, redirects included. stderr: diagnostics.
import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import puppeteer from 'puppeteer-core';

const { values: opt } = parseArgs({
  options: {
    firefox: { type: 'string' },
    profile: { type: 'string' },
    'accept-insecure-certs': { type: 'boolean', default: false },
    timeout: { type: 'string', default: '60000' },
  },
});
const timeout = Number(opt.timeout);
const send = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const log = (...a) => console.error('[firefox]', ...a);

let browser;
try {
  browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: opt.firefox,
    userDataDir: opt.profile,
    headless: true,
    acceptInsecureCerts: opt['accept-insecure-certs'],
    timeout: 2 * timeout,
    protocolTimeout: 2 * timeout,
    defaultViewport: { width: 1280, height: 800 },
    // Firefox must not try to reach Mozilla's services from a machine
    // without a network, nor slow down a page it thinks is hidden.
    extraPrefsFirefox: {
      'intl.accept_languages': 'en-US',
      'network.captive-portal-service.enabled': false,
      'network.connectivity-service.enabled': false,
      'browser.safebrowsing.malware.enabled': false,
      'browser.safebrowsing.phishing.enabled': false,
      'extensions.update.enabled': false,
      'app.update.auto': false,
      'dom.min_background_timeout_value': 4,
    },
    env: { ...process.env, MOZ_HEADLESS: '1' },
  });
} catch (e) {
  send({ ready: false, error: String(e?.stack ?? e) });
  process.exit(1);
}

const pages = new Map(); // id -> {page, logs, csp, documents}
let pageSeq = 0;

async function newPage(context) {
  const ctx = context === 'new' ? await browser.createBrowserContext() : browser.defaultBrowserContext();
  const page = await ctx.newPage();
  page.setDefaultTimeout(timeout);
  page.setDefaultNavigationTimeout(timeout);
  const rec = { page, ctx: context === 'new' ? ctx : null, logs: [], csp: [], documents: [] };
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warn') rec.logs.push(`console.${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => {
    const msg = String(e?.message ?? e);
    rec.logs.push(`page error: ${msg}`);
    if (msg.includes('Content-Security-Policy')) rec.csp.push(`${page.url().split('?')[0]}: ${msg}`);
  });
  page.on('request', (r) => {
    if (r.isNavigationRequest()) rec.documents.push(r.url());
  });
  page.on('requestfailed', (r) => rec.logs.push(`load failed: ${r.url().split('?')[0]} ${r.failure()?.errorText ?? ''}`));
  await page.exposeFunction('__vmcpCSPViolation', (s) => {
    rec.csp.push(s);
    rec.logs.push(`securitypolicyviolation: ${s}`);
  });
  await page.evaluateOnNewDocument(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__vmcpCSPViolation(`${e.documentURI.split('?')[0]}: ${e.effectiveDirective} blocked ${e.blockedURI}`);
    });
  });
  const id = `p${++pageSeq}`;
  pages.set(id, rec);
  return id;
}

function rec(id) {
  const r = pages.get(id);
  if (!r) throw new Error(`no page ${id}`);
  return r;
}

// location reads the address and load state together, so that a page still
// loading is not taken for the one expected; during a navigation the old
// document may be gone: then it says so instead of failing.
async function location(page) {
  try {
    return await page.evaluate(() => [document.location.href, document.readyState]);
  } catch (e) {
    return [page.url(), 'navigating'];
  }
}

const ops = {
  newPage: (c) => newPage(c.context),
  goto: async (c) => { await rec(c.page).page.goto(c.url, { waitUntil: 'load' }); },
  click: async (c) => {
    const el = await rec(c.page).page.waitForSelector(c.sel, { visible: true });
    await el.click();
  },
  type: async (c) => {
    const { page } = rec(c.page);
    const el = await page.waitForSelector(c.sel, { visible: true });
    await el.evaluate((e) => { e.value = ''; });
    await el.type(c.text);
  },
  waitVisible: async (c) => { await rec(c.page).page.waitForSelector(c.sel, { visible: true }); },
  text: async (c) => {
    const el = await rec(c.page).page.waitForSelector(c.sel, { visible: true });
    return el.evaluate((e) => e.innerText.trim());
  },
  eval: (c) => rec(c.page).page.evaluate(c.expr),
  location: (c) => location(rec(c.page).page),
  back: async (c) => { await rec(c.page).page.goBack({ waitUntil: 'load' }); },
  cookies: async (c) => {
    const { page } = rec(c.page);
    return (await page.cookies(c.url)).map((k) => ({
      name: k.name, path: k.path, httpOnly: k.httpOnly, secure: k.secure, sameSite: k.sameSite ?? '',
    }));
  },
  viewport: async (c) => { await rec(c.page).page.setViewport({ width: c.width, height: c.height, deviceScaleFactor: c.scale || 1 }); },
  screenshot: async (c) => { await rec(c.page).page.screenshot({ path: c.path, fullPage: true }); },
  logs: (c) => rec(c.page).logs,
  csp: (c) => rec(c.page).csp,
  documents: (c) => rec(c.page).documents,
  closePage: async (c) => {
    const r = rec(c.page);
    pages.delete(c.page);
    await r.page.close();
    if (r.ctx) await r.ctx.close();
  },
  version: () => browser.version(),
};

send({ ready: true, version: await browser.version() });

// Commands run one at a time, in order: the Go side waits for each answer.
const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    send({ id: 0, error: `bad command: ${e.message}` });
    continue;
  }
  const op = ops[cmd.op];
  if (!op) {
    send({ id: cmd.id, error: `unknown op ${cmd.op}` });
    continue;
  }
  try {
    const value = await op(cmd);
    send(value === undefined ? { id: cmd.id } : { id: cmd.id, value });
  } catch (e) {
    log(cmd.op, e?.stack ?? e);
    send({ id: cmd.id, error: String(e?.message ?? e) });
  }
}
// stdin closed: the test is over.
try {
  await browser.close();
} catch (e) {
  log('closing:', e?.message ?? e);
}

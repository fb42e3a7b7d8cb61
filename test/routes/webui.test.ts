/// <reference lib="dom" />
// (the dom lib: the page.evaluate() callbacks run in the browser)
// The chat page at GET /: the route through inject() (HTML, public under API keys, off with
// --no-webui), then the page itself in a real headless Chromium (Debian's, driven by
// playwright-core) against a listening server on stories260K: model name, a streamed answer,
// Stop mid-stream freeing the sequence, beam mode's live beams and hypotheses table, escaping of
// stored model text, and the API key field.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { FastifyInstance } from 'fastify';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import t from 'tap';

import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { metricValue, startTestApp, testConfig, type TestServer } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';

t.test('config: webui defaults on; --no-webui, --webui false and WEFT_WEBUI=false turn it off', async (t) => {
  t.equal(loadConfig({ env: {} }).webui, true);
  t.equal(loadConfig({ env: {}, argv: ['--no-webui'] }).webui, false);
  t.equal(loadConfig({ env: {}, argv: ['--webui', 'false'] }).webui, false);
  t.equal(loadConfig({ env: { WEFT_WEBUI: 'false' } }).webui, false);
  t.equal(loadConfig({ env: {}, argv: ['--no-cuda-graphs'] }).cudaGraphs, false, 'every bool key takes --no-<flag>');
  t.throws(() => loadConfig({ env: { WEFT_WEBUI: 'maybe' } }), { code: 'WEFT_ERR_CONFIG_INVALID' });
});

t.test('GET / serves the page as HTML, without the API key when keys are set', async (t) => {
  const app = await buildApp(testConfig({ apiKeys: ['k1'] }));
  t.teardown(() => app.close());
  const r = await app.inject({ method: 'GET', url: '/' });
  t.equal(r.statusCode, 200);
  t.match(r.headers['content-type'], /^text\/html/);
  t.match(r.headers['content-security-policy'], /script-src 'sha256-[^']+'/);
  t.match(r.body, /<title>weft<\/title>/);
  t.notMatch(r.body, /<script[^>]+src=|<link[^>]+href=/, 'no external scripts or styles');
  const models = await app.inject({ method: 'GET', url: '/v1/models' });
  t.equal(models.statusCode, 401, 'the API itself still needs the key');
  t.equal(models.json().error.code, 'WEFT_ERR_AUTH_MISSING_KEY');
});

t.test('--no-webui: GET / is a 404 with the usual error body', async (t) => {
  const app = await buildApp(loadConfig({ env: {}, argv: ['--no-webui', '--log-level', 'silent'] }));
  t.teardown(() => app.close());
  const r = await app.inject({ method: 'GET', url: '/' });
  t.equal(r.statusCode, 404);
  t.equal(r.json().error.code, 'WEFT_ERR_HTTP_NOT_FOUND');
});

t.test(
  'the page in headless Chromium',
  { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium; CI installs it)` },
  async (t) => {
    const s: TestServer = await startTestApp();
    t.teardown(() => s.close());
    await s.app.listen({ port: 0, host: '127.0.0.1' });
    const base = `http://127.0.0.1:${(s.app.server.address() as { port: number }).port}`;
    const keyed: FastifyInstance = await buildApp(testConfig({ apiKeys: ['k1'] }), { service: s.engine.service });
    t.teardown(() => keyed.close());
    await keyed.listen({ port: 0, host: '127.0.0.1' });
    const keyedBase = `http://127.0.0.1:${(keyed.server.address() as { port: number }).port}`;
    const userDataDir = mkdtempSync(join(tmpdir(), 'weft-chromium-'));
    t.teardown(() => rmSync(userDataDir, { recursive: true, force: true }));
    // playwright passes --user-data-dir itself for a persistent context (it refuses it in args);
    // the two servers are two origins, so their pages keep separate localStorage
    const browser: BrowserContext = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      viewport: { width: 1200, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    t.teardown(() => browser.close());
    const metrics = async () => (await fetch(base + '/metrics')).text();
    const openPage = async (url: string): Promise<Page> => {
      const page = await browser.newPage();
      page.setDefaultTimeout(30_000);
      await page.goto(url + '/');
      return page;
    };
    const lastAnswer = (page: Page) => page.locator('#log .msg.assistant').last();
    const setParams = async (page: Page, p: Record<string, string>) => {
      for (const [id, v] of Object.entries(p)) await page.fill(`#${id}`, v);
    };
    const send = async (page: Page, text: string) => {
      await page.fill('#prompt', text);
      await page.click('#send');
    };

    const page = await openPage(base);

    await t.test('shows the model name and backend', async (t) => {
      await page.locator('#model b', { hasText: 'stories260K' }).waitFor();
      t.match(await page.textContent('#model'), /stories260K · cpu/);
    });

    await t.test('a message streams an answer, with TTFT and tokens/s, kept in localStorage', async (t) => {
      await setParams(page, { temperature: '0', 'max-tokens': '40' });
      await send(page, 'Once upon a time');
      await page.waitForFunction(() => (document.querySelector('#log .msg.assistant .content')?.textContent ?? '') !== '');
      await lastAnswer(page).and(page.locator('[data-state="done"]')).waitFor();
      t.ok((await lastAnswer(page).locator('.content').textContent())!.length > 0, 'tokens arrived');
      t.match(await lastAnswer(page).locator('.stats').textContent(), /TTFT \d+ ms · \d+ tokens · [\d.]+ tok\/s/);
      const stored = await page.evaluate(() => JSON.parse(localStorage.getItem('weft.conversation') ?? '[]'));
      t.same(
        stored.map((m: { role: string }) => m.role),
        ['user', 'assistant'],
      );
    });

    await t.test('Stop aborts mid-stream and the server frees the sequence', async (t) => {
      const before = await metrics();
      const abortsBefore = metricValue(before, 'weft_request_success_total', 'finished_reason="abort"');
      const lengthsBefore = metricValue(before, 'weft_request_success_total', 'finished_reason="length"');
      await setParams(page, { 'max-tokens': '400' });
      await page.check('#ignore-eos');
      // press Stop from inside the page as soon as the first token is on screen (generation is
      // fast enough on stories260K that a round trip from the test could arrive after the end)
      await page.evaluate(() => {
        const answers = () => document.querySelectorAll('#log .msg.assistant');
        const numBefore = answers().length;
        const seen = new MutationObserver(() => {
          const a = answers()[numBefore];
          if (a && a.querySelector('.content')!.textContent !== '') {
            seen.disconnect();
            (document.getElementById('stop') as HTMLButtonElement).click();
          }
        });
        seen.observe(document.getElementById('log')!, { childList: true, subtree: true, characterData: true });
      });
      await send(page, 'Tell me a long story');
      await lastAnswer(page).and(page.locator('[data-state="stopped"]')).waitFor();
      t.ok((await lastAnswer(page).locator('.content').textContent())!.length > 0, 'some tokens arrived before Stop');
      await s.engine.service.idle(); // the server has seen the client go and ended the request
      const m = await metrics();
      t.equal(metricValue(m, 'weft_num_requests_running'), 0, 'weft_num_requests_running 0');
      // Aborted, unless the 400 tokens were all computed before the server saw the connection close
      // (a machine loaded by other tests can delay that event that long): either way it ended once.
      const aborts = metricValue(m, 'weft_request_success_total', 'finished_reason="abort"') - abortsBefore;
      const lengths = metricValue(m, 'weft_request_success_total', 'finished_reason="length"') - lengthsBefore;
      t.equal(aborts + lengths, 1, 'the request ended once');
      if (aborts !== 1) t.comment('the request ran to its length before the server saw the client go');
      t.equal(metricValue(m, 'weft_kv_cache_usage_perc'), 0, 'its blocks were freed');
      t.ok(await page.isEnabled('#send'), 'Send is enabled again');
      await page.uncheck('#ignore-eos');
    });

    await t.test('beam mode shows live beams, then the hypotheses table', async (t) => {
      await page.click('#clear');
      await page.check('#beam-mode');
      await setParams(page, { 'beam-width': '3', 'max-tokens': '24' });
      // what the beams list showed while the answer was still streaming
      await page.evaluate(() => {
        const w = window as unknown as { liveBeams: number; sawMark: boolean };
        w.liveBeams = 0;
        w.sawMark = false;
        new MutationObserver(() => {
          if (document.querySelector('#log .msg.assistant')?.getAttribute('data-state') !== 'streaming') return;
          w.liveBeams = Math.max(w.liveBeams, document.querySelectorAll('#beams li:not(.hyp)').length);
          w.sawMark ||= document.querySelector('#beams mark') !== null;
        }).observe(document.getElementById('beams')!, { childList: true, subtree: true });
      });
      await send(page, 'Once upon a time');
      await page.locator('#hyps-view').waitFor({ state: 'visible' });
      const live = await page.evaluate(() => {
        const w = window as unknown as { liveBeams: number; sawMark: boolean };
        return { liveBeams: w.liveBeams, sawMark: w.sawMark };
      });
      t.equal(live.liveBeams, 3, 'three live beams while streaming');
      t.ok(live.sawMark, 'the committed prefix was highlighted');
      const rows = page.locator('#hyps tbody tr');
      t.equal(await rows.count(), 3, 'one row per hypothesis');
      const answer = await lastAnswer(page).locator('.content').textContent();
      t.equal(await rows.first().locator('td.text').textContent(), answer, 'rank 0 is the streamed answer');
      t.match(await page.textContent('#reranker'), /logprob/);
      t.match(await lastAnswer(page).locator('.stats').textContent(), /beam score -?[\d.]+/);
      await page.screenshot({ path: '/tmp/webui.png', fullPage: true });
      await page.uncheck('#beam-mode');
    });

    await t.test('stored model text is rendered as text, never as HTML', async (t) => {
      await page.evaluate(() =>
        localStorage.setItem(
          'weft.conversation',
          JSON.stringify([
            { role: 'user', content: '<b>x</b>' },
            { role: 'assistant', content: '<img src=x onerror="window.pwned=1"><b>x</b>' },
          ]),
        ),
      );
      await page.reload();
      await page.locator('#log .msg.assistant').waitFor();
      t.same(await page.locator('#log .content').allTextContents(), ['<b>x</b>', '<img src=x onerror="window.pwned=1"><b>x</b>']);
      t.equal(await page.locator('#log b, #log img').count(), 0, 'no element was created from the text');
      t.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined);
    });

    await t.test('the API key field: 401 shown without it, chat works with it', async (t) => {
      const kp = await openPage(keyedBase);
      const auth: (string | undefined)[] = [];
      kp.on('request', (r) => {
        if (r.url().endsWith('/chat')) auth.push(r.headers().authorization);
      });
      await kp.locator('#error', { hasText: '401' }).waitFor();
      await setParams(kp, { 'max-tokens': '16' });
      await send(kp, 'hi');
      await kp.locator('#error', { hasText: /401 WEFT_ERR_AUTH_MISSING_KEY/ }).waitFor();
      t.equal(await kp.locator('#log .msg.assistant').count(), 0, 'no answer kept');
      t.ok(await kp.isEnabled('#send'));
      await kp.fill('#api-key', 'k1');
      await kp.press('#api-key', 'Tab'); // change → saved, models reloaded
      await kp.locator('#model b', { hasText: 'stories260K' }).waitFor();
      t.equal(await kp.textContent('#error'), '', 'the error is cleared');
      await send(kp, 'hello');
      await lastAnswer(kp).and(kp.locator('[data-state="done"]')).waitFor();
      t.ok((await lastAnswer(kp).locator('.content').textContent())!.length > 0, 'the answer arrived');
      t.same(auth, [undefined, 'Bearer k1'], 'sent as Authorization: Bearer <key> once set');
      t.equal(await kp.evaluate(() => localStorage.getItem('weft.apiKey')), 'k1', 'kept in localStorage');
    });
  },
);

// The readable log for terminals, and the one access line per request at info.
import t from 'tap';

import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { prettyLine } from '../../src/log-format.js';
import { testConfig } from '../routes/helpers.js';

t.test('a pino record becomes one readable line; anything else passes through', async (t) => {
  const line = prettyLine(
    JSON.stringify({
      level: 40,
      time: Date.UTC(2026, 0, 1, 12, 34, 56, 789),
      pid: 1,
      hostname: 'h',
      msg: 'slow client cut off',
      reqId: 'req-7',
      bytes: 1048576,
      note: 'two words',
    }),
  );
  t.equal(line, '12:34:56.789 WARN  slow client cut off  reqId=req-7 bytes=1048576 note="two words"\n');
  const err = prettyLine(JSON.stringify({ level: 60, time: 0, msg: 'cannot start', err: { message: 'boom', stack: 'Error: boom\n    at x' } }));
  t.match(err, /^00:00:00\.000 FATAL cannot start  err="boom"\nError: boom\n {4}at x\n$/);
  t.equal(prettyLine('not json'), 'not json');
  t.equal(loadConfig({ env: {} }).logFormat, 'auto');
  t.equal(loadConfig({ env: {}, argv: ['--log-format', 'json'] }).logFormat, 'json');
  t.throws(() => loadConfig({ env: {}, argv: ['--log-format', 'xml'] }), { code: 'WEFT_ERR_CONFIG_INVALID' });
});

t.test('one access line per request at info, the request itself at debug; pretty on request', async (t) => {
  const lines: string[] = [];
  const app = await buildApp(testConfig({ logLevel: 'info', logFormat: 'json' }), { logStream: { write: (l) => lines.push(l) } });
  t.teardown(() => app.close());
  await app.inject({ url: '/health' });
  const records = lines.map((l) => JSON.parse(l) as { level: number; msg: string });
  t.same(
    records.filter((r) => r.level === 30).map((r) => r.msg.replace(/ [\d.]+ ms$/, ' N ms')),
    ['GET /health 200 N ms'],
  );
  t.notOk(
    records.some((r) => /incoming request|request completed/.test(r.msg)),
    "Fastify's own two lines are off",
  );

  const debug: string[] = [];
  const dapp = await buildApp(testConfig({ logLevel: 'debug', logFormat: 'pretty' }), { logStream: { write: (l) => debug.push(l) } });
  t.teardown(() => dapp.close());
  await dapp.inject({ url: '/health?x=1' });
  t.ok(
    debug.some((l) => / DEBUG request {2}.*method=GET url="\/health\?x=1"/.test(l)),
    'the request at debug, readable',
  );
  t.ok(
    debug.some((l) => / INFO {2}GET \/health 200 [\d.]+ ms/.test(l)),
    'the access line',
  );
});

#!/usr/bin/env node
// The `weft` command. CommonJS so that bin/threadpool.cjs runs before the first import.
require('./threadpool.cjs');
import('../dist/src/cli.js').then(async ({ main }) => {
  process.exitCode = await main(process.argv.slice(2));
});

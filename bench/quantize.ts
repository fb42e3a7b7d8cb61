// How fast weft writes GGUF block types: `node dist/bench/quantize.js [--shape 110m] [--type q4_k_m] [--repeat 3]`
// times `weft synth --type` (seeded weights straight to the type) and `weft quantize --type` (from
// the F32 GGUF of the same shape), and llama.cpp's llama-quantize on the same F32 file with one
// thread when it is built ($WEFT_LLAMACPP_CACHE or ~/.cache/weft-llamacpp), side by side in one
// run; prints medians and the ratio weft / llama-quantize.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { homedir, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { GGUF_FILE_TYPES, type GgufFileType } from '../src/model/quant-mix.js';
import { quantizeToGguf } from '../src/model/quantize-gguf.js';
import { synthesizeModel } from '../src/model/synth.js';
import { benchArgs } from './args.js';
import { SHAPES } from './shapes.js';
import { median } from './timing.js';

const { values } = benchArgs('node dist/bench/quantize.js', {
  shape: { type: 'string', default: '110m' },
  type: { type: 'string', default: 'q4_k_m' },
  repeat: { type: 'string', default: '3' },
});
const shape = SHAPES[values.shape!],
  type = values.type as GgufFileType,
  repeat = Number(values.repeat);
if (!shape || !GGUF_FILE_TYPES.includes(type) || !(repeat >= 1)) {
  const usage = `[--shape ${Object.keys(SHAPES).join('|')}] [--type ${GGUF_FILE_TYPES.join('|')}] [--repeat N]`;
  process.stderr.write(`usage: node dist/bench/quantize.js ${usage}\n`);
  process.exit(2);
}
const llamaQuantize = join(process.env.WEFT_LLAMACPP_CACHE ?? join(homedir(), '.cache', 'weft-llamacpp'), 'src', 'build', 'bin', 'llama-quantize');

const dir = mkdtempSync(join(tmpdir(), 'weft-bench-quantize-'));
try {
  const src = join(dir, 'f32.gguf'),
    out = join(dir, 'out.gguf');
  await synthesizeModel({ config: shape, out: src, format: 'gguf', type: 'f32', seed: 0 });
  // wall seconds, and this process's CPU seconds (weft's runs; on a shared machine the wall time also counts waiting)
  const cpu: number[][] = [[], []];
  const seconds = async (fn: () => Promise<unknown> | unknown, cpuOut?: number[]) => {
    const t0 = performance.now(),
      c0 = process.cpuUsage();
    await fn();
    const c = process.cpuUsage(c0);
    cpuOut?.push((c.user + c.system) / 1e6);
    return (performance.now() - t0) / 1000;
  };
  const rows: [string, number[]][] = [
    ['weft synth', []],
    ['weft quantize', []],
    ['llama-quantize (1 thread)', []],
  ];
  for (let i = 0; i < repeat; i++) {
    rows[0][1].push(await seconds(() => synthesizeModel({ config: shape, out, format: 'gguf', type, seed: 0 }), cpu[0]));
    rows[1][1].push(await seconds(() => quantizeToGguf(src, out, type), cpu[1]));
    if (existsSync(llamaQuantize))
      rows[2][1].push(
        await seconds(() =>
          execFileSync(llamaQuantize, [src, out, type.toUpperCase(), '1'], {
            stdio: 'ignore',
            env: { ...process.env, LD_LIBRARY_PATH: dirname(llamaQuantize) },
          }),
        ),
      );
  }
  const size = statSync(out).size;
  const head = `${values.shape} ${type} (${(size / 2 ** 20).toFixed(1)} MiB), median of ${repeat}`;
  process.stdout.write(`${head}, load average ${loadavg()[0].toFixed(1)}:\n`);
  const ref = rows[2][1].length ? median(rows[2][1]) : null;
  for (const [k, [name, xs]] of rows.entries()) {
    if (!xs.length) {
      process.stdout.write(`  ${name.padEnd(26)} not built (${llamaQuantize})\n`);
      continue;
    }
    const ratio = ref && name !== rows[2][0] ? `  ${(median(xs) / ref).toFixed(2)}× llama-quantize's time` : '';
    const cpuTime = cpu[k] ? ` (CPU ${median(cpu[k]).toFixed(2)} s)` : '';
    process.stdout.write(`  ${name.padEnd(26)} ${median(xs).toFixed(2)} s${cpuTime}${ratio}\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// Synthetic Llama shapes the benchmarks use (seeded random weights at real sizes), and
// `node dist/bench/shapes.js NAME DTYPE`, which writes one as a GGUF (once, cached by
// bench/timing.ts) and prints its path: the serving benchmark's model in bench/compare.sh.
import { pathToFileURL } from 'node:url';

import { syntheticGguf } from './timing.js';

// A Llama with a 32,000-token vocabulary (Llama 2's tokenizer), tied embeddings, no GQA.
const llama = (hidden: number, layers: number, heads: number, ffn: number): Record<string, unknown> => ({
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: hidden,
  num_hidden_layers: layers,
  num_attention_heads: heads,
  num_key_value_heads: heads,
  intermediate_size: ffn,
  vocab_size: 32000,
  max_position_embeddings: 1024,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
  bos_token_id: 1,
  eos_token_id: 2,
});

export const SHAPES: Record<string, Record<string, unknown>> = {
  '15m': llama(288, 6, 6, 768),
  '110m': llama(768, 12, 12, 2048),
};

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [name, dtype] = process.argv.slice(2);
  if (!SHAPES[name] || !['f32', 'f16', 'q8_0'].includes(dtype)) {
    process.stderr.write(`usage: node dist/bench/shapes.js ${Object.keys(SHAPES).join('|')} f32|f16|q8_0\n`);
    process.exit(2);
  }
  process.stdout.write((await syntheticGguf(name, SHAPES[name], dtype as 'f32' | 'f16' | 'q8_0')) + '\n');
}

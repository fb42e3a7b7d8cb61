// A one-line progress bar on a terminal (stderr), redrawn in place at most every 100 ms, for
// downloads, loading, quantizing and synthesizing. Nothing is written when stderr is not a TTY
// (logs, CI), so callers report progress unconditionally.
export interface ProgressBar {
  update(label: string, done: number, total: number): void;
  end(): void;
}

const WIDTH = 24;

function fmtBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`;
}

export function progressBar(stream: NodeJS.WriteStream = process.stderr, unit: 'bytes' | 'items' = 'bytes'): ProgressBar {
  let last = 0,
    drawn = false;
  const start = Date.now();
  return {
    update(label, done, total) {
      const now = Date.now();
      if (!stream.isTTY || (now - last < 100 && done < total)) return;
      last = now;
      const frac = total > 0 ? Math.min(1, done / total) : 0;
      const bar = '#'.repeat(Math.round(frac * WIDTH)).padEnd(WIDTH, '.');
      const amount = unit === 'bytes' ? `${fmtBytes(done)}${total ? ` / ${fmtBytes(total)}` : ''}` : `${done}${total ? ` / ${total}` : ''}`;
      const rate = unit === 'bytes' && now > start ? `  ${fmtBytes((done / (now - start)) * 1000)}/s` : '';
      stream.write(`\r${label} [${bar}] ${total ? `${(frac * 100).toFixed(0).padStart(3)}% ` : ''}${amount}${rate}\x1b[K`);
      drawn = true;
    },
    end() {
      if (drawn && stream.isTTY) stream.write('\n');
      drawn = false;
    },
  };
}

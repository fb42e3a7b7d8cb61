// A one-line progress bar on stderr (only when stderr is a terminal: the caller decides), redrawn
// at most every 100 ms so a fast run does not spend its time printing.
export class Progress {
  private lastDraw = 0;
  private readonly startMs = Date.now();

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly label: string,
  ) {}

  update(done: number, total: number): void {
    const now = Date.now();
    if (done < total && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    this.out.write('\r' + renderBar(this.label, done, total, (now - this.startMs) / 1000, this.out.columns ?? 80));
  }

  done(): void {
    this.out.write('\n');
  }
}

export function renderBar(label: string, done: number, total: number, seconds: number, columns: number): string {
  const frac = total > 0 ? Math.min(1, done / total) : 1;
  const tail = ` ${done}/${total} ${seconds.toFixed(1)}s`;
  const width = Math.max(10, Math.min(40, columns - label.length - tail.length - 4));
  const filled = Math.round(frac * width);
  return `${label} |${'█'.repeat(filled)}${' '.repeat(width - filled)}|${tail}`;
}

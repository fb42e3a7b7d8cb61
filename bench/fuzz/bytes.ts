// A little-endian byte writer for the fuzzers' inputs (the native target's input layout, and
// safetensors headers rebuilt around a mutated JSON).

export class LeBytes {
  #buf = new Uint8Array(1024);
  #view = new DataView(this.#buf.buffer);
  length = 0;

  #room(n: number): number {
    if (this.length + n > this.#buf.length) {
      const next = new Uint8Array(Math.max(this.#buf.length * 2, this.length + n));
      next.set(this.#buf.subarray(0, this.length));
      this.#buf = next;
      this.#view = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  // #room first: it may replace the view
  u8(v: number): this {
    const at = this.#room(1);
    this.#view.setUint8(at, v);
    return this;
  }
  u16(v: number): this {
    const at = this.#room(2);
    this.#view.setUint16(at, v, true);
    return this;
  }
  i32(v: number): this {
    const at = this.#room(4);
    this.#view.setInt32(at, v, true);
    return this;
  }
  f32(v: number): this {
    const at = this.#room(4);
    this.#view.setFloat32(at, v, true);
    return this;
  }
  i64(v: bigint): this {
    const at = this.#room(8);
    this.#view.setBigInt64(at, v, true);
    return this;
  }
  u64(v: bigint): this {
    const at = this.#room(8);
    this.#view.setBigUint64(at, v, true);
    return this;
  }
  bytes(b: Uint8Array): this {
    const at = this.#room(b.length);
    this.#buf.set(b, at);
    return this;
  }
  finish(): Uint8Array {
    return this.#buf.slice(0, this.length);
  }
}

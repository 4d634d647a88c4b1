/**
 * Fixed-capacity rings over typed arrays: memory is allocated once and never grows, however
 * long the page stays open. `unroll` copies oldest -> newest into a caller-owned, reusable
 * array (uPlot has no ring offset), so a frame allocates nothing but, at most, a view.
 */

export class Ring {
  readonly capacity: number;
  private readonly buf: Float64Array;
  private head = 0; // next write slot
  private n = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be >= 1');
    this.capacity = capacity;
    this.buf = new Float64Array(capacity);
  }

  get length(): number {
    return this.n;
  }

  push(v: number): void {
    this.buf[this.head] = v;
    this.head = this.head + 1 === this.capacity ? 0 : this.head + 1;
    if (this.n < this.capacity) this.n++;
  }

  /** i-th oldest (0 = oldest, length-1 = newest); NaN when out of range. */
  at(i: number): number {
    if (i < 0 || i >= this.n) return NaN;
    return this.buf[(this.start() + i) % this.capacity];
  }

  last(): number {
    return this.n ? this.at(this.n - 1) : NaN;
  }

  clear(): void {
    this.head = 0;
    this.n = 0;
  }

  private start(): number {
    return this.n < this.capacity ? 0 : this.head;
  }

  /**
   * Oldest -> newest into `into` (a typed array or a plain array, at least `length` long for a
   * typed one; a plain array gets its length set). NaN becomes null in a plain array when
   * `nanAsNull` (uPlot draws a gap at null). Returns how many values were written.
   */
  unroll(into: Float64Array | (number | null)[], nanAsNull = false): number {
    const n = this.n;
    const s = this.start();
    const cap = this.capacity;
    if (Array.isArray(into)) {
      if (into.length !== n) into.length = n;
      for (let i = 0, j = s; i < n; i++) {
        const v = this.buf[j];
        into[i] = nanAsNull && v !== v ? null : v;
        j = j + 1 === cap ? 0 : j + 1;
      }
      return n;
    }
    if (into.length < n) throw new RangeError(`unroll: target holds ${into.length} < ${n}`);
    const first = Math.min(n, cap - s);
    into.set(this.buf.subarray(s, s + first), 0);
    if (first < n) into.set(this.buf.subarray(0, n - first), first);
    return n;
  }
}

/**
 * Aligned columns sharing one head (an x column and its y series): a row is pushed whole, so
 * every column always has the same length, which uPlot requires.
 */
export class Rings {
  readonly cols: Ring[];
  private readonly scratch: (number | null)[][];

  constructor(capacity: number, columns: number) {
    this.cols = Array.from({ length: columns }, () => new Ring(capacity));
    this.scratch = this.cols.map(() => []);
  }

  get length(): number {
    return this.cols[0].length;
  }

  get capacity(): number {
    return this.cols[0].capacity;
  }

  push(...values: number[]): void {
    this.pushRow(values);
  }

  /** One row; a missing value becomes NaN (a gap). */
  pushRow(values: ArrayLike<number>): void {
    for (let c = 0; c < this.cols.length; c++) {
      const v = c < values.length ? values[c] : NaN;
      this.cols[c].push(v);
    }
  }

  clear(): void {
    for (const r of this.cols) r.clear();
  }

  /**
   * Every column unrolled into reusable plain arrays (NaN -> null, except in column 0, the x
   * values). The same array objects are returned every call: hand them to uPlot's setData.
   */
  unrollAll(): (number | null)[][] {
    for (let c = 0; c < this.cols.length; c++) this.cols[c].unroll(this.scratch[c], c > 0);
    return this.scratch;
  }
}

/**
 * The heatmap's ring of columns: one column per heatmap row (a time step), `levels` values
 * each, plus its row number and time. `written` counts pushes since the last reset and `epoch`
 * counts resets, so a painter can tell "n new columns" from "start over".
 */
export class ColumnRing {
  readonly capacity: number;
  levels: number;
  values: Float32Array;
  readonly rows: Float64Array;
  readonly times: Float64Array;
  private head = 0;
  private n = 0;
  written = 0;
  epoch = 0;
  lastRow = -1;

  constructor(capacity: number, levels: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be >= 1');
    this.capacity = capacity;
    this.levels = levels;
    this.values = new Float32Array(capacity * levels);
    this.rows = new Float64Array(capacity);
    this.times = new Float64Array(capacity);
  }

  get length(): number {
    return this.n;
  }

  /** The slot the next push writes. */
  get headSlot(): number {
    return this.head;
  }

  /** Physical slot of the i-th oldest column. */
  slot(i: number): number {
    const start = this.n < this.capacity ? 0 : this.head;
    return (start + i) % this.capacity;
  }

  reset(levels = this.levels): void {
    if (levels !== this.levels) {
      this.levels = levels;
      this.values = new Float32Array(this.capacity * levels);
    } else {
      this.values.fill(0);
    }
    this.head = 0;
    this.n = 0;
    this.written = 0;
    this.lastRow = -1;
    this.epoch++;
  }

  /** A column; values beyond `levels` are ignored, missing or null ones are NaN. */
  push(row: number, t: number, vals: ArrayLike<number | null>): void {
    const s = this.head;
    const base = s * this.levels;
    for (let l = 0; l < this.levels; l++) {
      const v = l < vals.length ? vals[l] : null;
      this.values[base + l] = v === null || v === undefined ? NaN : v;
    }
    this.rows[s] = row;
    this.times[s] = t;
    this.head = s + 1 === this.capacity ? 0 : s + 1;
    if (this.n < this.capacity) this.n++;
    this.written++;
    this.lastRow = row;
  }

  value(slot: number, level: number): number {
    return this.values[slot * this.levels + level];
  }
}

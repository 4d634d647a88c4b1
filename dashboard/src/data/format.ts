/** Number formatting for the readouts (no Intl objects built per call). */

const DASH = '—';

export function fixed(v: number | null | undefined, digits = 2): string {
  return v === null || v === undefined || !Number.isFinite(v) ? DASH : v.toFixed(digits);
}

export function int(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
  const s = Math.round(Math.abs(v)).toString();
  let out = '';
  for (let i = 0; i < s.length; i++) {
    if (i && (s.length - i) % 3 === 0) out += ',';
    out += s[i];
  }
  return v < 0 ? `−${out}` : out;
}

export function pct(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined || !Number.isFinite(v) ? DASH : `${v.toFixed(digits)}%`;
}

/** paise -> "₹1,234.56" (with a real minus sign) */
export function rupees(paise: number | null | undefined): string {
  if (paise === null || paise === undefined || !Number.isFinite(paise)) return DASH;
  const r = Math.abs(paise) / 100;
  const whole = Math.floor(r);
  const frac = Math.round((r - whole) * 100);
  const w = frac === 100 ? whole + 1 : whole;
  const f = frac === 100 ? 0 : frac;
  return `${paise < 0 ? '−' : ''}₹${int(w)}.${f.toString().padStart(2, '0')}`;
}

/** microseconds, scaled: 850 µs, 12.3 ms, 1.20 s */
export function micros(us: number | null | undefined): string {
  if (us === null || us === undefined || !Number.isFinite(us)) return DASH;
  const three = (v: number) => (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0));
  if (us < 1000) return `${three(us)} µs`;
  if (us < 1e6) return `${three(us / 1000)} ms`;
  return `${three(us / 1e6)} s`;
}

/** An axis label for a decade of microseconds: 10 µs, 1 ms, 1 s */
export function microsShort(us: number): string {
  return micros(us).replace(/\.0+ /, ' ');
}

export function ms(v: number | null | undefined, digits = 2): string {
  return v === null || v === undefined || !Number.isFinite(v) ? DASH : `${v.toFixed(digits)} ms`;
}

/** seconds as 4.2 s / 3m 05s / 2h 01m */
export function duration(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return DASH;
  if (s < 0) s = 0;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.floor(s % 60).toString().padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${(m % 60).toString().padStart(2, '0')}m`;
}

/** HH:MM:SS local time of a unix-ms instant */
export function clock(msEpoch: number | null | undefined): string {
  if (msEpoch === null || msEpoch === undefined || !Number.isFinite(msEpoch)) return DASH;
  const d = new Date(msEpoch);
  const p = (n: number) => n.toString().padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Set text only when it changed (no layout work for equal strings). */
export function setText(el: Element | null | undefined, s: string): void {
  if (el && el.textContent !== s) el.textContent = s;
}

export function setAttr(el: Element | null | undefined, name: string, v: string): void {
  if (el && el.getAttribute(name) !== v) el.setAttribute(name, v);
}

/** A meter's fill (0..1) as a CSS variable: no React render. */
export function setFill(el: HTMLElement | null | undefined, f: number | null): void {
  if (!el) return;
  const v = f === null || !Number.isFinite(f) ? '0' : Math.max(0, Math.min(1, f)).toFixed(4);
  if (el.style.getPropertyValue('--fill') !== v) el.style.setProperty('--fill', v);
}

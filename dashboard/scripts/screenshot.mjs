// Screenshot the built cockpit served by a running monitor, in Debian's Chromium.
//   node scripts/screenshot.mjs http://127.0.0.1:8790/ /tmp/cockpit.png [wait-ms] [width] [height]
// Prints the console messages, page errors and a frame-pacing summary.
import { launch } from './chromium.mjs';

const [url = 'http://127.0.0.1:8787/', out = '/tmp/cockpit.png', wait = '6000', w = '1600', h = '1400'] =
  process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: Number(w), height: Number(h) } });
  page.on('console', (m) => console.log(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.log(`pageerror: ${e.message}`));
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForTimeout(Number(wait));
  const pacing = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const ts = [];
        const step = (t) => {
          ts.push(t);
          if (ts.length < 121) requestAnimationFrame(step);
          else {
            const d = ts.slice(1).map((t, i) => t - ts[i]).sort((a, b) => a - b);
            const v = window.__vajra;
            const f = [];
            const ring = v?.store.scheduler.flushMs;
            for (let i = 0; ring && i < ring.length; i++) f.push(ring.at(i));
            f.sort((a, b) => a - b);
            resolve({
              flush_p50_ms: f[Math.floor(f.length * 0.5)],
              flush_p95_ms: f[Math.floor(f.length * 0.95)],
              flush_max_ms: f[f.length - 1],
              frames: d.length,
              p50_ms: d[Math.floor(d.length * 0.5)],
              p95_ms: d[Math.floor(d.length * 0.95)],
              flushes: v?.store.scheduler.frames,
              messages: v?.store.messages,
            });
          }
        };
        requestAnimationFrame(step);
      }),
  );
  console.log('frame pacing', JSON.stringify(pacing));
  if (process.env.SCROLL_Y) await page.evaluate((y) => window.scrollTo(0, y), Number(process.env.SCROLL_Y));
  const jpeg = /\.jpe?g$/.test(out);
  await page.screenshot({ path: out, fullPage: process.env.FULL !== '0', ...(jpeg ? { type: 'jpeg', quality: 70 } : {}) });
  console.log(`screenshot ${out}`);
} finally {
  await browser.close();
}

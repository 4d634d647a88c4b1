// End to end against a running monitor + engine, in Debian's Chromium (playwright-core):
// load the cockpit, kill through the UI (confirm with Enter, token prompt), check the engine
// says KILLED on the HTTP API, re-arm through the UI, and take screenshots along the way.
//   node scripts/e2e-kill.mjs http://127.0.0.1:8790/ /tmp/dash-runs/monitor.token /tmp/cockpit
import { readFileSync } from 'node:fs';
import { launch } from './chromium.mjs';

const [url = 'http://127.0.0.1:8787/', tokenFile = 'runs/monitor.token', out = '/tmp/cockpit'] = process.argv.slice(2);
const token = readFileSync(tokenFile, 'utf8').trim();
const api = (p) => fetch(new URL(p, url)).then((r) => r.json());
const fail = (m) => {
  console.error(`FAIL: ${m}`);
  process.exitCode = 1;
};

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
  page.on('pageerror', (e) => fail(`page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && console.log(`console.error: ${m.text()}`));
  await page.goto(url);
  const health = await api('/api/health');
  if (health.engine !== 'LIVE') fail(`the engine is ${health.engine}: start one first`);
  await page.getByText('● LIVE').waitFor({ timeout: 10_000 });
  await page.waitForTimeout(5000);
  await page.screenshot({ path: `${out}-live.png` });

  // kill: button -> confirm (Enter) -> token prompt -> KILLED
  const t0 = Date.now();
  await page.getByRole('button', { name: '■ KILL' }).click();
  await page.getByRole('alertdialog').waitFor();
  await page.keyboard.press('Enter');
  await page.locator('#token-input').fill(token);
  await page.keyboard.press('Enter');
  await page.locator('.kill-latched').waitFor({ timeout: 8000 });
  const banner = await page.locator('.kill-latched').innerText();
  if (!banner.includes('✕ KILLED')) fail(`not KILLED in the UI: ${banner}`);
  console.log(`kill acknowledged in the UI after ${Date.now() - t0} ms (incl. typing): ${banner.replace(/\s+/g, ' ')}`);
  const snap = await api('/api/snapshot');
  console.log(`engine over HTTP: state ${snap.engine.state}, sentinel ${snap.sentinel.state}, exec ${snap.execution.state}`);
  if (snap.engine.state !== 'KILLED') fail('the engine does not say KILLED');
  const stored = await page.evaluate(() => ({ s: sessionStorage.length, l: localStorage.length, url: location.href }));
  if (stored.l !== 0 || stored.url.includes(token)) fail('token leaked to localStorage or the URL');
  await page.waitForTimeout(1500);
  await page.screenshot({ path: `${out}-killed.png` });

  // re-arm: its own confirm
  await page.getByRole('button', { name: 'Re-arm…' }).click();
  await page.getByRole('alertdialog').waitFor();
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: '■ KILL' }).waitFor({ timeout: 5000 }).catch(() => undefined);
  const err = await page.locator('.kill-error').allInnerTexts();
  const after = await api('/api/snapshot');
  console.log(`after re-arm: engine ${after.engine.state}, sentinel ${after.sentinel.state}; UI errors: ${JSON.stringify(err)}`);
  await page.screenshot({ path: `${out}-rearmed.png` });
} finally {
  await browser.close();
}

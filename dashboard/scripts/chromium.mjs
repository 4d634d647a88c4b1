// Debian's Chromium under playwright-core, with the flags this machine needs (see
// ../shared/reference/dashboard.md): no sandbox as root, software WebGL, and no background
// networking (it would flood the closed network with refused connections). Nothing downloads a
// browser: CHROMIUM or /usr/bin/chromium is the one used.
import { chromium } from 'playwright-core';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--enable-unsafe-swiftshader',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
  });
}
